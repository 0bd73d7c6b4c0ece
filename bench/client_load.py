"""
Does the full-screen client keep up? (issue 13, "Measured")

A fake server in this process sends the client C{--rate} messages a second
for C{--seconds} seconds; the client runs full screen in a pseudo-terminal
(a real process, C{python -m chatsvc.client}). Meanwhile a key is typed
every C{--key-every} seconds, and the time until the terminal receives the
redrawn input line holding it is the keystroke-to-draw latency. The
client's RSS and CPU are sampled from /proc every 0.5 s::

    python -m bench.client_load                      # 2,000 msg/s for 10 s
    python -m bench.client_load --rate 4000 --seconds 20 --line-mode

Linux only (a PTY, /proc). Prints one table; the exit status is 1 if a
keystroke took over 100 ms at the 99th percentile or the RSS kept growing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any, List, Optional

from twisted.internet import defer, task
from twisted.internet.protocol import Factory, ProcessProtocol
from twisted.protocols.basic import Int32StringReceiver

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ts() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % int(now % 1 * 1000)


class FakeServer(Int32StringReceiver):
    """Welcomes the client (protocol version 2), then floods it on request."""

    MAX_LENGTH = 65536

    def connectionMade(self) -> None:
        self.factory.connected.append(self)

    def stringReceived(self, body: bytes) -> None:
        import json

        message = json.loads(body)
        if message.get("type") == "hello":
            for reply in (
                {"type": "welcome", "name": "bench", "id": "1", "users": ["bench", "bob"],
                 "plaintext": [], "encrypted": False, "resume": "r", "epoch": "e", "rooms": ["#lobby"]},
                {"type": "room", "room": "#lobby", "topic": "", "count": 2, "users": ["bench", "bob"],
                 "plaintext": [], "presence": True},
                {"type": "history", "room": "#lobby", "messages": [], "complete": True},
            ):
                self.sendString(json.dumps(reply).encode())
            self.factory.welcomed.callback(self)

    def flood(self, count: int, seq: int) -> int:
        import json

        ts = _ts()
        for i in range(count):
            seq += 1
            self.sendString(json.dumps({
                "type": "message", "room": "#lobby", "from": "bob", "ts": ts, "seq": seq,
                "text": f"message {seq} of the flood, with some words to make it a usual length",
            }).encode())
        return seq


class PtyWatcher(ProcessProtocol):
    """The client's terminal: notes when the typed text shows on its input line."""

    def __init__(self) -> None:
        self.tail = b""
        self.received = 0
        self.waiting: Optional[tuple] = None
        self.latencies: List[float] = []
        self.ended: defer.Deferred = defer.Deferred()

    def childDataReceived(self, fd: int, data: bytes) -> None:
        self.received += len(data)
        self.tail = (self.tail + data)[-4096:]
        if self.waiting is not None:
            needle, started = self.waiting
            if needle in self.tail:
                self.latencies.append(time.perf_counter() - started)
                self.waiting = None

    def type_key(self, typed: str) -> None:
        if self.waiting is not None:  # the last key never showed: count it as very late
            self.latencies.append(time.perf_counter() - self.waiting[1])
        self.waiting = (b"> " + typed.encode(), time.perf_counter())
        self.tail = b""
        self.transport.write(typed[-1:].encode())

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(None)


def _proc_stats(pid: int) -> tuple:
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, cpu


