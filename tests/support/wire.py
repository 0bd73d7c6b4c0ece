# -*- test-case-name: tests.test_support -*-
"""
Frames as tests write and read them, and L{ClientWire}: the client's end of
a connection without I/O (plaintext, or encrypted with a L{RecordSession}),
which every test client (L{tests.support.frameclient.FrameClient}, the
model's connections) puts bytes through.

    wire = ClientWire(psk)          # or ClientWire() for plaintext
    transport.write(wire.initiate())
    messages = wire.receive(data)   # decoded messages, in order
    transport.write(wire.seal_message({"type": "hello"}) + wire.pending())
"""

from __future__ import annotations

import json
import struct
from typing import Any, Dict, List, Optional

from chatsvc.wire.errors import RemoteProtocolError
from chatsvc.wire.framing import MAX_FRAME, FrameDecoder, encode_frame
from chatsvc.wire.messages import decode_from_server, encode
from chatsvc.wire.records import DataReceived, HandshakeComplete, PlaintextFrame, RecordSession

# -- frames ------------------------------------------------------------------


def raw_frame(body: bytes) -> bytes:
    """C{body} with a length prefix, whatever its size (empty, oversized)."""
    return struct.pack(">I", len(body)) + body


def frame(message: Any) -> bytes:
    """A client frame: C{message} as JSON (dicts, lists, anything) or raw bytes."""
    if isinstance(message, bytes):
        return raw_frame(message)
    return raw_frame(json.dumps(message).encode("utf-8"))


def decode_frames(data: bytes) -> List[Dict[str, Any]]:
    """
    Decode every frame in C{data} into messages; fail on trailing bytes, on
    a frame over L{MAX_FRAME} and on a body that is not a JSON object with
    a string C{type}.
    """
    decoder = FrameDecoder(MAX_FRAME)
    decoder.receive_data(data)
    messages = []
    for body in decoder.frames():
        message = json.loads(body.decode("utf-8"))
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise AssertionError(f"not a message: {body[:200]!r}")
        messages.append(message)
    if decoder.buffered:
        raise AssertionError(f"incomplete frame written: {decoder.buffered[:40]!r}")
    return messages


V2_TYPES = frozenset({"room", "topic", "rooms", "parted"})
"""Server message types that protocol version 2 added."""

_V2_MEMBERS = {
    "welcome": ("plaintext", "epoch", "rooms"),
    "history": ("room",),
    "message": ("room",),
    "joined": ("room", "plaintext"),
    "users": ("plaintext",),
    "error": ("room",),
}


def v1_view(messages: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """
    What a version 1 client makes of C{messages}: it ignores the message
    types and the members it does not know (PROTOCOL.md section 4).
    """
    seen = []
    for message in messages:
        kind = message.get("type")
        if kind in V2_TYPES:
            continue
        extra = _V2_MEMBERS.get(kind, ())
        if kind == "history":
            message = dict(message, messages=v1_view(message["messages"]))
        seen.append({k: v for k, v in message.items() if k not in extra})
    return seen


BAD_JSON_BODIES = [
    b'{"type":"say","text":"\xff"}',  # invalid UTF-8
    b"\xc3(",
    b"{not json}",
    b"[1,2]",  # not an object
    b'"hello"',
    b"{}",  # no type
    b'{"type":5}',  # no string type
    b'{"type":null}',
    b'{"type":"ping","token":NaN}',
    b'{"type":"ping","token":Infinity}',
    b'{"type":"say","text":"\\ud800"}',  # lone surrogate
    b'{"type":"ping","token":' + b"[" * 5000 + b"]" * 5000 + b"}",  # deep nesting
    b'{"type":"ping","token":' + b"[" * 150 + b'"\\u00e9"' + b"]" * 150 + b"}",
    b'{"type":"ping","token":' + b"9" * 5000 + b"}",  # 5000-digit int
]
"""Frame bodies a server must answer with a non-fatal C{bad-json}."""


# -- the client's end, sans I/O -------------------------------------------------


class ClientWire:
    """
    The client's end of one connection, without I/O.

    @ivar session: the L{RecordSession} in encrypted mode, else C{None}.
    @ivar records: every raw frame (record) received, in encrypted mode.
    @ivar bad_frames: inner frame bodies that were not a message.
    @ivar open: whether messages can be sealed now (always in plaintext;
        after the handshake in encrypted mode).
    """

    def __init__(self, psk: Optional[bytes] = None) -> None:
        self.session = RecordSession(psk, initiator=True) if psk else None
        self.decoder = FrameDecoder()
        self._raw = FrameDecoder()
        self.records: List[bytes] = []
        self.bad_frames: List[bytes] = []
        self.open = self.session is None
        self.handshake_completed = False
        self._pending: List[bytes] = []

    def initiate(self) -> bytes:
        """The bytes to send first: the handshake's message 1, or nothing."""
        return self.session.initiate() if self.session is not None else b""

    def receive(self, data: bytes) -> List[Dict[str, Any]]:
        """
        The messages in C{data}, in order. A bad record from the server
        raises L{RemoteProtocolError} (there should never be one).
        """
        if self.session is None:
            return self._inner(data)
        self._raw.receive_data(data)
        self.records.extend(self._raw.frames())
        self.session.receive_data(data)
        messages: List[Dict[str, Any]] = []
        for event in self.session.events():
            if isinstance(event, HandshakeComplete):
                self.open = self.handshake_completed = True
            elif isinstance(event, DataReceived):
                messages.extend(self._inner(event.data))
            elif isinstance(event, PlaintextFrame):
                messages.extend(self._inner(encode_frame(event.body)))
        return messages

    def _inner(self, data: bytes) -> List[Dict[str, Any]]:
        self.decoder.receive_data(data)
        messages = []
        for body in self.decoder.frames():
            try:
                messages.append(decode_from_server(body))
            except RemoteProtocolError:
                self.bad_frames.append(body)
        return messages

    def seal(self, inner_frame: bytes) -> bytes:
        """
        C{inner_frame} as the bytes to send (a data record in encrypted
        mode); before the handshake completes, it waits in L{pending}.
        """
        if self.session is None:
            return inner_frame
        if not self.open:
            self._pending.append(inner_frame)
            return b""
        return self.session.send(inner_frame)

    def seal_message(self, message: Dict[str, Any]) -> bytes:
        return self.seal(encode_frame(encode(message)))

    def pending(self) -> bytes:
        """The frames that waited for the handshake, sealed, once it is done."""
        if not self.open or not self._pending:
            return b""
        frames, self._pending = self._pending, []
        return b"".join(self.seal(f) for f in frames)
