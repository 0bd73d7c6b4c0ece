# -*- test-case-name: tests.test_client_protocol,tests.test_client -*-
"""
One connection to a server, the Twisted adapter under the controller:
L{ChatClientProtocol} (C{Int32StringReceiver} frames, ping/pong,
keepalive) reports to a L{Controller}, which is
L{chatsvc.client.app.ChatClient}; L{ChatClientFactory} builds the
protocols of one L{Link}, a connection mode kept up by a
C{ClientService}::

    link = Link(encrypted=False)
    factory = ChatClientFactory(client, link, reactor)
    link.service = ClientService(endpoint, factory, clock=reactor)

Messages go out with C{protocol.send(message)}; what comes in goes to
C{client.message_received(link, message)}.
"""

from __future__ import annotations

from typing import Any, Optional
from typing import Protocol as _TypingProtocol

from twisted.application.internet import ClientService
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure

from ..wire.errors import RemoteProtocolError
from ..wire.framing import MAX_FRAME
from ..wire.messages import Message, decode_from_server, encode
from .session import ConnectionState

# The namespace the single chatsvc.client module logged under.
_log = Logger(namespace="chatsvc.client")

PRE_HANDSHAKE_ERRORS = frozenset(
    {
        "encryption-required",
        "encryption-not-enabled",
        "handshake-failed",
        "timeout",
        "server-full",
        "too-many-connections",
        "shutdown",
        "banned",
    }
)
"""The only errors an encrypted connection takes before its handshake has
completed (issue 12, finding 7): anyone on the path could have sent them,
so they are shown as unauthenticated and nothing else is acted on."""


class Controller(_TypingProtocol):
    """
    What a L{ChatClientProtocol} reports to (L{chatsvc.client.app.ChatClient});
    a type only, so that this layer does not import the one above it.
    """

    def connection_made(self, link: Link, protocol: ChatClientProtocol) -> None:
        ...

    def message_received(self, link: Link, message: Message) -> None:
        ...

    def connection_lost(self, link: Link, reason: Failure) -> None:
        ...

    def unauthenticated_error(self, link: Link, code: str, text: str) -> None:
        ...


class NoAnswer(Exception):
    """The server stopped answering (or never did): the client gave up."""


