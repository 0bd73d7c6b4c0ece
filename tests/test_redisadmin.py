"""
The operator's room controls (L{IChatAdmin}) of the Redis chat, against a
real C{redis-server}, two L{RedisChat}s standing for two servers: the room
list is the chat's, a topic an operator sets reaches the room's members on
every server (C{"by": "(operator)"}), and clearing a room forgets its
history on every server while its members stay and its C{seq} carries on.
The same through the operator's request handling (L{AdminRequests}), which
answers a Redis chat's room controls with a Deferred.
"""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from chatsvc.admin.bans import BanList
from chatsvc.admin.operator import LocalOperator
from chatsvc.admin.requests import AdminRequests
from chatsvc.chat.interfaces import IChatAdmin
from chatsvc.chat.redis.admin import topic_parts

from .helpers import make_factory
from .redischat import RedisChatTestsMixin
from .scaleout import wait_until


class TopicBodyTests(TestCase):
    def test_topic_parts(self) -> None:
        """With the room's name put between them, the parts are the topic message."""
        head, tail = topic_parts('say "hi" \u00e9', "2026-12-06T05:00:00.000Z")
        self.assertEqual(json.loads(head + b'"#Dev"' + tail), {
            "type": "topic", "room": "#Dev", "text": 'say "hi" \u00e9', "by": "(operator)",
            "ts": "2026-12-06T05:00:00.000Z"})


class RedisRoomAdminTests(RedisChatTestsMixin, TestCase):
    timeout = 30

    async def test_room_list(self) -> None:
        a, b = await self.server(history_size=3), await self.server(history_size=3)
        verifyObject(IChatAdmin, a)
        alice = await self.join(a, "alice", rooms=["#Dev", "#lobby"])
        bob = await self.join(b, "bob")
        for n in range(5):
            await a.say(alice, "#lobby", f"m{n}")
        await b.say(bob, None, "hi")
        await self.settle([a, b])
        self.assertEqual(await b.room_list(), [
            {"room": "#lobby", "count": 2, "topic": "", "history": 3},
            {"room": "#Dev", "count": 1, "topic": "", "history": 0}])
        self.assertEqual(a.member_rooms(alice), ["#Dev", "#lobby"])

    async def test_operator_topic_reaches_every_server(self) -> None:
        a, b = await self.server(), await self.server()
        alice = await self.join(a, "alice", rooms=["#dev"])
        bob = await self.join(b, "bob", rooms=["#DEV", "#lobby"])
        carol = await self.join(b, "carol")
        await b.operator_topic("#Dev", "release day")
        await self.settle([a, b])
        for member in (alice, bob):
            [topic] = member.of_type("topic")
            self.assertEqual((topic["room"], topic["text"], topic["by"]),
                             ("#dev", "release day", "(operator)"))
        self.assertEqual(carol.of_type("topic"), [])
        rows = await a.room_list()
        self.assertEqual([(r["room"], r["topic"]) for r in rows],
                         [("#dev", "release day"), ("#lobby", "")])
        late = await self.join(a, "late", rooms=["#dev"])
        self.assertEqual(late.of_type("room")[0]["topic"], "release day")
        for room in ("#nowhere", "not a room"):
            with self.assertRaises(KeyError):
                await a.operator_topic(room, "x")

    async def test_clear_room(self) -> None:
        """Members stay, C{seq} carries on, newcomers get no history, C{since} before the cut is incomplete."""
        a, b = await self.server(), await self.server()
        alice = await self.join(a, "alice", rooms=["#dev"])
        bob = await self.join(b, "bob", rooms=["#dev"])
        for n in range(4):
            await a.say(alice, "#dev", f"spam{n}")
        await self.settle([a, b])
        self.assertEqual(await b.clear_room("#DEV"), 4)
        self.assertEqual([(r["room"], r["count"], r["history"]) for r in await a.room_list()],
                         [("#dev", 2, 0)])
        self.assertEqual(await b.say(bob, "#dev", "after"), 5)
        await self.settle([a, b])
        self.assertEqual(alice.seen("#dev")[-1], (5, "after"))
        fresh = await self.join(a, "fresh", rooms=["#dev"])
        self.assertEqual([(m["seq"], m["text"]) for m in fresh.history("#dev")["messages"]],
                         [(5, "after")])
        self.assertFalse(fresh.history("#dev")["complete"])
        epoch = alice.messages[0]["epoch"]
        before = await self.join(b, "before", rooms=["#dev"], since={"#dev": 2}, epoch=epoch)
        self.assertFalse(before.history("#dev")["complete"])
        at = await self.join(b, "at", rooms=["#dev"], since={"#dev": 4}, epoch=epoch)
        self.assertTrue(at.history("#dev")["complete"])
        self.assertEqual([m["text"] for m in at.history("#dev")["messages"]], ["after"])
        with self.assertRaises(KeyError):
            await a.clear_room("#nowhere")

    async def test_through_the_operator_requests(self) -> None:
        """The admin requests answer a Redis chat's room controls when Redis has."""
        a = await self.server()
        alice = await self.join(a, "alice", rooms=["#dev"])
        await a.say(alice, "#dev", "one")
        clock = Clock()
        factory = make_factory(clock)
        requests = AdminRequests(LocalOperator(factory, a, BanList(clock), clock))

        async def ask(**request: object) -> dict:
            reply = requests.handle(json.dumps(request).encode())
            self.assertIsInstance(reply, Deferred)
            return await reply

        self.assertEqual(await ask(action="rooms"), {"ok": True, "rooms": [
            {"room": "#dev", "count": 1, "topic": "", "history": 1}]})
        self.assertEqual(await ask(action="topic", room="#dev", text="hello"), {"ok": True})
        self.assertEqual(await ask(action="clear", room="#dev"), {"ok": True, "forgotten": 1})
        for request in ({"action": "topic", "room": "#none", "text": "x"},
                        {"action": "clear", "room": "#none"}):
            reply = await ask(**request)
            self.assertFalse(reply["ok"])
            self.assertIn("no room called '#none'", reply["error"])
        line = await requests.handle_line(b'{"action": "rooms"}')
        self.assertEqual(json.loads(line)["rooms"][0]["topic"], "hello")

    async def test_redis_unreachable(self) -> None:
        """While Redis is away, the room controls are refused with a clear error, no traceback."""
        a = await self.server()
        await self.join(a, "alice", rooms=["#dev"])
        clock = Clock()
        requests = AdminRequests(LocalOperator(make_factory(clock), a, BanList(clock), clock))
        self.redis.stop()
        await wait_until(lambda: not a.available, 10, "the loss to be noticed")
        for request in (b'{"action": "rooms"}', b'{"action": "clear", "room": "#dev"}',
                        b'{"action": "topic", "room": "#dev", "text": "x"}'):
            reply = requests.handle(request)
            if isinstance(reply, Deferred):
                reply = await reply
            self.assertEqual(reply, {"ok": False, "error":
                                     "the chat store (Redis) is unreachable; try again shortly"})
        self.assertEqual(self.flushLoggedErrors(), [])
