# -*- test-case-name: tests.test_support -*-
"""
Real processes for end-to-end tests: the one way to start a C{twistd -n
chat} server (L{ChatServer}) and C{chat-client}s (L{ChatClientProcess}),
driven from trial through the reactor. No sleeps: every wait is a Deferred
with a deadline; every process is killed in the test's cleanup.

    server = yield ChatServer.start(self, "--psk", DEMO_KEY)
    server = yield ChatServer.start(self, "--rate", "0", redis=redis.port)
    alice = ChatClientProcess.start(self, server.port, "--name", "alice")
    alice.send("hello")
    yield bob.wait_for("alice: hello")
    yield server.kill()                      # kill -9; or terminate() (SIGTERM)
    server = yield server.restart()          # same options, same port
"""

from __future__ import annotations

import functools
import os
import re
import socket
import sys
from typing import Any, Callable, List, Optional, Pattern, Tuple, Union

from twisted.internet import defer, reactor
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_KEY = os.path.join(REPO, "keys", "demo.key")
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
DEFAULT_TIMEOUT = 20.0
LOOPBACK = "127.0.0.1"

Matcher = Union[str, Pattern[str], Callable[[str], bool]]


def _matches(matcher: Matcher, line: str) -> bool:
    if isinstance(matcher, str):
        return matcher in line
    if callable(matcher) and not hasattr(matcher, "search"):
        return bool(matcher(line))
    return matcher.search(line) is not None  # type: ignore[union-attr]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _bounded(d: defer.Deferred, timeout: float, expired: Callable[[], Exception]) -> defer.Deferred:
    def expire() -> None:
        if not d.called:
            d.errback(expired())

    call = reactor.callLater(timeout, expire)
    return d.addBoth(lambda r: (call.cancel() if call.active() else None, r)[1])


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

        def expired() -> Exception:
            self._waiters[:] = [w for w in self._waiters if w[2] is not d]
            return AssertionError(
                f"{self.label}: no line matching {matcher!r} within {timeout}s; output:\n"
                + "\n".join(self.lines[-40:] + ["-- stderr --"] + self.err_lines[-20:]))

        return _bounded(d, timeout, expired)

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
        return _bounded(d, timeout, lambda: AssertionError(f"{self.label} did not exit within {timeout}s"))

    def signal(self, name: Union[str, int]) -> None:
        try:
            self.transport.signalProcess(name)
        except ProcessExitedAlready:
            pass

    def kill(self, timeout: float = DEFAULT_TIMEOUT) -> defer.Deferred:
        """C{kill -9}; fire with the exit code once the process has ended."""
        self.signal("KILL")
        return self.wait_exit(timeout)

    def terminate(self, timeout: float = DEFAULT_TIMEOUT) -> defer.Deferred:
        """SIGTERM (a clean shutdown); fire with the exit code once it has ended."""
        self.signal("TERM")
        return self.wait_exit(timeout)

    def output(self) -> str:
        return "\n".join(self.lines + self.err_lines)

    def logged(self, text: str) -> bool:
        """Whether any line of the output so far contains C{text}."""
        return any(text in line for line in self.lines + self.err_lines)

    def tracebacks(self) -> List[str]:
        return [line for line in self.lines + self.err_lines
                if "Traceback" in line or "Unhandled" in line]


def spawn(test: Any, proto: LineProcess, args: List[str], stdin: bool = False,
          env: Optional[dict] = None, **kwargs: Any) -> None:
    """
    Run C{python args...} in the repository with C{proto} (killed in the
    test's cleanup); C{stdin} makes the child's stdin a pipe.
    """
    child_fds = {0: "w", 1: "r", 2: "r"} if stdin else {0: "r", 1: "r", 2: "r"}
    kwargs.setdefault("childFDs", child_fds)
    reactor.spawnProcess(proto, sys.executable, [sys.executable] + args,
                         env=child_env() if env is None else env, path=REPO, **kwargs)

    def cleanup() -> defer.Deferred:
        if proto.running:
            proto.signal("KILL")
        return proto.ended

    test.addCleanup(cleanup)


REDIS_READY = ("Redis (events): connected", "Redis (commands): connected")


