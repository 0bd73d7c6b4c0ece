"""
L{chatsvc.redisroom.RedisRoom} against a real C{redis-server} (one per test
class, on a free loopback port): several rooms in this process stand for
several servers sharing one chat. Members are small fakes that decode what
they are sent.
"""

from __future__ import annotations

import json
import itertools
from typing import Any, Dict, List, Optional

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial.unittest import TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from chatsvc.redisroom import RedisRoom, _Release
from chatsvc.chat.interfaces import IChatMember
from chatsvc.wire.errors import RemoteProtocolError
from chatsvc.wire.framing import FrameDecoder

from .scaleout import LOOPBACK, RedisServer, wait_until

_chats = itertools.count(1)


@implementer(IChatMember)
class Member:
    """A client as the room sees it: frames in, decoded."""

    name: Optional[str] = None
    session_id: Optional[str] = None

    def __init__(self) -> None:
        self.messages: List[Dict[str, Any]] = []
        self.closing = False
        self.was_replaced = False
        self._decoder = FrameDecoder()

    def send(self, message: Dict[str, Any]) -> None:
        self.messages.append(json.loads(json.dumps(message)))

    def send_frame(self, frame: bytes) -> None:
        self._decoder.receive_data(frame)
        for body in self._decoder.frames():
            self.messages.append(json.loads(body))

    def replaced(self) -> None:
        self.was_replaced = True
        self.closing = True

    def of_type(self, *kinds: str) -> List[Dict[str, Any]]:
        return [m for m in self.messages if m["type"] in kinds]

    def texts(self) -> List[str]:
        return [m["text"] for m in self.of_type("message")]


class RedisRoomTestsMixin:
    redis: RedisServer

    def setUp(self) -> None:
        # A redis-server starts in milliseconds: one per test keeps them apart.
        self.redis = RedisServer.start(self.mktemp())
        self.addCleanup(self.redis.stop)
        self.chat = f"t{next(_chats)}"

    async def room(self, lease: float = 10.0, history_size: int = 50, **kw: Any) -> RedisRoom:
        """A started room on this test's chat, ready to take requests."""
        endpoint = TCP4ClientEndpoint(reactor, LOOPBACK, self.redis.port)
        room = RedisRoom(reactor, endpoint, chat=self.chat, history_size=history_size,
                         lease=lease, **kw)
        room.start()
        self.addCleanup(room.stop)
        await wait_until(lambda: room.available and room._synced, 10, "room ready")
        return room

    async def join(self, room: RedisRoom, name: Optional[str] = None, **kw: Any) -> Member:
        member = Member()
        await room.register(member, name, **kw)
        return member

    async def settle(self, rooms: List[RedisRoom]) -> None:
        """Wait until every room has read every event written so far."""
        for room in rooms:  # its requests so far have run once this answers
            if room.available:
                await room._commands.command("PING")

        async def newest() -> int:
            reply = self.redis.command("HGET", f"chatsvc:{{{self.chat}}}:meta", "ev")
            return int(reply.split(b"\r\n")[1]) if reply.startswith(b"$") and not reply.startswith(b"$-1") else 0

        target = await newest()
        await wait_until(lambda: all(r._ev >= target for r in rooms), 10, "rooms to catch up")


