# -*- test-case-name: tests.test_hardening_parsers -*-
"""
One fuzz target for the whole input path of the server, shared by the
Hypothesis property tests (L{tests.test_hardening_parsers}) and an
U{atheris<https://github.com/google/atheris>} harness.

The invariant is h11's: I{either parse it or raise our protocol error, never
anything else}. For any bytes, cut into any chunks, each layer yields its
events or raises L{RemoteProtocolError}; any other exception, and any broken
invariant (an L{AssertionError}), is a bug.

The input is one byte string, so that a coverage-guided fuzzer and
Hypothesis can share it::

    byte 0     the layer, modulo len(LAYERS)
    byte 1     how to cut the rest into chunks (see L{chunks})
    byte 2...  the payload

Run the fuzzer (atheris is optional; CI runs only the Hypothesis tests)::

    pip install atheris
    python -m tests.fuzz_wire -atheris_runs=200000        # or -max_total_time=60
    python -m tests.fuzz_wire CORPUS_DIR                  # keep a corpus

Layers:
  - C{frames}: L{FrameDecoder}, then each body through L{decode}.
  - C{message}: the payload is one frame body for L{decode}.
  - C{server-records}, C{client-records}: a L{RecordSession} before the
    handshake, as responder (the server) or initiator (the client).
  - C{open-records}: raw records into a server session whose handshake is done.
  - C{inner-stream}: the payload encrypted by a real peer, then framed and decoded.
  - C{server-plaintext}, C{server-encrypted}: the whole server stack
    (L{EncryptingFactory} around L{ChatFactory} on a L{Clock}), fed the
    payload as plaintext bytes or inside a real encrypted session; nothing
    may escape C{dataReceived}, no traceback may be logged, and every close
    the server starts is explained by a fatal C{error} (PROTOCOL.md 4.6).
"""

from __future__ import annotations

import random
import sys
from typing import Any, Dict, List, Optional, Tuple

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from chatsvc.server.encryption import EncryptingFactory
from chatsvc.chat.memory import Room
from chatsvc.server.factory import ChatFactory, ServerConfig
from chatsvc.wire.errors import RemoteProtocolError
from chatsvc.wire.framing import HEADER_SIZE, MAX_FRAME, FrameDecoder
from chatsvc.wire.messages import decode, encode, text_error
from chatsvc.wire.names import InvalidName, normalize
from chatsvc.wire.records import (
    DataReceived,
    HandshakeComplete,
    PlaintextFrame,
    RecordSession,
    SessionState,
)

PSK = bytes(range(32))
CLIENT_EPHEMERAL = bytes(range(64, 96))
SERVER_EPHEMERAL = bytes(range(96, 128))

LAYERS = (
    "frames",
    "message",
    "server-records",
    "client-records",
    "open-records",
    "inner-stream",
    "server-plaintext",
    "server-encrypted",
)

FRAME_CODES = frozenset({"bad-frame", "frame-too-long"})
RECORD_CODES = FRAME_CODES | {"handshake-failed", "decrypt-failed"}


def make_input(layer: str, seed: int, payload: bytes) -> bytes:
    """The fuzz input that runs C{payload} through C{layer}, cut by C{seed}."""
    return bytes([LAYERS.index(layer), seed & 0xFF]) + payload


def chunks(payload: bytes, seed: int) -> List[bytes]:
    """
    Cut C{payload} as TCP might: seed 0 whole, 1 one byte at a time (the
    first 1,024 bytes; then the rest whole, to bound the cost), 2 in chunks
    of 4096 bytes, otherwise pseudo-random sizes from 1 to 4 * seed.
    """
    if not payload:
        return []
    if seed == 0:
        return [payload]
    if seed == 1:
        head = [payload[i : i + 1] for i in range(min(len(payload), 1024))]
        return head + ([payload[1024:]] if len(payload) > 1024 else [])
    if seed == 2:
        return [payload[i : i + 4096] for i in range(0, len(payload), 4096)]
    rng = random.Random(seed)
    out = []
    i = 0
    while i < len(payload):
        n = rng.randint(1, 4 * seed)
        out.append(payload[i : i + n])
        i += n
    return out


def one_input(data: bytes) -> None:
    """
    The fuzz target. Returns quietly for every input the wire layer handles
    as PROTOCOL.md says; raises anything else.
    """
    if len(data) < 2:
        return
    layer = LAYERS[data[0] % len(LAYERS)]
    parts = chunks(data[2:], data[1])
    _CHECKS[layer](parts)


# -- invariants shared by the layers ------------------------------------------


def _expect_protocol_error(e: RemoteProtocolError, codes: frozenset) -> None:
    if e.code not in codes:
        raise AssertionError(f"unexpected error code {e.code!r} (allowed: {sorted(codes)})")
    if not isinstance(e.text, str) or not e.text:
        raise AssertionError("a protocol error without a text")