class ChatServer(LineProcess):
    """
    C{twistd -n chat} as a child process, killed in cleanup. Every server a
    test starts is listed for L{shows_server_log}.

    @ivar port: the port it listens on.
    @ivar options: the options it was started with (for L{restart}).
    """

    port: int = 0
    options: Tuple[str, ...] = ()
    redis: Optional[int] = None
    interface: str = LOOPBACK

    @classmethod
    @defer.inlineCallbacks
    def start(cls, test: Any, *options: str, port: int = 0, interface: str = LOOPBACK,
              redis: Optional[int] = None, timeout: float = DEFAULT_TIMEOUT):
        """
        Start C{twistd -n chat --listen tcp:PORT:interface=... OPTIONS}
        (with C{--redis} to the C{redis} port if given); fire once it
        listens (and, with Redis, both its Redis links are connected).
        """
        server = cls("server")
        server.test, server.options, server.redis, server.interface = test, options, redis, interface
        args = ["-c", TWISTD, "-n", "--pidfile=", "chat",
                "--listen", f"tcp:{port}:interface={interface}"]
        if redis is not None:
            args += ["--redis", f"tcp:{LOOPBACK}:{redis}"]
        spawn(test, server, args + list(options))
        test.__dict__.setdefault("_chat_servers", []).append(server)
        line = yield server.wait_for(re.compile(r"starting on (\d+)|Traceback|chat: "), timeout)
        found = re.search(r"starting on (\d+)", line)
        if not found:
            yield server.wait_exit()
            raise AssertionError("server did not start:\n" + server.output())
        server.port = int(found.group(1))
        for ready in REDIS_READY if redis is not None else ():
            yield server.wait_for(ready, timeout)
        return server

    @defer.inlineCallbacks
    def restart(self, *options: str, kill: bool = True):
        """
        Stop this server (C{kill -9}, or SIGTERM if not C{kill}) and start
        it again on the same port, with C{options} or the same ones.
        """
        if self.running:
            yield self.kill() if kill else self.terminate()
        server = yield ChatServer.start(self.test, *(options or self.options), port=self.port,
                                        interface=self.interface, redis=self.redis)
        return server


def start_server(test: Any, *options: str, port: int = 0, **kwargs: Any) -> defer.Deferred:
    """L{ChatServer.start}."""
    return ChatServer.start(test, *options, port=port, **kwargs)


class ChatClientProcess(LineProcess):
    """C{python -m chatsvc.client} as a child process, stdin a pipe."""

    @classmethod
    def start(cls, test: Any, port: int, *options: str, label: str = "client",
              timestamps: bool = False, endpoint: Optional[str] = None) -> "ChatClientProcess":
        """
        Start a client in line mode (killed in cleanup), connecting to
        C{endpoint} (a client endpoint string; by default TCP to C{port} on
        the loopback). Without C{timestamps}, lines have no C{HH:MM} before
        them (C{--no-timestamps}), so tests can match them whole.
        """
        client = cls(label)
        endpoint = endpoint or f"tcp:host={LOOPBACK}:port={port}"
        args = ["-m", "chatsvc.client", "--connect", endpoint] + list(options)
        if not timestamps:
            args.append("--no-timestamps")
        spawn(test, client, args, stdin=True)
        return client

    def send(self, line: str) -> None:
        self.transport.write(line.encode("utf-8") + b"\n")

    def close_stdin(self) -> None:
        self.transport.closeStdin()


ADMIN = "import sys; from chatsvc.admin.cli import main; sys.argv[0] = 'chat-admin'; main()"


@defer.inlineCallbacks
def chat_admin(test: Any, socket: str, *argv: str, timeout: float = DEFAULT_TIMEOUT):
    """Run the real C{chat-admin --admin unix:SOCKET ARGV}; fire with C{(exit code, output)}."""
    proc = LineProcess("chat-admin")
    spawn(test, proc, ["-c", ADMIN, "--admin", f"unix:{socket}"] + list(argv), stdin=True)
    code = yield proc.wait_exit(timeout)
    return code, proc.output()


def shows_server_log(method: Callable[..., Any]) -> Callable[..., Any]:
    """
    Run an inlineCallbacks-style test method; if it fails, add the tail of
    every server's log (and its tracebacks) to the failure's message.
    """
    body = defer.inlineCallbacks(method)

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> defer.Deferred:
        def add_log(failure: Failure) -> Failure:
            servers = self.__dict__.get("_chat_servers", [])
            if not servers:
                return failure
            tails = []
            for i, server in enumerate(servers):
                lines = server.lines + server.err_lines
                tails.append(f"--- server {i} (port {server.port}), last 60 of {len(lines)} lines ---")
                tails.extend(lines[-60:])
            error = AssertionError(f"{failure.getErrorMessage()}\n" + "\n".join(tails))
            error.__cause__ = failure.value
            return Failure(error)

        return body(self, *args, **kwargs).addErrback(add_log)

    return wrapper


SLOW = not os.environ.get("CHATSVC_QUICK_TESTS")
"""Run the heavy tests at full size (1,000 clients, 1,000-cycle storms) as CI
does; C{CHATSVC_QUICK_TESTS=1} shrinks them for a fast local loop."""
