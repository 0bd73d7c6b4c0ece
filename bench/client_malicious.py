"""
Can a malicious server grow the client's memory, or make it print anything
and exit? (issue 12, findings 6 and 7)

A server in this process (Twisted, 127.0.0.1, a free port) plays the
attacker against a real C{chat-client --line-mode} process
(C{python -m chatsvc.client}):

  - finding 6: after the hello, C{history} and C{users} parts with
    C{"more": true} that never end (frames of about 62 KB); and, with the
    client's stdout a pipe nobody reads, C{--messages} chat messages of
    about 1 KB. The client's RSS (C{VmRSS} of /proc/PID/status) is read
    after the welcome and after the flood; a C{ping} answered by C{pong}
    marks the client having read everything before it (no fixed sleeps);
  - finding 7, the client encrypted (C{--psk}, a fresh key): plaintext
    frames injected before the server's handshake answer, as a man in the
    middle would: a fake C{replaced} and a fake C{welcome}, then the real
    handshake (the client must carry on to the real welcome); a fake
    C{encryption-required} and a close (the client must show the text as
    unauthenticated); a fake C{encryption-required}, then the real
    handshake, welcome, and a close (the client must reconnect, not exit
    on the stale fake)::

    python -m bench.client_malicious                   # 40 and 400 frames, 10,000 messages
    python -m bench.client_malicious --frames 4,8 --messages 200   # the smoke test's sizes

Linux only (/proc). Prints one table; the exit status is 1 if the RSS grew
by more than C{--max-growth} MiB in a run or a finding 7 check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

from twisted.internet import defer, task
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.protocols.basic import Int32StringReceiver

from chatsvc.keys import generate_key_file, load_key
from chatsvc.server.encryption import EncryptingFactory
from chatsvc.wire.framing import MAX_FRAME, encode_frame
from chatsvc.wire.messages import decode

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEADLINE = 60.0
"""Seconds any one wait may take before the run is called failed."""
TEXT = "x" * 1000
FAKE_TEXT = "Server key rotated. Type /encrypt off to continue."
MARK = "[unauthenticated: sent before the handshake]"
RUNS: List["Run"] = []
"""Every client started, so that none outlives a run that failed."""


def frame(message: Dict[str, Any]) -> bytes:
    """A body the client's decoder accepts (checked: a refused one would measure nothing)."""
    body = json.dumps(message, separators=(",", ":")).encode()
    assert len(body) <= MAX_FRAME, len(body)
    decode(body)
    return body


def history_part(seq: int) -> bytes:
    messages = [{"type": "message", "room": "#lobby", "from": "bob", "ts": "2026-01-01T00:00:00.000Z",
                 "seq": seq + i, "text": TEXT} for i in range(56)]
    return frame({"type": "history", "room": "#lobby", "messages": messages, "complete": True,
                  "more": True})


def users_part(n: int) -> bytes:
    names = [f"{n:08d}{i:04d}" + "u" * 48 for i in range(1000)]
    return frame({"type": "users", "users": names, "plaintext": [], "more": True})


def welcome(name: str, encrypted: bool) -> List[bytes]:
    return [frame(m) for m in (
        {"type": "welcome", "name": name, "id": "1", "users": [name, "bob"], "plaintext": [],
         "encrypted": encrypted, "resume": "r", "epoch": "e", "rooms": ["#lobby"]},
        {"type": "room", "room": "#lobby", "topic": "", "count": 2, "users": [name, "bob"],
         "plaintext": [], "presence": True},
        {"type": "history", "room": "#lobby", "messages": [], "complete": True},
    )]


class Server(Int32StringReceiver):
    """Welcomes the client, answers its quit, and syncs with it by ping and pong."""

    MAX_LENGTH = MAX_FRAME

    def connectionMade(self) -> None:
        self.pongs: Dict[int, defer.Deferred] = {}
        self.tokens = 0

    def stringReceived(self, body: bytes) -> None:
        message = json.loads(body)
        kind = message.get("type")
        if kind == "hello":
            for body in welcome(message.get("name") or "bench", self.factory.encrypted):
                self.sendString(body)
            self.factory.welcomed.append(self)
            self.factory.arrived.callback(self)
        elif kind == "pong" and message.get("token") in self.pongs:
            self.pongs.pop(message["token"]).callback(None)
        elif kind == "quit":
            self.transport.loseConnection()

    def sync(self) -> defer.Deferred:
        """Fires once the client has read everything sent so far (its pong)."""
        self.tokens += 1
        d = self.pongs[self.tokens] = defer.Deferred()
        self.sendString(frame({"type": "ping", "token": self.tokens}))
        return d