def check_message(body: bytes) -> Optional[Dict[str, Any]]:
    """
    Decode one frame body: a dict with a string C{type} that encodes again
    and decodes to itself, or the non-fatal C{bad-json}.
    """
    try:
        message = decode(body)
    except RemoteProtocolError as e:
        if e.code != "bad-json" or e.fatal:
            raise AssertionError(f"decode raised {e!r}; only a non-fatal bad-json is allowed")
        return None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise AssertionError(f"decode returned {type(message).__name__}, not a message")
    # Whatever decodes must encode again (the server echoes a ping's token)
    # and mean the same thing.
    again = encode(message)
    if decode(again) != message:
        raise AssertionError("a decoded message does not survive encode/decode")
    # The server's checks on members never raise either.
    text_error(message.get("text"))
    for member in ("name", "to"):
        try:
            normalize(message.get(member))
        except InvalidName:
            pass
    return message


def _frames(parts: List[bytes]) -> Tuple[List[bytes], Optional[RemoteProtocolError]]:
    decoder = FrameDecoder()
    bodies: List[bytes] = []
    try:
        for part in parts:
            decoder.receive_data(part)
            for body in decoder.frames():
                if not body or len(body) > MAX_FRAME:
                    raise AssertionError(f"a frame body of {len(body)} bytes was returned")
                bodies.append(body)
    except RemoteProtocolError as e:
        _expect_protocol_error(e, FRAME_CODES)
        return bodies, e
    return bodies, None


def check_frames(parts: List[bytes]) -> None:
    bodies, error = _frames(parts)
    # Chunking never changes the result.
    whole, whole_error = _frames([b"".join(parts)])
    if bodies != whole or (error and error.code) != (whole_error and whole_error.code):
        raise AssertionError("cutting the stream differently changed the frames")
    consumed = sum(HEADER_SIZE + len(b) for b in bodies)
    if b"".join(parts)[:consumed] != b"".join(
        len(b).to_bytes(4, "big") + b for b in bodies
    ):
        raise AssertionError("the frames are not the start of the stream")
    for body in bodies:
        check_message(body)


def check_one_message(parts: List[bytes]) -> None:
    check_message(b"".join(parts))


def _drive_session(session: RecordSession, parts: List[bytes]) -> List[Any]:
    events: List[Any] = []
    try:
        for part in parts:
            session.receive_data(part)
            for event in session.events():
                if not isinstance(event, (HandshakeComplete, DataReceived, PlaintextFrame)):
                    raise AssertionError(f"unknown event {event!r}")
                if isinstance(event, DataReceived) and not event.data:
                    raise AssertionError("an empty DataReceived")
                events.append(event)
    except RemoteProtocolError as e:
        _expect_protocol_error(e, RECORD_CODES)
        if session.state is not SessionState.CLOSED:
            raise AssertionError("a session that raised is not closed")
        # A closed session parses nothing more and raises nothing more.
        session.receive_data(b"\x00\x00\x00\x01\x02")
        if list(session.events()):
            raise AssertionError("a closed session produced events")
    if sum(isinstance(e, HandshakeComplete) for e in events) > 1:
        raise AssertionError("two handshakes completed")
    return events


def check_server_records(parts: List[bytes]) -> None:
    _drive_session(RecordSession(PSK, initiator=False), parts)


def check_client_records(parts: List[bytes]) -> None:
    session = RecordSession(PSK, initiator=True, ephemeral=CLIENT_EPHEMERAL)
    session.initiate()
    _drive_session(session, parts)


def open_pair() -> Tuple[RecordSession, RecordSession]:
    """A client and a server session with the handshake done (fixed keys)."""
    client = RecordSession(PSK, initiator=True, ephemeral=CLIENT_EPHEMERAL)
    server = RecordSession(PSK, initiator=False, ephemeral=SERVER_EPHEMERAL)
    server.receive_data(client.initiate())
    if list(server.events()) != [HandshakeComplete()]:
        raise AssertionError("handshake failed")
    client.receive_data(server.data_to_send())
    if list(client.events()) != [HandshakeComplete()]:
        raise AssertionError("handshake failed")
    return client, server


def check_open_records(parts: List[bytes]) -> None:
    _, server = open_pair()
    for event in _drive_session(server, parts):
        if not isinstance(event, DataReceived):
            raise AssertionError(f"{event!r} after the handshake")


def check_inner_stream(parts: List[bytes]) -> None:
    client, server = open_pair()
    received = []
    for part in parts:
        server.receive_data(client.send(part))
        for event in server.events():
            if not isinstance(event, DataReceived):
                raise AssertionError(f"{event!r} for a data record")
            received.append(event.data)
    if b"".join(received) != b"".join(parts):
        raise AssertionError("the inner stream was changed on the way")
    check_frames(received)


