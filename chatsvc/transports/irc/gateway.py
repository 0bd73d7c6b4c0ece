# -*- test-case-name: tests.test_irc_gateway -*-
"""
The Twisted adapter of the IRC gateway: a protocol wrapper that the chat's
own connection protocol sits on, as it sits on the encrypting wrapper.

    chat_factory = ChatFactory(room, config, reactor)
    irc = IRCGatewayFactory(chat_factory, GatewayConfig(server_name="irc.example"),
                            psk=psk, require_encryption=True)
    serverFromString(reactor, "ssl:6697:privateKey=key.pem:certKey=cert.pem").listen(irc)

Upward, IRC lines become chat requests (frames) fed to the wrapped
L{chatsvc.server.protocol.ChatProtocol} one at a time, never while it holds its
input (a request in flight, its turn budget, the server's throttle), so
every answer and error belongs to the last request fed. Downward, the
frames it writes (through its send queue, so the send queue limit holds)
are translated to IRC lines: a broadcast once for every recipient, through
the factory's L{TranslationCache}.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, List, Optional, Tuple

from twisted.internet.interfaces import ISSLTransport
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from zope.interface import implementer

from ...metrics import ITransportLabel
from ...server.fastwrite import send_now, supports
from ...server.interfaces import IChatTransport
from ...server.ratelimit import ALLOW, FLOOD, RateLimiter
from ...wire.framing import encode_frame
from ...wire.messages import encode
from . import replies
from .lines import BadLine, LineBuffer, LineTooLong, parse
from .outbound import RAW, ServerInfo, TranslationCache
from .session import IRCSession, ISessionHost

_log = Logger()


@dataclass(frozen=True)
class GatewayConfig:
    """
    The gateway's options (C{--irc-name}), and what it tells clients of the
    chat: its default room (where version 1 messages, which name none,
    belong) and how many rooms a client may be in (0: no limit).
    """

    server_name: str = "chatsvc"
    network: str = "chatsvc"
    default_room: str = "#lobby"
    max_rooms: int = 20


@implementer(ISessionHost, IChatTransport, ITransportLabel)
class IRCGatewayProtocol(ProtocolWrapper):
    """
    One IRC connection: the chat protocol's transport.

    @ivar session: the L{IRCSession} (registration, capabilities, translation).
    """

    transport_label = "irc"  # for the metrics' transport label
    tls = False
    _direct = False
    _chat_paused = False
    _draining = False
    _closed = False

    def __init__(self, factory: "IRCGatewayFactory", wrappedProtocol: Any) -> None:
        ProtocolWrapper.__init__(self, factory, wrappedProtocol)
        self.session = IRCSession(factory.info, self, factory.psk, factory.require_encryption)
        self._lines = LineBuffer()
        self._queue: Deque[Any] = deque()
        self._requests: List[Tuple[bytes, Any]] = []
        self._limiter: Optional[RateLimiter] = None

    @property
    def encrypted(self) -> bool:
        """For the chat protocol (PROTOCOL.md 4.8): TLS and the key as PASS."""
        return self.session.encrypted

    def direct_writer(self) -> None:
        """The chat's plaintext fast path must not skip the translation."""
        return None

    def makeConnection(self, transport: Any) -> None:
        self.tls = ISSLTransport.providedBy(transport)
        self._direct = supports(transport)  # never under TLS
        config = self.factory.chat_config
        if config is not None and config.rate_burst:
            self._limiter = RateLimiter(config.rate_burst, config.rate_per_second,
                                        self.factory.clock.seconds(), config.flood_factor,
                                        config.flood_window)
        ProtocolWrapper.makeConnection(self, transport)
        if self.factory.require_encryption and not self.tls:
            _log.info("refusing IRC without TLS from {peer}: encryption is required",
                      peer=getattr(self.getPeer(), "host", "?"))
            self.fatal("encryption-required", "IRC on this server is served over TLS only")

    # -- IRC in --------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closed:
            return
        self._queue.extend(self._lines.feed(data))
        self._drain()

    def _drain(self) -> None:
        """Handle queued lines and requests while the chat takes input."""
        if self._draining:
            return
        self._draining = True
        try:
            queue = self._queue
            while queue and not self._chat_paused and not self._closed:
                item = queue.popleft()
                if isinstance(item, tuple):
                    self.session.context = item[1]
                    self.wrappedProtocol.dataReceived(item[0])
                else:
                    self._line(item)
                    if self._requests:
                        queue.extendleft(reversed(self._requests))
                        self._requests = []
        finally:
            self._draining = False

    def _line(self, item: Any) -> None:
        session = self.session
        try:
            if isinstance(item, LineTooLong):
                raise item
            message = parse(item)
        except LineTooLong:
            if self.charge():
                session.numeric("417", "Input line was too long")
            return
        except BadLine as e:
            if self.charge():
                session.refuse("*", str(e))
            return
        if message is not None:
            session.line_received(message)

    # -- ISessionHost ----------------------------------------------------------

    def request(self, message: Any, context: Any) -> None:
        self._requests.append((encode_frame(encode(message)), context))

    def reply(self, data: bytes) -> None:
        # Through the chat's send queue, so that it keeps its place among
        # what the chat sends and counts against the same limit.
        self.wrappedProtocol.send_frame(encode_frame(RAW + data))

    def charge(self) -> bool:
        limiter = self._limiter
        if limiter is None:
            return True
        verdict = limiter.check(self.factory.clock.seconds())
        if verdict is ALLOW:
            return True
        if verdict is FLOOD:
            self.fatal("flood", "far over the message rate for too long")
        else:
            self.session.refuse("*", "too many messages; this one was not answered (rate-limited)")
        return False

    def fatal(self, code: str, text: str) -> None:
        self.wrappedProtocol.fatal(code, text)

    # -- the chat's output ---------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._closed:
            return
        session = self.session
        if data[4] == 0:  # a RAW frame: the gateway's own reply, for this client only
            translation = self.factory.cache.uncached(data)
        else:
            translation = self.factory.cache.translate(data)
        if translation.personal or translation.events or (
                translation.senders and session.name in translation.senders):
            out = session.deliver(translation)
        else:
            out = translation.tagged if session.tags else translation.plain
        if out:
            self._send(out)

    def writeSequence(self, data: List[bytes]) -> None:
        self.write(b"".join(data))

    def _send(self, out: bytes) -> None:
        if self._direct:
            send_now(self.transport, out)
        else:
            self.transport.write(out)

    def loseConnection(self) -> None:
        session = self.session
        if not self._closed and session.quitting and not session.closed:
            self._send(replies.closing("quit", session.quitting[len("Quit: "):]))
        self._closed = True
        ProtocolWrapper.loseConnection(self)

    def pauseProducing(self) -> None:
        self._chat_paused = True
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._chat_paused = False
        if self._closed:
            return
        self.transport.resumeProducing()
        self._drain()

    def stopProducing(self) -> None:
        self._chat_paused = True
        self.transport.stopProducing()


