# -*- test-case-name: tests.test_records -*-
"""
The encrypted record layer (PROTOCOL.md section 3), without I/O.

A record is one frame whose body is a type byte and its data: C{0x01} and a
48-byte Noise handshake message, or C{0x02} and a Noise transport message
holding a chunk of the I{inner byte stream} (the bytes plaintext mode would
send).  L{RecordSession} is one end of a connection, either role; it takes
bytes, gives events and returns the bytes to send, like wsproto::

    client = RecordSession(psk, initiator=True)
    server = RecordSession(psk, initiator=False)
    server.receive_data(client.initiate())
    list(server.events())                # [HandshakeComplete()]
    client.receive_data(server.data_to_send())
    list(client.events())                # [HandshakeComplete()]
    server.receive_data(client.send(b"inner bytes"))
    list(server.events())                # [DataReceived(data=b"inner bytes")]

Every error caused by the peer raises L{RemoteProtocolError} from L{events}
and closes the session; events yielded before it stand.  As in h11, where a
server may still answer a broken request with a 400, a session closed by a
record out of place I{after} the handshake (C{bad-frame}, C{frame-too-long})
can still L{send <RecordSession.send>}, so the server can send its final
fatal error inside the encrypted stream (PROTOCOL.md sections 3.2 and 4.6:
"a client is never left guessing").  After C{decrypt-failed}, or any error
during the handshake, it sends nothing more.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Iterator, Optional, Union

from .errors import LocalProtocolError, RemoteProtocolError
from .framing import MAX_FRAME, FrameDecoder, encode_frame
from .noise import MAX_NONCE, TAGLEN, CipherCache, CipherState, HandshakeState, _pack_nonce

RECORD_HANDSHAKE = 0x01
RECORD_DATA = 0x02
MAX_CHUNK = MAX_FRAME - 1 - TAGLEN  # 65519: the record fits one frame
PROLOGUE = b"chatsvc/1"
HANDSHAKE_MESSAGE_SIZE = 48
"""Both handshake messages: a 32-byte ephemeral key and the empty payload's tag."""

_PLAINTEXT_MESSAGE = 0x7B  # "{"
# Frame length prefix and record type, packed at once on the hot path.
_pack_data_header = struct.Struct(">IB").pack


@dataclass(frozen=True)
class HandshakeComplete:
    """The handshake succeeded: L{RecordSession.send} may now be called."""


@dataclass(frozen=True)
class DataReceived:
    """
    A decrypted, non-empty chunk of the inner byte stream.  Chunk boundaries
    mean nothing: a chunk may hold part of a frame or several frames.
    """

    data: bytes


@dataclass(frozen=True)
class PlaintextFrame:
    """
    A C{{} frame (a plaintext error message from the server) received by the
    initiator before the handshake completed.
    """

    body: bytes


Event = Union[HandshakeComplete, DataReceived, PlaintextFrame]


class SessionState(enum.Enum):
    HANDSHAKING = "handshaking"
    OPEN = "open"
    CLOSED = "closed"  # after any error; nothing more is parsed