class RedisRoomTests(RedisRoomTestsMixin, TestCase):
    timeout = 30

    async def test_one_global_order(self) -> None:
        """
        Members of three servers see every public message, their own
        included, once each, in the same order, with C{seq} 1, 2, 3, ...
        """
        rooms = [await self.room() for _ in range(3)]
        members = [await self.join(room, f"u{i}{j}") for i, room in enumerate(rooms)
                   for j in range(2)]
        verifyObject(IChatMember, members[0])
        sends = []
        for n in range(30):
            sender = members[n % len(members)]
            room = rooms[members.index(sender) // 2]
            sends.append(room.say(sender, f"m{n}"))
        seqs = await defer.gatherResults(sends)
        self.assertEqual(sorted(seqs), list(range(1, 31)))
        await self.settle(rooms)
        first = [(m["seq"], m["text"], m["from"]) for m in members[0].of_type("message")]
        self.assertEqual([s for s, _, _ in first], list(range(1, 31)))
        self.assertEqual(sorted(t for _, t, _ in first), sorted(f"m{n}" for n in range(30)))
        for member in members[1:]:
            self.assertEqual([(m["seq"], m["text"], m["from"]) for m in member.of_type("message")],
                             first)

    async def test_history_since_and_complete_across_servers(self) -> None:
        """A client catches up from any server: C{since}, C{complete}, the size."""
        a, b = await self.room(history_size=4), await self.room(history_size=4)
        alice = await self.join(a, "alice")
        for n in range(1, 7):
            await a.say(alice, f"m{n}")
        await self.settle([a, b])
        late = await self.join(b, "late", since=3)
        [history] = late.of_type("history")
        self.assertEqual([m["seq"] for m in history["messages"]], [4, 5, 6])
        self.assertTrue(history["complete"])
        self.assertEqual(history["messages"][0],
                         {"type": "message", "from": "alice", "text": "m4",
                          "ts": history["messages"][0]["ts"], "seq": 4})
        older = await self.join(b, "older", since=1)
        [history] = older.of_type("history")
        self.assertEqual([m["seq"] for m in history["messages"]], [3, 4, 5, 6])
        self.assertFalse(history["complete"])
        fresh = await self.join(b, "fresh")
        self.assertFalse(fresh.of_type("history")[0]["complete"])
        ahead = await self.join(a, "ahead", since=99)
        [history] = ahead.of_type("history")
        self.assertEqual(len(history["messages"]), 4)
        self.assertFalse(history["complete"])
        welcome = late.of_type("welcome")[0]
        self.assertEqual(set(welcome["users"]), {"alice", "late"})
        self.assertEqual(welcome["users"][0], "late")

    async def test_trimmed_history(self) -> None:
        """Past the history size, older messages are trimmed and C{complete} says so."""
        a = await self.room(history_size=2)
        alice = await self.join(a, "alice")
        await defer.gatherResults([a.say(alice, f"m{n}") for n in range(1, 251)])
        await a.private(alice, "alice", "private seqs count too")
        self.assertLess(int(self.redis.command("XLEN", f"chatsvc:{{{self.chat}}}:history")[1:-2]), 250)
        for since, seqs, complete in ((249, [250], True), (248, [249, 250], True),
                                      (10, [249, 250], False), (None, [249, 250], False),
                                      (251, [], True), (999, [249, 250], False)):
            member = await self.join(a, None, since=since)
            [history] = member.of_type("history")
            self.assertEqual(([m["seq"] for m in history["messages"]], history["complete"]),
                             (seqs, complete), since)

    async def test_no_gap_no_duplicate_around_hello(self) -> None:
        """
        Messages said while a client says C{hello} on another server are in
        its history or come live after it, never both, never neither.
        """
        a, b = await self.room(), await self.room()
        alice = await self.join(a, "alice")
        sends = [a.say(alice, f"m{n}") for n in range(40)]
        joining = [self.join(b, f"j{n}", since=0) for n in range(5)]
        await defer.gatherResults(sends)
        joined = await defer.gatherResults([defer.ensureDeferred(j) for j in joining])
        await self.settle([a, b])
        for member in joined:
            seqs = [m["seq"] for m in member.of_type("history")[0]["messages"]]
            seqs += [m["seq"] for m in member.of_type("message")]
            self.assertEqual(seqs, list(range(1, 41)))

    async def test_names_unique_under_concurrent_hellos(self) -> None:
        """Twenty C{hello}s for one name on three servers at once: twenty names."""
        rooms = [await self.room() for _ in range(3)]
        hellos = [rooms[n % 3].register(Member(), "Bob") for n in range(20)]
        names = await defer.gatherResults(hellos)
        self.assertEqual(len(set(n.casefold() for n in names)), 20)
        self.assertIn("Bob", names)
        self.assertEqual(set(names), {"Bob"} | {f"Bob_{n}" for n in range(2, 21)})
        guests = await defer.gatherResults([rooms[n % 3].register(Member()) for n in range(6)])
        self.assertEqual(len(set(guests)), 6)
        await self.settle(rooms)
        for room in rooms:
            self.assertEqual(sorted(room.names()), sorted(names + guests))
            users = [json.loads(f[4:])["users"] for f in room.who_frames()]
            self.assertEqual(sorted(sum(users, [])), sorted(names + guests))

    async def test_events_reach_every_server(self) -> None:
        """C{joined}, C{renamed} and C{left} reach the clients of every server."""
        a, b = await self.room(), await self.room()
        watcher = await self.join(b, "watcher")
        alice = await self.join(a, "alice")
        self.assertEqual(await a.rename(alice, "Alicia"), "Alicia")
        self.assertEqual(alice.name, "Alicia")
        with self.assertRaises(RemoteProtocolError) as e:
            b.rename(watcher, "ALICIA")
        self.assertEqual(e.exception.code, "name-taken")
        a.leave(alice, "quit", "bye")
        await self.settle([a, b])
        events = [m for m in watcher.messages if m["type"] in ("joined", "renamed", "left")]
        self.assertEqual([m["type"] for m in events], ["joined", "renamed", "left"])
        self.assertEqual(events[0]["name"], "alice")
        self.assertEqual((events[1]["old"], events[1]["new"]), ("alice", "Alicia"))
        self.assertEqual((events[2]["name"], events[2]["reason"], events[2]["text"]),
                         ("Alicia", "quit", "bye"))
        self.assertEqual(b.names(), ["watcher"])
        again = await self.join(b, "alicia")
        self.assertEqual(again.name, "alicia")

    async def test_private_messages_across_servers(self) -> None:
        """A private message reaches its recipient on another server, and the sender's echo."""
        a, b = await self.room(), await self.room()
        alice, other = await self.join(a, "alice"), await self.join(a, "other")
        bob = await self.join(b, "bob")
        await self.settle([a, b])
        seq = await a.private(alice, "BOB", "psst")
        await a.say(other, "public")
        await self.settle([a, b])
        [got] = bob.of_type("private")
        self.assertEqual((got["from"], got["to"], got["text"], got["seq"]), ("alice", "bob", "psst", seq))
        self.assertEqual(alice.of_type("private"), [got])
        self.assertEqual(other.of_type("private"), [])
        self.assertEqual([m["seq"] for m in bob.of_type("private", "message")], [seq, seq + 1])
        with self.assertRaises(RemoteProtocolError) as e:
            a.private(alice, "nobody", "hi")
        self.assertEqual(e.exception.code, "no-such-user")

    async def test_resume_on_another_server(self) -> None:
        """
        The token of a session on server A reclaims its name on server B:
        the old connection is replaced, nobody sees C{left}/C{joined}, and
        the new token works once.
        """
        a, b = await self.room(), await self.room()
        watcher = await self.join(b, "watcher")
        alice = await self.join(a, "alice")
        await self.settle([a, b])
        before = len(watcher.messages)
        token = alice.of_type("welcome")[0]["resume"]
        again = await self.join(b, "whatever", resume=token)
        await self.settle([a, b])
        self.assertEqual(again.name, "alice")
        self.assertEqual(again.of_type("welcome")[0]["id"], alice.of_type("welcome")[0]["id"])
        self.assertTrue(alice.was_replaced)
        self.assertNotIn(alice, a)
        self.assertEqual(watcher.messages[before:], [])
        self.assertEqual(sorted(a.names()), ["alice", "watcher"])
        reused = await self.join(a, "x", resume=token)
        self.assertEqual(reused.name, "x")
        self.assertFalse(again.was_replaced)

    async def test_resume_on_the_same_server(self) -> None:
        """
        Resuming on the server that still holds the old connection: it is
        replaced, and a late release by the old session (its socket closing
        at the same time) does not take the name from the new one.
        """
        a = await self.room()
        alice = await self.join(a, "alice")
        welcome = alice.of_type("welcome")[0]
        again = await self.join(a, None, resume=welcome["resume"])
        self.assertEqual((again.name, again.session_id), ("alice", alice.session_id))
        self.assertTrue(alice.was_replaced)
        self.assertEqual(a.members(), [again])
        await a._release(_Release("alice", alice.session_id, welcome["resume"], "alice", b"{}"))
        await self.settle([a])
        self.assertEqual(a.names(), ["alice"])
        a.leave(again, "quit")
        await self.settle([a])
        self.assertEqual(a.names(), [])

    async def test_hello_completing_after_disconnect_releases_the_name(self) -> None:
        """A client gone before its C{hello} completed leaves no name behind."""
        a, b = await self.room(), await self.room()
        watcher = await self.join(b, "watcher")
        ghost = Member()
        d = a.register(ghost, "ghost")
        ghost.closing = True  # the connection closed while the script ran
        with self.assertRaises(RemoteProtocolError):
            await d
        self.assertNotIn(ghost, a)
        await self.settle([a, b])
        self.assertNotIn("ghost", b.names())
        self.assertEqual([m["type"] for m in watcher.messages if m["type"] in ("joined", "left")],
                         ["joined", "left"])
        taken = await self.join(b, "ghost")
        self.assertEqual(taken.name, "ghost")

    async def test_names_of_a_dead_server_are_released(self) -> None:
        """A server that stops renewing its lease loses its names, and everyone hears it."""
        a = await self.room(lease=1.0)
        b = await self.room(lease=1.0)
        watcher = await self.join(b, "watcher")
        await self.join(a, "ghost")
        a._beat.stop()  # a dies: no more heartbeats, no leave
        await a._commands.stop()
        await wait_until(lambda: "ghost" not in b.names(), 5, "the dead server's name to go")
        left = watcher.of_type("left")
        self.assertEqual([(m["name"], m["reason"]) for m in left], [("ghost", "disconnected")])
        taken = await self.join(b, "ghost")
        self.assertEqual(taken.name, "ghost")


class RedisOutageTests(RedisRoomTestsMixin, TestCase):
    timeout = 45

    async def test_restart_loses_and_duplicates_nothing(self) -> None:
        """
        Redis restarts mid-traffic: requests during the outage get the
        non-fatal C{unavailable}; the rooms reconnect; every accepted message
        reaches every member once, in one order.
        """
        a, b = await self.room(), await self.room()
        alice, bob = await self.join(a, "alice"), await self.join(b, "bob")
        accepted: List[str] = []
        refused: List[str] = []

        async def talk(room: RedisRoom, member: Member, label: str, count: int) -> None:
            for n in range(count):
                text = f"{label}{n}"
                try:
                    await room.say(member, text)
                except RemoteProtocolError as e:
                    self.assertEqual(e.code, "unavailable")
                    self.assertFalse(e.fatal)
                    refused.append(text)
                    await wait_until(lambda: room.available, 10, "reconnection")
                else:
                    accepted.append(text)

        talking = defer.gatherResults([defer.ensureDeferred(talk(a, alice, "a", 300)),
                                       defer.ensureDeferred(talk(b, bob, "b", 300))])
        await wait_until(lambda: len(accepted) > 50, 10, "traffic")
        self.redis.restart()
        await talking
        await wait_until(lambda: a.available and b.available, 10, "reconnection")
        await a.say(alice, "after")
        await self.settle([a, b])
        seen_a = [(m["seq"], m["text"]) for m in alice.of_type("message")]
        seen_b = [(m["seq"], m["text"]) for m in bob.of_type("message")]
        self.assertEqual(seen_a, seen_b)
        texts = [t for _, t in seen_a]
        self.assertEqual(len(texts), len(set(texts)))
        self.assertEqual([s for s, _ in seen_a], list(range(1, len(seen_a) + 1)))
        self.assertEqual(set(accepted + ["after"]) - set(texts), set())
        self.assertEqual(set(texts) - set(accepted + refused + ["after"]), set())
        self.assertEqual(sorted(a.names()), ["alice", "bob"])

    async def test_redis_down_refuses_and_comes_back(self) -> None:
        """While Redis is down: C{unavailable} for every request; clients stay."""
        a = await self.room()
        alice = await self.join(a, "alice")
        self.redis.stop()
        await wait_until(lambda: not a.available, 10, "the loss to be noticed")
        for call in (lambda: a.say(alice, "x"), lambda: a.register(Member(), "bob"),
                     lambda: a.rename(alice, "al")):
            with self.assertRaises(RemoteProtocolError) as e:
                call()
            self.assertEqual((e.exception.code, e.exception.fatal), ("unavailable", False))
        a.leave(alice, "quit")  # remembered, done when Redis is back
        self.redis.run()
        await wait_until(lambda: a.available, 10, "reconnection")
        bob = await self.join(a, "bob")
        self.assertEqual(await a.say(bob, "back"), 1)
        await self.settle([a])
        self.assertEqual(a.names(), ["bob"])

    async def test_redis_that_lost_its_data(self) -> None:
        """
        A Redis that comes back empty (no persistence) is given back the
        servers' names, and C{seq} goes on from where it was, never reused.
        """
        a, b = await self.room(), await self.room()
        alice, bob = await self.join(a, "alice"), await self.join(b, "bob")
        for n in range(5):
            await a.say(alice, f"m{n}")
        await self.settle([a, b])
        self.redis.command("FLUSHALL")
        self.redis.stop()
        await wait_until(lambda: not (a.available or b.available), 10, "the loss to be noticed")
        self.redis.run()
        await wait_until(lambda: a.available and b.available, 10, "reconnection")
        await wait_until(lambda: sorted(b.names()) == ["alice", "bob"], 10, "names restored")
        seq = await b.say(bob, "after")
        self.assertGreater(seq, 5)
        await self.settle([a, b])
        self.assertIn("after", alice.texts())
        self.assertEqual(alice.texts().count("after"), 1)
