# -*- test-case-name: tests.test_encryption -*-
"""
The encrypting wrapper: Noise NNpsk0 records around any Twisted protocol,
the way L{twisted.protocols.tls} wraps a protocol in TLS.

On the server it also tells the two modes apart (PROTOCOL.md section 2): the
first byte of the first frame is C{{} for plaintext, which then passes through
untouched, or C{0x01} for a Noise handshake::

    factory = EncryptingFactory(ChatFactory(room, config, reactor), psk,
                                require_encryption=True, clock=reactor)
    endpoint.listen(factory)

It knows nothing of the chat: the error frame it writes when it refuses a
client, and the end-of-turn pass its gathered writes join, come from the
factory it wraps (L{IWrappedFactory}), or are given to it.

A client wraps its own factory with C{initiator=True}; its protocol's writes
are held until the handshake completes, and a plaintext error from the
server before then is handed to it as ordinary inner-stream bytes::

    endpoint.connect(EncryptingFactory(ClientFactory(), psk, initiator=True))

The wrapped protocol never learns whether it is encrypted, except through the
transport's L{IChatTransport} (C{encrypted}, C{direct_writer}). Writes made during one reactor turn are
gathered and encrypted as one record per connection (as tls.py's
C{_AggregateSmallWrites} does), so a fan-out of many messages costs one
AES-GCM operation per recipient per turn. The gathering ends in the same
end-of-turn pass as the room's fan-out (L{chatsvc.server.turns}), and what is
written during that pass, the room's batch, is the turn's last word: it is
encrypted and sent at once.

Until an encrypted client's handshake completes, whatever the wrapped server
protocol writes goes out as plaintext: by the protocol, that can only be an
error message (C{timeout}, C{server-full}, C{shutdown}, ...).
"""

from __future__ import annotations

import enum
from functools import partial
from typing import Any, Callable, Dict, List, Optional

from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from ..wire.errors import RemoteProtocolError
from ..wire.framing import HEADER, HEADER_SIZE, MAX_FRAME, encode_frame
from ..wire.noise import CipherCache
from ..wire.records import DataReceived, HandshakeComplete, PlaintextFrame, RecordSession
from .fastwrite import send_now, supports
from .interfaces import IChatTransport, IWrappedFactory
from .turns import EndOfTurn

_log = Logger()

_PLAINTEXT_BYTE = 0x7B  # "{"
_HANDSHAKE_BYTE = 0x01


FLUSH_AT = 1 << 15
"""A write of this many bytes or more is encrypted at once, not at the end of
the turn (see L{EncryptingProtocol.write})."""


class Mode(enum.Enum):
    UNKNOWN = "unknown"  # server: the first frame has not said yet
    PLAINTEXT = "plaintext"  # server: pass-through
    HANDSHAKING = "handshaking"
    OPEN = "open"  # handshake complete: everything is encrypted
    CLOSED = "closed"