class ChatClientProtocol(Int32StringReceiver):
    """
    One connection to a server: frames in and out, ping/pong, keepalive.
    Everything else goes to the L{Controller} (the ChatClient).

    After L{PING_AFTER} seconds without a frame from the server it sends a
    C{ping}; if L{GIVE_UP_AFTER} more seconds pass in silence, it aborts the
    connection (a half-open connection is otherwise never noticed).

    In encrypted mode, nothing but the errors of L{PRE_HANDSHAKE_ERRORS} is
    taken before the handshake has completed, as the unauthenticated reason
    the attempt failed: a plaintext C{welcome}, C{message} or C{replaced}
    there could only come from someone who does not hold the key.
    """

    MAX_LENGTH = MAX_FRAME
    PING_AFTER = 30.0
    GIVE_UP_AFTER = 30.0
    ANSWER_WITHIN = 15.0
    """Seconds for the server's first frame (the handshake and the answer to
    C{hello}; the server's own limit is 10 s) before the client gives up."""

    _ping_call: Any = None
    _give_up_call: Any = None
    _answer_call: Any = None
    _no_answer: Optional[str] = None

    def __init__(self, client: Controller, link: Link, clock: IReactorTime) -> None:
        self.client = client
        self.link = link
        self.clock = clock
        self._pings = 0

    def connectionMade(self) -> None:
        self._ping_call = self.clock.callLater(self.PING_AFTER, self._ping)
        self._answer_call = self.clock.callLater(self.ANSWER_WITHIN, self._unanswered)
        self.client.connection_made(self.link, self)

    def send(self, message: Message) -> bool:
        """Send C{message}; C{False} (nothing sent) if it does not fit a frame."""
        body = encode(message)
        if len(body) > MAX_FRAME:
            return False
        self.sendString(body)
        return True

    def stringReceived(self, body: bytes) -> None:
        self._heard()
        try:
            message = decode_from_server(body)
        except RemoteProtocolError as e:
            _log.warn("ignoring a bad message from the server: {error}", error=e)
            return
        kind = message["type"]
        if self.link.encrypted and not getattr(self.transport, "encrypted", False):
            self._before_handshake(message)
            return
        if kind == "ping":
            answer: Message = {"type": "pong"}
            if "token" in message:
                answer["token"] = message["token"]
            self.send(answer)
            return
        if kind == "pong":
            return  # any frame proves the connection alive
        self.client.message_received(self.link, message)

    def _before_handshake(self, message: Message) -> None:
        # Anyone on the path can send a plaintext frame before the handshake
        # has completed (issue 12, finding 7): take only the errors that can
        # come then, as the unauthenticated reason the attempt failed, and
        # act on nothing else.
        code = message.get("code")
        if message["type"] != "error" or code not in PRE_HANDSHAKE_ERRORS:
            _log.warn("ignoring a {kind!r} sent before the handshake", kind=message["type"])
            return
        text = message.get("text")
        self.client.unauthenticated_error(self.link, code, text if isinstance(text, str) else "")

    def lengthLimitExceeded(self, length: int) -> None:
        _log.warn("the server sent a frame of {length} bytes; closing", length=length)
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        for call in (self._ping_call, self._give_up_call, self._answer_call):
            if call is not None and call.active():
                call.cancel()
        self._ping_call = self._give_up_call = self._answer_call = None
        if self._no_answer is not None:
            # We aborted: say why, rather than "the connection was lost".
            reason = Failure(NoAnswer(self._no_answer))
        self.client.connection_lost(self.link, reason)

    def _unanswered(self) -> None:
        self._answer_call = None
        what = ("handshake" if self.link.encrypted and not getattr(self.transport, "encrypted", False)
                else "hello")
        self._abort(f"the server did not answer the {what} within {self.ANSWER_WITHIN:g} s")

    def _abort(self, why: str) -> None:
        self._no_answer = why
        _log.info("{why}; aborting", why=why)
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            self.transport.loseConnection()

    def _heard(self) -> None:
        if self._answer_call is not None and self._answer_call.active():
            self._answer_call.cancel()
        self._answer_call = None
        if self._give_up_call is not None and self._give_up_call.active():
            self._give_up_call.cancel()
        self._give_up_call = None
        if self._ping_call is not None and self._ping_call.active():
            self._ping_call.reset(self.PING_AFTER)
        else:
            self._ping_call = self.clock.callLater(self.PING_AFTER, self._ping)

    def _ping(self) -> None:
        self._ping_call = None
        self._pings += 1
        self.send({"type": "ping", "token": self._pings})
        self._give_up_call = self.clock.callLater(self.GIVE_UP_AFTER, self._give_up)

    def _give_up(self) -> None:
        self._give_up_call = None
        self._abort(f"the server did not answer for {self.PING_AFTER + self.GIVE_UP_AFTER:g} s")


class ChatClientFactory(Factory):
    """Builds the L{ChatClientProtocol}s of one L{Link}."""

    noisy = False

    def __init__(self, client: Controller, link: Link, clock: IReactorTime) -> None:
        self.client = client
        self.link = link
        self.clock = clock

    def buildProtocol(self, addr: Any) -> ChatClientProtocol:
        protocol = ChatClientProtocol(self.client, self.link, self.clock)
        protocol.factory = self
        return protocol


class Link:
    """
    A connection mode (plaintext or encrypted) and the C{ClientService}
    that keeps a connection up in that mode.
    """

    def __init__(self, encrypted: bool) -> None:
        self.encrypted = encrypted
        self.service: Optional[ClientService] = None
        self.protocol: Optional[ChatClientProtocol] = None
        self.conn: Optional[ConnectionState] = None

    @property
    def registered(self) -> bool:
        return self.protocol is not None and self.conn is not None and self.conn.registered

    @property
    def mode(self) -> str:
        return "encrypted" if self.encrypted else "plaintext"

    def stop(self) -> None:
        if self.service is not None and self.service.running:
            self.service.stopService().addErrback(
                lambda f: _log.failure("stopping a connection", f)
            )
