"""
Real processes for end-to-end tests: a C{twistd chat} server and
C{chat-client}s, driven from trial through the reactor (no sleeps: every wait
is a Deferred with a deadline).

    server = yield ChatServer.start(self, "--encrypted", "--psk", DEMO_KEY)
    alice = yield ChatClientProcess.start(self, server.port, "--name", "alice")
    alice.send("hello")
    yield bob.wait_for("alice: hello")
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Callable, List, Optional, Pattern, Tuple, Union

from twisted.internet import defer, reactor
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_KEY = os.path.join(REPO, "keys", "demo.key")
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
DEFAULT_TIMEOUT = 20.0

Matcher = Union[str, Pattern[str], Callable[[str], bool]]


def _matches(matcher: Matcher, line: str) -> bool:
    if isinstance(matcher, str):
        return matcher in line
    if callable(matcher) and not hasattr(matcher, "search"):
        return bool(matcher(line))
    return matcher.search(line) is not None  # type: ignore[union-attr]


def deadline(d: defer.Deferred, seconds: float, what: str) -> defer.Deferred:
    """C{d}, failed with a message saying C{what} if it takes over C{seconds}."""
    timer = reactor.callLater(seconds, d.cancel)

    def done(result: Any) -> Any:
        if timer.active():
            timer.cancel()
            return result
        if isinstance(result, Failure) and result.check(defer.CancelledError):
            raise AssertionError(f"timed out after {seconds} s: {what}")
        return result

    return d.addBoth(done)


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


class LineProcess(ProcessProtocol):
    """Collect a child's output as lines; wait for lines that match."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.lines: List[str] = []
        self.err_lines: List[str] = []
        self._partial = {1: b"", 2: b""}
        self._waiters: List[Tuple[Matcher, int, defer.Deferred]] = []
        self.ended: defer.Deferred = defer.Deferred()
        self.exit_code: Optional[int] = None
        self.running = False

    def connectionMade(self) -> None:
        self.running = True

    def childDataReceived(self, fd: int, data: bytes) -> None:
        if fd not in self._partial:
            return
        data = self._partial[fd] + data
        *complete, self._partial[fd] = data.split(b"\n")
        target = self.lines if fd == 1 else self.err_lines
        for raw in complete:
            target.append(raw.decode("utf-8", "replace").rstrip("\r"))
        self._check()

    def _check(self) -> None:
        for waiter in list(self._waiters):
            matcher, start, d = waiter
            for line in self.lines[start:] + self.err_lines:
                if _matches(matcher, line):
                    self._waiters.remove(waiter)
                    d.callback(line)
                    break

    def wait_for(self, matcher: Matcher, timeout: float = DEFAULT_TIMEOUT,
                 after: int = 0) -> defer.Deferred:
        """Fire with the first output line (from line C{after} on) that matches."""
        d: defer.Deferred = defer.Deferred()
        self._waiters.append((matcher, after, d))
        self._check()
        if d.called:
            return d

        def expire() -> None:
            if not d.called:
                self._waiters[:] = [w for w in self._waiters if w[2] is not d]
                d.errback(AssertionError(
                    f"{self.label}: no line matching {matcher!r} within {timeout}s; output:\n"
                    + "\n".join(self.lines[-40:] + ["-- stderr --"] + self.err_lines[-20:])))

        call = reactor.callLater(timeout, expire)
        d.addBoth(lambda r: (call.cancel() if call.active() else None, r)[1])
        return d

    def processEnded(self, reason: Any) -> None:
        self.running = False
        self.exit_code = getattr(reason.value, "exitCode", None)
        for fd, rest in self._partial.items():
            if rest:
                self.childDataReceived(fd, b"\n")
        for _, _, d in self._waiters:
            if not d.called:
                d.errback(AssertionError(f"{self.label} exited ({self.exit_code}) while waiting:\n"
                                         + "\n".join(self.lines[-40:] + self.err_lines[-20:])))
        self._waiters = []
        self.ended.callback(self.exit_code)

    def wait_exit(self, timeout: float = DEFAULT_TIMEOUT) -> defer.Deferred:
        """Fire with the exit code."""
        d: defer.Deferred = defer.Deferred()
        self.ended.addBoth(lambda code: (d.callback(code) if not d.called else None, code)[1])

        def expire() -> None:
            if not d.called:
                d.errback(AssertionError(f"{self.label} did not exit within {timeout}s"))

        call = reactor.callLater(timeout, expire)
        d.addBoth(lambda r: (call.cancel() if call.active() else None, r)[1])
        return d

    def signal(self, name: str) -> None:
        try:
            self.transport.signalProcess(name)
        except ProcessExitedAlready:
            pass

    def output(self) -> str:
        return "\n".join(self.lines + self.err_lines)


def _spawn(test: Any, proto: LineProcess, args: List[str], stdin: bool) -> None:
    child_fds = {0: "w", 1: "r", 2: "r"} if stdin else {0: "r", 1: "r", 2: "r"}
    reactor.spawnProcess(proto, sys.executable, [sys.executable] + args,
                         env=child_env(), path=REPO, childFDs=child_fds)

    def cleanup() -> defer.Deferred:
        if proto.running:
            proto.signal("KILL")
        return proto.ended

    test.addCleanup(cleanup)


class ChatServer(LineProcess):
    """C{twistd -n chat} as a child process."""

    port: int = 0

    @classmethod
    @defer.inlineCallbacks
    def start(cls, test: Any, *options: str, port: int = 0, interface: str = "127.0.0.1"):
        server = cls("server")
        args = ["-c", TWISTD, "-n", "--pidfile=", "chat",
                "--listen", f"tcp:{port}:interface={interface}"] + list(options)
        _spawn(test, server, args, stdin=False)
        line = yield server.wait_for(re.compile(r"starting on (\d+)|Traceback|chat: "))
        found = re.search(r"starting on (\d+)", line)
        if not found:
            yield server.wait_exit()
            raise AssertionError("server did not start:\n" + server.output())
        server.port = int(found.group(1))
        return server

    def tracebacks(self) -> List[str]:
        return [line for line in self.lines + self.err_lines
                if "Traceback" in line or "Unhandled" in line]


class ChatClientProcess(LineProcess):
    """C{python -m chatsvc.client} as a child process, stdin a pipe."""

    @classmethod
    def start(cls, test: Any, port: int, *options: str, label: str = "client",
              timestamps: bool = False) -> "ChatClientProcess":
        """Start a client in line mode; without C{timestamps}, lines have no
        C{HH:MM} before them (C{--no-timestamps}), so tests can match them whole."""
        client = cls(label)
        args = ["-m", "chatsvc.client", "--connect", f"tcp:host=127.0.0.1:port={port}"] + list(options)
        if not timestamps:
            args.append("--no-timestamps")
        _spawn(test, client, args, stdin=True)
        return client

    def send(self, line: str) -> None:
        self.transport.write(line.encode("utf-8") + b"\n")

    def close_stdin(self) -> None:
        self.transport.closeStdin()