@implementer(IChatTransport)
class EncryptingProtocol(ProtocolWrapper):
    """
    One connection's record layer.

    @ivar encrypted: C{True} once the handshake has completed.
    """

    encrypted = False
    _failure: Optional[Failure] = None
    _producer_registered = False
    _dirty = False
    _direct = False  # send_now() may write to the transport

    def __init__(self, factory: "EncryptingFactory", wrappedProtocol: Any) -> None:
        ProtocolWrapper.__init__(self, factory, wrappedProtocol)
        self._initiator = factory.initiator
        self._mode = Mode.HANDSHAKING if self._initiator else Mode.UNKNOWN
        self._head = b""
        self._session: Optional[RecordSession] = None
        # Writes waiting to be encrypted; only encrypted connections need
        # the list (ten thousand plaintext ones would carry ten thousand).
        self._pending: Optional[List[bytes]] = [] if self._initiator else None

    def makeConnection(self, transport: Any) -> None:
        if supports(transport):
            self._direct = True
        if self._initiator:
            self._session = RecordSession(self.factory.psk, initiator=True,
                                          cipher_cache=self.factory.cipher_cache)
            transport.write(self._session.initiate())
        # Connect the wrapped protocol at once: a server protocol must be
        # able to time out or refuse a client that never completes the
        # handshake, and a client's first writes are held until it does.
        ProtocolWrapper.makeConnection(self, transport)

    def _peer(self) -> str:
        peer = self.transport.getPeer()
        return getattr(peer, "host", str(peer))

    # -- receiving -----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        mode = self._mode
        if mode is Mode.PLAINTEXT:
            self.wrappedProtocol.dataReceived(data)
            return
        if mode is Mode.CLOSED:
            return
        if mode is Mode.UNKNOWN:
            data = self._detect_mode(data)
            if data is None:
                return
            if self._mode is Mode.PLAINTEXT:
                self.wrappedProtocol.dataReceived(data)
                return
        session = self._session
        assert session is not None
        session.receive_data(data)
        try:
            for event in session.events():
                if self._mode is Mode.CLOSED:
                    return
                if isinstance(event, DataReceived):
                    self.wrappedProtocol.dataReceived(event.data)
                elif isinstance(event, HandshakeComplete):
                    if not self._initiator and not self.factory.first_use(session.remote_ephemeral):
                        _log.warn("{peer} replayed a handshake message 1", peer=self._peer())
                        self._refuse("handshake-failed", "handshake message replayed")
                        return
                    self._handshake_complete()
                elif isinstance(event, PlaintextFrame):
                    # A server's error before the handshake completed: hand
                    # it to the client protocol as an ordinary frame.
                    self.wrappedProtocol.dataReceived(encode_frame(event.body))
        except RemoteProtocolError as e:
            self._protocol_error(e)

    def _detect_mode(self, data: bytes) -> Optional[bytes]:
        head = self._head + data
        if len(head) < HEADER_SIZE:
            self._head = head
            return None
        (length,) = HEADER.unpack_from(head)
        if length == 0:
            self._refuse("bad-frame", "empty frame")
            return None
        if length > MAX_FRAME:
            self._refuse("frame-too-long", f"frame of {length} bytes is over the limit of {MAX_FRAME}")
            return None
        if len(head) == HEADER_SIZE:
            self._head = head
            return None
        self._head = b""
        first = head[HEADER_SIZE]
        factory = self.factory
        if first == _PLAINTEXT_BYTE:
            if factory.require_encryption:
                self._refuse("encryption-required", "this server accepts encrypted clients only")
                return None
            self._mode = Mode.PLAINTEXT
            return head
        if first == _HANDSHAKE_BYTE:
            if factory.psk is None:
                self._refuse("encryption-not-enabled", "this server has no key; connect in plaintext")
                return None
            self._mode = Mode.HANDSHAKING
            self._session = RecordSession(factory.psk, initiator=False,
                                          cipher_cache=factory.cipher_cache)
            self._pending = []
            return head
        self._refuse("bad-frame", "a first frame starts with '{' (plaintext) or 0x01 (handshake)")
        return None

    def _handshake_complete(self) -> None:
        session = self._session
        assert session is not None
        reply = session.data_to_send()
        if reply:
            self.transport.write(reply)
        self._mode = Mode.OPEN
        self.encrypted = True
        if not self._initiator:
            _log.debug("handshake complete with {peer}", peer=self._peer())
        if self._pending:
            self._flush()

    def _protocol_error(self, e: RemoteProtocolError) -> None:
        if e.code == "decrypt-failed":
            # Tampered, replayed, reordered, truncated or under the wrong
            # key: say nothing more, drop the connection at once.
            _log.info("record from {peer} failed to decrypt; aborting", peer=self._peer())
            self._abort(e)
            return
        if self._mode is not Mode.OPEN:
            if self._initiator:
                self._abort(e)
            else:
                _log.info("handshake with {peer} failed: {code}", peer=self._peer(), code=e.code)
                self._refuse(e.code, e.text)
            return
        # A record out of place after the handshake: a last encrypted
        # error, then close.
        refusal = self.factory.refusal
        if refusal is not None:
            self._pending.append(refusal(e.code, e.text))
        self._flush()
        self._failure = Failure(e)
        self._mode = Mode.CLOSED
        self._close()

    # -- closing ------------------------------------------------------------

    def _refuse(self, code: str, text: str) -> None:
        """Send a plaintext fatal error and close (before the handshake)."""
        self._mode = Mode.CLOSED
        self._failure = Failure(RemoteProtocolError(code, text))
        refusal = self.factory.refusal
        if refusal is not None:
            self.transport.write(refusal(code, text))
        self._close()

    def _close(self) -> None:
        transport = self.transport
        transport.pauseProducing()  # read nothing more
        if self._producer_registered:
            self._producer_registered = False
            transport.unregisterProducer()
        transport.loseConnection()
        self.factory.clock.callLater(self.factory.close_timeout, transport.abortConnection)

    def _abort(self, e: RemoteProtocolError) -> None:
        self._mode = Mode.CLOSED
        self._failure = Failure(e)
        self._pending = None
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure) -> None:
        self._mode = Mode.CLOSED
        self._pending = None
        if self._session is not None:
            self._session.release()  # forget this connection's keys
            self._session = None
        if self._failure is not None:
            reason = self._failure
        ProtocolWrapper.connectionLost(self, reason)

    # -- the wrapped protocol's transport -----------------------------------

    def write(self, data: bytes) -> None:
        mode = self._mode
        if mode is Mode.PLAINTEXT:
            if self._direct:
                send_now(self.transport, data)
            else:
                self.transport.write(data)
        elif mode is Mode.OPEN:
            if not self._dirty and self.factory.end_of_turn.running:
                # The turn's last write (the room's fan-out): one record now.
                # Written out here, not through a helper: this runs once per
                # recipient per turn, and one more call measurably raised the
                # latency run's p99 (median 31 ms against 23.6 ms, 3 runs each).
                record = self._session.send(data)  # type: ignore[union-attr]
                if self._direct:
                    send_now(self.transport, record)
                else:
                    self.transport.write(record)
                return
            self._pending.append(data)
            if len(data) >= FLUSH_AT:
                # A send queue handing over its backlog: encrypt now, so the
                # transport can pause it at once when its buffer fills (its
                # loop relies on that) instead of taking it all this turn.
                self._flush()
            elif not self._dirty:
                self._dirty = True
                self.factory.schedule_flush(self)
        elif mode is Mode.HANDSHAKING and self._initiator:
            self._pending.append(data)  # held until the handshake completes
        elif mode is not Mode.CLOSED:
            self.transport.write(data)

    def direct_writer(self) -> Optional[Callable[[bytes], None]]:
        """
        For a plaintext connection on a plain TCP transport, a write
        function that skips this wrapper (which would only pass the bytes
        on): the per-recipient fan-out path. Otherwise C{None}.
        """
        if self._mode is Mode.PLAINTEXT and self._direct:
            return partial(send_now, self.transport)
        return None

    def writeSequence(self, data: List[bytes]) -> None:
        self.write(b"".join(data))

    def _flush(self) -> None:
        self._dirty = False
        if self._mode is not Mode.OPEN or not self._pending:
            return
        pending = self._pending
        self._pending = []
        self._send_record(pending[0] if len(pending) == 1 else b"".join(pending))

    def _send_record(self, data: bytes) -> None:
        record = self._session.send(data)  # type: ignore[union-attr]
        if self._direct:
            send_now(self.transport, record)
        else:
            self.transport.write(record)

    def loseConnection(self) -> None:
        self._flush()
        ProtocolWrapper.loseConnection(self)

    def abortConnection(self) -> None:
        self._mode = Mode.CLOSED  # nothing more goes out
        self._pending = None
        self.transport.abortConnection()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._producer_registered = True
        self.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        if self._producer_registered:
            self._producer_registered = False
            self.transport.unregisterProducer()


