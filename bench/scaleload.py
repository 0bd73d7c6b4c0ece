"""
The load generator of L{bench.scaleout}: plaintext clients (in one process,
one epoll loop) that say hello, talk with a window of messages in flight or
at a fixed rate, and count deliveries and end-to-end latencies.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import struct
import time
from typing import Any, Dict, List, Optional

HOST = "127.0.0.1"
_MESSAGE = b'"type":"message"'
QUICKACK = bool(getattr(socket, "TCP_QUICKACK", None))
_STAMP = re.compile(rb'"type":"message",(?:"room":"[^"]*",)?"from":"b(\d+)","text":"(\d+):')


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process C{pid} so far (Linux C{/proc})."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Client:
    __slots__ = ("n", "sock", "buf", "sender", "probe", "inflight", "welcomed", "count", "say_head")

    def __init__(self, n: int, port: int, sender: bool, probe: bool,
                 room: Optional[str] = None) -> None:
        self.n = n
        self.sock = socket.create_connection((HOST, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.sender = sender
        self.probe = probe
        self.inflight = 0
        self.welcomed = False
        self.count = 0
        hello: Dict[str, Any] = {"type": "hello", "name": f"b{n}"}
        self.say_head = b'{"type":"say",'
        if room is not None:  # a room of its own group instead of the default one
            hello["rooms"] = [room]
            self.say_head += b'"room":"' + room.encode() + b'",'
        self.send_json(hello)
        self.sock.setblocking(False)

    def send_json(self, message: Dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def say(self) -> None:
        text = f"{time.perf_counter_ns()}:" + "x" * 40
        body = self.say_head + b'"text":"' + text.encode() + b'"}'
        self.sock.send(struct.pack(">I", len(body)) + body)
        self.inflight += 1


class LoadGen:
    def __init__(self, ports: List[int], clients: int, senders: int, rooms: int = 0) -> None:
        step = max(1, clients // senders)
        size = max(1, clients // rooms) if rooms else 0

        def room(n: int) -> Optional[str]:
            return f"#r{n // size}" if rooms else None

        self.clients = [Client(n, ports[n % len(ports)], n % step == 0 and n // step < senders,
                               n % 10 == 0 or n % step == 0, room(n)) for n in range(clients)]
        self.by_fd = {c.sock.fileno(): c for c in self.clients}
        self.poll = select.epoll()
        for fd in self.by_fd:
            self.poll.register(fd, select.EPOLLIN)
        self.latencies: List[int] = []
        self.deliveries = 0
        self.record = False
        end = time.monotonic() + 60
        while not all(c.welcomed for c in self.clients):
            if time.monotonic() > end:
                raise SystemExit("clients did not all get welcome")
            self.pump(0.1)

    def pump(self, timeout: float) -> None:
        for fd, _ in self.poll.poll(timeout):
            c = self.by_fd[fd]
            try:
                data = c.sock.recv(1 << 18)
                if QUICKACK:
                    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            except BlockingIOError:
                continue
            if not data:
                raise SystemExit(f"client {c.n} was disconnected")
            now = time.perf_counter_ns()
            if not c.welcomed:
                c.buf += data
                if b'"type":"history"' in c.buf:
                    c.welcomed, c.buf = True, b""
                continue
            if c.probe:
                data = c.buf + data
                frames, rest = _split(data)
                c.buf = rest
                n = 0
                for body in frames:
                    m = _STAMP.match(body, 1)
                    if m is None:
                        continue
                    n += 1
                    if self.record:
                        self.latencies.append(now - int(m.group(2)))
                    if c.sender and int(m.group(1)) == c.n:
                        c.inflight -= 1
            else:
                tail = c.buf
                n = (tail + data).count(_MESSAGE) - tail.count(_MESSAGE)
                c.buf = data[-20:]
            if self.record:
                self.deliveries += n

    def throughput(self, window: int, warmup: float, duration: float,
                   pids: List[int]) -> Dict[str, Any]:
        senders = [c for c in self.clients if c.sender]
        end_warm = time.monotonic() + warmup
        while time.monotonic() < end_warm:
            self._refill(senders, window)
            self.pump(0.01)
        cpu0 = {pid: cpu_seconds(pid) for pid in pids}
        self.deliveries, self.latencies, self.record = 0, [], True
        sent0 = sum(c.count for c in senders)
        start = time.monotonic()
        while time.monotonic() - start < duration:
            self._refill(senders, window)
            self.pump(0.01)
        elapsed = time.monotonic() - start
        self.record = False
        cpu = {pid: cpu_seconds(pid) - cpu0[pid] for pid in pids}
        sent = sum(c.count for c in senders) - sent0
        self._drain(senders)
        return {"deliveries_per_s": self.deliveries / elapsed, "messages_per_s": sent / elapsed,
                "deliveries": self.deliveries, "messages": sent, "seconds": elapsed,
                "cpu_s": cpu, **_percentiles(self.latencies)}

    def latency(self, rate: float, duration: float) -> Dict[str, Any]:
        senders = [c for c in self.clients if c.sender]
        interval = 1.0 / rate
        self.deliveries, self.latencies, self.record = 0, [], True
        start = next_at = time.monotonic()
        k = 0
        while time.monotonic() - start < duration:
            now = time.monotonic()
            while next_at <= now:
                c = senders[k % len(senders)]
                c.say()
                c.count += 1
                k += 1
                next_at += interval
            self.pump(max(0.0, min(0.005, next_at - time.monotonic())))
        self.record = False
        self._drain(senders)
        return {"rate": rate, "sent": k, **_percentiles(self.latencies)}

    def _refill(self, senders: List[Client], window: int) -> None:
        for c in senders:
            while c.inflight < window:
                c.say()
                c.count += 1

    def _drain(self, senders: List[Client]) -> None:
        end = time.monotonic() + 10
        while any(c.inflight > 0 for c in senders) and time.monotonic() < end:
            self.pump(0.05)
        for c in senders:
            c.inflight = 0

    def close(self) -> None:
        for c in self.clients:
            c.sock.close()


def _split(data: bytes):
    frames, i = [], 0
    while len(data) - i >= 4:
        (n,) = struct.unpack_from(">I", data, i)
        if len(data) - i - 4 < n:
            break
        frames.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    return frames, data[i:]


def _percentiles(values: List[int]) -> Dict[str, Optional[float]]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "samples": 0}
    values.sort()
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))] / 1e6
    return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "samples": len(values)}
