"""
Tests for L{chatsvc.admin}: the ban list, the operator over a real factory
and chat on a Clock, the request layer, the line adapter, C{chat-admin}'s
pure parts, and a real server driven by the real C{chat-admin}.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
import tempfile
from typing import Any, Dict, List

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from chatsvc.admin.bans import BanList
from chatsvc.admin.cli import Options, format_reply, parse_duration, request_of
from chatsvc.admin.interfaces import IBanList, IOperator, OperatorError
from chatsvc.admin.operator import LocalOperator
from chatsvc.admin.requests import AdminRequests
from chatsvc.admin.server import AdminProtocol, checked_description, socket_mode_problem
from chatsvc.chat.interfaces import IChatAdmin, IChatStats

from .hardening_procs import WAIT, connect, registered, shows_server_log, start_server
from .helpers import FakeClient, LogCapture, make_factory, only
from .procs import REPO, LineProcess, child_env, deadline


class BanListTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.bans = BanList(self.clock)

    def test_interface(self) -> None:
        verifyObject(IBanList, self.bans)

    def test_address_and_networks(self) -> None:
        self.assertEqual(self.bans.ban("192.0.2.7", 0), "192.0.2.7/32")
        self.assertEqual(self.bans.ban("2001:db8::17/64", 0), "2001:db8::/64")
        self.assertTrue(self.bans.banned("192.0.2.7"))
        self.assertFalse(self.bans.banned("192.0.2.8"))
        self.assertTrue(self.bans.banned("2001:db8::ffff"))
        self.assertTrue(self.bans.banned("2001:db8::1%eth0"))
        self.assertFalse(self.bans.banned("2001:db8:1::1"))
        self.assertFalse(self.bans.banned("/run/a.sock"))

    def test_ipv4_mapped(self) -> None:
        """A dual-stack socket's ::ffff:a.b.c.d is the IPv4 address, both ways."""
        self.bans.ban("198.51.100.0/24", 0)
        self.assertTrue(self.bans.banned("::ffff:198.51.100.9"))
        self.assertEqual(self.bans.ban("::ffff:203.0.113.5", 0), "203.0.113.5/32")
        self.assertTrue(self.bans.banned("203.0.113.5"))

    def test_expiry(self) -> None:
        self.bans.ban("192.0.2.0/24", 60)
        self.clock.advance(59)
        self.assertTrue(self.bans.banned("192.0.2.1"))
        self.assertEqual(self.bans.entries(), [{"network": "192.0.2.0/24", "expires": 1.0}])
        self.clock.advance(1)
        self.assertFalse(self.bans.banned("192.0.2.1"))
        self.assertEqual(self.bans.entries(), [])

    def test_unban(self) -> None:
        self.bans.ban("192.0.2.0/24", 0)
        self.assertTrue(self.bans.unban("192.0.2.99/24"))
        self.assertFalse(self.bans.unban("192.0.2.0/24"))
        self.assertFalse(self.bans.banned("192.0.2.1"))

    def test_bad_input(self) -> None:
        for bad in ["", "alice", "300.1.1.1", "10.0.0.0/33", None, 7, "x" * 100]:
            self.assertRaises(OperatorError, self.bans.ban, bad, 0)
        for seconds in [-1, "1h", True, float("nan"), 1e12]:
            self.assertRaises(OperatorError, self.bans.ban, "192.0.2.1", seconds)


