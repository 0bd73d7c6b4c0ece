"""
Tests for L{chatsvc.client.endpoints}: L{RoundRobinEndpoint} over fake
endpoints, and the reasons shown for failed connections.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.protocols.basic import Int32StringReceiver
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from chatsvc.client.endpoints import CannotConnect, RoundRobinEndpoint, describe_error
from chatsvc.wire.errors import RemoteProtocolError

from .support.client import FakeEndpoint


class DescribeErrorTests(SynchronousTestCase):
    def test_reasons(self) -> None:
        self.assertEqual(describe_error(ConnectionRefusedError()), "connection refused")
        self.assertEqual(describe_error(ConnectionDone()), "the server closed the connection")
        self.assertEqual(describe_error(ConnectionLost()), "the connection was lost")
        self.assertEqual(describe_error(RemoteProtocolError("handshake-failed", "wrong\x1bkey")),
                         "handshake-failed: wrong\\x1bkey")
        self.assertEqual(describe_error(ValueError("a\nb")), "a\\x0ab")
        self.assertEqual(
            describe_error(CannotConnect([("a:1", ConnectionRefusedError()), ("b:2", ConnectionDone())])),
            "a:1: connection refused; b:2: the server closed the connection",
        )


class RoundRobinEndpointTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.a, self.b = FakeEndpoint(), FakeEndpoint()
        self.endpoint = RoundRobinEndpoint([("a", self.a), ("b", self.b)])
        self.factory = Factory.forProtocol(Int32StringReceiver)

    def test_interface(self) -> None:
        self.assertTrue(verifyObject(IStreamClientEndpoint, self.endpoint))

    def test_first(self) -> None:
        d = self.endpoint.connect(self.factory)
        self.a.accept()
        self.assertIsInstance(self.successResultOf(d), Int32StringReceiver)
        self.assertEqual((self.endpoint.current, self.b.pending), ("a", []))

    def test_falls_through(self) -> None:
        """A refused endpoint is followed by the next one, in the same attempt."""
        d = self.endpoint.connect(self.factory)
        self.a.refuse()
        self.b.accept()
        self.successResultOf(d)
        self.assertEqual(self.endpoint.current, "b")

    def test_moves_on(self) -> None:
        """After a connection, the next attempt starts at the next endpoint."""
        self.endpoint.connect(self.factory)
        self.a.accept()
        self.endpoint.connect(self.factory)
        self.assertEqual((len(self.a.pending), len(self.b.pending)), (0, 1))
        self.b.accept()
        self.endpoint.connect(self.factory)
        self.assertEqual((len(self.a.pending), len(self.b.pending)), (1, 0))

    def test_stay(self) -> None:
        self.endpoint.connect(self.factory)
        self.a.accept()
        self.endpoint.stay()
        self.endpoint.connect(self.factory)
        self.assertEqual((len(self.a.pending), len(self.b.pending)), (1, 0))

    def test_all_fail(self) -> None:
        d = self.endpoint.connect(self.factory)
        self.a.refuse()
        self.b.refuse()
        failure = self.failureResultOf(d, CannotConnect)
        self.assertEqual(str(failure.value), "a: connection refused; b: connection refused")

    def test_cancel(self) -> None:
        d = self.endpoint.connect(self.factory)
        inner = self.a.pending[0][1]
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.a.cancelled, 1)
        self.assertTrue(inner.called)
        self.assertEqual(self.b.pending, [])

    def test_needs_one(self) -> None:
        self.assertRaises(ValueError, RoundRobinEndpoint, [])
