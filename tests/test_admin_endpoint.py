"""
Tests for the admin endpoint's outside: the line adapter and the endpoint
checks (L{chatsvc.admin.server}), C{chat-admin}'s parsing and output
(L{chatsvc.admin.cli}), and a real server driven by the real C{chat-admin}
over a 0600 UNIX socket.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile

from twisted.internet import defer, reactor
from twisted.internet.testing import StringTransport
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from chatsvc.admin.cli import Options, format_reply, parse_duration, request_of
from chatsvc.admin.server import AdminProtocol, checked_description, socket_mode_problem

from .hardening_procs import WAIT, connect, registered, shows_server_log, start_server
from .procs import REPO, LineProcess, child_env


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
        self.assertEqual(request_of(self.parse("mute", "bob")),
                         {"action": "mute", "name": "bob", "seconds": 0.0})  # a number, no end

    def test_usage_errors(self) -> None:
        for argv in [[], ["kick"], ["ban", "--for", "soon", "1.2.3.4"], ["notice"], ["frobnicate"]]:
            self.assertRaises(usage.UsageError, self.parse, *argv)
        options = Options()
        self.patch(os, "environ", {})
        self.assertRaises(usage.UsageError, options.parseOptions, ["list"])

    def test_usage_error_exit_status(self) -> None:
        """A usage error exits 2, saying what was wrong."""
        from chatsvc.admin.cli import main

        with self.assertRaises(SystemExit) as caught:
            main(["--admin", "unix:/x", "frobnicate"])
        self.assertEqual(caught.exception.code, 2)

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
    def test_ban_before_the_handshake(self):
        """An encrypted client from a banned address gets banned in plaintext, no handshake."""
        from chatsvc.keys import load_key

        from .procs import DEMO_KEY

        server = yield start_server(self, "--psk", DEMO_KEY, "--admin", f"unix:{self.socket}")
        yield server.wait_for("admin endpoint on")
        code, out = yield chat_admin(self, self.socket, "ban", "127.0.0.0/8")
        self.assertEqual(code, 0, out)
        client = yield connect(self, server.port, psk=load_key(DEMO_KEY), handshake=False)
        client.handshaken.addErrback(lambda failure: None)  # it never completes: the test
        yield client.wait_lost()
        self.assertEqual([(m["type"], m["code"], m["fatal"]) for m in client.messages],
                         [("error", "banned", True)])
        self.assertFalse(client.handshaken.called and client.handshaken.result is client)

    @defer.inlineCallbacks
    def test_no_server(self):
        """No server at the endpoint: exit 2 and say so."""
        code, out = yield chat_admin(self, os.path.join(self.dir, "none.sock"), "list")
        self.assertEqual(code, 2)
        self.assertIn("cannot reach", out)

    @shows_server_log
    def test_refuses_open_socket_mode(self):
        """A socket mode that lets others in: the server says why and does not start."""
        server = yield start_server(self, "--admin", f"unix:{self.socket}:mode=666") \
            .addErrback(lambda f: f.value)
        self.assertIsInstance(server, AssertionError)
        self.assertIn("lets other users in", str(server))
