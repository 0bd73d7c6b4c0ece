"""
End to end: several C{twistd chat --redis} processes serving one chat
through a real C{redis-server}, with real TCP clients on each.

Each test starts its own Redis on a free loopback port and its own servers;
every wait is a Deferred with a deadline.
"""

from __future__ import annotations

import itertools
import signal
from typing import Any, Dict, List, Tuple

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from .scaleout import ChatServerProcess, FrameClient, RedisServer, wait_until

_chats = itertools.count(1)


def public(client: FrameClient, room: str = "#lobby") -> List[Tuple[int, str, str]]:
    """C{(seq, from, text)} of every message of C{room}, from history and live, in order."""
    seen = []
    for m in client.messages:
        if m["type"] == "history" and m.get("room") == room:
            seen.extend((h["seq"], h["from"], h["text"]) for h in m["messages"])
        elif m["type"] == "message" and m.get("room") == room:
            seen.append((m["seq"], m["from"], m["text"]))
    return seen


class ScaleOutTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.redis = RedisServer.start(self.mktemp())
        self.addCleanup(self.redis.stop)
        self.chat = f"e{next(_chats)}"

    async def servers(self, count: int, *options: str) -> List[ChatServerProcess]:
        started = await defer.gatherResults([
            ChatServerProcess.start(self.redis.port, "--chat", self.chat, *options)
            for _ in range(count)])
        self.addCleanup(self.no_tracebacks, started)  # runs after the kills
        for server in started:
            self.addCleanup(server.kill)
        return started

    def no_tracebacks(self, servers: List[ChatServerProcess]) -> None:
        for server in servers:
            bad = [line for line in server.output.lines
                   if "Traceback" in line or "Unhandled" in line or "CRITICAL" in line]
            self.assertEqual(bad, [], "\n".join(server.output.lines[-60:]))

    async def client(self, server: ChatServerProcess, name: Any = None, **hello: Any) -> FrameClient:
        client = await FrameClient.connect(server.port)
        self.addCleanup(client.close)
        await client.hello(name, **hello)
        return client

    async def say(self, client: FrameClient, text: str, room: Any = None) -> Dict[str, Any]:
        """Say C{text} (in C{room}) and wait for its echo (or an error, which is returned)."""
        start = len(client.messages)
        message = {"type": "say", "text": text}
        if room is not None:
            message["room"] = room
        client.send(message)
        return await client.wait_for(
            lambda m: (m["type"] == "message" and m["text"] == text) or m["type"] == "error",
            what=f"the echo of {text!r}", start=start)

    async def test_every_client_sees_every_message_once_in_one_order(self) -> None:
        """
        Three servers, two clients on each, all talking: every client gets
        every public message exactly once, in the same C{seq} order; a
        private message crosses servers; C{who} lists everyone.
        """
        servers = await self.servers(3)
        clients = [await self.client(server, f"c{i}{j}") for i, server in enumerate(servers)
                   for j in range(2)]

        async def talk(client: FrameClient) -> None:
            for n in range(15):
                echo = await self.say(client, f"{client.name}-{n}")
                self.assertEqual(echo["type"], "message", echo)

        await defer.gatherResults([defer.ensureDeferred(talk(c)) for c in clients])
        total = 15 * len(clients)
        for client in clients:
            await wait_until(lambda: len(public(client)) >= total, 15, "every message")
        reference = public(clients[0])
        self.assertEqual([seq for seq, _, _ in reference], list(range(1, total + 1)))
        self.assertEqual(len({text for _, _, text in reference}), total)
        for client in clients[1:]:
            self.assertEqual(public(client), reference)

        sender, recipient, bystander = clients[0], clients[5], clients[2]
        sender.send({"type": "msg", "to": recipient.name.upper(), "text": "psst"})
        got = await recipient.wait_for(lambda m: m["type"] == "private", what="the private message")
        echo = await sender.wait_for(lambda m: m["type"] == "private", what="the echo", start=0)
        self.assertEqual(got, echo)
        # private messages are numbered apart from the room's messages
        self.assertEqual((got["from"], got["to"], got["seq"]), (sender.name, recipient.name, 1))
        bystander.send({"type": "who"})
        users = await bystander.wait_for(lambda m: m["type"] == "users", what="users")
        self.assertEqual(sorted(users["users"]), sorted(c.name for c in clients))
        self.assertEqual(bystander.of_type("private"), [])

    async def test_names_unique_under_hello_races(self) -> None:
        """Fifteen clients on three servers say C{hello} as C{race} at once."""
        servers = await self.servers(3)
        clients = await defer.gatherResults([FrameClient.connect(servers[n % 3].port)
                                             for n in range(15)])
        for client in clients:
            self.addCleanup(client.close)
        welcomes = await defer.gatherResults([c.hello("race") for c in clients])
        names = [w["name"] for w in welcomes]
        self.assertEqual(sorted(names), sorted(["race"] + [f"race_{n}" for n in range(2, 16)]))
        last = clients[-1]
        await wait_until(lambda: len(last.of_type("joined")) + 1 + len(
            last.of_type("welcome")[0]["users"]) >= 16, 10, "joined from everyone")

    async def test_rooms_across_servers(self) -> None:
        """
        Two clients in two rooms and one in both, on two servers: each room's
        messages reach its members only, in one C{seq} order per room;
        C{topic}, C{join}, C{part} and C{rooms} work across servers.
        """
        a, b = await self.servers(2)
        in_a = await self.client(a, "ina", rooms=["#a"])
        in_b = await self.client(b, "inb", rooms=["#b"])
        both = await self.client(b, "both", rooms=["#a", "#b"])
        for n in range(5):
            for client, room in ((in_a, "#a"), (in_b, "#b"), (both, "#a"), (both, "#b")):
                echo = await self.say(client, f"{client.name}-{room}-{n}", room)
                self.assertEqual((echo["type"], echo.get("room")), ("message", room), echo)
        for room, member in (("#a", in_a), ("#b", in_b)):
            await wait_until(lambda: len(public(both, room)) >= 10, 10, f"every message of {room}")
            await wait_until(lambda: len(public(member, room)) >= 10, 10, f"every message of {room}")
            self.assertEqual([s for s, _, _ in public(both, room)], list(range(1, 11)))
            self.assertEqual(public(member, room), public(both, room))
        self.assertEqual((public(in_a, "#b"), public(in_b, "#a")), ([], []))
        error = await self.say(in_a, "not mine", "#b")
        self.assertEqual((error["type"], error.get("code")), ("error", "not-in-room"))
        in_a.send({"type": "topic", "room": "#a", "text": "tea"})
        topic = await both.wait_for(lambda m: m["type"] == "topic", what="the topic", start=0)
        self.assertEqual((topic["room"], topic["text"], topic["by"]), ("#a", "tea", "ina"))
        start = len(in_b.messages)
        in_b.send({"type": "join", "room": "#A"})
        history = await in_b.wait_for(lambda m: m["type"] == "history" and m["room"] == "#a",
                                      what="the history of #a", start=start)
        room = [m for m in in_b.messages[start:] if m["type"] == "room"][0]
        self.assertEqual((room["room"], room["count"], room["topic"]), ("#a", 3, "tea"))
        self.assertEqual(len(history["messages"]), 10)
        joined = await in_a.wait_for(lambda m: m["type"] == "joined" and m["name"] == "inb",
                                     what="joined", start=0)
        self.assertEqual(joined["room"], "#a")
        both.send({"type": "part", "room": "#b", "reason": "busy"})
        parted = await in_b.wait_for(lambda m: m["type"] == "parted", what="parted")
        self.assertEqual((parted["room"], parted["name"], parted["text"]), ("#b", "both", "busy"))
        both.send({"type": "rooms"})
        rooms = await both.wait_for(lambda m: m["type"] == "rooms", what="rooms")
        self.assertEqual([(r["room"], r["count"]) for r in rooms["rooms"]], [("#a", 3), ("#b", 1)])

    async def test_killed_server_clients_move_and_catch_up(self) -> None:
        """
        C{kill -9} one server mid-traffic in three rooms: its clients
        reconnect to another with C{resume}, C{since} per room and C{epoch},
        keep their names and rooms, and catch up exactly in every room
        (C{complete: true}); the name of a client that did not come back is
        released after the lease and those sharing a room with it hear C{left}.
        """
        rooms = ["#lobby", "#a", "#b"]
        a, b = await self.servers(2, "--redis-lease", "1", "--history", "500")
        movers = [await self.client(a, f"mover{n}", rooms=rooms) for n in range(2)]
        stayer = await self.client(a, "stayer", rooms=["#a"])
        talker = await self.client(b, "talker", rooms=rooms)
        talking = True

        async def talk() -> None:
            n = 0
            while talking:
                for room in rooms:
                    echo = await self.say(talker, f"{room}-t{n}", room)
                    self.assertEqual(echo["type"], "message", echo)
                n += 1

        traffic = defer.ensureDeferred(talk())
        await wait_until(lambda: len(public(movers[0], "#b")) > 10, 10, "traffic")
        await a.kill()
        moved = []
        for old in movers:
            await old.lost
            welcome = old.of_type("welcome")[0]
            since = {room: public(old, room)[-1][0] if public(old, room) else 0 for room in rooms}
            new = await self.client(b, "someone-else", resume=welcome["resume"], since=since,
                                    epoch=welcome["epoch"])
            self.assertEqual(new.name, old.name)
            self.assertEqual(new.of_type("welcome")[0]["rooms"], rooms)
            for room in rooms:
                self.assertTrue(new.history(room)["complete"], room)
            moved.append((old, new))
        await wait_until(lambda: len(public(moved[-1][1], "#b")) > 10, 10, "traffic after the move")
        talking = False
        await traffic
        for room in rooms:
            final = public(talker, room)[-1][0]
            for old, new in moved:
                await wait_until(lambda: public(new, room) and public(new, room)[-1][0] >= final,
                                 10, "catch-up")
                joined = public(old, room) + public(new, room)
                self.assertEqual(joined, public(talker, room)[: len(joined)])
                self.assertEqual([seq for seq, _, _ in joined], list(range(1, len(joined) + 1)))
        left = await talker.wait_for(lambda m: m["type"] == "left" and m["name"] == "stayer",
                                     seconds=10, what="left for the client that stayed away",
                                     start=0)
        self.assertEqual(left["reason"], "disconnected")
        self.assertEqual([m for m in talker.of_type("left", "joined", "parted")
                          if m["name"].startswith("mover")], [])
        await stayer.lost

    async def test_client_in_twenty_rooms_fails_over(self) -> None:
        """
        A client in 20 rooms loses its server (C{kill -9}) and comes back on
        another: every room's missed messages, C{complete} where the history
        still held them all and not where it did not.
        """
        a, b = await self.servers(2, "--redis-lease", "5", "--history", "5")
        rooms = [f"#r{n}" for n in range(20)]
        talker = await self.client(b, "talker", rooms=rooms)
        mover = await self.client(a, "mover", rooms=rooms)
        for room in rooms:
            await self.say(talker, "before", room)
        await wait_until(lambda: all(public(mover, room) for room in rooms), 10, "every room")
        await a.kill()
        await mover.lost
        for n, room in enumerate(rooms):
            for i in range(3 if n % 2 else 8):
                await self.say(talker, f"missed{i}", room)
        welcome = mover.of_type("welcome")[0]
        since = {room: public(mover, room)[-1][0] for room in rooms}
        back = await self.client(b, None, resume=welcome["resume"], since=since,
                                 epoch=welcome["epoch"])
        self.assertEqual((back.name, back.of_type("welcome")[0]["rooms"]), ("mover", rooms))
        for n, room in enumerate(rooms):
            history = back.history(room)
            missed = [f"missed{i}" for i in range(3 if n % 2 else 8)]
            self.assertEqual([m["text"] for m in history["messages"]], missed[-5:], room)
            self.assertEqual(history["complete"], bool(n % 2), room)

    async def test_graceful_stop_lets_clients_resume_elsewhere(self) -> None:
        """
        SIGTERM: the server tells its clients C{shutdown} and exits 0; their
        names stay held until the lease runs out, so they resume them on
        another server without anyone seeing C{left} or C{joined}.
        """
        a, b = await self.servers(2, "--redis-lease", "2")
        watcher = await self.client(b, "watcher")
        mover = await self.client(a, "mover")
        await watcher.wait_for(lambda m: m["type"] == "joined", what="joined", start=0)
        before = len(watcher.messages)
        ended = a.kill(signal.SIGTERM)
        error = await mover.wait_for(lambda m: m["type"] == "error", what="shutdown")
        self.assertEqual((error["code"], error["fatal"]), ("shutdown", True))
        self.assertEqual((await ended).exitCode, 0)
        token = mover.of_type("welcome")[0]["resume"]
        again = await self.client(b, "other", resume=token, since=0)
        self.assertEqual(again.name, "mover")
        self.assertEqual(watcher.messages[before:], [])

    async def test_redis_restart_mid_traffic(self) -> None:
        """
        Redis restarts while clients on two servers talk: they stay
        connected, get the non-fatal C{unavailable} meanwhile, and every
        accepted message reaches everyone once, in one order.
        """
        servers = await self.servers(2)
        clients = [await self.client(servers[n % 2], f"r{n}") for n in range(4)]
        accepted: List[str] = []
        refused: List[str] = []

        async def talk(client: FrameClient) -> None:
            n = done = 0
            while done < 60:
                n += 1
                text = f"{client.name}-{n}"
                answer = await self.say(client, text)
                if answer["type"] == "error":
                    self.assertEqual((answer["code"], answer["fatal"]), ("unavailable", False))
                    refused.append(text)
                    await task.deferLater(reactor, 0.05, lambda: None)  # as a person would
                else:
                    accepted.append(text)
                    done += 1

        talking = defer.gatherResults([defer.ensureDeferred(talk(c)) for c in clients])
        await wait_until(lambda: len(accepted) > 40, 10, "traffic")
        self.redis.restart()
        await talking
        self.assertEqual(len(accepted), 240)
        for client in clients:
            await wait_until(lambda: len(public(client)) >= len(accepted), 10, "every message")
        reference = public(clients[0])
        texts = [text for _, _, text in reference]
        self.assertEqual(len(texts), len(set(texts)))
        self.assertEqual(set(accepted) - set(texts), set())
        self.assertEqual(set(texts) - set(accepted) - set(refused), set())
        self.assertEqual([seq for seq, _, _ in reference], list(range(1, len(reference) + 1)))
        for client in clients[1:]:
            self.assertEqual(public(client), reference)
        for client in clients:
            self.assertFalse(client.lost.called)

    async def test_terminal_client_moves_to_the_next_server(self) -> None:
        """
        The real C{chat-client}, given both servers with C{--connect}: when
        its server is killed it moves to the other, keeps its name (with
        C{resume}), catches up completely, and chats on; nobody sees it leave.
        """
        from .procs import ChatClientProcess

        a, b = await self.servers(2, "--history", "100")
        watcher = await self.client(b, "watcher")
        alice = ChatClientProcess.start(
            self, a.port, "--connect", f"tcp:host=127.0.0.1:port={b.port}", "--name", "alice",
            label="alice")
        await alice.wait_for("* connected as alice")
        await self.say(watcher, "before the crash")
        await alice.wait_for("watcher: before the crash")
        await a.kill()
        await alice.wait_for("reconnecting")
        await alice.wait_for("end of history (complete)")
        await self.say(watcher, "after the crash")
        await alice.wait_for("watcher: after the crash")
        alice.send("still alice")
        echo = await watcher.wait_for(lambda m: m["type"] == "message" and m["text"] == "still alice",
                                      what="alice's message after the move")
        self.assertEqual(echo["from"], "alice")
        self.assertEqual([m for m in watcher.of_type("left", "joined") if m["name"] == "alice"][1:], [])
        # (the watcher is a plaintext member: its name carries the client's ~ mark)
        self.assertEqual(sum(line.endswith("watcher: before the crash") for line in alice.lines), 1)

    async def test_look_alike_names_across_servers(self) -> None:
        """
        C{аlice} (Cyrillic а) on server B while C{alice} is on server A gets
        a suffix; a C{nick} to it from B is C{name-taken}; C{msg} to the
        look-alike reaches nobody (PROTOCOL.md 4.3, v2).
        """
        a, b = await self.servers(2)
        alice = await self.client(a, "alice")
        other = await self.client(b, "\u0430lice")
        self.assertEqual(other.name, "\u0430lice_2")
        bob = await self.client(b, "bob")
        start = len(bob.messages)
        bob.send({"type": "nick", "name": "\u0430lice"})
        taken = await bob.wait_for(lambda m: m["type"] == "error", start=start, what="name-taken")
        self.assertEqual(taken["code"], "name-taken")
        start = len(bob.messages)
        bob.send({"type": "msg", "to": "\u0430lice", "text": "psst"})
        nobody = await bob.wait_for(lambda m: m["type"] == "error", start=start,
                                    what="no-such-user")
        self.assertEqual(nobody["code"], "no-such-user")
        alice.send({"type": "nick", "name": "\u0430lice"})  # a look-alike of her own name
        renamed = await other.wait_for(lambda m: m["type"] == "renamed", start=0, what="renamed")
        self.assertEqual((renamed["old"], renamed["new"]), ("alice", "\u0430lice"))
