"""
Server CPU per frame: the worst frames a client may send, in every state.

Each case feeds one frame (a record, when encrypted) to the server's real
protocol stack in this process (the encrypting wrapper, the chat protocol,
the room, on a L{Clock} whose turn is run to its end) and measures the CPU
time of this process (C{time.process_time}) from the bytes arriving to the
end of the turn, the answer and the fan-out written. Set-up (connecting,
the handshake, registering) is not counted. The bound of issue 12 is 1 ms
per frame on this machine::

    python -m bench.framecost                    # markdown table on stdout
    python -m bench.framecost --reps 50 --users 1000 --json out.json

Rate limits are off (C{--rate 0}): every frame is acted on, the worst case.
Rows marked O(N) grow with the room (N members): their cost is the room's,
per member, and is reported separately from the per-frame bound.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogBeginner
from twisted.python.failure import Failure

from chatsvc.chat.memory import Room
from chatsvc.server.encryption import EncryptingFactory
from chatsvc.server.factory import ChatFactory, ServerConfig
from chatsvc.wire.errors import RemoteProtocolError
from chatsvc.wire.framing import encode_frame
from chatsvc.wire.messages import decode, ping_error
from chatsvc.wire.records import RecordSession

PSK = bytes(range(32))
BOUND = 0.001
"""The per-frame CPU bound of issue 12, in seconds."""

MAX_BODY = 65536


class Stack:
    """A server stack in memory: chat factory, room, encrypting wrapper."""

    def __init__(self, encrypted: bool) -> None:
        self.clock = Clock()
        self.room = Room(self.clock, history_size=50)
        config = ServerConfig(rate_burst=0, max_per_ip=0, max_clients=0, sendq=1 << 30,
                              sendq_soft=0)
        self.chat = ChatFactory(self.room, config, self.clock)
        self.top = EncryptingFactory(self.chat, PSK if encrypted else None, clock=self.clock)
        self.encrypted = encrypted
        self._n = 0

    def connect(self, handshake: bool = True) -> "Conn":
        self._n += 1
        address = IPv4Address("TCP", f"192.0.2.{self._n % 250 + 1}", 40000 + self._n % 20000)
        transport = StringTransport(peerAddress=address)
        proto = self.top.buildProtocol(address)
        proto.makeConnection(transport)
        conn = Conn(self, proto, transport)
        if self.encrypted and handshake:
            conn.session = RecordSession(PSK, initiator=True)
            proto.dataReceived(conn.session.initiate())
            conn.session.receive_data(transport.value())
            list(conn.session.events())
            transport.clear()
        return conn

    def registered(self, name: str) -> "Conn":
        conn = self.connect()
        conn.feed(conn.wrap(encode_frame(json.dumps({"type": "hello", "name": name}).encode())))
        if not conn.transport.connected or conn.transport.disconnecting:
            raise RuntimeError(f"{name} could not register")
        conn.transport.clear()
        return conn


@dataclass
class Conn:
    stack: Stack
    proto: Any
    transport: StringTransport
    session: Optional[RecordSession] = None

    def wrap(self, frame: bytes) -> bytes:
        return self.session.send(frame) if self.session is not None else frame

    def feed(self, data: bytes) -> None:
        self.proto.dataReceived(data)
        self.stack.clock.advance(0)

    def close(self) -> None:
        if self.transport.connected:
            self.proto.connectionLost(Failure(ConnectionDone()))
        self.stack.clock.advance(0)


def _pad(prefix: str, unit: str, suffix: str, size: int = MAX_BODY) -> bytes:
    """C{prefix + unit * n + suffix}, as large as fits C{size} bytes."""
    room = size - len((prefix + suffix).encode())
    n = room // len(unit.encode())
    return (prefix + unit * n + suffix).encode()


def bodies() -> Dict[str, bytes]:
    """The frame bodies, by case name (64 KiB where size is what hurts)."""
    text4k = "x" * 4096
    return {
        "ping, no token": b'{"type":"ping"}',
        "ping, 256-byte token": json.dumps({"type": "ping", "token": "t" * 254}).encode(),
        "ping, 64 KiB string token": _pad('{"type":"ping","token":"', "t", '"}'),
        "pong, 64 KiB string token": _pad('{"type":"pong","token":"', "t", '"}'),
        "ping, 64 KiB of [],[] (containers)": _pad('{"type":"ping","token":[', "[],", "[]]}"),
        "ping, 64 KiB of \"\" strings + 70 [ in one": _pad(
            '{"type":"ping","token":[' + '"' + "[" * 70 + '",', '"",', '""]}'),
        "ping, 64 KiB of small ints": _pad('{"type":"ping","token":[', "1,", "1]}"),
        "ping, 64 KiB of floats": _pad('{"type":"ping","token":[', "1.5e3,", "1]}"),
        "ping, 4,300-digit integer": ('{"type":"ping","token":' + "9" * 4300 + "}").encode(),
        "ping, fifteen 4,299-digit integers": ('{"type":"ping","token":[' + ",".join(["7" * 4299] * 15) + "]}").encode(),
        "ping, object of 64 KiB of keys": _pad('{"type":"ping"', ',"k":0', "}"),
        "ping, 64 KiB of \\u00e9 escapes": _pad('{"type":"ping","token":"', "\\u00e9", '"}'),
        "ping, 64 KiB of surrogate-pair escapes": _pad('{"type":"ping","token":"', "\\ud83d\\ude00",
                                                       '"}'),
        "64 KiB, invalid UTF-8 at the end": _pad('{"type":"ping","token":"', "t", '\xff"}')[:-3]
        + b'\xff"}',
        "unknown type, 64 KiB": _pad('{"type":"dance","x":"', "x", '"}'),
        "hello, valid name": b'{"type":"hello","name":"someone"}',
        "hello, 64 KiB name": _pad('{"type":"hello","name":"', "n", '"}'),
        "hello, 32 look-alike letters": json.dumps({"type": "hello", "name": "\u0430" * 32},
                                                   ensure_ascii=False).encode(),
        "say, 4,096-byte text (room of 2)": json.dumps({"type": "say", "text": text4k}).encode(),
        "say, 64 KiB text (too-long)": _pad('{"type":"say","text":"', "x", '"}'),
        "say, 64 KiB of \\u00e9 escapes (too-long)": _pad('{"type":"say","text":"', "\\u00e9",
                                                          '"}'),
        "say, 4,095 bytes then ESC (bad-text)": json.dumps(
            {"type": "say", "text": "x" * 4095 + "\x1b"}).encode(),
        "msg, 4,096-byte text": json.dumps({"type": "msg", "to": "listener",
                                            "text": text4k}).encode(),
        "msg, to nobody": json.dumps({"type": "msg", "to": "nobody", "text": "hi"}).encode(),
        "nick, free name": b'{"type":"nick","name":"renamed"}',
        "nick, taken": b'{"type":"nick","name":"listener"}',
        "who (room of 2)": b'{"type":"who"}',
        "hello again (already-registered)": b'{"type":"hello","name":"x"}',
        "quit": b'{"type":"quit"}',
    }


BEFORE_HELLO_ONLY = {"hello, valid name", "hello, 64 KiB name", "hello, 32 look-alike letters"}
REGISTERED_ONLY = {"hello again (already-registered)"}


def measure(stack: Stack, body: bytes, registered: bool, reps: int) -> List[float]:
    """CPU seconds of each of C{reps} frames, each on a fresh connection."""
    frame = encode_frame(body)
    times = []
    for i in range(reps):
        conn = stack.registered(f"m{i}") if registered else stack.connect()
        data = conn.wrap(frame)
        start = time.process_time()
        conn.feed(data)
        times.append(time.process_time() - start)
        conn.transport.clear()
        conn.close()
    return times


def measure_wire(body: bytes, reps: int) -> List[float]:
    """
    CPU of the sans-IO part alone: L{decode}, and L{ping_error} for a
    C{ping} (what a v2 connection calls before answering it).
    """
    times = []
    for _ in range(reps):
        start = time.process_time()
        try:
            message = decode(body)
            if message["type"] == "ping":
                ping_error(message)
        except RemoteProtocolError:
            pass
        times.append(time.process_time() - start)
    return times


def measure_handshake(reps: int) -> List[float]:
    """CPU of message 1 and the server's reply (X25519, HKDF, AES-GCM)."""
    stack = Stack(encrypted=True)
    times = []
    for _ in range(reps):
        conn = stack.connect(handshake=False)
        data = RecordSession(PSK, initiator=True).initiate()
        start = time.process_time()
        conn.feed(data)
        times.append(time.process_time() - start)
        conn.close()
    return times


