"""
Tests for L{chatsvc.server.fastwrite}: sending at once while Twisted's buffer is
empty, and leaving everything else to Twisted.
"""

from __future__ import annotations

from typing import Any, List, Optional

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from chatsvc.server.fastwrite import send_now, supports


class FakeSocket:
    def __init__(self) -> None:
        self.sent: List[bytes] = []
        self.take: Optional[int] = None  # bytes accepted per send; None: all
        self.error: Optional[OSError] = None

    def send(self, data: bytes) -> int:
        if self.error is not None:
            raise self.error
        n = len(data) if self.take is None else min(self.take, len(data))
        self.sent.append(bytes(data[:n]))
        return n


class FakeTCP:
    """The attributes of Twisted's FileDescriptor that send_now reads."""

    connected = 1
    disconnecting = False

    def __init__(self) -> None:
        self.socket = FakeSocket()
        self.dataBuffer = b""
        self._tempDataLen = 0
        self.written: List[bytes] = []

    def write(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        self.written.append(data)
        self._tempDataLen += len(data)


class SendNowTests(SynchronousTestCase):
    def test_empty_buffer_sends_at_once(self) -> None:
        t = FakeTCP()
        send_now(t, b"hello")
        self.assertEqual(t.socket.sent, [b"hello"])
        self.assertEqual(t.written, [])

    def test_partial_send_buffers_the_rest(self) -> None:
        t = FakeTCP()
        t.socket.take = 2
        send_now(t, b"hello")
        send_now(t, b"world")  # buffered data waits: no send, keeps the order
        self.assertEqual(t.socket.sent, [b"he"])
        self.assertEqual(t.written, [b"llo", b"world"])

    def test_would_block_buffers_everything(self) -> None:
        t = FakeTCP()
        t.socket.error = BlockingIOError()
        send_now(t, b"hello")
        self.assertEqual(t.written, [b"hello"])

    def test_dead_peer_is_left_to_twisted(self) -> None:
        t = FakeTCP()
        t.socket.error = ConnectionResetError()
        send_now(t, b"hello")
        self.assertEqual(t.written, [b"hello"])

    def test_anything_buffered_means_write(self) -> None:
        for attr, value in [("dataBuffer", b"x"), ("_tempDataLen", 3),
                            ("disconnecting", True), ("connected", 0)]:
            t = FakeTCP()
            setattr(t, attr, value)
            send_now(t, b"hello")
            self.assertEqual(t.socket.sent, [], attr)
            self.assertEqual(t.written, [b"hello"], attr)

    def test_supports(self) -> None:
        self.assertTrue(supports(FakeTCP()))
        self.assertFalse(supports(StringTransport()))
        tls = FakeTCP()
        tls.TLS = True  # type: ignore[attr-defined]
        self.assertFalse(supports(tls), "TLS must go through the transport's write")

    def test_not_through_a_wrapper(self) -> None:
        """A TLS wrapper forwards the socket transport's attributes: not supported."""
        from twisted.internet.protocol import Factory
        from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

        wrapper = ProtocolWrapper(WrappingFactory(Factory()), Protocol())
        wrapper.transport = FakeTCP()
        self.assertTrue(supports(wrapper.transport))
        self.assertFalse(supports(wrapper))  # though it forwards every attribute asked


class Collect(Protocol):
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.chunks: List[bytes] = []
        self.size = 0
        self.done: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size >= self.expected and not self.done.called:
            self.done.callback(b"".join(self.chunks))


class RealTCPTests(TestCase):
    """Over a real socket: order kept through full buffers and mixed writes."""

    def test_order_through_full_buffers(self) -> None:
        pieces = [bytes([i % 251]) * (1 + (i * 7919) % 20000) for i in range(400)]
        expected = b"".join(pieces)
        server_side: List[Any] = []
        ready: Deferred = Deferred()

        class Sender(Protocol):
            def connectionMade(self) -> None:
                server_side.append(self.transport)
                ready.callback(None)

        port = reactor.listenTCP(0, Factory.forProtocol(Sender), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = Collect(len(expected))
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        d = connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), client)

        def connected(_: Any) -> Deferred:
            return ready

        def send(_: Any) -> Deferred:
            transport = server_side[0]
            self.assertTrue(supports(transport))
            for i, piece in enumerate(pieces):
                # Mix both paths: Twisted's own write must not be overtaken.
                if i % 5 == 0:
                    transport.write(piece)
                else:
                    send_now(transport, piece)
            self.assertTrue(transport.dataBuffer or transport._tempDataLen,
                            "the kernel's buffer filled: the slow path was taken too")
            return client.done

        def received(data: bytes) -> None:
            self.assertEqual(len(data), len(expected))
            self.assertEqual(data, expected)
            client.transport.loseConnection()
            server_side[0].loseConnection()

        d.addCallback(connected)
        d.addCallback(send)
        d.addCallback(received)
        return d
