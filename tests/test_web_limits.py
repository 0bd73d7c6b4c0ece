# -*- test-case-name: tests.test_web_limits -*-
"""
The web endpoint's per-address limit (L{chatsvc.transports.site}): how
many connections, page fetches and WebSockets alike, one address holds
open at once; counted by the pure L{ConnectionsByAddress}, enforced by
L{ChatSite}, released by the HTTP channel or, once upgraded, by the
WebSocket.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from chatsvc.chat.memory import Room
from chatsvc.server.encryption import EncryptingFactory
from chatsvc.server.factory import ChatFactory, ServerConfig
from chatsvc.transports.site import ConnectionsByAddress, ICountedConnection, web_site

from .support.fakes import RecordingTransport
from .support.waiting import deadline, wait_until
from .support.web import connect_websocket, non_loopback_address


class ConnectionsByAddressTests(unittest.SynchronousTestCase):
    def test_limit_and_release(self) -> None:
        by_address = ConnectionsByAddress(2)
        first, second = by_address.open("10.0.0.1"), by_address.open("10.0.0.1")
        self.assertEqual((first, second), ("10.0.0.1", "10.0.0.1"))
        self.assertIsNone(by_address.open("10.0.0.1"))
        self.assertEqual(by_address.open("10.0.0.2"), "10.0.0.2")  # another address
        by_address.close("10.0.0.1")
        self.assertEqual(by_address.count("10.0.0.1"), 1)
        self.assertEqual(by_address.open("10.0.0.1"), "10.0.0.1")

    def test_ipv6_by_64_and_mapped_ipv4_as_ipv4(self) -> None:
        by_address = ConnectionsByAddress(2)
        self.assertIsNotNone(by_address.open("2001:db8::1"))
        self.assertIsNotNone(by_address.open("2001:db8::2"))
        self.assertIsNone(by_address.open("2001:db8::ffff:3"))  # the same /64
        self.assertIsNotNone(by_address.open("2001:db8:0:1::1"))  # another /64
        self.assertIsNotNone(by_address.open("::ffff:10.0.0.9"))
        self.assertIsNotNone(by_address.open("10.0.0.9"))
        self.assertIsNone(by_address.open("10.0.0.9"))

    def test_loopback_counted_never_refused(self) -> None:
        by_address = ConnectionsByAddress(2)
        keys = [by_address.open("127.0.0.1") for _ in range(5)]
        self.assertNotIn(None, keys)
        self.assertEqual(by_address.count("127.0.0.1"), 5)

    def test_no_limit(self) -> None:
        by_address = ConnectionsByAddress(0)
        self.assertNotIn(None, [by_address.open("10.0.0.1") for _ in range(100)])


def _site(limit: int, clock: Any = None) -> Any:
    """The web endpoint's factory, its chat on C{clock} (a new L{Clock} if not given)."""
    clock = clock if clock is not None else Clock()
    chat = ChatFactory(Room(clock), ServerConfig(max_per_ip=0), clock)
    return web_site(EncryptingFactory(chat, None, clock=clock), max_per_address=limit,
                    reactor=clock)


class SiteLimitTests(unittest.SynchronousTestCase):
    def _connect(self, site: Any, host: str, port: int) -> Any:
        proto = site.buildProtocol(IPv4Address("TCP", host, port))
        transport = RecordingTransport()
        proto.makeConnection(transport)
        return proto, transport

    def test_over_the_limit_is_closed_at_once(self) -> None:
        site = _site(2)
        (one, _), (two, _) = (self._connect(site, "10.0.0.1", p) for p in (1, 2))
        self.assertTrue(verifyObject(ICountedConnection, one))
        # HTTP timeouts run on the site's own clock, not the global reactor
        self.assertEqual(len(site.reactor.getDelayedCalls()), 2)
        _, refused = self._connect(site, "10.0.0.1", 3)
        self.assertTrue(refused.aborted)
        _, other = self._connect(site, "10.0.0.2", 4)  # another address is not affected
        self.assertFalse(other.aborted)
        one.connectionLost(Failure(ConnectionDone()))
        _, again = self._connect(site, "10.0.0.1", 5)
        self.assertFalse(again.aborted)
        self.assertEqual(site.by_address.count("10.0.0.1"), 2)

    def test_released_once(self) -> None:
        """Released by the WebSocket and again by the channel: counted down once."""
        site = _site(4)
        one, _ = self._connect(site, "10.0.0.1", 1)
        self._connect(site, "10.0.0.1", 2)
        one.release()
        one.release()
        one.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(site.by_address.count("10.0.0.1"), 1)

    def test_default_limit(self) -> None:
        from chatsvc.transports.site import MAX_PER_ADDRESS

        site = _site(MAX_PER_ADDRESS)
        for port in range(MAX_PER_ADDRESS):
            self.assertFalse(self._connect(site, "10.0.0.1", port)[1].aborted)
        self.assertTrue(self._connect(site, "10.0.0.1", 99)[1].aborted)


class _Idle(Protocol):
    def connectionMade(self) -> None:
        self.factory.made.append(self)

    def connectionLost(self, reason: Any) -> None:
        if not self.factory.lost.called:
            self.factory.lost.callback(self)


class OverTCPTests(unittest.TestCase):
    """A real listener on an address other than loopback (which is exempt)."""

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.address = non_loopback_address()
        self.site = _site(3, reactor)
        self.port = yield TCP4ServerEndpoint(reactor, 0, interface=self.address).listen(self.site)
        self.addCleanup(self.port.stopListening)
        self.where = f"{self.address}:{self.port.getHost().port}"

    @defer.inlineCallbacks
    def _idle(self, factory: Any) -> Any:
        endpoint = TCP4ClientEndpoint(reactor, self.address, self.port.getHost().port)
        proto = yield endpoint.connect(factory)
        self.addCleanup(proto.transport.abortConnection)
        return proto

    @defer.inlineCallbacks
    def test_fourth_connection_closed_and_upgraded_ones_released(self):
        """
        Three connections from one address are served, the fourth is closed
        by the server; a WebSocket that ends gives its place back.
        """
        socket = yield connect_websocket(f"ws://{self.where}/ws", "ws")
        self.addCleanup(lambda: socket.closed.called or socket.transport.loseConnection())
        yield deadline(socket.welcomed, 10, "welcome over the WebSocket")

        idle = Factory.forProtocol(_Idle)
        idle.made, idle.lost = [], defer.Deferred()
        yield self._idle(idle)
        yield self._idle(idle)
        yield wait_until(lambda: self.site.by_address.count(self.address) == 3, 10,
                         "three connections counted")
        yield self._idle(idle)
        refused = yield deadline(idle.lost, 10, "the fourth connection to be closed")
        self.assertIs(refused, idle.made[-1])
        self.assertEqual(self.site.by_address.count(self.address), 3)

        socket.transport.loseConnection()
        yield deadline(socket.closed, 10, "the WebSocket to close")
        yield wait_until(lambda: self.site.by_address.count(self.address) == 2, 10,
                         "the WebSocket's place given back")
        for proto in idle.made:
            proto.transport.abortConnection()
        yield wait_until(lambda: self.site.by_address.count(self.address) == 0, 10,
                         "every HTTP connection's place given back")