async def run(reactor: Any, options: argparse.Namespace) -> int:
    factory = Factory.forProtocol(FakeServer)
    factory.connected = []
    factory.welcomed = defer.Deferred()
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    env = dict(os.environ, TERM="xterm-256color", PYTHONUNBUFFERED="1")
    args = [sys.executable, "-m", "chatsvc.client", "--connect",
            f"tcp:host=127.0.0.1:port={port.getHost().port}", "--name", "bench"]
    if options.line_mode:
        args.append("--line-mode")
    watcher = PtyWatcher()
    proc = reactor.spawnProcess(watcher, sys.executable, args, env=env, path=HERE, usePTY=True)
    import fcntl
    import struct
    import termios

    fcntl.ioctl(proc.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    server = await factory.welcomed
    await task.deferLater(reactor, 1.0, lambda: None)
    rss0, cpu0 = _proc_stats(proc.pid)
    samples: List[tuple] = []
    typed = ""
    seq = 0
    start = time.perf_counter()
    next_key = start + options.key_every
    next_sample = start
    batch = max(1, options.rate // 100)
    while time.perf_counter() - start < options.seconds:
        seq = server.flood(batch, seq)
        now = time.perf_counter()
        if now >= next_key and not options.line_mode:  # line mode: the tty echoes, not the client
            typed = (typed + "abcdefghij"[len(typed) % 10])[-40:]
            if len(typed) >= 40:
                typed = ""
                proc.write(b"\x15")  # Ctrl-U: start the line again
                typed = "a"
            watcher.type_key(typed)
            next_key += options.key_every
        if now >= next_sample:
            samples.append((now - start,) + _proc_stats(proc.pid))
            next_sample += 0.5
        await task.deferLater(reactor, max(0.0, start + seq / options.rate - time.perf_counter()),
                              lambda: None)
    sent = seq
    drain_start = time.perf_counter()
    last = f"message {sent} of".encode()
    while last not in watcher.tail and time.perf_counter() - drain_start < 30 and not options.line_mode:
        await task.deferLater(reactor, 0.01, lambda: None)
    drain = time.perf_counter() - drain_start
    rss1, cpu1 = _proc_stats(proc.pid)
    proc.write(b"\x15/quit\r")
    await watcher.ended
    port.stopListening()
    report(options, sent, watcher, drain, samples, (rss0, cpu0), (rss1, cpu1))
    rss_mid = [s[1] for s in samples if s[0] >= options.seconds / 2]
    lat = watcher.latencies
    p99 = sorted(lat)[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0.0
    growing = bool(rss_mid) and rss_mid[-1] - rss_mid[0] > 8 * 1024
    return 1 if (lat and p99 > 100) or growing else 0


def report(options: argparse.Namespace, sent: int, watcher: PtyWatcher, drain: float,
           samples: List[tuple], before: tuple, after: tuple) -> None:
    """Print the table."""
    (rss0, cpu0), (rss1, cpu1) = before, after
    lat = sorted(watcher.latencies)
    p50 = statistics.median(lat) * 1000 if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
    worst = lat[-1] * 1000 if lat else float("nan")
    print(f"client_load: {sent} messages in {options.seconds:g} s ({sent / options.seconds:.0f}/s), "
          f"{'line mode' if options.line_mode else 'full screen'} 120x40")
    print("| measure | value |\n| --- | --- |")
    print(f"| keystrokes typed | {len(lat)} |")
    print(f"| keystroke to draw, median | {p50:.1f} ms |")
    print(f"| keystroke to draw, p99 | {p99:.1f} ms |")
    print(f"| keystroke to draw, worst | {worst:.1f} ms |")
    print(f"| last message drawn after the flood ended | {drain * 1000:.0f} ms |")
    print(f"| client CPU during the run | {(cpu1 - cpu0) / options.seconds * 100:.0f}% of a core |")
    print(f"| client RSS before / max / after | {rss0 / 1024:.1f} / "
          f"{max(s[1] for s in samples) / 1024:.1f} / {rss1 / 1024:.1f} MiB |")
    print(f"| terminal output | {watcher.received / options.seconds / 1024:.0f} KiB/s |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.client_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=2000, help="messages a second (2000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long (10)")
    parser.add_argument("--key-every", type=float, default=0.1, help="seconds between keys (0.1)")
    parser.add_argument("--line-mode", action="store_true",
                        help="run the client in line mode (CPU and memory only: the terminal echoes keys)")
    options = parser.parse_args()

    async def go(reactor: Any) -> None:
        code = await run(reactor, options)
        if code:
            raise SystemExit(code)

    task.react(lambda reactor: defer.ensureDeferred(go(reactor)))


if __name__ == "__main__":
    main()
