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


def public(client: FrameClient) -> List[Tuple[int, str, str]]:
    """C{(seq, from, text)} of every public message, from history and live, in order."""
    seen = []
    for m in client.messages:
        if m["type"] == "history":
            seen.extend((h["seq"], h["from"], h["text"]) for h in m["messages"])
        elif m["type"] == "message":
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

    async def say(self, client: FrameClient, text: str) -> Dict[str, Any]:
        """Say C{text} and wait for its echo (or an error, which is returned)."""
        start = len(client.messages)
        client.send({"type": "say", "text": text})
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
        self.assertEqual((got["from"], got["to"], got["seq"]), (sender.name, recipient.name, total + 1))
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

    async def test_killed_server_clients_move_and_catch_up(self) -> None:
        """
        C{kill -9} one server mid-traffic: its clients reconnect to another
        with C{resume} and C{since}, keep their names, and catch up exactly
        (C{complete: true}); the name of a client that did not come back is
        released after the lease and everyone hears C{left}.
        """
        a, b = await self.servers(2, "--redis-lease", "1", "--history", "500")
        movers = [await self.client(a, f"mover{n}") for n in range(2)]
        stayer = await self.client(a, "stayer")
        talker = await self.client(b, "talker")
        talking = True

        async def talk() -> None:
            n = 0
            while talking:
                echo = await self.say(talker, f"t{n}")
                self.assertEqual(echo["type"], "message", echo)
                n += 1

        traffic = defer.ensureDeferred(talk())
        await wait_until(lambda: len(public(movers[0])) > 20, 10, "traffic")
        await a.kill()
        moved = []
        for old in movers:
            await old.lost
            welcome = old.of_type("welcome")[0]
            since = public(old)[-1][0] if public(old) else 0
            new = await self.client(b, "someone-else", resume=welcome["resume"], since=since)
            self.assertEqual(new.name, old.name)
            self.assertTrue(new.of_type("history")[-1]["complete"])
            moved.append((old, new))
        await wait_until(lambda: len(public(moved[-1][1])) > 10, 10, "traffic after the move")
        talking = False
        await traffic
        final = public(talker)[-1][0]
        for old, new in moved:
            await wait_until(lambda: public(new) and public(new)[-1][0] >= final, 10, "catch-up")
            joined = public(old) + public(new)
            self.assertEqual(joined, public(talker)[: len(joined)])
            self.assertEqual([seq for seq, _, _ in joined], list(range(1, len(joined) + 1)))
        left = await talker.wait_for(lambda m: m["type"] == "left" and m["name"] == "stayer",
                                     seconds=10, what="left for the client that stayed away",
                                     start=0)
        self.assertEqual(left["reason"], "disconnected")
        self.assertEqual([m for m in talker.of_type("left", "joined")
                          if m["name"].startswith("mover")][2:], [])
        await stayer.lost

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
