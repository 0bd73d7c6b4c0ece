"""
The baseline: a bare Twisted relay, the least a Twisted chat server can do.

Every frame (C{Int32StringReceiver}) a client sends is sent to every
connected client, the sender included, with C{sendString}: no JSON, no
names, no registration, no limits, no send queue. On connecting, a client
gets the one-byte frame C{W}, so a load generator knows it was accepted.

    python -m bench.relay --port 8001 [--interface 127.0.0.1]
"""

from __future__ import annotations

import argparse
import sys
from typing import Dict, List, Optional

from twisted.internet.protocol import Factory
from twisted.protocols.basic import Int32StringReceiver


class Relay(Int32StringReceiver):
    MAX_LENGTH = 65536

    def connectionMade(self) -> None:
        self.factory.clients[self] = None
        self.sendString(b"W")

    def connectionLost(self, reason: object = None) -> None:
        self.factory.clients.pop(self, None)

    def stringReceived(self, data: bytes) -> None:
        for client in self.factory.clients:
            client.sendString(data)


class RelayFactory(Factory):
    protocol = Relay
    noisy = False

    def __init__(self) -> None:
        self.clients: Dict[Relay, None] = {}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interface", default="127.0.0.1")
    args = parser.parse_args(argv)
    from twisted.internet import reactor

    reactor.listenTCP(args.port, RelayFactory(), interface=args.interface)
    sys.stdout.write(f"relay listening on {args.interface}:{args.port}\n")
    sys.stdout.flush()
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
