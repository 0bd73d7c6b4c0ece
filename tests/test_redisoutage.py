"""
L{chatsvc.chat.redis.room.RedisChat} when things go wrong, against a real
C{redis-server}: a server that dies, a room stream that moved on without a
server, Redis restarting, down, or back without its data.
"""

from __future__ import annotations

import json
from typing import List

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from chatsvc.chat.redis.keys import RoomKeys
from chatsvc.chat.redis.room import RedisChat
from chatsvc.wire.errors import RemoteProtocolError

from .redischat import Member, RedisChatTestsMixin
from .scaleout import wait_until


class QuietMember(Member):
    """A member that keeps nothing (hundreds of them cost little)."""

    def send(self, message: object) -> None:
        pass

    def send_frame(self, frame: bytes) -> None:
        pass


class ServerTroubleTests(RedisChatTestsMixin, TestCase):
    timeout = 30

    async def test_names_and_rooms_of_a_dead_server_are_released(self) -> None:
        a = await self.server(lease=1.0)
        b = await self.server(lease=1.0)
        watcher = await self.join(b, "watcher", rooms=["#a"])
        await self.join(a, "ghost", rooms=["#a", "#b"])
        await a.stop()  # a dies without a word: no leave
        await wait_until(lambda: "ghost" not in b.names(), 5, "the dead server's name to go")
        await wait_until(lambda: watcher.of_type("left"), 5, "left")
        self.assertEqual([(m["name"], m["reason"]) for m in watcher.of_type("left")],
                         [("ghost", "disconnected")])
        users = json.loads((await b.who_frames("#a"))[0][4:])["users"]
        self.assertEqual(users, ["watcher"])
        rooms = json.loads((await b.rooms_frames())[0][4:])["rooms"]
        self.assertEqual([r["room"] for r in rooms], ["#a"])


    async def test_many_members_of_a_dead_server(self) -> None:
        """The rooms of hundreds of reaped sessions are all told, batch after batch."""
        a = await self.server(lease=3.0)  # a busy reactor must not look dead
        b = await self.server(lease=1.0)
        watcher = await self.join(b, "watcher", rooms=["#a"])
        for start in range(0, 450, 50):
            await defer.gatherResults([a.register(QuietMember(), f"m{n}", rooms=["#a"])
                                       for n in range(start, start + 50)])
        await a.stop()
        await wait_until(lambda: len(watcher.of_type("left")) == 450, 20, "every left")
        self.assertEqual(b.names(), ["watcher"])
        users = json.loads((await b.who_frames("#a"))[0][4:])["users"]
        self.assertEqual(users, ["watcher"])
        rooms = json.loads((await b.rooms_frames())[0][4:])["rooms"]
        self.assertEqual(rooms, [{"room": "#a", "count": 1, "topic": ""}])

    async def test_a_room_stream_that_moved_on(self) -> None:
        """
        A server whose place in a room's stream was trimmed away (it fell
        too far behind) replays the messages it missed from the room's
        history, once each, and reads on from the stream's end.
        """
        a, b = await self.server(), await self.server()
        alice = await self.join(a, "alice", rooms=["#a"])
        bob = await self.join(b, "bob", rooms=["#a"])
        for n in range(1, 4):
            await a.say(alice, "#a", f"m{n}")
        await self.settle([a, b])
        stream = RoomKeys(self.chat, "#a").events
        self.redis.command("XTRIM", stream, "MAXLEN", "0")
        # b saw only the first message, and its entries are gone.
        b.reader.set_position(stream, 1)
        b.state.rooms["#a"].seq = 1
        seen = len(bob.messages)
        await a.say(alice, "#a", "m4")
        await self.settle([a, b])
        self.assertEqual([m["text"] for m in bob.messages[seen:]], ["m2", "m3", "m4"])
        self.assertEqual(b.reader.position(stream), self._ev(stream))
        await a.say(alice, "#a", "m5")
        await self.settle([a, b])
        self.assertEqual(bob.texts("#a")[-1], "m5")