class OperatorTests(SynchronousTestCase):
    """L{AdminRequests} over L{LocalOperator}, a real factory and chat on a Clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = make_factory(self.clock)
        self.bans = BanList(self.clock)
        self.factory.bans = self.bans
        self.operator = LocalOperator(self.factory, self.factory.room, self.bans, self.clock)
        self.requests = AdminRequests(self.operator)
        self.logs = LogCapture.install(self)

    def client(self, name: str, host: str = "127.0.0.1") -> FakeClient:
        client = FakeClient(self.factory, host=host)
        client.hello(name)
        return client

    def ask(self, **request: Any) -> Dict[str, Any]:
        return json.loads(self.requests.handle_line(json.dumps(request).encode()))

    def logged(self) -> str:
        return "\n".join(formatEvent(e) for e in self.logs.events)

    def test_interfaces(self) -> None:
        verifyObject(IOperator, self.operator)
        verifyObject(IChatAdmin, self.factory.room)
        verifyObject(IChatStats, self.factory.room)

    def test_list(self) -> None:
        self.client("alice", host="192.0.2.1")
        FakeClient(self.factory, host="192.0.2.2")
        reply = self.ask(action="list")
        self.assertTrue(reply["ok"])
        self.assertEqual(reply["connections"], [
            {"name": "alice", "address": "192.0.2.1", "mode": "plaintext", "transport": "tcp",
             "rooms": ["#lobby"], "queued": 0, "muted": False},
            {"name": None, "address": "192.0.2.2", "mode": "pending", "transport": "tcp",
             "rooms": [], "queued": 0, "muted": False},
        ])

    def test_kick(self) -> None:
        alice, bob = self.client("alice"), self.client("bob")
        alice.received()
        reply = self.ask(action="kick", name="BOB", reason="spamming the room")
        self.assertEqual(reply, {"ok": True, "name": "bob"})
        [err] = only(bob.received(), "error")
        self.assertEqual((err["code"], err["fatal"], err["text"]), ("kicked", True, "spamming the room"))
        self.assertTrue(bob.closed)
        [left] = only(alice.received(), "left")
        self.assertEqual((left["name"], left["reason"]), ("bob", "kicked"))
        self.assertIn("operator: kicked bob", self.logged())
        self.assertNotIn("spamming", self.logged())

    def test_kick_unknown(self) -> None:
        reply = self.ask(action="kick", name="nobody")
        self.assertFalse(reply["ok"])
        self.assertIn("nobody", reply["error"])

    def test_ban_closes_and_refuses(self) -> None:
        alice = self.client("alice", host="192.0.2.1")
        bob = self.client("bob", host="198.51.100.7")
        alice.received()
        reply = self.ask(action="ban", network="198.51.100.0/24", seconds=600)
        self.assertEqual(reply, {"ok": True, "network": "198.51.100.0/24", "closed": 1})
        [err] = only(bob.received(), "error")
        self.assertEqual((err["code"], err["fatal"]), ("banned", True))
        self.assertEqual([(m["name"], m["reason"]) for m in only(alice.received(), "left")],
                         [("bob", "banned")])
        again = FakeClient(self.factory, host="198.51.100.8")
        [refusal] = again.received()
        self.assertEqual((refusal["code"], refusal["fatal"]), ("banned", True))
        self.assertTrue(again.closed)
        self.assertIn("operator: banned 198.51.100.0/24", self.logged())
        self.assertEqual(self.ask(action="bans")["bans"],
                         [{"network": "198.51.100.0/24", "expires": 600.0}])
        self.assertTrue(self.ask(action="unban", network="198.51.100.0/24")["ok"])
        self.assertEqual(FakeClient(self.factory, host="198.51.100.8").received(), [])
        self.assertFalse(self.ask(action="unban", network="198.51.100.0/24")["ok"])

    def test_ban_expires(self) -> None:
        self.ask(action="ban", network="192.0.2.9", seconds=30)
        self.clock.advance(30)
        self.assertEqual(FakeClient(self.factory, host="192.0.2.9").received(), [])

    def test_mute(self) -> None:
        alice, bob = self.client("alice"), self.client("bob")
        alice.received()
        self.assertEqual(self.ask(action="mute", name="bob", seconds=60),
                         {"ok": True, "name": "bob"})
        bob.send({"type": "say", "text": "hey"})
        bob.send({"type": "msg", "to": "alice", "text": "hey"})
        errors = only(bob.received(), "error")
        self.assertEqual([(e["code"], e["fatal"]) for e in errors], [("muted", False)] * 2)
        self.assertEqual(alice.received(), [])
        self.assertFalse(bob.closed)
        self.clock.advance(60)
        bob.send({"type": "say", "text": "back"})
        self.assertEqual([m["text"] for m in only(alice.received(), "message")], ["back"])

    def test_unmute(self) -> None:
        alice, bob = self.client("alice"), self.client("bob")
        self.ask(action="mute", name="bob")
        self.assertEqual(self.ask(action="unmute", name="bob"), {"ok": True, "name": "bob"})
        self.assertFalse(self.ask(action="unmute", name="bob")["ok"])
        bob.send({"type": "say", "text": "free"})
        self.assertEqual([m["text"] for m in only(alice.received(), "message")], ["free"])

    def test_notice(self) -> None:
        alice, bob = self.client("alice"), self.client("bob")
        pending = FakeClient(self.factory)
        alice.received()
        self.assertEqual(self.ask(action="notice", text="restart at six"), {"ok": True, "sent": 2})
        for client in (alice, bob):
            [notice] = only(client.received(), "notice")
            self.assertEqual(notice["text"], "restart at six")
            self.assertNotIn("room", notice)
        self.assertEqual(pending.received(), [])
        self.assertEqual(self.ask(action="notice", text="hi", room="#lobby")["sent"], 2)
        self.assertEqual(only(alice.received(), "notice")[0]["room"], "#lobby")
        self.assertFalse(self.ask(action="notice", text="hi", room="#nowhere")["ok"])
        self.assertFalse(self.ask(action="notice", text="\x1b[2J")["ok"])
        self.assertNotIn("restart at six", self.logged())

    def test_rooms_topic_clear(self) -> None:
        alice = self.client("alice")
        alice.send({"type": "say", "text": "spam"})
        self.assertEqual(self.ask(action="rooms")["rooms"],
                         [{"room": "#lobby", "count": 1, "topic": "", "history": 1}])
        topic = self.ask(action="topic", room="#lobby", text="welcome")
        self.assertFalse(topic["ok"])
        self.assertIn("version 1", topic["error"])
        self.assertEqual(self.ask(action="clear", room="#lobby"), {"ok": True, "forgotten": 1})
        newcomer = FakeClient(self.factory)
        [history] = only(newcomer.hello("bob"), "history")
        self.assertEqual((history["messages"], history["complete"]), ([], False))
        self.assertFalse(self.ask(action="clear", room="#nowhere")["ok"])

    def test_bad_requests(self) -> None:
        for line in [b"not json", b"[1]", b'{"action": 3}', b"\xff", b"[" * 100000]:
            reply = json.loads(self.requests.handle_line(line))
            self.assertFalse(reply["ok"])
        reply = self.ask(action="explode")
        self.assertIn("one of: ban, bans, clear", reply["error"])
        for request in [dict(action="kick"), dict(action="ban", network="x"),
                        dict(action="mute", name="alice", seconds=-5),
                        dict(action="notice", text=7), dict(action="notice", text="a", room=[1])]:
            self.assertFalse(self.ask(**request)["ok"], request)
        self.logs.assert_no_failures(self)


class AdapterTests(SynchronousTestCase):
    def test_checked_description(self) -> None:
        self.assertEqual(checked_description("unix:/run/c/admin.sock"),
                         "unix:/run/c/admin.sock:mode=600:lockfile=1")
        self.assertEqual(checked_description("unix:/a:mode=600:lockfile=0"), "unix:/a:mode=600:lockfile=0")
        self.assertEqual(checked_description("tcp:9001:interface=127.0.0.1"),
                         "tcp:9001:interface=127.0.0.1")
        for bad in ["tcp:9001", "tcp:9001:interface=0.0.0.0", "unix:/a:mode=660",
                    "unix:/a:mode=rw", "ssl:9001", "systemd:domain=UNIX:index=0"]:
            self.assertRaises(ValueError, checked_description, bad)

    def test_socket_mode_problem(self) -> None:
        path = self.mktemp()
        with open(path, "w"):
            pass
        os.chmod(path, 0o600)
        self.assertIsNone(socket_mode_problem(path))
        os.chmod(path, 0o660)
        self.assertIn("0660", socket_mode_problem(path))
        self.assertIn("cannot be checked", socket_mode_problem(path + ".missing"))

    def test_line_adapter(self) -> None:
        class Echo:
            def handle_line(self, line: bytes) -> bytes:
                return b"<" + line + b">"

        proto = AdminProtocol(Echo())
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(b'one\r\n\n  \ntwo\n')
        self.assertEqual(transport.value(), b"<one>\n<two>\n")
        transport.clear()
        proto.dataReceived(b"x" * 70000)
        self.assertIn(b"too long", transport.value())
        self.assertTrue(transport.disconnecting)


class CommandTests(SynchronousTestCase):
    def parse(self, *argv: str) -> Options:
        options = Options()
        options.parseOptions(["--admin", "unix:/x"] + list(argv))
        return options

    def test_requests(self) -> None:
        self.assertEqual(request_of(self.parse("kick", "bob", "go", "away")),
                         {"action": "kick", "name": "bob", "reason": "go away"})
        self.assertEqual(request_of(self.parse("ban", "--for", "2h", "192.0.2.0/24")),
                         {"action": "ban", "network": "192.0.2.0/24", "seconds": 7200.0})
        self.assertEqual(request_of(self.parse("notice", "-r", "#dev", "hi", "all")),
                         {"action": "notice", "room": "#dev", "text": "hi all"})
        self.assertEqual(request_of(self.parse("topic", "#dev")),
                         {"action": "topic", "room": "#dev", "text": ""})
        self.assertEqual(request_of(self.parse("list")), {"action": "list"})

    def test_usage_errors(self) -> None:
        for argv in [[], ["kick"], ["ban", "--for", "soon", "1.2.3.4"], ["notice"], ["frobnicate"]]:
            self.assertRaises(usage.UsageError, self.parse, *argv)
        options = Options()
        self.patch(os, "environ", {})
        self.assertRaises(usage.UsageError, options.parseOptions, ["list"])

    def test_durations(self) -> None:
        self.assertEqual([parse_duration(t) for t in ["90", "90s", "15m", "2h", "1d", "0"]],
                         [90, 90, 900, 7200, 86400, 0])

    def test_format(self) -> None:
        listing = format_reply("list", {"ok": True, "connections": [
            {"name": "alice", "address": "192.0.2.1", "mode": "encrypted", "transport": "tcp",
             "rooms": ["#lobby", "#dev"], "queued": 12, "muted": True}]})
        self.assertIn("alice  192.0.2.1  encrypted  tcp        #lobby,#dev  12      yes", listing)
        self.assertEqual(format_reply("kick", {"ok": False, "error": "no user"}), "chat-admin: no user")
        self.assertEqual(format_reply("bans", {"ok": True, "bans": []}), "no bans")
        self.assertIn("never", format_reply("bans", {"ok": True, "bans": [
            {"network": "192.0.2.0/24", "expires": None}]}))


ADMIN = "import sys; from chatsvc.admin.cli import main; sys.argv[0] = 'chat-admin'; main()"


@defer.inlineCallbacks
def chat_admin(test: TestCase, socket: str, *argv: str):
    """Run the real C{chat-admin}; fire with C{(exit code, output)}."""
    proc = LineProcess("chat-admin")
    reactor.spawnProcess(proc, sys.executable,
                         [sys.executable, "-c", ADMIN, "--admin", f"unix:{socket}"] + list(argv),
                         env=child_env(), path=REPO)
    code = yield proc.wait_exit(WAIT)
    return code, proc.output()


class AdminProcessTests(TestCase):
    """A real server with C{--admin unix:PATH}, driven by the real C{chat-admin}."""

    timeout = 120

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="chatadm")  # short: a UNIX socket path is limited
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.socket = os.path.join(self.dir, "admin.sock")

    @shows_server_log
    def test_operator_session(self):
        server = yield start_server(self, "--admin", f"unix:{self.socket}")
        yield server.wait_for("admin endpoint on")
        self.assertEqual(stat.S_IMODE(os.stat(self.socket).st_mode), 0o600)
        alice = yield registered(self, server.port, "alice")
        bob = yield registered(self, server.port, "bob")
        code, out = yield chat_admin(self, self.socket, "list")
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r"alice\s+127\.0\.0\.1\s+plaintext\s+tcp\s+#lobby\s+0")
        self.assertIn("2 connections", out)

        code, out = yield chat_admin(self, self.socket, "notice", "maintenance soon")
        self.assertEqual(code, 0, out)
        yield bob.wait_for(lambda m: m["type"] == "notice" and m["text"] == "maintenance soon",
                           what="the notice")

        code, out = yield chat_admin(self, self.socket, "kick", "bob", "enough")
        self.assertEqual(code, 0, out)
        yield bob.wait_for(lambda m: m["type"] == "error" and m["code"] == "kicked", what="kicked")
        yield bob.wait_lost()
        yield alice.wait_for(lambda m: m["type"] == "left" and m["reason"] == "kicked",
                             what="bob left, kicked")

        code, out = yield chat_admin(self, self.socket, "ban", "--for", "10m", "127.0.0.1")
        self.assertEqual(code, 0, out)
        yield alice.wait_for(lambda m: m["type"] == "error" and m["code"] == "banned", what="banned")
        yield alice.wait_lost()
        refused = yield connect(self, server.port, handshake=False)
        refused.send({"type": "hello", "name": "carol"})
        yield refused.wait_for(lambda m: m["type"] == "error" and m["code"] == "banned",
                               what="a new connection refused")
        yield refused.wait_lost()

        code, out = yield chat_admin(self, self.socket, "unban", "127.0.0.1")
        self.assertEqual(code, 0, out)
        yield registered(self, server.port, "carol")
        code, out = yield chat_admin(self, self.socket, "kick", "nobody")
        self.assertEqual(code, 1)
        self.assertIn("no user called 'nobody'", out)
        yield server.wait_for("operator: unbanned 127.0.0.1")
        self.assertIn("operator: kicked bob", server.output())
        self.assertNotIn("enough", server.output())
        self.assertNotIn("maintenance soon", server.output())

    @shows_server_log
    def test_refuses_open_socket_mode(self):
        """A socket mode that lets others in: the server says why and does not start."""
        server = yield start_server(self, "--admin", f"unix:{self.socket}:mode=666") \
            .addErrback(lambda f: f.value)
        self.assertIsInstance(server, AssertionError)
        self.assertIn("lets other users in", str(server))