def measure_big_room(users: int, reps: int, encrypted: bool) -> Dict[str, List[float]]:
    """The O(N) rows: a say and a who in a room of C{users}."""
    stack = Stack(encrypted)
    members = [stack.registered(f"u{i}") for i in range(users - 1)]
    for member in members:
        member.transport.clear()
    out: Dict[str, List[float]] = {}
    for label, body in ((f"say, 4,096-byte text (room of {users})",
                         json.dumps({"type": "say", "text": "x" * 4096}).encode()),
                        (f"who (room of {users})", b'{"type":"who"}')):
        times = []
        conn = stack.registered("speaker")
        for _ in range(reps):
            data = conn.wrap(encode_frame(body))
            start = time.process_time()
            conn.feed(data)
            times.append(time.process_time() - start)
            conn.transport.clear()
            for member in members:
                member.transport.clear()
        conn.close()
        out[label] = times
    return out


def run(reps: int, users: int) -> List[Dict[str, Any]]:
    rows = []
    cases = bodies()
    wire = {name: statistics.median(measure_wire(body, reps)) * 1e6 for name, body in cases.items()}
    for encrypted in (False, True):
        mode = "encrypted" if encrypted else "plaintext"
        stack = Stack(encrypted)
        listener = stack.registered("listener")
        for registered in (False, True):
            state = "registered" if registered else "before hello"
            for name, body in cases.items():
                if (registered and name in BEFORE_HELLO_ONLY) or \
                        (not registered and name in REGISTERED_ONLY):
                    continue
                times = measure(stack, body, registered, reps)
                listener.transport.clear()
                rows.append(_row(mode, state, name, len(body), times, wire=wire[name]))
        if encrypted:
            rows.append(_row(mode, "handshake", "message 1 (48 bytes)", 49, measure_handshake(reps)))
        for name, times in measure_big_room(users, max(3, reps // 4), encrypted).items():
            rows.append(_row(mode, "registered", name, 0, times, per_member=users))
        listener.close()
    return rows


def _row(mode: str, state: str, name: str, size: int, times: List[float],
         per_member: int = 0, wire: Optional[float] = None) -> Dict[str, Any]:
    return {"mode": mode, "state": state, "case": name, "bytes": size,
            "median_us": statistics.median(times) * 1e6, "max_us": max(times) * 1e6,
            "members": per_member, "wire_us": wire}


COLUMNS = [("plaintext", "before hello"), ("plaintext", "registered"),
           ("encrypted", "before hello"), ("encrypted", "registered")]


def _cell(row: Optional[Dict[str, Any]]) -> str:
    if row is None:
        return "—"
    text = f"{row['median_us']:.0f}"
    return f"**{text}**" if row["median_us"] > BOUND * 1e6 else text


def table(rows: List[Dict[str, Any]]) -> str:
    """
    One row per frame: its size, the wire layer's share (decode, and
    ping_error for a ping), and the whole server's median CPU in each mode
    and state, in µs (over the 1 ms bound in bold); then the handshake and
    the rows that grow with the room.
    """
    head = " | ".join(f"{mode}, {state}" for mode, state in COLUMNS)
    lines = [f"| frame | body bytes | wire µs | {head} |",
             "| --- | ---: | ---: | " + " | ".join("---:" for _ in COLUMNS) + " |"]
    by_key = {(r["mode"], r["state"], r["case"]): r for r in rows}
    cases = [r for r in rows if r["wire_us"] is not None]
    seen = set()
    for r in cases:
        if r["case"] in seen:
            continue
        seen.add(r["case"])
        cells = " | ".join(_cell(by_key.get((mode, state, r["case"]))) for mode, state in COLUMNS)
        lines.append(f"| {r['case']} | {r['bytes']} | {r['wire_us']:.0f} | {cells} |")
    lines.append("")
    lines.append("| other | median µs | max µs | per member |")
    lines.append("| --- | ---: | ---: | ---: |")
    for r in rows:
        if r["wire_us"] is None:
            per = f"{r['median_us'] / r['members']:.2f} µs" if r["members"] else ""
            lines.append(f"| {r['mode']}, {r['state']}: {r['case']} | {r['median_us']:.0f} | "
                         f"{r['max_us']:.0f} | {per} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.framecost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=30, help="frames per case (default 30)")
    parser.add_argument("--users", type=int, default=1000,
                        help="room size for the O(N) rows (default 1000)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    globalLogBeginner.beginLoggingTo([lambda event: None], redirectStandardIO=False)
    rows = run(args.reps, args.users)
    print(table(rows))
    worst = max((r for r in rows if not r["members"]), key=lambda r: r["median_us"])
    print(f"\nworst per-frame median: {worst['median_us']:.0f} µs "
          f"({worst['mode']}, {worst['state']}: {worst['case']}); bound {BOUND * 1e6:.0f} µs")
    worst_wire = max((r for r in rows if r["wire_us"] is not None), key=lambda r: r["wire_us"])
    print(f"worst wire-only median (decode + ping_error): {worst_wire['wire_us']:.0f} µs "
          f"({worst_wire['case']})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
