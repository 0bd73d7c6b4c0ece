# -*- test-case-name: tests.test_websocket -*-
"""
The WebSocket binding of PROTOCOL.md section 7.1: one binary WebSocket
message is one frame body, everything else is as on TCP.

The chat's own protocol (the encrypting wrapper around the chat connection,
built by the same factory as for a TCP connection) is a byte-stream
protocol. L{WebSocketChat} gives it a byte-stream transport,
L{FrameTransport}: each binary message received is fed to it with its
4-byte length prefix, and the byte stream it writes is cut back into
frames, each sent as one binary message (L{Reframer}). So the modes,
the Noise records, the limits (per address, clients, handshake timeout),
the send queue and every error are the very same code as on TCP::

    wrapper = EncryptingFactory(ChatFactory(room, config, reactor), psk)
    site = web_site(wrapper, origins=["https://chat.example"])
    serverFromString(reactor, "tcp:8080").listen(site)

Twisted's WebSocket parses what the browser sends; what the server sends
is written here (L{Reframer}): a server's frame is a 2, 4 or 10-byte header
and the payload, unmasked (RFC 6455 section 5.2), so a turn's messages to
one client go out in one write, and a room's batch is reframed once for all
its WebSocket members. Sending messages one by one through
C{sendBytesMessage} (wsproto builds each frame with several objects) took
85% of the server's time in the fan-out benchmark (py-spy, docs/web.md).

Twisted's L{WebSocketResource} checks no C{Origin}: see
L{chatsvc.transports.site}, which puts a gate in front of it.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, List, Optional

from twisted.internet.interfaces import IAddress, IConsumer, IPushProducer, ITransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from wsproto.utilities import LocalProtocolError

from ..metrics import ITransportLabel
from ..server.fastwrite import send_now, supports
from ..wire.framing import HEADER, HEADER_SIZE, MAX_FRAME
from .site import ICountedConnection

_log = Logger()

_pack_header = HEADER.pack

EMPTY_FRAME = _pack_header(0)
"""Fed to the chat's protocol for a text message: the empty frame is its
C{bad-frame} in every mode (before the handshake, plaintext, encrypted)."""

TOO_LONG_FRAME = _pack_header(MAX_FRAME + 1)
"""Fed to the chat's protocol when a message grows past any frame: it
answers C{frame-too-long} in every mode."""

INCOMPLETE_LIMIT = 2 * MAX_FRAME + 1024
"""Bytes the peer may send without completing a message. Twisted buffers a
fragmented message whole; past this many bytes no valid frame body can be
coming (a frame body is at most 65,536 bytes), so the connection is refused
with C{frame-too-long} instead of buffering without end."""


_pack_short = struct.Struct(">BBH").pack
_pack_long = struct.Struct(">BBQ").pack
_BINARY = 0x82  # FIN, opcode 2


def message_header(size: int) -> bytes:
    """The header of a server's unfragmented binary message of C{size} bytes."""
    if size < 126:
        return bytes((_BINARY, size))
    if size < 65536:
        return _pack_short(_BINARY, 126, size)
    return _pack_long(_BINARY, 127, size)


class _LastBatch:
    """
    The last batch reframed, and what it became. A room's fan-out hands the
    very same C{bytes} object (a turn's messages) to every member: it is
    reframed once, not once per WebSocket member (which was 80% of the
    fan-out's time with a thousand members).
    """

    data: Optional[bytes] = None
    messages = b""