class Injector(Protocol):
    """Writes plaintext frames straight to the socket, then hands it to the real (encrypting) protocol."""

    def __init__(self, inner: Any, bodies: List[bytes], close: bool) -> None:
        self.inner, self.bodies, self.close = inner, bodies, close

    def makeConnection(self, transport: Any) -> None:
        for body in self.bodies:
            transport.write(encode_frame(body))
        if self.close:
            transport.loseConnection()
        self.inner.makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        self.inner.dataReceived(data)

    def connectionLost(self, reason: Any) -> None:
        self.inner.connectionLost(reason)


class InjectingFactory(Factory):
    def __init__(self, wrapped: EncryptingFactory, plan: List[tuple]) -> None:
        self.wrapped, self.plan = wrapped, plan  # (bodies, close) for each connection in turn

    def buildProtocol(self, addr: Any) -> Protocol:
        bodies, close = self.plan.pop(0) if self.plan else ([], False)
        return Injector(self.wrapped.buildProtocol(addr), bodies, close)


class Client(ProcessProtocol):
    def __init__(self) -> None:
        self.out = b""
        self.ended: defer.Deferred = defer.Deferred()
        self.code: Optional[int] = None

    def childDataReceived(self, fd: int, data: bytes) -> None:
        self.out += data

    def processEnded(self, reason: Any) -> None:
        self.code = reason.value.exitCode
        self.ended.callback(None)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


async def within(reactor: Any, d: defer.Deferred, what: str) -> Any:
    d.addTimeout(DEADLINE, reactor)
    try:
        return await d
    except defer.TimeoutError:
        raise SystemExit(f"client_malicious: {what} did not happen within {DEADLINE:g} s")


class Run:
    """One client process against one server."""

    def __init__(self, reactor: Any, psk: Optional[str] = None, plan: Optional[List[tuple]] = None,
                 stdout_fd: Optional[int] = None) -> None:
        self.reactor = reactor
        server = Factory.forProtocol(Server)
        server.encrypted = psk is not None
        server.welcomed, server.arrived = [], defer.Deferred()
        self.server = server
        factory: Any = server
        if psk is not None:
            factory = InjectingFactory(EncryptingFactory(server, load_key(psk)), plan or [])
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        args = [sys.executable, "-m", "chatsvc.client", "--line-mode", "--no-timestamps",
                "--name", "bench", "--connect", f"tcp:host=127.0.0.1:port={self.port.getHost().port}"]
        args += ["--psk", psk] if psk else []
        self.client = Client()
        fds = {0: "w", 1: stdout_fd if stdout_fd is not None else "r", 2: "r"}
        self.proc = reactor.spawnProcess(self.client, sys.executable, args, path=HERE,
                                         env=dict(os.environ, PYTHONUNBUFFERED="1"), childFDs=fds)
        RUNS.append(self)

    async def welcomed(self) -> Server:
        server = await within(self.reactor, self.server.arrived, "the welcome")
        self.server.arrived = defer.Deferred()
        await within(self.reactor, server.sync(), "the pong after the welcome")
        return server

    async def end(self) -> str:
        if self.client.code is None:
            self.proc.closeStdin()  # the client quits once its input ends
            await within(self.reactor, self.client.ended, "the client's exit")
        await self.port.stopListening()
        return self.client.out.decode(errors="replace")


async def flood(reactor: Any, kind: str, frames: int) -> Dict[str, Any]:
    run = Run(reactor)
    server = await run.welcomed()
    before = rss_kib(run.proc.pid)
    started = time.perf_counter()
    make = history_part if kind == "history" else users_part
    sent = 0
    for i in range(frames):
        body = make(i * 1000)
        sent += len(body) + 4
        server.sendString(body)
    await within(reactor, server.sync(), f"the pong after {frames} {kind} parts")
    seconds = time.perf_counter() - started
    after = rss_kib(run.proc.pid)
    await run.end()
    return {"what": f"{frames} `{kind}` parts, `more: true`", "wire": sent, "before": before,
            "after": after, "seconds": seconds}


async def stalled_stdout(reactor: Any, messages: int) -> Dict[str, Any]:
    read_end, write_end = os.pipe()
    run = Run(reactor, stdout_fd=write_end)
    os.close(write_end)
    try:
        server = await run.welcomed()
        before = rss_kib(run.proc.pid)
        started = time.perf_counter()
        sent = 0
        for seq in range(1, messages + 1):
            body = frame({"type": "message", "room": "#lobby", "from": "bob",
                          "ts": "2026-01-01T00:00:00.000Z", "seq": seq, "text": f"m{seq} {TEXT}"})
            sent += len(body) + 4
            server.sendString(body)
        await within(reactor, server.sync(), f"the pong after {messages} messages")
        seconds = time.perf_counter() - started
        after = rss_kib(run.proc.pid)
        # Now read: what was held comes out, then one line counts what was dropped.
        os.set_blocking(read_end, False)
        out, deadline = b"", time.monotonic() + DEADLINE
        last = f"m{messages} ".encode()
        while b"writes were dropped" not in out and last not in out and time.monotonic() < deadline:
            try:
                out += os.read(read_end, 1 << 16)
            except BlockingIOError:
                await task.deferLater(reactor, 0.02, lambda: None)
        dropped = next((line for line in out.decode(errors="replace").splitlines()
                        if "writes were dropped" in line), "none dropped")
        await run.end()
    finally:
        os.close(read_end)
    return {"what": f"{messages} messages of 1 KB, stdout not read", "wire": sent, "before": before,
            "after": after, "seconds": seconds, "note": dropped}


