# -*- test-case-name: tests.test_relay -*-
"""
A recording relay: a debugging tool that sits between chat clients and a
server and shows what crosses the wire, frame by frame, in both directions.

    python -m chatsvc.relay --listen tcp:8001 --connect tcp:host=127.0.0.1:port=8000

Point clients at port 8001. With C{--websocket}, put it in front of a
C{--web} endpoint instead and point a browser at it: the page's own files
pass through (only their requests are shown), and every WebSocket message
is shown as the frame body it carries (PROTOCOL.md 7.1)::

    python -m chatsvc.relay --websocket --listen tcp:8081 --connect tcp:host=127.0.0.1:port=8080

Plaintext frames are shown as their JSON;
encrypted records as their type, size and the start of their ciphertext (the
relay has no key, and with the per-connection keys of Noise a key would not
help a passive observer anyway). Bytes are forwarded untouched.

L{WireDescriber} and L{WebSocketDescriber} are the pure part: bytes in,
printable lines out.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, List, Optional, TextIO

from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from .wire.errors import RemoteProtocolError
from .wire.framing import MAX_FRAME, FrameDecoder

_RECORD_NAMES = {0x01: "handshake", 0x02: "data"}


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class WireDescriber:
    """
    Describe one direction of one connection, frame by frame.

    @param label: printed before each line (e.g. C{"#1 client->server"}).
    @param width: how many bytes of a ciphertext to show, in hex.
    """

    def __init__(self, label: str, width: int = 24) -> None:
        self.label = label
        self.width = width
        self._decoder: Optional[FrameDecoder] = FrameDecoder(MAX_FRAME)

    def feed(self, data: bytes) -> List[str]:
        """Take the next bytes of this direction; return lines describing
        every frame they complete."""
        decoder = self._decoder
        if decoder is None:
            return []
        decoder.receive_data(data)
        lines = []
        try:
            for body in decoder.frames():
                lines.append(f"{self.label} {self.describe(body)}")
        except RemoteProtocolError as e:
            lines.append(f"{self.label} not framed any more ({e.code}); raw bytes follow unshown")
            self._decoder = None
        return lines

    def describe(self, body: bytes) -> str:
        first = body[0]
        if first == 0x7B:
            text = body.decode("utf-8", "replace")
            return f"plaintext {len(body):5d} B  {_printable(text)}"
        kind = _RECORD_NAMES.get(first, f"type 0x{first:02x}")
        payload = body[1:]
        shown = payload[: self.width].hex()
        more = "..." if len(payload) > self.width else ""
        return f"record {kind:9s} {len(payload):5d} B  {shown}{more}"


_WS_OPCODES = {0x0: "continuation", 0x1: "text", 0x2: "binary", 0x8: "close", 0x9: "ping", 0xA: "pong"}
_MAX_HEAD = 16384


class WebSocketDescriber(WireDescriber):
    """
    Describe one direction of an HTTP connection that may become a
    WebSocket: the request or status line, then (after an upgrade) every
    message; a binary message as the frame body it carries.
    """

    def __init__(self, label: str, width: int = 24) -> None:
        WireDescriber.__init__(self, label, width)
        self._buffer = b""
        self._state = "head"  # then "frames", or "opaque" (plain HTTP bodies)

    def feed(self, data: bytes) -> List[str]:
        if self._state == "opaque":
            return []
        self._buffer += data
        lines: List[str] = []
        if self._state == "head":
            head, found, rest = self._buffer.partition(b"\r\n\r\n")
            if not found:
                if len(self._buffer) > _MAX_HEAD:
                    self._state = "opaque"
                    return [f"{self.label} not HTTP; raw bytes follow unshown"]
                return []
            first = _printable(head.split(b"\r\n", 1)[0].decode("latin-1"))
            upgraded = b" 101 " in head.split(b"\r\n", 1)[0] or b"upgrade: websocket" in head.lower()
            self._state = "frames" if upgraded else "opaque"
            self._buffer = rest if upgraded else b""
            note = "" if upgraded else " (plain HTTP: the rest of this connection is not shown)"
            lines.append(f"{self.label} http {first}{note}")
        while self._state == "frames":
            message = self._next_message()
            if message is None:
                break
            lines.append(f"{self.label} {message}")
        return lines

    def _next_message(self) -> Optional[str]:
        buf = self._buffer
        if len(buf) < 2:
            return None
        opcode, masked, size, head = buf[0] & 0x0F, buf[1] & 0x80, buf[1] & 0x7F, 2
        if size >= 126:
            head = 4 if size == 126 else 10
            if len(buf) < head:
                return None
            size = int.from_bytes(buf[2:head], "big")
        mask_size = 4 if masked else 0
        end = head + mask_size + size
        if len(buf) < end:
            if size > 2 * MAX_FRAME:
                self._state = "opaque"
                return f"message of {size} bytes: raw bytes follow unshown"
            return None
        mask = buf[head:head + mask_size]
        payload = buf[head + mask_size:end]
        self._buffer = buf[end:]
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        kind = _WS_OPCODES.get(opcode, f"opcode 0x{opcode:x}")
        if opcode == 0x2 and payload:
            return self.describe(payload)
        return f"websocket {kind} {len(payload)} B"


class _Upstream(Protocol):
    def __init__(self, downstream: "_Downstream") -> None:
        self.downstream = downstream

    def connectionMade(self) -> None:
        self.downstream.upstream_ready(self)

    def dataReceived(self, data: bytes) -> None:
        self.downstream.from_server(data)

    def connectionLost(self, reason: Failure) -> None:
        self.downstream.upstream_lost()


class _Downstream(Protocol):
    def __init__(self, relay: "Relay", number: int) -> None:
        self.relay = relay
        self.number = number
        self.upstream: Optional[_Upstream] = None
        self._early: List[bytes] = []
        describer = WebSocketDescriber if relay.websocket else WireDescriber
        self._to_server = describer(f"#{number} client->server")
        self._to_client = describer(f"#{number} server->client")

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        where = f"{peer.host}:{peer.port}" if hasattr(peer, "port") else str(peer)
        self.relay.emit(f"#{self.number} connected from {where}")
        d = self.relay.target.connect(Factory.forProtocol(lambda: _Upstream(self)))
        d.addErrback(self._cannot_connect)

    def _cannot_connect(self, failure: Failure) -> None:
        self.relay.emit(f"#{self.number} cannot reach the server: {failure.getErrorMessage()}")
        self.transport.loseConnection()

    def upstream_ready(self, upstream: _Upstream) -> None:
        self.upstream = upstream
        for data in self._early:
            upstream.transport.write(data)
        self._early = []

    def dataReceived(self, data: bytes) -> None:
        for line in self._to_server.feed(data):
            self.relay.emit(line)
        if self.upstream is None:
            self._early.append(data)
        else:
            self.upstream.transport.write(data)

    def from_server(self, data: bytes) -> None:
        for line in self._to_client.feed(data):
            self.relay.emit(line)
        self.transport.write(data)

    def upstream_lost(self) -> None:
        self.relay.emit(f"#{self.number} server closed")
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure) -> None:
        self.relay.emit(f"#{self.number} client closed")
        if self.upstream is not None:
            self.upstream.transport.loseConnection()


class Relay(Factory):
    """Accept clients, connect each to C{target}, describe the traffic."""

    noisy = False

    def __init__(self, target: Any, emit: Callable[[str], None], websocket: bool = False) -> None:
        self.target = target
        self.emit = emit
        self.websocket = websocket
        self._count = 0

    def buildProtocol(self, addr: Any) -> _Downstream:
        self._count += 1
        return _Downstream(self, self._count)


def main(argv: Optional[List[str]] = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chatsvc.relay",
        description="Relay chat connections and show what crosses the wire.",
    )
    parser.add_argument("--listen", default="tcp:8001:interface=127.0.0.1",
                        help="where clients connect (default %(default)s)")
    parser.add_argument("--connect", default="tcp:host=127.0.0.1:port=8000",
                        help="the chat server (default %(default)s)")
    parser.add_argument("--record", metavar="FILE", help="also append the lines to FILE")
    parser.add_argument("--websocket", action="store_true",
                        help="relay a --web endpoint: HTTP, and WebSocket messages as frames")
    args = parser.parse_args(argv)

    from twisted.internet import reactor

    record = open(args.record, "a", encoding="utf-8") if args.record else None

    def emit(line: str) -> None:
        out.write(line + "\n")
        out.flush()
        if record is not None:
            record.write(line + "\n")
            record.flush()

    try:
        target = clientFromString(reactor, args.connect)
        listener = serverFromString(reactor, args.listen)
    except (ValueError, TypeError, KeyError) as e:
        print(f"relay: bad endpoint: {e}", file=sys.stderr)
        return 2

    def listening(port: Any) -> None:
        emit(f"relay: listening on port {port.getHost().port}, relaying to {args.connect}")

    def failed(failure: Failure) -> None:
        print(f"relay: cannot listen: {failure.getErrorMessage()}", file=sys.stderr)
        reactor.stop()

    listener.listen(Relay(target, emit, args.websocket)).addCallbacks(listening, failed)
    reactor.run()
    if record is not None:
        record.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
