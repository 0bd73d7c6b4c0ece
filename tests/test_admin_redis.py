"""
Operator controls on a chat shared through Redis: a ban or a kick made on
one server's admin socket applies on every server of the chat
(L{chatsvc.admin.redisbus}), and a server started later refuses the banned
addresses too. Real C{redis-server} and C{twistd chat} processes.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from typing import Any, List

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase, TestCase

from chatsvc.admin.redisbus import parse_events

from .hardening_procs import connect
from .scaleout import ChatServerProcess, FrameClient, RedisServer, wait_until
from .test_admin_endpoint import chat_admin

_chats = itertools.count(1)


class ParseTests(SynchronousTestCase):
    def test_parse_events(self) -> None:
        reply = [[b"chatsvc:{c}:admin", [
            [b"1-0", [b"e", b'{"action": "kick", "name": "bob"}']],
            [b"2-0", [b"e", b"not json"]],
            [b"3-0", [b"e", b"[1]"]],
            ["4-0", ["e", '{"action": "unban", "network": "192.0.2.0/24"}']],
        ]]]
        self.assertEqual(parse_events(reply), [
            ("1-0", {"action": "kick", "name": "bob"}),
            ("4-0", {"action": "unban", "network": "192.0.2.0/24"})])
        self.assertEqual(parse_events(None), [])


class RedisAdminTests(TestCase):
    timeout = 90

    def setUp(self) -> None:
        self.redis = RedisServer.start(self.mktemp())
        self.addCleanup(self.redis.stop)
        self.chat = f"adm{next(_chats)}"
        self.dir = tempfile.mkdtemp(prefix="chatadm")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.servers: List[ChatServerProcess] = []

    @defer.inlineCallbacks
    def server(self, name: str):
        socket = os.path.join(self.dir, f"{name}.sock")
        server = yield ChatServerProcess.start(self.redis.port, "--chat", self.chat,
                                               "--admin", f"unix:{socket}")
        self.addCleanup(server.kill)
        self.servers.append(server)
        yield wait_until(lambda: server.logged("Redis (admin events): connected"), 20,
                         f"server {name} to read the admin stream")
        server.socket = socket
        return server

    @defer.inlineCallbacks
    def client(self, server: Any, name: str):
        client = yield FrameClient.connect(server.port)
        self.addCleanup(client.close)
        yield client.hello(name)
        return client

    def no_tracebacks(self) -> None:
        for server in self.servers:
            bad = [line for line in server.output.lines if "Traceback" in line or "Unhandled" in line]
            self.assertEqual(bad, [], "\n".join(server.output.lines[-60:]))

    @defer.inlineCallbacks
    def test_kick_and_ban_reach_every_server(self):
        a = yield self.server("a")
        b = yield self.server("b")
        alice = yield self.client(a, "alice")
        bob = yield self.client(b, "bob")

        code, out = yield chat_admin(self, a.socket, "kick", "bob", "enough")
        self.assertEqual(code, 0, out)
        yield bob.wait_for(lambda m: m["type"] == "error" and m["code"] == "kicked",
                           start=0, what="bob kicked on the other server")
        yield alice.wait_for(lambda m: m["type"] == "left" and m["name"] == "bob"
                             and m["reason"] == "kicked", start=0, what="bob left, kicked")

        dan = yield self.client(b, "dan")
        code, out = yield chat_admin(self, a.socket, "mute", "dan")
        self.assertEqual(code, 0, out)
        yield wait_until(lambda: b.logged("operator: muted dan (through Redis)"), 20,
                         "the mute to reach server b")
        dan.send({"type": "say", "text": "can anyone hear me"})
        yield dan.wait_for(lambda m: m["type"] == "error" and m["code"] == "muted",
                           start=0, what="dan muted on the other server")
        code, out = yield chat_admin(self, a.socket, "unmute", "dan")
        self.assertEqual(code, 0, out)
        yield wait_until(lambda: b.logged("operator: unmuted dan (through Redis)"), 20,
                         "the unmute to reach server b")
        dan.send({"type": "say", "text": "back"})
        yield alice.wait_for(lambda m: m.get("text") == "back", start=0, what="dan heard again")

        carol = yield self.client(b, "carol")
        code, out = yield chat_admin(self, a.socket, "ban", "--for", "10m", "127.0.0.0/8")
        self.assertEqual(code, 0, out)
        for who in (alice, carol):
            yield who.wait_for(lambda m: m["type"] == "error" and m["code"] == "banned",
                               start=0, what="banned on both servers")
        refused = yield connect(self, b.port, handshake=False)
        refused.send({"type": "hello", "name": "dave"})
        yield refused.wait_for(lambda m: m["type"] == "error" and m["code"] == "banned",
                               what="banned on the other server")

        c = yield self.server("c")  # started after the ban: loads it from Redis
        late = yield connect(self, c.port, handshake=False)
        late.send({"type": "hello", "name": "erin"})
        yield late.wait_for(lambda m: m["type"] == "error" and m["code"] == "banned",
                            what="banned on a server started later")

        code, out = yield chat_admin(self, b.socket, "unban", "127.0.0.0/8")
        self.assertEqual(code, 0, out)
        yield wait_until(lambda: a.logged("unbanned 127.0.0.0/8 (through Redis)"), 20,
                         "the unban to reach server a")
        again = yield self.client(a, "back")
        self.assertIn("welcome", [m["type"] for m in again.messages])
        self.assertNotIn("enough", "\n".join(a.output.lines + b.output.lines))
        self.no_tracebacks()

    @defer.inlineCallbacks
    def test_room_controls_on_every_server(self):
        """
        C{chat-admin rooms}, C{topic} and C{clear} through either server act
        on the whole chat: the rooms of both servers, a topic that reaches
        the members on both, a history forgotten for both (members stay,
        C{seq} carries on).
        """
        a = yield self.server("a")
        b = yield self.server("b")
        alice = yield self.client(a, "alice")
        alice.send({"type": "join", "room": "#Dev"})
        yield alice.wait_for(lambda m: m["type"] == "history" and m["room"] == "#Dev", start=0)
        bob = yield FrameClient.connect(b.port)
        self.addCleanup(bob.close)
        yield bob.hello("bob", rooms=["#dev"])
        for n in range(3):
            alice.send({"type": "say", "room": "#dev", "text": f"spam {n}"})
        yield bob.wait_for(lambda m: m.get("text") == "spam 2", start=0, what="the spam")

        code, out = yield chat_admin(self, b.socket, "rooms")
        self.assertEqual(code, 0, out)
        rows = [line.split() for line in out.splitlines()]
        self.assertIn(["#Dev", "2", "3"], rows, out)
        self.assertIn(["#lobby", "1", "0"], rows, out)

        code, out = yield chat_admin(self, a.socket, "list")  # rooms per connection too
        self.assertEqual(code, 0, out)
        [row] = [line.split() for line in out.splitlines() if line.startswith("alice")]
        self.assertEqual(row[4], "#lobby,#Dev", out)

        code, out = yield chat_admin(self, a.socket, "topic", "#DEV", "release", "day")
        self.assertEqual(code, 0, out)
        for who in (alice, bob):
            topic = yield who.wait_for(lambda m: m["type"] == "topic", start=0, what="topic")
            self.assertEqual((topic["room"], topic["text"], topic["by"]),
                             ("#Dev", "release day", "(operator)"))

        code, out = yield chat_admin(self, b.socket, "clear", "#dev")
        self.assertEqual((code, out.strip()), (0, 'clear: done {"forgotten": 3}'))
        bob.send({"type": "say", "room": "#dev", "text": "after"})
        after = yield alice.wait_for(lambda m: m.get("text") == "after", start=0, what="after")
        self.assertEqual(after["seq"], 4)
        late = yield FrameClient.connect(a.port)
        self.addCleanup(late.close)
        yield late.hello("late", rooms=["#dev"])
        history = late.history("#Dev")
        self.assertEqual(([m["text"] for m in history["messages"]], history["complete"]),
                         (["after"], False))
        code, out = yield chat_admin(self, a.socket, "rooms")
        self.assertIn(["#Dev", "3", "1", "release", "day"], [l.split() for l in out.splitlines()])

        code, out = yield chat_admin(self, a.socket, "clear", "#nowhere")
        self.assertEqual(code, 1, out)
        self.assertIn("no room called", out)
        self.assertNotIn("release day", "\n".join(a.output.lines + b.output.lines))
        self.no_tracebacks()