class Reframer:
    """
    Turn a byte stream of frames (4-byte length, body) into WebSocket
    binary messages, one per frame. Pure: bytes in, bytes out. The chat's
    protocol writes whole frames, usually one or a turn's worth per write;
    a frame cut across writes (never seen in practice) waits for its end.
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> bytes:
        """Take the next bytes; return the messages of the frames they complete."""
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        elif data is _LastBatch.data:
            return _LastBatch.messages
        messages = self._reframe(data)
        if not self._buffer:
            _LastBatch.data, _LastBatch.messages = data, messages
        return messages

    def _reframe(self, data: bytes) -> bytes:
        size = len(data)
        if size > HEADER_SIZE:
            (length,) = HEADER.unpack_from(data)
            if size == HEADER_SIZE + length:  # the usual case: one whole frame
                return message_header(length) + data[HEADER_SIZE:]
        view = memoryview(data)
        parts = []
        start = 0
        while size - start >= HEADER_SIZE:
            (length,) = HEADER.unpack_from(data, start)
            end = start + HEADER_SIZE + length
            if end > size:
                break
            parts.append(message_header(length))
            parts.append(view[start + HEADER_SIZE:end])
            start = end
        if start < size:
            self._buffer = data[start:]
        return b"".join(parts)

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer)


@implementer(ITransport, IConsumer, IPushProducer, ITransportLabel)
class FrameTransport:
    """
    The byte-stream transport the chat's protocol is given on a WebSocket.

    @param ws: the L{twisted.web.websocket.WebSocketTransport}.
    @param tcp: the HTTP connection's own transport (reading is paused and
        resumed there, and an abort closes it).
    """

    disconnecting = False
    encrypted = False  # the wrapper's attribute, for a chat protocol that asks
    transport_label = "websocket"  # the metrics count WebSocket connections apart

    def __init__(self, ws: Any, tcp: Any, peer: IAddress, host: IAddress) -> None:
        self._ws = ws
        self._tcp = tcp
        self._peer = peer
        self._host = host
        self._reframer = Reframer()
        self._direct = supports(tcp)  # a plain socket: send at once while nothing waits
        self.connected = True

    # ITransport

    def write(self, data: bytes) -> None:
        if self.disconnecting or not data:
            return
        messages = self._reframer.feed(data)
        if not messages:
            return
        if self._direct:
            send_now(self._tcp, messages)
        else:
            self._tcp.write(messages)

    def writeSequence(self, data: List[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        if self.disconnecting:
            return
        self.disconnecting = True
        try:
            self._ws.loseConnection()  # a Close message, then the TCP close
        except LocalProtocolError:
            # The peer's Close came first: it has been answered already.
            self._tcp.loseConnection()

    def abortConnection(self) -> None:
        self.disconnecting = True
        self._tcp.abortConnection()

    def getPeer(self) -> IAddress:
        return self._peer

    def getHost(self) -> IAddress:
        return self._host

    def getHandle(self) -> Any:
        """The socket, so the server can tune its send buffer as for TCP."""
        return self._tcp.getHandle()

    # IConsumer: the send queue, paused when the socket's buffer is full

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._ws.attachProducer(producer)

    def unregisterProducer(self) -> None:
        self._ws.detachProducer()

    # IPushProducer: reading from the peer

    def pauseProducing(self) -> None:
        self._tcp.pauseProducing()

    def resumeProducing(self) -> None:
        if not self.disconnecting:
            self._tcp.resumeProducing()

    def stopProducing(self) -> None:
        self._tcp.stopProducing()


class WebSocketChat:
    """
    One WebSocket connection, handed to the chat's protocol as a byte stream
    (a L{twisted.web.websocket.WebSocketProtocol}).

    @param inner: the protocol the server's (wrapping) factory built.
    @param request: the upgrade request (its connection gives the addresses).
    """

    _ws: Any = None
    _transport: Optional[FrameTransport] = None
    _refused = False

    def __init__(self, inner: Any, request: Any) -> None:
        self._inner = inner
        self._request = request
        self._incomplete = 0
        self._completed = False
        # Its HTTP connection's place in the web endpoint's per-address
        # count: once upgraded, the connection's end reaches us, not it.
        self._counted = ICountedConnection(request.channel, None)

    def negotiationStarted(self, transport: Any) -> None:
        self._ws = transport

    def negotiationFinished(self) -> None:
        # The 101 response has been written: the chat may now write too.
        request = self._request
        channel = request.channel
        tcp = channel.transport
        self._transport = FrameTransport(self._ws, tcp, tcp.getPeer(), tcp.getHost())
        # The HTTP channel registered itself as the connection's producer;
        # it has nothing more to produce. The chat's send queue takes its
        # place (through attachProducer), so that a full socket pauses it.
        tcp.unregisterProducer()
        self._guard(channel)
        self._request = None
        self._inner.makeConnection(self._transport)

    def _guard(self, channel: Any) -> None:
        """
        Count the bytes the peer sends without completing a message (see
        L{INCOMPLETE_LIMIT}). After the upgrade Twisted hands the HTTP
        connection's bytes to its WebSocket parser through the channel's
        C{dataReceived}; this wraps that method to count them.
        """
        parse: Callable[[bytes], None] = channel.dataReceived

        def counted(data: bytes) -> None:
            if self._refused:
                return
            self._completed = False
            parse(data)
            if self._completed:
                self._incomplete = 0
            else:
                self._incomplete += len(data)
                if self._incomplete > INCOMPLETE_LIMIT:
                    self._refuse(TOO_LONG_FRAME, "a message longer than any frame")

        channel.dataReceived = counted

    def _refuse(self, frame: bytes, why: str) -> None:
        if self._refused or self._transport is None:
            return
        self._refused = True
        _log.info("refusing WebSocket client {peer}: {why}",
                  peer=self._transport.getPeer(), why=why)
        self._inner.dataReceived(frame)

    def bytesMessageReceived(self, data: bytes) -> None:
        self._completed = True
        if self._refused or self._transport is None:
            return
        size = len(data)
        if size > MAX_FRAME:
            self._refuse(TOO_LONG_FRAME, "a message longer than any frame")
            return
        self._inner.dataReceived(_pack_header(size) + bytes(data))

    def textMessageReceived(self, message: str) -> None:
        self._completed = True
        self._refuse(EMPTY_FRAME, "a text message (frames are binary messages)")

    def pongReceived(self, payload: bytes) -> None:
        pass  # the chat's own ping does the keepalive (PROTOCOL.md 7.1)

    def connectionLost(self, reason: Failure) -> None:
        if self._counted is not None:
            self._counted.release()
            self._counted = None
        transport = self._transport
        if transport is None:
            return
        transport.connected = False
        transport.disconnecting = True
        self._transport = None
        self._inner.connectionLost(reason)


class WebSocketChatFactory:
    """
    A L{twisted.web.websocket.WebSocketServerFactory} whose connections go
    through C{factory} (the server's wrapping factory), as TCP ones do.
    Never returns C{None} (Twisted asserts); a refused client is refused by
    the chat's protocol itself, with its usual error.
    """

    def __init__(self, factory: Any) -> None:
        self.factory = factory

    def buildProtocol(self, request: Any) -> WebSocketChat:
        inner = self.factory.buildProtocol(request.getClientAddress())
        return WebSocketChat(inner, request)
