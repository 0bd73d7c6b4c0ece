"""
L{chatsvc.chat.redis.room.RedisChat} against a real C{redis-server} (one per
test, on a free loopback port): rooms, messages, presence, limits, resume
and catch-up per room, with several chats in this process standing for
several servers. Members are fakes (L{tests.redischat.Member}).
"""

from __future__ import annotations

import json

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from chatsvc.chat.interfaces import IChat, IChatMember
from chatsvc.chat.redis.room import RedisChat
from chatsvc.wire.errors import RemoteProtocolError

from .redischat import Member, RedisChatTestsMixin
from .scaleout import wait_until


class RedisChatTests(RedisChatTestsMixin, TestCase):
    timeout = 30

    async def test_interfaces(self) -> None:
        chat = await self.server()
        verifyObject(IChat, chat)
        member = await self.join(chat, "alice")
        verifyObject(IChatMember, member)
        self.assertEqual(chat.default_room, "#lobby")
        self.assertEqual(chat.outbox_size, 0)
        self.assertIn(member, chat)
        self.assertIs(chat.find("ALICE"), member)

    async def test_hello_answers_welcome_room_history(self) -> None:
        """C{welcome} (epoch, rooms, plaintext), then C{room} and C{history} per room, in order."""
        a = await self.server()
        bob = await self.join(a, "bob", encrypted=False)
        alice = await self.join(a, "alice", rooms=["#Tea", "#lobby"])
        kinds = [(m["type"], m.get("room")) for m in alice.messages]
        self.assertEqual(kinds, [("welcome", None), ("room", "#Tea"), ("history", "#Tea"),
                                 ("room", "#lobby"), ("history", "#lobby")])
        welcome = alice.messages[0]
        self.assertEqual(welcome["rooms"], ["#Tea", "#lobby"])
        self.assertEqual(welcome["users"][0], "alice")
        self.assertEqual(set(welcome["users"]), {"alice", "bob"})
        self.assertEqual(welcome["plaintext"], ["bob"])
        self.assertTrue(welcome["encrypted"])
        self.assertIsInstance(welcome["epoch"], str)
        lobby = alice.messages[3]
        self.assertEqual((lobby["count"], lobby["presence"], lobby["topic"]), (2, True, ""))
        self.assertEqual(lobby["users"][0], "alice")
        self.assertEqual(set(lobby["users"]), {"alice", "bob"})
        self.assertEqual(lobby["plaintext"], ["bob"])
        await self.settle([a])
        joined = bob.of_type("joined")
        self.assertEqual([(j["room"], j["name"]) for j in joined], [("#lobby", "alice")])
        self.assertNotIn("plaintext", joined[0])
        carol = await self.join(a, "carol", encrypted=False)
        await self.settle([a])
        self.assertTrue(alice.of_type("joined")[-1]["plaintext"])
        self.assertEqual(a.rooms_of(alice), ["#Tea", "#lobby"])
        self.assertEqual(a.rooms_of(carol), ["#lobby"])

    async def test_rooms_order_and_membership_across_servers(self) -> None:
        """
        Each room has its own C{seq} 1, 2, 3, ...; every member of a room on
        any server sees its messages once, in that order; others see none.
        """
        servers = [await self.server() for _ in range(3)]
        both = [await self.join(s, f"b{i}", rooms=["#a", "#b"]) for i, s in enumerate(servers)]
        only_a = await self.join(servers[1], "oa", rooms=["#a"])
        only_b = await self.join(servers[2], "ob", rooms=["#b"])
        sends = []
        for n in range(30):
            i = n % 3
            sends.append(servers[i].say(both[i], "#a" if n % 2 else "#b", f"m{n}"))
        seqs = await defer.gatherResults(sends)
        self.assertEqual(sorted(seqs), sorted(list(range(1, 16)) * 2))
        await self.settle(servers)
        for room, extra in (("#a", only_a), ("#b", only_b)):
            reference = both[0].seen(room)
            self.assertEqual([s for s, _ in reference], list(range(1, 16)))
            for member in both[1:] + [extra]:
                self.assertEqual(member.seen(room), reference)
        self.assertEqual(only_a.seen("#b"), [])
        self.assertEqual(only_b.seen("#a"), [])
        with self.assertRaises(RemoteProtocolError) as e:
            servers[1].say(only_a, "#b", "nope")
        self.assertEqual(e.exception.code, "not-in-room")
        with self.assertRaises(RemoteProtocolError) as e:
            servers[1].say(only_a, "bad room", "nope")
        self.assertEqual(e.exception.code, "bad-room")

    async def test_action_and_private_counter(self) -> None:
        a, b = await self.server(), await self.server()
        alice, bob = await self.join(a, "alice"), await self.join(b, "bob")
        self.assertEqual(await a.say(alice, None, "waves", action=True), 1)
        self.assertEqual(await a.private(alice, "BOB", "psst", action=True), 1)
        self.assertEqual(await a.say(alice, "#lobby", "plain"), 2)
        self.assertEqual(await b.private(bob, "alice", "hi"), 2)
        await self.settle([a, b])
        messages = bob.of_type("message")
        self.assertEqual([(m["seq"], m.get("action"), m["room"]) for m in messages],
                         [(1, True, "#lobby"), (2, None, "#lobby")])
        got = bob.of_type("private")
        self.assertEqual([(p["seq"], p["to"], p.get("action")) for p in got],
                         [(1, "bob", True), (2, "alice", None)])
        self.assertEqual(alice.of_type("private"), got)
        with self.assertRaises(RemoteProtocolError) as e:
            a.private(alice, "nobody", "hi")
        self.assertEqual(e.exception.code, "no-such-user")
        for call in (lambda: a.say(alice, None, "x" * 70000),
                     lambda: a.private(alice, "bob", "\u0001" * 20000)):
            with self.assertRaises(RemoteProtocolError) as e:
                call()
            self.assertEqual(e.exception.code, "too-long")

    async def test_since_per_room_and_epoch(self) -> None:
        """C{since} per room across servers, C{complete}, and a foreign epoch."""
        a, b = await self.server(history_size=4), await self.server(history_size=4)
        alice = await self.join(a, "alice", rooms=["#x", "#y"])
        for n in range(1, 7):
            await a.say(alice, "#x", f"x{n}")
        for n in range(1, 3):
            await a.say(alice, "#y", f"y{n}")
        epoch = alice.messages[0]["epoch"]
        await self.settle([a, b])
        late = await self.join(b, "late", rooms=["#x", "#y"], since={"#X": 3, "#y": 1},
                               epoch=epoch)
        self.assertEqual(([m["seq"] for m in late.history("#x")["messages"]],
                          late.history("#x")["complete"]), ([4, 5, 6], True))
        self.assertEqual(([m["seq"] for m in late.history("#y")["messages"]],
                          late.history("#y")["complete"]), ([2], True))
        old = await self.join(b, "old", rooms=["#x"], since={"#x": 1})
        self.assertEqual(([m["seq"] for m in old.history("#x")["messages"]],
                          old.history("#x")["complete"]), ([3, 4, 5, 6], False))
        ahead = await self.join(b, "ahead", rooms=["#y"], since={"#y": 99})
        self.assertFalse(ahead.history("#y")["complete"])
        other = await self.join(b, "other", rooms=["#x", "#y"], since={"#x": 5}, epoch="elsewhere")
        self.assertEqual(([m["seq"] for m in other.history("#x")["messages"]],
                          other.history("#x")["complete"]), ([3, 4, 5, 6], False))
        self.assertTrue(other.history("#y")["complete"])  # no entry: as usual
        v1 = await self.join(b, "v1", since=0)
        self.assertEqual(v1.messages[0]["rooms"], ["#lobby"])
        self.assertTrue(v1.history("#lobby")["complete"])

    async def test_join_part_topic_rooms_who(self) -> None:
        a, b = await self.server(), await self.server()
        alice = await self.join(a, "alice", rooms=[])
        bob = await self.join(b, "bob", rooms=["#den"])
        await a.join(alice, "#DEN")
        room = [m for m in alice.of_type("room")][-1]
        self.assertEqual((room["room"], room["count"]), ("#den", 2))
        await a.set_topic(alice, "#den", "tea at five")
        await self.settle([a, b])
        self.assertEqual([(t["room"], t["text"], t["by"]) for t in bob.of_type("topic")],
                         [("#den", "tea at five", "alice")])
        await a.join(alice, "#den")  # again: room and history again, nothing else
        self.assertEqual(len(alice.of_type("room")), 2)
        self.assertEqual(alice.of_type("room")[-1]["topic"], "tea at five")
        frames = await b.rooms_frames()
        rooms = json.loads(frames[0][4:])["rooms"]
        self.assertEqual(rooms, [{"room": "#den", "count": 2, "topic": "tea at five"}])
        users = json.loads((await b.who_frames("#den"))[0][4:])
        self.assertEqual((users["room"], sorted(users["users"])), ("#den", ["alice", "bob"]))
        await a.part(alice, "#den", "bye")
        await self.settle([a, b])
        parted = [(p["name"], p["room"], p["reason"], p.get("text")) for p in bob.of_type("parted")]
        self.assertEqual(parted, [("alice", "#den", "part", "bye")])
        self.assertEqual([(p["name"]) for p in alice.of_type("parted")], ["alice"])
        self.assertEqual(a.rooms_of(alice), [])
        with self.assertRaises(RemoteProtocolError) as e:
            a.say(alice, "#den", "x")
        self.assertEqual(e.exception.code, "not-in-room")
        with self.assertRaises(RemoteProtocolError) as e:
            await b.who_frames("#nowhere")
        self.assertEqual(e.exception.code, "no-such-room")
        self.assertEqual(len(b.joins.pending), 0)

    async def test_presence_limit(self) -> None:
        """Past the limit: no joined/parted/left, C{presence: false}; the parter still hears."""
        a = await self.server(presence_limit=2)
        first = await self.join(a, "first", rooms=["#big"])
        await self.join(a, "second", rooms=["#big"])
        third = await self.join(a, "third", rooms=["#big"])
        self.assertFalse(third.of_type("room")[0]["presence"])
        await a.part(third, "#big")
        await self.settle([a])
        self.assertEqual([j["name"] for j in first.of_type("joined")], ["second"])
        self.assertEqual(first.of_type("parted"), [])
        self.assertEqual([p["name"] for p in third.of_type("parted")], ["third"])

    async def test_left_and_renamed_once(self) -> None:
        """A member sharing two rooms with another hears its rename and its leaving once."""
        a, b = await self.server(), await self.server()
        watcher = await self.join(b, "watcher", rooms=["#a", "#b", "#c"])
        alice = await self.join(a, "alice", rooms=["#a", "#b"])
        await self.join(a, "stranger", rooms=["#z"])
        self.assertEqual(await a.rename(alice, "Alicia"), "Alicia")
        await self.settle([a, b])
        self.assertEqual([(r["old"], r["new"]) for r in watcher.of_type("renamed")],
                         [("alice", "Alicia")])
        self.assertEqual(len(alice.of_type("renamed")), 1)
        a.leave(alice, "quit", "bye")
        await self.settle([a, b])
        left = watcher.of_type("left")
        self.assertEqual([(m["name"], m["reason"], m["text"]) for m in left],
                         [("Alicia", "quit", "bye")])
        self.assertEqual(sorted(b.names()), ["stranger", "watcher"])
        users = json.loads((await b.who_frames("#a"))[0][4:])["users"]
        self.assertEqual(users, ["watcher"])

    async def test_resume_on_another_server_keeps_rooms(self) -> None:
        """
        The token of a session on server A reclaims its name and its rooms on
        server B: nobody sees left/joined for it; a room new to the session
        is joined as usual.
        """
        a, b = await self.server(), await self.server()
        watcher = await self.join(b, "watcher", rooms=["#a", "#n"])
        alice = await self.join(a, "alice", rooms=["#a", "#lobby"])
        await a.say(alice, "#a", "one")
        await self.settle([a, b])
        before = len(watcher.messages)
        token = alice.messages[0]["resume"]
        again = await self.join(b, "whatever", resume=token, rooms=["#n"],
                                since={"#a": 1}, epoch=alice.messages[0]["epoch"])
        await self.settle([a, b])
        self.assertEqual(again.name, "alice")
        self.assertEqual(again.messages[0]["rooms"], ["#a", "#lobby", "#n"])
        self.assertEqual(again.messages[0]["id"], alice.messages[0]["id"])
        self.assertTrue(alice.was_replaced)
        self.assertNotIn(alice, a)
        self.assertEqual(again.history("#a"), {"type": "history", "room": "#a",
                                               "complete": True, "messages": []})
        self.assertEqual([(m["type"], m.get("room")) for m in watcher.messages[before:]],
                         [("joined", "#n")])
        await b.say(again, "#a", "two")
        await self.settle([a, b])
        self.assertEqual(watcher.texts("#a"), ["one", "two"])
        reused = await self.join(a, "x", resume=token)
        self.assertEqual(reused.name, "x")

    async def test_resume_on_the_same_server(self) -> None:
        a = await self.server()
        alice = await self.join(a, "alice", rooms=["#a"])
        again = await self.join(a, None, resume=alice.messages[0]["resume"])
        self.assertEqual((again.name, again.session_id), ("alice", alice.session_id))
        self.assertTrue(alice.was_replaced)
        self.assertEqual(a.members(), [again])
        self.assertEqual(a.rooms_of(again), ["#a"])
        a.leave(alice, "replaced")
        await a.say(again, "#a", "still here")
        await self.settle([a])
        self.assertEqual(again.texts("#a"), ["still here"])
        self.assertEqual(alice.texts("#a"), [])

    async def test_twenty_rooms_catch_up(self) -> None:
        """A client in 20 rooms comes back on another server: each room complete and exact."""
        a, b = await self.server(history_size=5), await self.server(history_size=5)
        rooms = [f"#r{n}" for n in range(20)]
        talker = await self.join(a, "talker", rooms=rooms)
        away = await self.join(a, "away", rooms=rooms)
        for room in rooms:
            await a.say(talker, room, "before")
        await self.settle([a])
        since = {room: away.seen(room)[-1][0] for room in rooms}
        token = away.messages[0]["resume"]
        a.leave(away, "shutdown")
        for n, room in enumerate(rooms):
            for i in range(3 if n % 2 else 7):  # odd rooms: fits the history
                await a.say(talker, room, f"missed{i}")
        back = await self.join(b, None, resume=token, since=since,
                               epoch=away.messages[0]["epoch"])
        self.assertEqual(back.messages[0]["rooms"], rooms)
        for n, room in enumerate(rooms):
            history = back.history(room)
            expected = [f"missed{i}" for i in range(3 if n % 2 else 7)][-5:]
            self.assertEqual([m["text"] for m in history["messages"]], expected, room)
            self.assertEqual(history["complete"], bool(n % 2), room)

    async def test_limits(self) -> None:
        a = await self.server(max_rooms_per_client=2, max_rooms=3)
        with self.assertRaises(RemoteProtocolError) as e:
            a.register(Member(), "x", rooms=["#a", "#b", "#c"])
        self.assertEqual(e.exception.code, "too-many-rooms")
        with self.assertRaises(RemoteProtocolError) as e:
            a.register(Member(), "x", rooms=["#a", "b"])
        self.assertEqual((e.exception.code, e.exception.room), ("bad-room", "b"))
        alice = await self.join(a, "alice", rooms=["#a", "#b"])
        with self.assertRaises(RemoteProtocolError) as e:
            a.join(alice, "#c")
        self.assertEqual(e.exception.code, "too-many-rooms")
        bob = await self.join(a, "bob", rooms=["#c"])
        await self.settle([a])
        with self.assertRaises(RemoteProtocolError) as e:
            await a.join(bob, "#d")  # a fourth room in the chat
        self.assertEqual(e.exception.code, "too-many-rooms")
        carol = Member()
        with self.assertRaises(RemoteProtocolError) as e:
            await a.register(carol, "carol", rooms=["#a", "#E"])  # nothing is claimed then
        self.assertEqual((e.exception.code, e.exception.room), ("too-many-rooms", "#E"))
        self.assertEqual((carol.messages, a.names()), ([], ["alice", "bob"]))
        await a.register(carol, "carol", rooms=["#a"])
        self.assertEqual(carol.messages[0]["rooms"], ["#a"])
        token = alice.messages[0]["resume"]
        with self.assertRaises(RemoteProtocolError) as e:  # kept rooms count too
            await a.register(Member(), None, resume=token, rooms=["#c"])
        self.assertEqual((e.exception.code, e.exception.room), ("too-many-rooms", None))
        self.assertFalse(alice.was_replaced)

    async def test_welcome_fits_a_frame(self) -> None:
        """Long names everywhere: welcome stays one frame, listing as many users as fit."""
        from chatsvc.wire.framing import MAX_FRAME
        from chatsvc.wire.messages import encode

        from .test_redisoutage import QuietMember

        a = await self.server(max_rooms_per_client=0)
        long = "\U0001d538" * 31  # 4 bytes each in UTF-8
        for start in range(0, 600, 100):
            await defer.gatherResults([a.register(QuietMember(), f"{long}{n % 10}{n // 10}"[-32:],
                                                  rooms=[]) for n in range(start, start + 100)])
        await self.settle([a])
        rooms = ["#" + "\U0001d539" * 30 + f"{n:02d}" for n in range(20)]
        member = await self.join(a, long, rooms=rooms, encrypted=False)
        welcome = member.messages[0]
        self.assertEqual(welcome["rooms"], rooms)
        self.assertLessEqual(len(encode(welcome)), MAX_FRAME)
        self.assertGreater(len(welcome["users"]), 300)
        self.assertEqual(welcome["plaintext"], [welcome["name"]])

    async def test_zero_means_no_limit(self) -> None:
        a = await self.server(presence_limit=0, max_rooms_per_client=0, max_rooms=0)
        rooms = [f"#z{n}" for n in range(25)]
        member = await self.join(a, "many", rooms=rooms)
        self.assertEqual(member.messages[0]["rooms"], rooms)
        self.assertTrue(all(m["presence"] for m in member.of_type("room")))

    async def test_names_unique_under_concurrent_hellos(self) -> None:
        servers = [await self.server() for _ in range(3)]
        hellos = [servers[n % 3].register(Member(), "Bob") for n in range(20)]
        names = await defer.gatherResults(hellos)
        self.assertEqual(set(names), {"Bob"} | {f"Bob_{n}" for n in range(2, 21)})
        await self.settle(servers)
        for server in servers:
            self.assertEqual(sorted(server.names()), sorted(names))

    async def test_hello_completing_after_disconnect_releases_the_name(self) -> None:
        a, b = await self.server(), await self.server()
        watcher = await self.join(b, "watcher")
        ghost = Member()
        d = a.register(ghost, "ghost")
        ghost.closing = True
        with self.assertRaises(RemoteProtocolError):
            await d
        self.assertNotIn(ghost, a)
        await wait_until(lambda: "ghost" not in b.names(), 5, "the name to go")
        taken = await self.join(b, "ghost")
        self.assertEqual(taken.name, "ghost")
        self.assertEqual(watcher.of_type("joined")[-1]["name"], "ghost")


class TapTests(TestCase):
    def test_redis_options_make_a_redis_chat(self) -> None:
        """C{--redis} and C{--chat} give the server a L{RedisChat} (not started here)."""
        from chatsvc.tap import Options, _redis_room

        options = Options()
        options.parseOptions(["--redis", "tcp:127.0.0.1:1", "--chat", "team", "--history", "7",
                              "--redis-lease", "3", "--default-room", "#Hall",
                              "--presence-limit", "5", "--max-rooms", "0",
                              "--rooms-per-client", "4"])
        chat = _redis_room(options, reactor)
        self.assertIsInstance(chat, RedisChat)
        verifyObject(IChat, chat)
        self.assertEqual((chat.keys.chat, chat.history_size, chat.lease), ("team", 7, 3.0))
        self.assertEqual((chat.default_room, chat.presence_limit, chat.max_rooms_per_client),
                         ("#Hall", 5, 4))
        self.assertGreater(chat.max_rooms, 10 ** 6)  # 0: no limit
        self.assertFalse(chat.available)
        bad = Options()
        with self.assertRaises(Exception) as e:
            bad.parseOptions(["--redis", "tcp:127.0.0.1:1", "--chat", "a b"])
        self.assertIn("--chat", str(e.exception))