# -- the whole server stack ----------------------------------------------------


class _Failures:
    def __init__(self) -> None:
        self.events: List[Any] = []

    def __call__(self, event: Dict[str, Any]) -> None:
        if "log_failure" in event or event.get("isError"):
            self.events.append(event)


class _Transport(StringTransport):
    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        StringTransport.abortConnection(self)


def server_stack(clock: Clock, psk: Optional[bytes] = PSK) -> Tuple[Any, _Transport, ChatFactory]:
    """A server protocol (wrapper included) connected to a L{StringTransport}."""
    room = Room(clock, history_size=5)
    factory = ChatFactory(room, ServerConfig(sendq=1 << 16), clock)
    factory.startFactory()
    wrapper = EncryptingFactory(factory, psk, clock=clock)
    peer = IPv4Address("TCP", "192.0.2.7", 40000)
    proto = wrapper.buildProtocol(peer)
    transport = _Transport(peerAddress=peer)
    proto.makeConnection(transport)
    return proto, transport, factory


def _asked_to_quit(parts: List[bytes]) -> bool:
    """Whether the client's stream holds a C{quit} (the server then closes)."""
    decoder = FrameDecoder()
    decoder.receive_data(b"".join(parts))
    try:
        for body in decoder.frames():
            try:
                if decode(body)["type"] == "quit":
                    return True
            except RemoteProtocolError:
                pass
    except RemoteProtocolError:
        pass
    return False


def _check_server_output(output: bytes, transport: _Transport, quit: bool) -> None:
    messages = []
    decoder = FrameDecoder()
    decoder.receive_data(output)
    for body in decoder.frames():
        message = decode(body)
        messages.append(message)
        if message["type"] == "error" and "Traceback" in message.get("text", ""):
            raise AssertionError("a traceback was sent to the client")
    if decoder.buffered and not transport.aborted:
        raise AssertionError("the server wrote an incomplete frame")
    if transport.disconnecting and not quit:
        fatal = [m for m in messages if m["type"] == "error" and m.get("fatal")]
        if not fatal:
            raise AssertionError("the server closed without a fatal error saying why")
        if messages[-1] is not fatal[-1]:
            raise AssertionError("the server wrote after its fatal error")


def _run_server(parts: List[bytes], encrypted: bool) -> None:
    clock = Clock()
    failures = _Failures()
    globalLogPublisher.addObserver(failures)
    try:
        proto, transport, factory = server_stack(clock)
        client = None
        if encrypted:
            client = RecordSession(PSK, initiator=True, ephemeral=CLIENT_EPHEMERAL)
            proto.dataReceived(client.initiate())
            client.receive_data(transport.value())
            transport.clear()
            if list(client.events()) != [HandshakeComplete()]:
                raise AssertionError("handshake failed")
        wire = b""
        for i, part in enumerate(parts):
            proto.dataReceived(client.send(part) if client else part)
            clock.advance(0.5 if i % 7 == 6 else 0)
            if transport.disconnecting:
                break
        clock.advance(0)
        wire = transport.value()
        if client is not None:
            plain = []
            client.receive_data(wire)
            try:
                for event in client.events():
                    plain.append(event.data)
            except RemoteProtocolError as e:
                raise AssertionError(f"the server sent a bad record: {e!r}")
            wire = b"".join(plain)
        _check_server_output(wire, transport, quit=_asked_to_quit(parts))
        if transport.disconnecting:
            # A real transport reports the end once the close completes.
            proto.connectionLost(Failure(ConnectionDone()))
        # Time passes: timers fire without errors too.
        clock.advance(100)
        factory.stopFactory()
    finally:
        globalLogPublisher.removeObserver(failures)
    if failures.events:
        event = failures.events[0]
        failure = event.get("log_failure")
        raise AssertionError(
            "the server logged an error: "
            + (failure.getTraceback() if failure is not None else repr(event))
        )


def check_server_plaintext(parts: List[bytes]) -> None:
    _run_server(parts, encrypted=False)


def check_server_encrypted(parts: List[bytes]) -> None:
    _run_server(parts, encrypted=True)


_CHECKS = {
    "frames": check_frames,
    "message": check_one_message,
    "server-records": check_server_records,
    "client-records": check_client_records,
    "open-records": check_open_records,
    "inner-stream": check_inner_stream,
    "server-plaintext": check_server_plaintext,
    "server-encrypted": check_server_encrypted,
}


def main(argv: List[str]) -> None:  # pragma: no cover - needs atheris
    """Run atheris on L{one_input}, with coverage of chatsvc's code."""
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        raise SystemExit("the fuzzer needs atheris: pip install atheris")
    # chatsvc is already imported (above): instrument what is loaded.
    atheris.instrument_all()
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv)
