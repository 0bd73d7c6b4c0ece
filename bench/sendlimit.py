"""
The machine's own limit: how many small C{send()} calls one core makes per
second round-robin over many loopback sockets, with nothing else going on.

    python -m bench.sendlimit                   # 1,000 sockets, TCP_NODELAY
    python -m bench.sendlimit --nagle           # the same with Nagle on
    python -m bench.sendlimit --paced 5         # a pass every 5 ms, like 200 msg/s

A fan-out to N clients is at least N such calls per message (or per reactor
turn, batched), so this bounds what any server written on sockets can do
here, in any language: it explains why the latency scenario of C{python -m
bench} (200 messages/s into 1,000 clients, 200,000 deliveries/s) keeps a
server's core busy. The reader runs in a second process (on the other CPU
where C{sched_setaffinity} exists) and drains every socket.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import subprocess
import sys
import time
from typing import List, Optional

TEXT = b"x" * 110  # about one chatsvc message frame


def _pin(cpu: int) -> None:
    setaffinity = getattr(os, "sched_setaffinity", None)  # Linux only
    if setaffinity is not None and (os.cpu_count() or 1) > cpu:
        try:
            setaffinity(0, {cpu})
        except OSError:
            pass


def reader(port: int, clients: int, seconds: float) -> None:
    """Connect C{clients} sockets and drain them until C{seconds} pass."""
    _pin(1)
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(clients)]
    poller = select.select
    for s in socks:
        s.setblocking(False)
    buf = bytearray(1 << 16)
    end = time.monotonic() + seconds
    by_fd = {s.fileno(): s for s in socks}
    epoll = getattr(select, "epoll", None)
    if epoll is not None:
        ep = epoll()
        for fd in by_fd:
            ep.register(fd, select.EPOLLIN)
        while time.monotonic() < end:
            for fd, _ in ep.poll(0.1):
                try:
                    by_fd[fd].recv_into(buf)
                except BlockingIOError:
                    pass
    else:  # pragma: no cover - not Linux
        while time.monotonic() < end:
            ready, _, _ = poller(socks[:500], [], [], 0.1)
            for s in ready:
                try:
                    s.recv_into(buf)
                except BlockingIOError:
                    pass


def measure(clients: int = 1000, seconds: float = 3.0, nodelay: bool = True,
            paced_ms: float = 0.0) -> dict:
    """Return sends per CPU-second (and per wall second) of one sender."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(clients + 16)
    port = listener.getsockname()[1]
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.sendlimit", "--reader", str(port),
         "--clients", str(clients), "--seconds", str(seconds + 2.0)],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        _pin(0)
        socks: List[socket.socket] = []
        for _ in range(clients):
            s, _ = listener.accept()
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if nodelay else 0)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
            s.setblocking(False)
            socks.append(s)
        sends = 0
        cpu0 = time.process_time()
        wall0 = time.monotonic()
        while time.monotonic() - wall0 < seconds:
            for s in socks:
                try:
                    s.send(TEXT)
                except BlockingIOError:
                    pass
            sends += len(socks)
            if paced_ms:
                time.sleep(paced_ms / 1000)
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - wall0
        for s in socks:
            s.close()
    finally:
        listener.close()
        child.wait()
    return {
        "clients": clients,
        "nodelay": nodelay,
        "paced_ms": paced_ms,
        "sends_per_cpu_s": sends / cpu if cpu else 0.0,
        "us_per_send": cpu / sends * 1e6 if sends else 0.0,
        "sends_per_s": sends / wall,
    }


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sendlimit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--nagle", action="store_true", help="leave Nagle's algorithm on (no TCP_NODELAY)")
    parser.add_argument("--paced", type=float, default=0.0, metavar="MS",
                        help="sleep this long after each pass over the sockets")
    parser.add_argument("--reader", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reader:
        reader(args.reader, args.clients, args.seconds)
        return
    r = measure(args.clients, args.seconds, not args.nagle, args.paced)
    print(f"{r['clients']} sockets, {'TCP_NODELAY' if r['nodelay'] else 'Nagle on'}"
          f"{', a pass every %g ms' % r['paced_ms'] if r['paced_ms'] else ''}: "
          f"{r['sends_per_cpu_s']:,.0f} sends per CPU-second ({r['us_per_send']:.2f} us each), "
          f"{r['sends_per_s']:,.0f} per second")


if __name__ == "__main__":
    main()
