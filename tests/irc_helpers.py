"""
Helpers for the IRC gateway's tests: a chat with its gateway on a Clock,
and twisted.words' own IRC client connected to it in memory (iosim).

    chat, gateway = make_gateway()
    alice = IRCPeer.connect(gateway, "alice")      # registers, pumps
    alice.client.say("#lobby", "hi"); alice.pump()
    raw = RawIRC.connect(gateway)                  # bytes in, lines out
"""

from __future__ import annotations

import re
from typing import Any, List, Optional, Tuple

from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import LineReceiver
from twisted.test import iosim
from twisted.words.protocols import irc
from zope.interface import directlyProvides

from chatsvc.server.factory import ChatFactory
from chatsvc.transports.irc.gateway import GatewayConfig, IRCGatewayFactory

from .helpers import make_factory
from .procs import deadline

_port = [50000]


def make_gateway(clock: Optional[Clock] = None, psk: Optional[bytes] = None,
                 require_encryption: bool = False, motd: Optional[str] = None,
                 **config: Any) -> Tuple[ChatFactory, IRCGatewayFactory]:
    """A started chat factory (Room on a Clock) and the IRC gateway beneath it."""
    chat = make_factory(clock, motd=motd, **config)
    gateway = IRCGatewayFactory(chat, GatewayConfig(server_name="irc.test"), psk=psk,
                                require_encryption=require_encryption)
    return chat, gateway


def _peer() -> IPv4Address:
    _port[0] += 1
    return IPv4Address("TCP", "127.0.0.1", _port[0])


class RecordingIRCClient(irc.IRCClient):
    """twisted.words' IRCClient, recording what it is told."""

    heartbeatInterval = None  # no LoopingCall on the global reactor

    def __init__(self, nickname: str, password: Optional[str] = None) -> None:
        self.nickname = nickname
        self.password = password
        self.events: List[tuple] = []
        self.lines: List[str] = []

    def lineReceived(self, line: Any) -> None:
        self.lines.append(line.decode("utf-8") if isinstance(line, bytes) else line)
        irc.IRCClient.lineReceived(self, line)

    def signedOn(self) -> None:
        self.events.append(("signedOn",))

    def joined(self, channel: str) -> None:
        self.events.append(("joined", channel))

    def left(self, channel: str) -> None:
        self.events.append(("left", channel))

    def privmsg(self, user: str, channel: str, message: str) -> None:
        self.events.append(("privmsg", user.split("!")[0], channel, message))

    def noticed(self, user: str, channel: str, message: str) -> None:
        self.events.append(("notice", user.split("!")[0], channel, message))

    def action(self, user: str, channel: str, data: str) -> None:
        self.events.append(("action", user.split("!")[0], channel, data))

    def userJoined(self, user: str, channel: str) -> None:
        self.events.append(("userJoined", user.split("!")[0], channel))

    def userLeft(self, user: str, channel: str) -> None:
        self.events.append(("userLeft", user.split("!")[0], channel))

    def userQuit(self, user: str, message: str) -> None:
        self.events.append(("userQuit", user.split("!")[0], message))

    def userRenamed(self, oldname: str, newname: str) -> None:
        self.events.append(("userRenamed", oldname, newname))

    def nickChanged(self, nick: str) -> None:
        irc.IRCClient.nickChanged(self, nick)
        self.events.append(("nickChanged", nick))

    def topicUpdated(self, user: str, channel: str, newTopic: str) -> None:
        self.events.append(("topic", user.split("!")[0], channel, newTopic))

    def irc_unknown(self, prefix: str, command: str, params: List[str]) -> None:
        self.events.append(("unknown", command, params))

    def of(self, kind: str) -> List[tuple]:
        return [e for e in self.events if e[0] == kind]


class IRCPeer:
    """An IRC client connected to the gateway in memory."""

    def __init__(self, gateway: IRCGatewayFactory, client: irc.IRCClient, tls: bool = False) -> None:
        self.gateway = gateway
        self.clock = gateway.clock
        self.client = client
        peer = _peer()
        self.server = gateway.buildProtocol(peer)
        self.server_transport = iosim.FakeTransport(self.server, True, peerAddress=peer)
        if tls:
            directlyProvides(self.server_transport, ISSLTransport)
        self.client_transport = iosim.FakeTransport(client, False)
        self.pump_ = iosim.connect(self.server, self.server_transport, client, self.client_transport,
                                   greet=False)

    @classmethod
    def connect(cls, gateway: IRCGatewayFactory, nick: str, password: Optional[str] = None,
                tls: bool = False) -> "IRCPeer":
        peer = cls(gateway, RecordingIRCClient(nick, password), tls)
        peer.pump()
        return peer

    def pump(self, turns: int = 4) -> None:
        """Move bytes both ways and run the chat's end-of-turn work, a few times."""
        for _ in range(turns):
            self.clock.advance(0)
            self.pump_.flush()

    def send(self, line: str) -> None:
        self.client.sendLine(line)
        self.pump()

    @property
    def closed(self) -> bool:
        return self.server_transport.disconnecting or self.server_transport.disconnected


class RawIRC:
    """Raw bytes to the gateway over a StringTransport; lines back."""

    def __init__(self, gateway: IRCGatewayFactory, tls: bool = False) -> None:
        peer = _peer()
        self.gateway = gateway
        self.transport = StringTransport(peerAddress=peer)
        if tls:
            directlyProvides(self.transport, ISSLTransport)
        self.protocol = gateway.buildProtocol(peer)
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> List[str]:
        """Send C{data}, end the turn, and return the lines written since the last call."""
        self.protocol.dataReceived(data)
        return self.lines()

    def lines(self) -> List[str]:
        self.gateway.clock.advance(0)
        data = self.transport.value()
        self.transport.clear()
        return [line for line in data.decode("utf-8").split("\r\n") if line]

    def register(self, nick: str, extra: bytes = b"") -> List[str]:
        return self.send(extra + b"NICK %s\r\nUSER u 0 * :real\r\n" % nick.encode())


class LineClient(LineReceiver):
    """An IRC client over real TCP for real-process tests: lines in, waits with deadlines."""

    delimiter = b"\r\n"

    def __init__(self) -> None:
        self.lines: List[str] = []
        self._waiters: List[Any] = []

    @classmethod
    def connect(cls, port: int) -> defer.Deferred:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=10)
        return deadline(connectProtocol(endpoint, cls()), 15, f"IRC connection to {port}")

    def send(self, line: str) -> None:
        self.sendLine(line.encode("utf-8"))

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line.decode("utf-8", "replace"))
        for waiter in list(self._waiters):
            pattern, start, d = waiter
            for text in self.lines[start:]:
                if re.search(pattern, text):
                    self._waiters.remove(waiter)
                    d.callback(text)
                    break

    def wait_for(self, pattern: str, start: int = 0, seconds: float = 15.0) -> defer.Deferred:
        """The first line from index C{start} on that matches C{pattern}."""
        for text in self.lines[start:]:
            if re.search(pattern, text):
                return defer.succeed(text)
        d: defer.Deferred = defer.Deferred()
        self._waiters.append((pattern, start, d))
        return deadline(d, seconds, f"an IRC line matching {pattern!r}; last: {self.lines[-5:]}")