class RecordSession:
    """
    One end of an encrypted connection.

    @ivar state: a L{SessionState}.
    """

    # A server keeps one per encrypted connection: no per-instance dict.
    __slots__ = ("_handshake", "_remote_ephemeral", "initiator", "state", "_decoder",
                 "_outgoing", "_initiated", "_sender", "_receiver", "_cipher_cache")

    def __init__(
        self,
        psk: bytes,
        *,
        initiator: bool,
        prologue: bytes = PROLOGUE,
        ephemeral: Optional[bytes] = None,
        cipher_cache: Optional[CipherCache] = None,
    ) -> None:
        """
        @param psk: the 32-byte pre-shared key.
        @param initiator: C{True} for the client, C{False} for the server.
        @param prologue: bound into the handshake; both ends must agree.
        @param ephemeral: a fixed ephemeral private key, for tests only.
        @param cipher_cache: where to keep the sending cipher between
            records (see L{CipherCache}); C{None}: one per record.
        @raise LocalProtocolError: if C{psk} is not 32 bytes.
        """
        self._handshake: Optional[HandshakeState] = HandshakeState(
            initiator, psk, prologue, ephemeral)
        self._remote_ephemeral = b""
        self.initiator = initiator
        self.state = SessionState.HANDSHAKING
        self._decoder = FrameDecoder(MAX_FRAME)
        self._outgoing = b""
        self._initiated = False
        self._sender: Optional[CipherState] = None
        self._receiver: Optional[CipherState] = None
        self._cipher_cache = cipher_cache

    @property
    def remote_ephemeral(self) -> bytes:
        """
        The peer's ephemeral public key, known once its handshake message
        was read and authenticated (else C{b""}). A responder can refuse a
        message 1 it has seen before: NNpsk0 alone cannot tell a replay.
        """
        if self._handshake is not None:
            return self._handshake.remote_ephemeral
        return self._remote_ephemeral

    def take_remote_ephemeral(self) -> bytes:
        """
        L{remote_ephemeral}, forgotten by the session once the handshake is
        complete: a server checks it once, then keeps nothing of the
        handshake for the rest of a (mostly idle) connection.
        """
        key = self.remote_ephemeral
        if self._handshake is None:
            self._remote_ephemeral = b""
        return key

    def initiate(self) -> bytes:
        """Return the initiator's handshake record, to be sent first."""
        if not self.initiator:
            raise LocalProtocolError("only the initiator sends the first message")
        if self._initiated or self.state is not SessionState.HANDSHAKING:
            raise LocalProtocolError(f"cannot initiate in state {self.state}")
        self._initiated = True
        message = self._handshake.write_message(b"")
        return encode_frame(bytes([RECORD_HANDSHAKE]) + message)

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes received from the peer; L{events} parses them."""
        if self.state is not SessionState.CLOSED:
            self._decoder.receive_data(data)

    def data_to_send(self) -> bytes:
        """
        Return (and forget) bytes the session itself must send: the
        responder's handshake record once the initiator's was read.
        """
        data, self._outgoing = self._outgoing, b""
        return data

    def send(self, data: bytes) -> bytes:
        """
        Return C{data} encrypted as data records of at most L{MAX_CHUNK}
        bytes of plaintext each (C{b""} for empty C{data}).

        Anything L{data_to_send} still holds comes first, so the responder's
        handshake record can never be overtaken by data.

        @raise LocalProtocolError: unless the session is open, or was closed
            by a record out of place after the handshake (see the module
            docstring): never before the handshake or after a record failed
            to decrypt.
        """
        sender = self._sender
        if sender is None:
            raise LocalProtocolError(f"cannot send data in state {self.state}")
        if 0 < len(data) <= MAX_CHUNK and not self._outgoing and sender.nonce < MAX_NONCE:
            # The hot path (a server's fan-out, once per recipient per turn):
            # CipherState.encrypt_with_ad inlined.
            nonce = sender.nonce
            aead = sender._aead or sender._cipher()
            ciphertext = aead.encrypt(_pack_nonce(nonce), data, b"")
            sender.nonce = nonce + 1
            return _pack_data_header(len(ciphertext) + 1, RECORD_DATA) + ciphertext
        prefix = self._outgoing
        if prefix:
            self._outgoing = b""
        encrypt = sender.encrypt_with_ad
        size = len(data)
        if size <= MAX_CHUNK:
            # The common case (a chat message): one record, and one copy of
            # the ciphertext (CPython's b"" + x returns x itself).
            if not size:
                return prefix
            ciphertext = encrypt(b"", data)
            header = prefix + _pack_data_header(len(ciphertext) + 1, RECORD_DATA)
            return header + ciphertext
        view = memoryview(data)
        parts = [prefix]
        for start in range(0, size, MAX_CHUNK):
            ciphertext = encrypt(b"", view[start : start + MAX_CHUNK])
            parts.append(_pack_data_header(len(ciphertext) + 1, RECORD_DATA))
            parts.append(ciphertext)
        return b"".join(parts)

    def events(self) -> Iterator[Event]:
        """
        Yield the events of the records buffered so far.

        @raise RemoteProtocolError: C{bad-frame}, C{frame-too-long},
            C{handshake-failed} or C{decrypt-failed}; the session is then
            closed and the rest of the buffered input discarded.
        """
        if self.state is SessionState.CLOSED:
            return
        try:
            for body in self._decoder.frames():
                event = self._record_received(body)
                if event is not None:
                    yield event
        except RemoteProtocolError as e:
            self._close(e)
            raise

    def release(self) -> None:
        """
        The connection is over: forget the keys, and give up the kept
        cipher (see L{noise.CipherCache <chatsvc.wire.noise.CipherCache>}).
        Nothing can be sent or received any more.
        """
        if self._sender is not None:
            self._sender.release()
        self._sender = self._receiver = None
        self._handshake = None
        self._outgoing = b""
        self.state = SessionState.CLOSED

    def _close(self, reason: RemoteProtocolError) -> None:
        if self.state is not SessionState.OPEN or reason.code == "decrypt-failed":
            # Tampering, or an unauthenticated peer: say nothing more.
            if self._sender is not None:
                self._sender.release()
            self._sender = None
            self._outgoing = b""
        self.state = SessionState.CLOSED
        self._decoder = FrameDecoder(MAX_FRAME)
        self._receiver = None

    def _record_received(self, body: bytes) -> Optional[Event]:
        kind = body[0]
        if self.state is SessionState.OPEN:
            if kind == RECORD_DATA:
                data = self._receiver.decrypt_with_ad(b"", body[1:])  # type: ignore[union-attr]
                # An empty chunk is allowed and means nothing.
                return DataReceived(data) if data else None
            raise RemoteProtocolError(
                "bad-frame", _describe(kind) + " after the handshake"
            )
        if kind == RECORD_HANDSHAKE and (self._initiated or not self.initiator):
            return self._handshake_received(body[1:])
        if kind == _PLAINTEXT_MESSAGE and self.initiator:
            return PlaintextFrame(body)
        raise RemoteProtocolError(
            "bad-frame", _describe(kind) + " before the handshake completed"
        )

    def _handshake_received(self, message: bytes) -> HandshakeComplete:
        if len(message) != HANDSHAKE_MESSAGE_SIZE:
            raise RemoteProtocolError(
                "handshake-failed",
                f"a handshake record must hold {HANDSHAKE_MESSAGE_SIZE} bytes",
            )
        try:
            self._handshake.read_message(message)
        except RemoteProtocolError:
            if self.initiator:
                text = "the server failed authentication (wrong key?)"
            else:
                text = "the client failed authentication (wrong key?)"
            raise RemoteProtocolError("handshake-failed", text) from None
        if not self.initiator:
            self._outgoing += encode_frame(
                bytes([RECORD_HANDSHAKE]) + self._handshake.write_message(b"")
            )
        first, second = self._handshake.split()
        # The handshake's keys and hashes are not needed any more: forget
        # them (less to leak, and less memory for an idle connection).
        self._remote_ephemeral = self._handshake.remote_ephemeral
        self._handshake = None
        if self.initiator:
            self._sender, self._receiver = first, second
        else:
            self._receiver, self._sender = first, second
        # Sending is the hot path (a server's fan-out): keep its cipher
        # ready; receiving makes one per record (see noise.CipherCache).
        self._sender.cache = self._cipher_cache
        self.state = SessionState.OPEN
        return HandshakeComplete()


def _describe(kind: int) -> str:
    if kind == RECORD_HANDSHAKE:
        return "a handshake record"
    if kind == RECORD_DATA:
        return "a data record"
    if kind == _PLAINTEXT_MESSAGE:
        return "a plaintext message"
    return f"a record of unknown type 0x{kind:02x}"
