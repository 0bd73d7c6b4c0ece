"""
What the metrics hooks cost on the hot paths, in one process, no network:
one member says a message, the fan-out hands it to N members (their send
queues and StringTransports), repeated; the median CPU time of this process
per message and per delivery is printed (CPU time, so that other processes
on a shared machine count less). Run it on a tree with and without the
hooks (it works on a tree without chatsvc.metrics) to compare:

    python -m bench.hooks_cost                 # no recorder (the default)
    python -m bench.hooks_cost --metrics       # with --metrics' Prometheus recorder
    git archive main | tar -x -C /tmp/main && cp bench/hooks_cost.py /tmp/main/bench/
    (cd /tmp/main && python -m bench.hooks_cost)
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import time

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

try:
    from chatsvc.chat.memory import MemoryChat as Room
except ImportError:  # a tree from before protocol version 2
    from chatsvc.chat.memory import Room
from chatsvc.server.factory import ChatFactory, ServerConfig


def frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return struct.pack(">I", len(body)) + body


def run(members: int, messages: int, repeats: int, metrics: bool) -> list:
    clock = Clock()
    room = Room(clock, history_size=50)
    factory = ChatFactory(room, ServerConfig(rate_burst=0, max_per_ip=0, max_clients=0), clock)
    if metrics:
        from chatsvc.metrics.prometheus import PrometheusMetrics
        from chatsvc.metrics.service import instrument
        instrument(factory, room, PrometheusMetrics())
    protos = []
    for i in range(members):
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 20000 + i))
        proto = factory.buildProtocol(None)
        proto.makeConnection(transport)
        proto.dataReceived(frame({"type": "hello", "name": f"u{i}"}))
        protos.append((proto, transport))
    clock.advance(0)
    sender = protos[0][0]
    say = frame({"type": "say", "text": "x" * 40})
    results = []
    for _ in range(repeats):
        for _, transport in protos:
            transport.clear()
        started = time.process_time()
        for _ in range(messages):
            sender.dataReceived(say)
            clock.advance(0)  # end of turn: the fan-out
        results.append((time.process_time() - started) / messages)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--metrics", action="store_true")
    args = parser.parse_args()
    per_message = run(args.members, args.messages, args.repeats, args.metrics)
    median = statistics.median(per_message)
    print(f"members {args.members}, metrics {'on' if args.metrics else 'off'}: "
          f"median {median * 1e6:.1f} us per message, {median / args.members * 1e9:.0f} ns "
          f"per delivery (min {min(per_message) * 1e6:.1f} us, {args.repeats} x {args.messages})")


if __name__ == "__main__":
    main()
