# -*- test-case-name: tests.test_protocol -*-
"""
L{ChatProtocol}: one client connection, from decoded frames to the room.

It speaks the plaintext protocol of PROTOCOL.md section 4 over
C{Int32StringReceiver} frames and never learns whether an encrypting wrapper
(L{chatsvc.server.encryption}) sits between it and the socket. Limits, timeouts and
the decision to close live here (holding input and acting on the rate
limiter's verdicts in L{chatsvc.server.pacing}, which it inherits); names,
order and fan-out live in the room.
"""

from __future__ import annotations

import socket
from typing import Any, Optional

from twisted.internet.defer import Deferred
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..chat.interfaces import IChatMember
from ..metrics import close_code as code_of_close
from ..wire.errors import RemoteProtocolError
from ..wire.framing import MAX_FRAME, encode_frame
from ..wire.messages import Message, decode, encode, error
from .interfaces import (PLAIN, IChatTransport, IConnectionState, IServerConnection,
                         ISendQueueOwner)
from .pacing import HOLD_TURN, InputPacing
from .ratelimit import RateLimiter
from .requests import HANDLERS, ROOM_REQUESTS

_log = Logger()

SNDBUF = 65536
"""Kernel send buffer for accepted sockets: without it Linux lets a client
that stopped reading absorb megabytes before the server notices."""

# The reason others see in `left` when a connection ends with this error.
_LEFT_REASONS = {
    "timeout": "timeout",
    "slow": "slow",
    "flood": "flood",
    "shutdown": "shutdown",
    "replaced": "replaced",
    "kicked": "kicked",
    "banned": "banned",
}

# What a muted client may not send (PROTOCOL.md 4.6, `muted`).
_MUTED_KINDS = frozenset({"say", "msg"})

_KEEPALIVE = frozenset({"ping", "pong"})
_BEFORE_HELLO = frozenset({"hello", "ping"})


def _tune_socket(transport: Any, sndbuf: int) -> None:
    """
    A small kernel send buffer (so a client that stops reading is noticed),
    and no Nagle: the server already sends one write per client per reactor
    turn, and a client that only listens would otherwise wait for a delayed
    ACK on every small message (tens of milliseconds).
    """
    get_handle = getattr(transport, "getHandle", None)
    if get_handle is None:
        return
    try:
        handle = get_handle()
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        handle.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError, TypeError):
        pass  # not a TCP socket (tests, UNIX sockets, pipes): nothing to tune


def _discard(frame: bytes) -> None:
    pass


