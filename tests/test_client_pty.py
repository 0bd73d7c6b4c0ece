"""
The full-screen client as a user meets it, in real processes: C{twistd -n
chat} and two C{chat-client}s, each in a pseudo-terminal whose output is
rendered by C{pyte}, chatting through a C{kill -9} and a restart of the
server (issue 13). Every wait is for what the screen shows, with a
deadline; no fixed sleeps.
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import sys
import termios
from typing import Any, Callable, List

try:
    import pyte
except ImportError:  # pragma: no cover
    raise ImportError("the PTY tests need pyte: pip install -e '.[test]'")

from twisted.internet import defer, reactor
from twisted.internet.protocol import ProcessProtocol
from twisted.trial.unittest import TestCase

from .support.processes import REPO, ChatServer, child_env
from .support.waiting import deadline


class PtyClient(ProcessProtocol):
    """C{chat-client} in a pseudo-terminal of C{width} x C{height}."""

    def __init__(self, label: str, width: int = 100, height: int = 20) -> None:
        self.label = label
        self.vt = pyte.Screen(width, height)
        self.stream = pyte.ByteStream(self.vt)
        self.size = (width, height)
        self._waiters: List[Any] = []
        self.ended: defer.Deferred = defer.Deferred()
        self.exit_code: Any = None

    @classmethod
    def start(cls, test: TestCase, port: int, *options: str, label: str) -> "PtyClient":
        client = cls(label)
        env = child_env()
        env["TERM"] = "xterm-256color"
        env.pop("NO_COLOR", None)
        args = [sys.executable, "-m", "chatsvc.client", "--connect",
                f"tcp:host=127.0.0.1:port={port}"] + list(options)
        reactor.spawnProcess(client, sys.executable, args, env=env, path=REPO, usePTY=True)
        client.set_size(*client.size)

        def cleanup() -> Any:
            if client.exit_code is None:
                client.transport.signalProcess("KILL")
            return client.ended

        test.addCleanup(cleanup)
        return client

    def set_size(self, width: int, height: int) -> None:
        self.vt.resize(height, width)
        fcntl.ioctl(self.transport.fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
        self.transport.signalProcess(signal.SIGWINCH)

    def rows(self) -> List[str]:
        return [row.rstrip() for row in self.vt.display]

    def childDataReceived(self, fd: int, data: bytes) -> None:
        self.stream.feed(data)
        for waiter in list(self._waiters):
            check, d = waiter
            if check(self.rows()):
                self._waiters.remove(waiter)
                d.callback(None)

    def wait(self, check: Callable[[List[str]], bool], what: str, timeout: float = 30) -> defer.Deferred:
        if check(self.rows()):
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._waiters.append((check, d))
        return deadline(d, timeout, f"{self.label}: {what}; the screen:\n" + "\n".join(self.rows()))

    def shows(self, text: str, timeout: float = 30) -> defer.Deferred:
        return self.wait(lambda rows: any(text in row for row in rows[:-1]), f"a row with {text!r}",
                         timeout)

    def status(self, text: str, timeout: float = 30) -> defer.Deferred:
        return self.wait(lambda rows: text in rows[-2], f"the status line saying {text!r}", timeout)

    def type(self, text: str) -> None:
        self.transport.write(text.encode("utf-8"))

    def processEnded(self, reason: Any) -> None:
        self.exit_code = getattr(reason.value, "exitCode", None)
        self.ended.callback(self.exit_code)


class FullScreenProcessTests(TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def alice_and_bob(self):
        """A server with a message log, and alice and bob connected to it full screen."""
        log = os.path.abspath(self.mktemp())
        server = yield ChatServer.start(self, "--log-messages", log)
        alice = PtyClient.start(self, server.port, "--name", "alice", label="alice")
        bob = PtyClient.start(self, server.port, "--name", "bob", label="bob")
        yield alice.status("| connected")
        yield bob.status("| connected")
        return log, server, server.port, alice, bob

    @defer.inlineCallbacks
    def test_chat_through_kill_and_restart(self):
        log, server, port, alice, bob = yield self.alice_and_bob()
        bob.type("hello alice\r")
        yield alice.shows("bob: hello alice")
        alice.type("half a line")
        bob.type("interrupting\r")
        yield alice.shows("bob: interrupting")
        self.assertEqual(alice.rows()[-1], "> half a line")
        alice.type("\x15")  # Ctrl-U

        server.signal("KILL")
        yield server.ended
        yield alice.status("reconnecting")
        alice.type("typed while down\r")
        yield alice.shows("(not sent yet) alice: typed while down")
        yield alice.status("1 line queued")

        server2 = yield ChatServer.start(self, "--log-messages", log, port=port)
        self.addCleanup(lambda: server2.signal("KILL"))
        yield alice.status("| connected", timeout=60)
        yield bob.status("| connected", timeout=60)
        yield bob.shows("alice: typed while down")
        yield alice.wait(lambda rows: sum("alice: typed while down" in r for r in rows) == 1
                         and not any("not sent yet" in r for r in rows),
                         "the pending line confirmed, shown once")
        yield alice.shows("-- end of history (complete) --")
        self.assertEqual(sum("bob: hello alice" in r for r in alice.rows()), 1)

        alice.set_size(60, 12)
        yield alice.wait(lambda rows: rows[10].startswith(" #lobby | alice")
                         and any("alice: typed while down" in r for r in rows), "redrawn at 60x12")
        for client in (alice, bob):
            client.type("/quit\r")
        codes = yield defer.gatherResults([deadline(c.ended, 30, f"{c.label} to exit")
                                           for c in (alice, bob)])
        self.assertEqual(codes, [0, 0])
        self.assertEqual(server2.tracebacks(), [])

    @defer.inlineCallbacks
    def test_rooms_through_restarts(self):
        """Rooms (protocol version 2) full screen: the active room, other rooms
        tagged and counted, actions; after a kill -9 and a restart with the
        message log each room's catch-up is complete; after a restart
        without it, each room says the server's history was reset."""
        log, server, port, alice, bob = yield self.alice_and_bob()
        alice.type("/join #dev\r")
        yield alice.status("#lobby | #dev | alice")
        bob.type("hello lobby\r")
        yield alice.shows("[#lobby] ~bob: hello lobby")
        yield alice.status("#lobby (1) | #dev")
        bob.type("/join #dev\r")
        yield bob.status("#lobby | #dev | bob")
        bob.type("in dev now\r")
        yield alice.wait(lambda rows: any(r.endswith(" ~bob: in dev now") and "[#" not in r
                                          for r in rows), "bob's line in the active room, untagged")
        alice.type("/me waves\r")
        yield bob.shows("* ~alice waves")

        server.signal("KILL")
        yield server.ended
        yield alice.status("reconnecting")
        server = yield ChatServer.start(self, "--log-messages", log, port=port)
        yield alice.shows("[#lobby] -- end of history (complete) --", timeout=60)
        yield alice.wait(lambda rows: any(r.endswith(" -- end of history (complete) --")
                                          and "[#" not in r for r in rows), "#dev complete")

        server.signal("KILL")
        yield server.ended
        yield alice.status("reconnecting")
        server = yield ChatServer.start(self, port=port)
        yield alice.shows("[#lobby] -- the server's history was reset --", timeout=60)
        yield alice.status("#lobby (1) | #dev | alice")
        for client in (alice, bob):
            client.type("/quit\r")
        codes = yield defer.gatherResults([deadline(c.ended, 30, f"{c.label} to exit")
                                           for c in (alice, bob)])
        self.assertEqual(codes, [0, 0])
        self.assertEqual(server.tracebacks(), [])
