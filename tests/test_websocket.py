"""
Tests for L{chatsvc.transports.websocket}: the chat's byte-stream protocol
on a WebSocket, one frame body per binary message (PROTOCOL.md 7.1). In
memory: a fake WebSocket transport over a L{StringTransport}, a L{Clock}.
"""

from __future__ import annotations

import json
from typing import Any, List, Optional

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IConsumer, IPushProducer, ITransport
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from chatsvc.server.encryption import EncryptingFactory
from chatsvc.server.factory import ServerConfig
from chatsvc.transports.websocket import (
    INCOMPLETE_LIMIT,
    FrameTransport,
    Reframer,
    WebSocketChatFactory,
    message_header,
)
from chatsvc.wire.framing import HEADER_SIZE, MAX_FRAME, encode_frame
from chatsvc.wire.records import DataReceived, HandshakeComplete, RecordSession

from .helpers import RecordingTransport, make_factory

PSK = bytes(range(32))


def server_messages(data: bytes) -> List[bytes]:
    """The payloads of a server's unmasked binary messages; fail on anything else."""
    out = []
    pos = 0
    while pos < len(data):
        assert data[pos] == 0x82, f"not a final binary frame: {data[pos:pos + 2]!r}"
        size, head = data[pos + 1], 2
        assert size & 0x80 == 0, "a server frame is never masked"
        if size == 126:
            size, head = int.from_bytes(data[pos + 2:pos + 4], "big"), 4
        elif size == 127:
            size, head = int.from_bytes(data[pos + 2:pos + 10], "big"), 10
        out.append(data[pos + head:pos + head + size])
        assert len(out[-1]) == size, "incomplete frame"
        pos += head + size
    return out


class FakeWebSocket:
    """A L{twisted.web.websocket.WebSocketTransport} over a L{StringTransport}."""

    def __init__(self, tcp: RecordingTransport) -> None:
        self.tcp = tcp
        self.closed = False

    @property
    def sent(self) -> List[bytes]:
        return server_messages(self.tcp.value())

    def loseConnection(self, code: int = 1000) -> None:
        from wsproto.utilities import LocalProtocolError

        if self.closed:  # wsproto refuses a second Close
            raise LocalProtocolError("Connection cannot be closed in state ConnectionState.CLOSED")
        self.closed = True
        self.tcp.loseConnection()

    def attachProducer(self, producer: Any) -> None:
        self.tcp.registerProducer(producer, True)  # as Twisted's does

    def detachProducer(self) -> None:
        self.tcp.unregisterProducer()


class FakeChannel:
    def __init__(self, tcp: RecordingTransport) -> None:
        self.transport = tcp
        self.fed: List[bytes] = []
        self.parsed: Any = None  # what the parser delivers, if anything

    def dataReceived(self, data: bytes) -> None:
        self.fed.append(data)  # Twisted's WebSocket parser would be here
        if self.parsed is not None:
            self.parsed()


class FakeRequest:
    def __init__(self, channel: FakeChannel) -> None:
        self.channel = channel

    def getClientAddress(self) -> Any:
        return self.channel.transport.getPeer()


class HttpChannelProducer:
    """Stands for the HTTP channel, registered before the upgrade."""

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class RecordingFactory:
    """The server's wrapping factory, remembering the protocols it built."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.built: List[Any] = []

    def buildProtocol(self, addr: Any) -> Any:
        self.built.append(self.factory.buildProtocol(addr))
        return self.built[-1]


class Connection:
    """One WebSocket client of C{wrapper}, up to just after the upgrade."""

    def __init__(self, wrapper: Any, host: str = "127.0.0.1") -> None:
        self.tcp = RecordingTransport(peerAddress=IPv4Address("TCP", host, 50000))
        self.tcp.registerProducer(HttpChannelProducer(), True)
        self.ws = FakeWebSocket(self.tcp)
        self.channel = FakeChannel(self.tcp)
        factory = WebSocketChatFactory(RecordingFactory(wrapper))
        self.protocol = factory.buildProtocol(FakeRequest(self.channel))
        self.inner = factory.factory.built[-1]
        self.protocol.negotiationStarted(self.ws)
        self.protocol.negotiationFinished()

    def send(self, message: Any) -> None:
        self.protocol.bytesMessageReceived(json.dumps(message).encode())

    def protocol_transport(self) -> Any:
        """The transport the chat's protocol was given (what makeConnection received)."""
        return self.inner.transport

    def messages(self) -> List[dict]:
        sent = self.ws.sent
        self.tcp.clear()
        return [json.loads(body) for body in sent]


class WebSocketChatTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.chat = make_factory(self.clock)
        self.wrapper = EncryptingFactory(self.chat, PSK, clock=self.clock)

    def turn(self) -> None:
        """Let the room and the wrapper hand out what they batch per turn."""
        self.chat.room.flush()
        self.clock.advance(0)

    def connect(self, name: Optional[str] = None, host: str = "127.0.0.1") -> Connection:
        connection = Connection(self.wrapper, host)
        if name is not None:
            connection.send({"type": "hello", "name": name})
            self.turn()
        return connection

    def test_metrics_label(self) -> None:
        """The metrics count WebSocket connections under their own transport label."""
        from chatsvc.metrics import ITransportLabel, transport_label

        web = self.connect("web")
        self.assertEqual(transport_label(web.inner), "websocket")  # walks down as the metrics do
        self.assertTrue(verifyObject(ITransportLabel, web.protocol_transport()))

    def test_one_frame_per_message(self) -> None:
        """Each binary message is one frame body, with no length prefix, both ways."""
        web = self.connect("web")
        messages = web.messages()
        self.assertEqual([m["type"] for m in messages], ["welcome", "room", "history"])
        self.assertEqual(messages[0]["name"], "web")

    def test_same_chat_as_tcp(self) -> None:
        """Two WebSocket clients meet in the one chat."""
        web, other = self.connect("web"), self.connect("other")
        web.messages()
        other.send({"type": "say", "text": "hi there"})
        self.turn()
        said = [m for m in web.messages() if m["type"] == "message"]
        self.assertEqual([(m["from"], m["text"]) for m in said], [("other", "hi there")])

    def test_text_message_is_bad_frame(self) -> None:
        """A text message is the fatal bad-frame; the connection closes."""
        web = self.connect("web")
        web.messages()
        web.protocol.textMessageReceived('{"type":"say","text":"hi"}')
        self.turn()
        [error] = web.messages()
        self.assertEqual((error["code"], error["fatal"]), ("bad-frame", True))
        self.assertTrue(self.ws_closed(web))

    def test_text_message_first(self) -> None:
        """A text message before the mode is known: bad-frame too."""
        web = self.connect()
        web.protocol.textMessageReceived("hello")
        [error] = web.messages()
        self.assertEqual(error["code"], "bad-frame")
        self.assertTrue(self.ws_closed(web))

    def ws_closed(self, connection: Connection) -> bool:
        return connection.ws.closed or connection.tcp.disconnecting

    def test_message_over_a_frame(self) -> None:
        """A message longer than any frame body: frame-too-long."""
        web = self.connect("web")
        web.messages()
        web.protocol.bytesMessageReceived(b"{" + b" " * MAX_FRAME)
        [error] = web.messages()
        self.assertEqual((error["code"], error["fatal"]), ("frame-too-long", True))

    def test_endless_fragments(self) -> None:
        """Bytes that never complete a message are refused, not buffered for ever."""
        web = self.connect("web")
        web.messages()
        web.channel.dataReceived(b"\x02" * (INCOMPLETE_LIMIT // 2))
        self.assertEqual(web.messages(), [])
        web.channel.dataReceived(b"\x00" * (INCOMPLETE_LIMIT // 2 + 1))
        [error] = web.messages()
        self.assertEqual(error["code"], "frame-too-long")
        fed = len(web.channel.fed)
        web.channel.dataReceived(b"more")
        self.assertEqual(len(web.channel.fed), fed)  # nothing more is parsed

    def test_completed_messages_reset_the_count(self) -> None:
        """Any amount of traffic is fine while messages keep completing."""
        web = self.connect("web")
        web.channel.parsed = lambda: web.send({"type": "ping"})
        for _ in range(4):
            web.channel.dataReceived(b"x" * (INCOMPLETE_LIMIT // 2))
        self.assertEqual([m["type"] for m in web.messages()][-4:], ["pong"] * 4)

    def test_per_address_limit(self) -> None:
        """The HTTP connection's peer address counts toward the per-address limit."""
        self.chat.config = ServerConfig(max_per_ip=1)
        self.connect("one", host="192.0.2.7")
        second = self.connect(host="192.0.2.7")
        [error] = second.messages()
        self.assertEqual(error["code"], "too-many-connections")
        self.assertTrue(self.ws_closed(second))

    def test_handshake_timeout(self) -> None:
        """No hello in time: the fatal timeout, as on TCP."""
        web = self.connect()
        self.clock.advance(self.chat.config.handshake_timeout)
        [error] = web.messages()
        self.assertEqual(error["code"], "timeout")

    def test_send_queue_is_the_producer(self) -> None:
        """The send queue replaces the HTTP channel as the socket's producer, and is paused by it."""
        web, other = self.connect("web"), self.connect("other")
        web.messages()
        producer = web.tcp.producer
        self.assertNotIsInstance(producer, HttpChannelProducer)
        producer.pauseProducing()  # the socket's buffer is full
        other.send({"type": "say", "text": "queued"})
        self.turn()
        self.assertEqual(web.messages(), [])
        producer.resumeProducing()
        self.assertEqual([m["text"] for m in web.messages() if m["type"] == "message"], ["queued"])

    def test_fatal_stops_reading(self) -> None:
        """A connection being closed reads nothing more from the socket."""
        web = self.connect("web")
        web.protocol.textMessageReceived("x")
        self.assertEqual(web.tcp.producerState, "paused")

    def test_connection_lost(self) -> None:
        """The WebSocket's end is the chat connection's end."""
        web, other = self.connect("web"), self.connect("other")
        web.protocol.connectionLost(Failure(ConnectionDone()))
        self.turn()
        self.assertEqual(len(self.chat.connections), 1)
        left = [m for m in other.messages() if m["type"] == "left"]
        self.assertEqual([m["name"] for m in left], ["web"])

    def test_encrypted(self) -> None:
        """The same Noise records as on TCP, one per binary message."""
        web = self.connect()
        client = RecordSession(PSK, initiator=True)
        web.protocol.bytesMessageReceived(client.initiate()[HEADER_SIZE:])
        [reply] = web.ws.sent
        self.assertEqual((reply[0], len(reply)), (0x01, 49))
        client.receive_data(encode_frame(reply))
        self.assertEqual(list(client.events()), [HandshakeComplete()])
        hello = encode_frame(b'{"type":"hello","name":"secret"}')
        web.protocol.bytesMessageReceived(client.send(hello)[HEADER_SIZE:])
        self.turn()
        for record in web.ws.sent[1:]:
            self.assertEqual(record[0], 0x02)
            client.receive_data(encode_frame(record))
        data = b"".join(e.data for e in client.events() if isinstance(e, DataReceived))
        welcome = json.loads(data[HEADER_SIZE:HEADER_SIZE + int.from_bytes(data[:4], "big")])
        self.assertEqual((welcome["type"], welcome["name"], welcome["encrypted"]),
                         ("welcome", "secret", True))


class ReframerTests(SynchronousTestCase):
    def test_one(self) -> None:
        self.assertEqual(server_messages(Reframer().feed(encode_frame(b"abc"))), [b"abc"])

    def test_several(self) -> None:
        data = encode_frame(b"a") + encode_frame(b"bc") + encode_frame(b"def")
        self.assertEqual(server_messages(Reframer().feed(data)), [b"a", b"bc", b"def"])

    def test_byte_by_byte(self) -> None:
        reframer = Reframer()
        data = encode_frame(b"hello") + encode_frame(b"x" * 300)
        out = b"".join(reframer.feed(data[i:i + 1]) for i in range(len(data)))
        self.assertEqual(server_messages(out), [b"hello", b"x" * 300])
        self.assertEqual(reframer.pending, 0)

    def test_partial_kept(self) -> None:
        reframer = Reframer()
        data = encode_frame(b"one") + encode_frame(b"two")
        self.assertEqual(server_messages(reframer.feed(data[:-1])), [b"one"])
        self.assertEqual(reframer.pending, 6)
        self.assertEqual(server_messages(reframer.feed(data[-1:])), [b"two"])

    def test_one_batch_reframed_once(self) -> None:
        """The same batch object for many members: reframed once, the same bytes for all."""
        batch = encode_frame(b"a" * 200) + encode_frame(b"b" * 300)
        first, second = Reframer().feed(batch), Reframer().feed(batch)
        self.assertIs(first, second)
        self.assertEqual(server_messages(second), [b"a" * 200, b"b" * 300])

    def test_headers(self) -> None:
        """The three header sizes of RFC 6455 5.2, read back by wsproto itself."""
        from wsproto import ConnectionType
        from wsproto.connection import Connection
        from wsproto.events import BytesMessage

        bodies = [b"x" * 125, b"y" * 126, b"z" * 65535, b"w" * 65536]
        self.assertEqual([len(message_header(len(b))) for b in bodies], [2, 4, 4, 10])
        client = Connection(ConnectionType.CLIENT)
        client.receive_data(Reframer().feed(b"".join(encode_frame(b) for b in bodies)))
        received = [bytes(e.data) for e in client.events() if isinstance(e, BytesMessage)]
        self.assertEqual(received, bodies)


class FrameTransportTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.tcp = RecordingTransport()
        self.ws = FakeWebSocket(self.tcp)
        peer = IPv4Address("TCP", "192.0.2.1", 1234)
        self.transport = FrameTransport(self.ws, self.tcp, peer, self.tcp.getHost())

    def test_interfaces(self) -> None:
        """The chat's protocol gets a full byte-stream transport."""
        for interface in (ITransport, IConsumer, IPushProducer):
            self.assertTrue(verifyObject(interface, self.transport))

    def test_write_splits(self) -> None:
        self.transport.write(encode_frame(b"a") + encode_frame(b"b")[:2])
        self.transport.writeSequence([encode_frame(b"b")[2:], encode_frame(b"c")])
        self.assertEqual(self.ws.sent, [b"a", b"b", b"c"])

    def test_peer(self) -> None:
        self.assertEqual(self.transport.getPeer().host, "192.0.2.1")

    def test_nothing_after_close(self) -> None:
        self.transport.loseConnection()
        self.transport.write(encode_frame(b"late"))
        self.assertEqual((self.ws.sent, self.ws.closed), ([], True))

    def test_close_after_the_peers_close(self) -> None:
        """The peer's Close came first (wsproto refuses ours): the socket still closes."""
        self.ws.closed = True
        self.transport.loseConnection()
        self.assertTrue(self.tcp.disconnecting)

    def test_abort(self) -> None:
        self.transport.abortConnection()
        self.assertTrue(self.tcp.aborted)

    def test_reading_paused_and_resumed(self) -> None:
        self.transport.pauseProducing()
        self.assertEqual(self.tcp.producerState, "paused")
        self.transport.resumeProducing()
        self.assertEqual(self.tcp.producerState, "producing")