REPLAY_CACHE_SIZE = 16384
"""How many recent message 1 ephemeral keys a server remembers to refuse a
replayed message 1 (about 2.5 MB when full; only authenticated handshakes
are remembered). NNpsk0's message 1 carries no freshness: a replay of an
older one passes, and its connection can do nothing (it has no key) until
the handshake timeout."""


DEFAULT_CIPHER_CACHE = 2048
"""How many sending ciphers a wrapper keeps ready unless told (C{--cipher-cache})."""


class EncryptingFactory(WrappingFactory):
    """
    Wrap C{wrappedFactory}'s protocols in L{EncryptingProtocol}.

    @param psk: the 32-byte pre-shared key, or C{None} (server: plaintext
        only, encrypted clients get C{encryption-not-enabled}).
    @param initiator: C{True} on the client side.
    @param require_encryption: server: refuse plaintext clients.
    @param clock: an L{IReactorTime}; defaults to the wrapped factory's
        C{clock}, else the global reactor (as C{TLSMemoryBIOFactory} does).
    @param refusal: C{refusal(code, text)} returns the frame to write before
        closing a connection this wrapper refuses; defaults to the wrapped
        factory's (L{IWrappedFactory}); without one, a refused connection is
        closed without a word (a client wrapper needs none).
    @param end_of_turn: the L{EndOfTurn} whose pass encrypts each
        connection's writes of a turn; defaults to the wrapped factory's,
        else one of this wrapper's own.
    @param cipher_cache: the L{CipherCache} that keeps the sending ciphers
        of busy connections ready; defaults to a new one of
        L{DEFAULT_CIPHER_CACHE}.
    """

    protocol = EncryptingProtocol
    noisy = False

    def __init__(
        self,
        wrappedFactory: Any,
        psk: Optional[bytes] = None,
        *,
        initiator: bool = False,
        require_encryption: bool = False,
        clock: Any = None,
        close_timeout: float = 5.0,
        refusal: Optional[Callable[[str, str], bytes]] = None,
        end_of_turn: Optional[EndOfTurn] = None,
        cipher_cache: Optional[CipherCache] = None,
    ) -> None:
        WrappingFactory.__init__(self, wrappedFactory)
        if initiator and psk is None:
            raise ValueError("an encrypting client needs a key")
        if require_encryption and psk is None:
            raise ValueError("encryption cannot be required without a key")
        hooks = IWrappedFactory(wrappedFactory, None)
        if hooks is not None:
            clock = clock if clock is not None else hooks.clock
            refusal = refusal if refusal is not None else hooks.refusal
            end_of_turn = end_of_turn if end_of_turn is not None else hooks.end_of_turn
        if clock is None:
            from twisted.internet import reactor as clock
        self.psk = psk
        self.initiator = initiator
        self.require_encryption = require_encryption
        self.clock = clock
        self.close_timeout = close_timeout
        self._to_flush: List[EncryptingProtocol] = []
        self._flush_scheduled = False
        self.refusal = refusal
        self.end_of_turn = end_of_turn if end_of_turn is not None else EndOfTurn(clock)
        self.cipher_cache = (cipher_cache if cipher_cache is not None
                             else CipherCache(DEFAULT_CIPHER_CACHE))
        self._seen_ephemerals: Dict[bytes, None] = {}

    def first_use(self, ephemeral: bytes) -> bool:
        """
        Remember an initiator's ephemeral key; C{False} if it was seen
        before (a replayed message 1). Keeps the last L{REPLAY_CACHE_SIZE}.
        """
        seen = self._seen_ephemerals
        if ephemeral in seen:
            return False
        seen[ephemeral] = None
        if len(seen) > REPLAY_CACHE_SIZE:
            del seen[next(iter(seen))]
        return True

    def schedule_flush(self, proto: EncryptingProtocol) -> None:
        """Encrypt C{proto}'s writes of this turn at the end of the turn."""
        self._to_flush.append(proto)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # In the same pass as the room's flush, which schedules it.
            self.end_of_turn.schedule(self._flush_all)

    def _flush_all(self) -> None:
        self._flush_scheduled = False
        protos, self._to_flush = self._to_flush, []
        for proto in protos:
            proto._flush()