@implementer(IChatMember, IServerConnection, IConnectionState, ISendQueueOwner)
class ChatProtocol(InputPacing):
    """
    The server side of one client.

    @ivar name: the registered name, or C{None} before C{hello}.
    @ivar send_frame: sends an encoded frame (the room's fast path).
    """

    MAX_LENGTH = MAX_FRAME

    name: Optional[str] = None
    session_id: Optional[str] = None
    peer = "?"
    closing = False
    encrypted = False
    _deadline = None
    _abort_call = None
    _ping_sent_at: Optional[float] = None
    bytes_in = 0
    close_code: Optional[str] = None
    muted = False

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.room = factory.room
        self.config = factory.config
        self._clock = factory.clock

    # -- connection life --------------------------------------------------

    def connectionMade(self) -> None:
        config = self.config
        transport = self.transport
        peer = transport.getPeer()
        self.peer = getattr(peer, "host", str(peer))
        _tune_socket(transport, SNDBUF)
        self.queue = self._sendq = self.factory.send_queue(transport, config.sendq, self,
                                                           config.sendq_soft)
        self.send_frame = self._sendq.write
        transport.registerProducer(self._sendq, True)
        now = self._clock.seconds()
        self.last_seen = now
        self.limiter = (
            RateLimiter(config.rate_burst, config.rate_per_second, now,
                        config.flood_factor, config.flood_window,
                        config.ping_burst, config.ping_per_second)
            if config.rate_burst else None
        )
        refusal = self.factory.connection_opened(self)
        if refusal is not None:
            self.fatal(*refusal)
            return
        _log.debug("connection from {peer}", peer=self.peer)
        self._deadline = self._clock.callLater(
            config.handshake_timeout, self.fatal, "timeout",
            "no handshake and hello in time",
        )

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        for call in (self._deadline, self._abort_call):
            if call is not None and call.active():
                call.cancel()
        self._deadline = self._abort_call = None
        self.closing = True
        if self.close_code is None:
            self.close_code = code_of_close(reason)
        self.factory.connection_closed(self)
        if self.name is not None and self in self.room:
            self.room.leave(self, "disconnected")
            _log.info("{name} disconnected ({peer}): {why}", name=self.name,
                      peer=self.peer, why=reason.getErrorMessage())

    def send(self, message: Message) -> None:
        """Encode and send one message (after what the room has queued)."""
        self.send_direct(encode_frame(encode(message)))

    def send_direct(self, frame: bytes) -> None:
        """Send C{frame} to this client after what the chat has queued."""
        self.room.flush()
        self.send_frame(frame)

    def _send_error(self, e: RemoteProtocolError) -> None:
        message = error(e.code, e.text, e.fatal)
        if e.room is not None:
            message["room"] = e.room
        self.send(message)

    # -- ISendQueueOwner ------------------------------------------------------

    def send_queue_behind(self, behind: bool) -> None:
        # Called from inside a fan-out too: the factory only pauses and
        # resumes reading, it never touches the room.
        self.factory.queue_behind(self, behind)

    def send_queue_overflowed(self) -> None:
        # Called from inside a fan-out: leave the room on the next turn.
        self._clock.callLater(0, self.fatal, "slow", "you stopped reading; output queue full")

    def fatal(self, code: str, text: str) -> None:
        """
        Send the fatal error C{code}, leave the room and close.

        Stops reading at once; aborts if the peer does not take the error
        within the configured close timeout.
        """
        if self.closing:
            return
        self.close_code = code
        self._close(_LEFT_REASONS.get(code, "disconnected"), None)
        sendq = self._sendq
        if code == "slow":
            sendq.discard()
        sendq.flush()
        # Straight to the transport: a queue that overflowed takes nothing
        # more, and the error must still go out.
        self.transport.write(encode_frame(encode(error(code, text, True))))
        self._finish()
        if code not in ("shutdown",):
            _log.info("closing {peer} ({name}): {code}", peer=self.peer,
                      name=self.name or "-", code=code)

    def _close(self, reason: str, text: Optional[str]) -> None:
        self.closing = True
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        if self.name is not None:
            self.room.leave(self, reason, text)
        self.transport.pauseProducing()  # stop reading

    def _finish(self) -> None:
        transport = self.transport
        # The error (or the quit) was the last thing to go out: a room that
        # answers later must not write to a connection being closed.
        self.send_frame = _discard
        transport.unregisterProducer()
        transport.loseConnection()
        self._abort_call = self._clock.callLater(
            self.config.close_timeout, transport.abortConnection
        )

    def abort(self) -> None:
        """Drop the connection at once (for the factory's shutdown)."""
        self.transport.abortConnection()

    def replaced(self) -> None:
        self.fatal("replaced", "another connection resumed this session")

    # -- frames -------------------------------------------------------------

    def lengthLimitExceeded(self, length: int) -> None:
        self.fatal("frame-too-long", f"frame of {length} bytes is over the limit of {MAX_FRAME}")

    def stringReceived(self, body: bytes) -> None:
        if self.closing:
            return
        now = self.last_seen = self._clock.seconds()
        self.bytes_in += len(body) + 4
        if not body:
            self.fatal("bad-frame", "empty frame")
            return
        try:
            message = decode(body)
        except RemoteProtocolError as e:
            if not self._limited(now):
                self._send_error(e)
            return
        kind = message["type"]
        if kind in _KEEPALIVE:
            if self._keepalive_limited(now):
                return  # dropped without an answer (section 6)
        elif kind != "quit" and self._limited(now):
            return
        handler = HANDLERS.get(kind)
        if handler is None:
            self._send_error(RemoteProtocolError(
                "unknown-type", f"unknown message type {kind[:64]!r}", fatal=False))
            return
        if self.name is None and kind not in _BEFORE_HELLO:
            self._send_error(RemoteProtocolError(
                "not-registered", "send hello first", fatal=False))
            return
        if self.muted and kind in _MUTED_KINDS:
            self._send_error(self._about(kind, message, RemoteProtocolError(
                "muted", "an operator muted you; nothing was delivered", fatal=False)))
            return
        try:
            result = handler(self, message)
        except RemoteProtocolError as e:
            self._send_error(self._about(kind, message, e))
            return
        self.factory.metrics.request(kind)
        if isinstance(result, Deferred):
            self._wait_for(result, kind, message)
        elif self.room.outbox_size > self.config.turn_budget:
            # This turn's fan-out to the room this request went to is big
            # enough: leave the rest of what this client sent for the next
            # turn, after the room has flushed. (Counted per room, so that
            # with many busy rooms each still gets a good batch per turn, and
            # for all rooms together against 64 budgets.)
            self._hold(HOLD_TURN)
            self._clock.callLater(0, self._end_turn)

    def _about(self, kind: str, message: Message, e: RemoteProtocolError) -> RemoteProtocolError:
        """C{e}, naming the room the request was about (4.2 C{error.room})."""
        if e.room is None and kind in ROOM_REQUESTS:
            room = message.get("room")
            if room is None and kind == "say":
                room = self.room.default_room
            if isinstance(room, str) and len(room) <= 64:
                e.room = room
        return e

    # -- what the request handlers ask (chatsvc.server.requests) ------------

    def prepare_registration(self) -> None:
        """Before C{hello} reaches the chat: learn what the transport is."""
        transport = IChatTransport(self.transport, PLAIN)
        # A plaintext connection: the fan-out may skip the wrapper.
        write = transport.direct_writer()
        if write is not None:
            self._sendq.use_writer(write)
        self.encrypted = bool(transport.encrypted)

    def registered(self, name: str) -> None:
        """The chat registered this connection as C{name}."""
        if self.closing:
            # The connection ended while a chat that answers later was
            # registering it: take it out again, or it stays as a ghost.
            self.room.leave(self, "disconnected")
            return
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        self.factory.registered(self)
        _log.info("{name} registered from {peer} (id {id})", name=name,
                  peer=self.peer, id=self.session_id)

    def quit(self, text: Optional[str]) -> None:
        """The client said C{quit}: leave with C{text}, send what is queued, close."""
        self.close_code = "quit"
        self._close("quit", text)
        self._sendq.flush()
        self._finish()

    # -- keepalive (driven by the factory's sweep) -------------------------

    def check_idle(self, now: float) -> None:
        """Ping a silent client; time out one that stays silent."""
        config = self.config
        idle = now - self.last_seen
        if idle >= config.ping_interval + config.ping_timeout:
            self.fatal("timeout", "no answer to ping")
        elif idle >= config.ping_interval:
            sent = self._ping_sent_at
            if sent is None or sent < self.last_seen:
                self._ping_sent_at = now
                self.send({"type": "ping", "token": int(now * 1000)})