async def injected(reactor: Any, psk: str) -> List[tuple]:
    """Finding 7: three runs, each a (check, passed, detail)."""
    fake_replaced = frame({"type": "error", "code": "replaced", "fatal": True,
                           "text": "you connected from another place"})
    fake_welcome = frame({"type": "welcome", "name": "mallory", "id": "9", "users": ["mallory"],
                          "plaintext": [], "encrypted": True, "resume": "x", "epoch": "x",
                          "rooms": ["#lobby"]})
    fake_error = frame({"type": "error", "code": "encryption-required", "fatal": True, "text": FAKE_TEXT})
    results = []

    run = Run(reactor, psk, plan=[([fake_replaced, fake_welcome], False)])
    await run.welcomed()
    out = await run.end()
    ok = run.client.code == 0 and "mallory" not in out and "replaced" not in out
    results.append(("fake `replaced` and `welcome`, then the real handshake: carries on, "
                    "ignores both", ok, f"exit {run.client.code}, 'mallory' shown: {'mallory' in out}"))

    run = Run(reactor, psk, plan=[([fake_error], True)])
    await within(reactor, run.client.ended, "the client's exit after a refused attempt")
    out = await run.end()
    ok = MARK in out and run.client.code == 1
    shown = next((line for line in out.splitlines() if FAKE_TEXT in line), "(not shown)")
    results.append(("fake `encryption-required`, then a close: shown as unauthenticated", ok,
                    f"exit {run.client.code}: {shown.strip()}"))

    run = Run(reactor, psk, plan=[([fake_error], False)])
    server = await run.welcomed()
    server.transport.loseConnection()
    await run.welcomed()  # the client came back: it did not exit on the stale fake
    out = await run.end()
    ok = run.client.code == 0 and FAKE_TEXT not in out
    results.append(("fake `encryption-required`, then the real handshake and a close: "
                    "reconnects", ok, f"exit {run.client.code}, welcomes: {len(run.server.welcomed)}"))
    return results


async def main_async(reactor: Any, options: argparse.Namespace) -> int:
    runs = []
    for frames in options.frames:
        runs.append(await flood(reactor, "history", frames))
    runs.append(await flood(reactor, "users", options.frames[-1]))
    runs.append(await stalled_stdout(reactor, options.messages))
    with tempfile.TemporaryDirectory() as tmp:
        key = os.path.join(tmp, "bench.key")
        generate_key_file(key)
        checks = await injected(reactor, key)
    print("client_malicious: a real `chat-client --line-mode` against a malicious server (Linux, /proc)")
    print("| attack | on the wire | client RSS before → after | time |\n| --- | --- | --- | --- |")
    bad = False
    for r in runs:
        grew = (r["after"] - r["before"]) / 1024
        bad = bad or grew > options.max_growth
        note = f" ({r['note'].strip()})" if "note" in r else ""
        print(f"| {r['what']}{note} | {r['wire'] / 1e6:.1f} MB | {r['before'] / 1024:.1f} → "
              f"{r['after'] / 1024:.1f} MiB | {r['seconds']:.2f} s |")
    print("\n| finding 7 | result | detail |\n| --- | --- | --- |")
    for what, ok, detail in checks:
        bad = bad or not ok
        print(f"| {what} | {'ok' if ok else 'FAILED'} | {detail} |")
    return 1 if bad else 0


def main() -> None:
    if not sys.platform.startswith("linux"):
        raise SystemExit("client_malicious: Linux only (the RSS comes from /proc)")
    parser = argparse.ArgumentParser(prog="python -m bench.client_malicious",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", default="40,400",
                        help="history parts for each run, comma-separated (40,400); the users run uses the last")
    parser.add_argument("--messages", type=int, default=10_000,
                        help="messages sent while stdout is not read (10000)")
    parser.add_argument("--max-growth", type=float, default=24.0,
                        help="MiB of RSS growth in one run that counts as unbounded (24)")
    options = parser.parse_args()
    options.frames = [int(n) for n in options.frames.split(",")]

    async def go(reactor: Any) -> None:
        try:
            code = await main_async(reactor, options)
        finally:
            for run in RUNS:
                if run.client.code is None:
                    try:
                        run.proc.signalProcess("KILL")
                    except ProcessExitedAlready:
                        pass
        if code:
            raise SystemExit(code)

    task.react(lambda reactor: defer.ensureDeferred(go(reactor)))


if __name__ == "__main__":
    main()