class IRCGatewayFactory(WrappingFactory):
    """
    Wrap C{chat_factory}'s protocols (L{chatsvc.server.factory.ChatFactory}) in the
    IRC gateway.

    @param psk: the chat's key, or C{None}; with one, IRC clients give it as
        the server password (over TLS) to count as encrypted.
    @param require_encryption: refuse IRC clients without TLS and the key.
    """

    protocol = IRCGatewayProtocol
    noisy = False

    def __init__(self, chat_factory: Any, config: GatewayConfig, psk: Optional[bytes] = None,
                 require_encryption: bool = False, clock: Any = None) -> None:
        WrappingFactory.__init__(self, chat_factory)
        if require_encryption and psk is None:
            raise ValueError("encryption cannot be required without a key")
        self.clock = clock if clock is not None else chat_factory.clock
        self.chat_config = getattr(chat_factory, "config", None)
        self.psk = psk
        self.require_encryption = require_encryption
        created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.clock.seconds()))
        max_text = getattr(self.chat_config, "max_text", 4096)
        self.info = ServerInfo(
            name=config.server_name, network=config.network, version="chatsvc-2",
            created=created, has_key=psk is not None, default_room=config.default_room,
            max_rooms=config.max_rooms, topic_len=min(390, max_text),
        )
        self.cache = TranslationCache(self.info)


def irc_listeners(descriptions: List[str], chat_factory: Any, config: GatewayConfig,
                  psk: Optional[bytes], require_encryption: bool) -> Tuple[IRCGatewayFactory, List[str]]:
    """
    The gateway factory for C{--irc} endpoints, after checking them against
    PROTOCOL.md 7.2: where encryption is required, only TLS (C{ssl:})
    endpoints are served.

    @raise ValueError: for an endpoint that may not be served (the message
        is meant for the command line).
    """
    for description in descriptions:
        kind = description.split(":", 1)[0].strip().lower()
        if require_encryption and kind not in ("ssl", "tls"):
            raise ValueError(
                f"--irc {description}: this server requires encryption, so IRC is served only "
                "over TLS (ssl:PORT:privateKey=KEY.pem:certKey=CERT.pem), with the key as "
                "the server password; or serve plaintext too with --allow-plaintext")
    return IRCGatewayFactory(chat_factory, config, psk, require_encryption), list(descriptions)
