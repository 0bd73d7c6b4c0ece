"""
Socket activation (docs/deploy.md): C{twistd chat --listen
systemd:domain=INET:index=0} serves a listening socket it inherited with
C{LISTEN_FDS}/C{LISTEN_PID}, as systemd hands it over; and the unit files in
deploy/ say what docs/deploy.md says.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import sys

from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from chatsvc import tap

from .hardening_procs import WAIT, connect, registered
from .procs import REPO, LineProcess, child_env

LAUNCHER = os.path.join(REPO, "tests", "systemd_launch.py")
DEPLOY = os.path.join(REPO, "deploy")


class SocketActivationTests(TestCase):
    """A real server started the way systemd starts it."""

    timeout = 120

    @defer.inlineCallbacks
    def launch(self, *options: str):
        server = LineProcess("server")
        reactor.spawnProcess(server, sys.executable,
                             [sys.executable, LAUNCHER, "--listen", "systemd:domain=INET:index=0"]
                             + list(options), env=child_env(), path=REPO)

        def stop():
            if server.running:
                server.signal("KILL")
            return server.ended

        self.addCleanup(stop)
        line = yield server.wait_for(re.compile(r"bound \d+ pid \d+|Traceback"))
        found = re.search(r"bound (\d+) pid (\d+)", line)
        self.assertIsNotNone(found, server.output())
        return server, int(found.group(1)), int(found.group(2))

    @defer.inlineCallbacks
    def test_inherited_socket(self):
        """
        A client that connects before the server has started is held by the
        kernel and served once it has: the point of socket activation.
        """
        server, port, pid = yield self.launch()
        early = yield connect(self, port, label="early")
        early.send({"type": "hello", "name": "early"})
        yield server.wait_for(re.compile(r"starting on \d+"))
        yield early.wait_for(lambda m: m["type"] == "welcome", what="welcome")
        bob = yield registered(self, port, "bob")
        early.say("over an inherited socket")
        yield bob.wait_for(lambda m: m.get("text") == "over an inherited socket", what="message")
        self.assertIn(f"starting on {port}", server.output())
        self.assertEqual(server.transport.pid, pid)  # exec kept the process: LISTEN_PID held

    @defer.inlineCallbacks
    def test_clean_stop(self):
        """SIGTERM (systemctl stop) stops it cleanly, exit 0, clients told shutdown."""
        server, port, _ = yield self.launch()
        yield server.wait_for(re.compile(r"starting on \d+"))
        alice = yield registered(self, port, "alice")
        server.signal("TERM")
        yield alice.wait_for(lambda m: m["type"] == "error" and m["code"] == "shutdown",
                             what="shutdown")
        code = yield server.wait_exit(WAIT)
        self.assertEqual(code, 0)

    @defer.inlineCallbacks
    def test_no_inherited_socket(self):
        """Without LISTEN_FDS the server says so instead of serving nothing."""
        server = LineProcess("server")
        env = child_env()
        env.pop("LISTEN_FDS", None)
        from .procs import TWISTD
        reactor.spawnProcess(server, sys.executable,
                             [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "chat",
                              "--listen", "systemd:domain=INET:index=0"], env=env, path=REPO)
        self.addCleanup(lambda: (server.signal("KILL"), server.ended)[1])
        line = yield server.wait_for(re.compile(r"chat: |Traceback|starting on"))
        self.assertIn("systemd", line)
        self.assertNotIn("Traceback", server.output())
        code = yield server.wait_exit(WAIT)
        self.assertNotEqual(code, 0)


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    with open(os.path.join(DEPLOY, name), encoding="utf-8") as f:
        parser.read_file(f)
    return parser


class UnitFileTests(SynchronousTestCase):
    """deploy/chatsvc.socket and deploy/chatsvc.service agree with each other and with chat."""

    def test_exec_start_parses(self) -> None:
        service = unit("chatsvc.service")
        argv = shlex.split(service["Service"]["ExecStart"])
        self.assertTrue(argv[0].endswith("/twistd"), argv)
        at = argv.index("chat")
        self.assertIn("--nodaemon", argv[1:at])
        options = tap.Options()
        options.parseOptions(argv[at + 1:])
        self.assertEqual(options["listen"], ["systemd:domain=INET:index=0"])
        self.assertTrue(options["encrypted"])
        self.assertTrue(options["admin"].startswith("unix:/run/chatsvc/"))

    def test_socket_and_service_match(self) -> None:
        socket_unit = unit("chatsvc.socket")
        service = unit("chatsvc.service")
        self.assertEqual(socket_unit["Socket"]["Service"], "chatsvc.service")
        self.assertIn("chatsvc.socket", service["Unit"]["Requires"])
        self.assertEqual(service["Service"]["User"], "chatsvc")
        self.assertEqual(service["Service"]["RuntimeDirectoryMode"], "0700")
        self.assertIn("ListenStream", socket_unit["Socket"])

    def test_systemd_analyze_verify(self) -> None:
        """systemd's own checker accepts the units (with ExecStart pointing at this twistd)."""
        import shutil
        import subprocess

        analyze = shutil.which("systemd-analyze")
        self.assertIsNotNone(analyze, "systemd-analyze is needed to check deploy/*.service")
        directory = self.mktemp()
        os.makedirs(directory)
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        for name in ("chatsvc.socket", "chatsvc.service"):
            with open(os.path.join(DEPLOY, name), encoding="utf-8") as f:
                text = f.read().replace("/opt/chatsvc/venv/bin/twistd", twistd)
            with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
                f.write(text)
        result = subprocess.run([analyze, "verify", "--man=no",
                                 os.path.join(directory, "chatsvc.socket"),
                                 os.path.join(directory, "chatsvc.service")],
                                capture_output=True, text=True, timeout=60)
        problems = [line for line in (result.stdout + result.stderr).splitlines()
                    if "chatsvc" in line]
        self.assertEqual((result.returncode, problems), (0, []), result.stdout + result.stderr)