class RedisOutageTests(RedisChatTestsMixin, TestCase):
    timeout = 45

    async def test_restart_loses_and_duplicates_nothing(self) -> None:
        a, b = await self.server(), await self.server()
        alice = await self.join(a, "alice", rooms=["#x", "#y"])
        bob = await self.join(b, "bob", rooms=["#x", "#y"])
        accepted: List[str] = []
        refused: List[str] = []

        async def talk(chat: RedisChat, member: Member, label: str, count: int) -> None:
            for n in range(count):
                text = f"{label}{n}"
                try:
                    await chat.say(member, "#x" if n % 2 else "#y", text)
                except RemoteProtocolError as e:
                    self.assertEqual((e.code, e.fatal), ("unavailable", False))
                    refused.append(text)
                    await wait_until(lambda: chat.available, 10, "reconnection")
                else:
                    accepted.append(text)

        talking = defer.gatherResults([defer.ensureDeferred(talk(a, alice, "a", 200)),
                                       defer.ensureDeferred(talk(b, bob, "b", 200))])
        await wait_until(lambda: len(accepted) > 50, 10, "traffic")
        self.redis.restart()
        await talking
        await wait_until(lambda: a.available and b.available, 10, "reconnection")
        await self.settle([a, b])
        for room in ("#x", "#y"):
            seen_a, seen_b = alice.seen(room), bob.seen(room)
            self.assertEqual(seen_a, seen_b)
            self.assertEqual([s for s, _ in seen_a], list(range(1, len(seen_a) + 1)))
        texts = [t for room in ("#x", "#y") for _, t in alice.seen(room)]
        self.assertEqual(len(texts), len(set(texts)))
        self.assertEqual(set(accepted) - set(texts), set())
        self.assertEqual(set(texts) - set(accepted + refused), set())

    async def test_redis_down_refuses_and_comes_back(self) -> None:
        a, b = await self.server(), await self.server()
        alice = await self.join(a, "alice", rooms=["#lobby", "#x"])
        await self.join(a, "stays", rooms=["#lobby", "#x"])  # the rooms stay a's
        watcher = await self.join(b, "watcher", rooms=["#lobby", "#x"])
        self.redis.stop()
        await wait_until(lambda: not a.available, 10, "the loss to be noticed")
        for call in (lambda: a.say(alice, None, "x"), lambda: a.register(Member(), "bob"),
                     lambda: a.rename(alice, "al"), lambda: a.join(alice, "#b"),
                     lambda: a.rooms_frames()):
            with self.assertRaises(RemoteProtocolError) as e:
                call()
            self.assertEqual((e.exception.code, e.exception.fatal), ("unavailable", False))
        a.leave(alice, "quit")  # remembered, done when Redis is back
        self.redis.run()
        await wait_until(lambda: a.available, 10, "reconnection")
        bob = await self.join(a, "bob")
        self.assertEqual(await a.say(bob, None, "back"), 1)
        await wait_until(lambda: b.available, 10, "reconnection")
        await self.settle([a, b])
        self.assertEqual(sorted(a.names()), ["bob", "stays", "watcher"])
        left = [(m["name"], m["reason"]) for m in watcher.of_type("left")]
        self.assertEqual(left, [("alice", "quit")])  # once, though they shared two rooms
        self.assertEqual(bob.history("#lobby")["messages"], [])

    async def test_redis_that_lost_its_data(self) -> None:
        """
        A Redis that comes back empty: the servers give it back their names
        and rooms; a room's C{seq} goes on, never reused; the epoch changes.
        """
        a, b = await self.server(), await self.server()
        alice, bob = await self.join(a, "alice"), await self.join(b, "bob")
        for n in range(5):
            await a.say(alice, None, f"m{n}")
        await self.settle([a, b])
        self.redis.command("FLUSHALL")
        self.redis.stop()
        await wait_until(lambda: not (a.available or b.available), 10, "the loss to be noticed")
        self.redis.run()
        await wait_until(lambda: a.available and b.available, 10, "reconnection")
        await wait_until(lambda: sorted(b.names()) == ["alice", "bob"], 10, "names restored")
        seq = await b.say(bob, None, "after")
        self.assertGreater(seq, 5)
        await self.settle([a, b])
        self.assertEqual(alice.texts().count("after"), 1)
        late = await self.join(a, "late", since=5, epoch=alice.messages[0]["epoch"])
        self.assertNotEqual(late.messages[0]["epoch"], alice.messages[0]["epoch"])
        self.assertFalse(late.history("#lobby")["complete"])
