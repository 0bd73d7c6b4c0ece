"""
Reusable test helpers: a frame-decoding fake client over a
L{StringTransport}, a factory builder, log capture.

    factory = make_factory(clock)               # ChatFactory + Room on a Clock
    alice = FakeClient(factory)                 # connected, nothing sent yet
    alice.send({"type": "hello", "name": "alice"})
    [welcome, history] = alice.received()       # decoded messages, in order
    alice.send_raw(raw_frame(b""))              # any bytes, even bad frames
    alice.lose()                                # the peer closes its socket

No network, no real reactor: time is a L{Clock}, transports are in memory.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Dict, List, Optional

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from chatsvc.chat.memory import MemoryChat
from chatsvc.server.factory import ChatFactory, ServerConfig
from chatsvc.server.turns import end_of_turn
from chatsvc.wire.framing import MAX_FRAME, FrameDecoder

LOOPBACK = "127.0.0.1"


def raw_frame(body: bytes) -> bytes:
    """C{body} with a length prefix, whatever its size (empty, oversized)."""
    return struct.pack(">I", len(body)) + body


def frame(message: Any) -> bytes:
    """A client frame: C{message} as JSON (dicts, lists, anything) or raw bytes."""
    if isinstance(message, bytes):
        return raw_frame(message)
    return raw_frame(json.dumps(message).encode("utf-8"))


V2_TYPES = frozenset({"room", "topic", "rooms", "parted"})
"""Server message types that protocol version 2 added."""

_V2_MEMBERS = {
    "welcome": ("plaintext", "epoch", "rooms"),
    "history": ("room",),
    "message": ("room",),
    "joined": ("room", "plaintext"),
    "users": ("plaintext",),
    "error": ("room",),
}


def v1_view(messages: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """
    What a version 1 client makes of C{messages}: it ignores the message
    types and the members it does not know (PROTOCOL.md section 4).
    """
    seen = []
    for message in messages:
        kind = message.get("type")
        if kind in V2_TYPES:
            continue
        extra = _V2_MEMBERS.get(kind, ())
        if kind == "history":
            message = dict(message, messages=v1_view(message["messages"]))
        seen.append({k: v for k, v in message.items() if k not in extra})
    return seen


def decode_frames(data: bytes) -> List[Dict[str, Any]]:
    """
    Decode every frame in C{data} into messages; fail on trailing bytes, on
    a frame over L{MAX_FRAME} and on a body that is not a JSON object with
    a string C{type}.
    """
    decoder = FrameDecoder(MAX_FRAME)
    decoder.receive_data(data)
    messages = []
    for body in decoder.frames():
        message = json.loads(body.decode("utf-8"))
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise AssertionError(f"not a message: {body[:200]!r}")
        messages.append(message)
    if decoder.buffered:
        raise AssertionError(f"incomplete frame written: {decoder.buffered[:40]!r}")
    return messages


class RecordingTransport(StringTransport):
    """
    A L{StringTransport} that records C{abortConnection}.

    @ivar aborted: whether C{abortConnection} was called.
    """

    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        StringTransport.abortConnection(self)


class PausingTransport(RecordingTransport):
    """
    A transport whose peer stopped reading: like a real one, it pauses its
    registered streaming producer once more than C{limit} bytes wait, and
    L{read_all} (the peer reading again) resumes it.
    """

    def __init__(self, limit: int = 65536, **kwargs: Any) -> None:
        RecordingTransport.__init__(self, **kwargs)
        self.limit = limit
        self.producer_paused = False

    def write(self, data: bytes) -> None:
        RecordingTransport.write(self, data)
        if (self.producer is not None and not self.producer_paused
                and len(self.io.getvalue()) > self.limit):
            self.producer_paused = True
            self.producer.pauseProducing()

    def read_all(self) -> bytes:
        """The peer takes everything; the producer may produce again."""
        data = self.value()
        self.clear()
        if self.producer is not None and self.producer_paused:
            self.producer_paused = False
            self.producer.resumeProducing()
        return data


class FakeClient:
    """
    One client connection to C{factory}, over a L{RecordingTransport}.

    @ivar transport: the server protocol's transport.
    @ivar protocol: the server's L{ChatProtocol} for this connection.
    @ivar version: 1 (the default) to see what a version 1 client sees
        (L{v1_view}), 2 to see everything.
    """

    _port = 40000

    def __init__(
        self,
        factory: ChatFactory,
        host: str = LOOPBACK,
        transport: Optional[StringTransport] = None,
        peer: Any = None,
        version: int = 1,
    ) -> None:
        self.version = version
        FakeClient._port += 1
        if peer is None:
            peer = IPv4Address("TCP", host, FakeClient._port)
        if transport is None:
            transport = RecordingTransport(peerAddress=peer)
        self.transport = transport
        self.protocol = factory.buildProtocol(peer)
        self.protocol.makeConnection(transport)

    # -- sending -------------------------------------------------------------

    def send(self, message: Any) -> None:
        """Send one message (see L{frame}) in a single C{dataReceived}."""
        self.protocol.dataReceived(frame(message))

    def send_raw(self, data: bytes, one_byte_at_a_time: bool = False) -> None:
        """Deliver C{data} to the server, whole or one byte per call."""
        if one_byte_at_a_time:
            for i in range(len(data)):
                self.protocol.dataReceived(data[i : i + 1])
        else:
            self.protocol.dataReceived(data)

    def hello(self, name: Any = None, **members: Any) -> List[Dict[str, Any]]:
        """Send C{hello} (with C{name} if given) and return what came back."""
        message: Dict[str, Any] = {"type": "hello"}
        if name is not None:
            message["name"] = name
        message.update(members)
        self.send(message)
        return self.received()

    # -- receiving -----------------------------------------------------------

    def received_bytes(self) -> bytes:
        """
        Everything written since the last call (and forget it), once the
        room has handed out what it batches until the end of a reactor turn.
        """
        self.protocol.room.flush()
        data = self.transport.value()
        self.transport.clear()
        return data

    def received(self) -> List[Dict[str, Any]]:
        """The messages written since the last call, decoded, in order."""
        messages = decode_frames(self.received_bytes())
        return v1_view(messages) if self.version == 1 else messages

    def received_types(self) -> List[str]:
        return [m["type"] for m in self.received()]

    # -- state -------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the server asked to close or abort the connection."""
        return bool(self.transport.disconnecting)

    @property
    def aborted(self) -> bool:
        return bool(getattr(self.transport, "aborted", False))

    def lose(self, reason: Optional[Failure] = None) -> None:
        """The connection ends (peer closed, or the close completed)."""
        self.protocol.connectionLost(reason or Failure(ConnectionDone()))


_CHAT_OPTIONS = ("default_room", "presence_limit", "max_rooms", "max_rooms_per_client")


def make_factory(
    clock: Optional[Clock] = None,
    history_size: int = 50,
    motd: Optional[str] = None,
    message_log: Any = None,
    **config: Any,
) -> ChatFactory:
    """
    A started L{ChatFactory} with its own L{Room}, on C{clock} (a new
    L{Clock} if not given; it is C{factory.clock}). C{config} overrides
    L{ServerConfig} fields, and the chat's options (C{presence_limit}, ...).
    """
    if clock is None:
        clock = Clock()
    room = MemoryChat(clock, history_size=history_size, message_log=message_log, motd=motd,
                      end_of_turn=end_of_turn(clock),
                      **{k: config.pop(k) for k in _CHAT_OPTIONS if k in config})
    factory = ChatFactory(room, ServerConfig(**config), clock)
    factory.startFactory()
    return factory


def registered(factory: ChatFactory, *names: str) -> List[FakeClient]:
    """Connect one client per name, say hello, and clear what they got."""
    clients = []
    for name in names:
        client = FakeClient(factory)
        client.send({"type": "hello", "name": name})
        clients.append(client)
    for client in clients:
        client.received()
    return clients


def only(messages: List[Dict[str, Any]], kind: str) -> List[Dict[str, Any]]:
    """The messages of type C{kind}."""
    return [m for m in messages if m["type"] == kind]


@implementer(ILogObserver)
class LogCapture:
    """
    Collect every log event while installed on the global log publisher.

        logs = LogCapture.install(self)     # removed when the test ends
        ...
        logs.assert_no_failures(self)
    """

    def __init__(self) -> None:
        self.events: List[LogEvent] = []

    def __call__(self, event: LogEvent) -> None:
        self.events.append(event)

    @classmethod
    def install(cls, case: SynchronousTestCase) -> "LogCapture":
        capture = cls()
        globalLogPublisher.addObserver(capture)
        case.addCleanup(globalLogPublisher.removeObserver, capture)
        return capture

    def failures(self) -> List[LogEvent]:
        return [e for e in self.events if "log_failure" in e]

    def assert_no_failures(self, case: SynchronousTestCase) -> None:
        failures = self.failures()
        case.assertEqual(
            failures, [], "a traceback was logged: " +
            "; ".join(str(e["log_failure"].getErrorMessage()) for e in failures)
        )


class ProtocolTestCase(SynchronousTestCase):
    """
    A fresh factory for every test (C{factory_args} overrides), and a check
    that no test logged a traceback.
    """

    factory_args: Dict[str, Any] = {}

    def setUp(self) -> None:
        self.logs = LogCapture.install(self)
        self.factory = make_factory(**self.factory_args)
        self.clock = self.factory.clock
        self.room = self.factory.room

    def tearDown(self) -> None:
        self.logs.assert_no_failures(self)

    def connect(self, **kwargs: Any) -> FakeClient:
        return FakeClient(self.factory, **kwargs)

    def client(self, name: str) -> FakeClient:
        """A registered client, its welcome and history already read."""
        c = self.connect()
        [welcome, _] = c.hello(name)
        self.assertEqual(welcome["type"], "welcome")
        return c

    def clients(self, *names: str) -> List[FakeClient]:
        clients = [self.client(name) for name in names]
        for c in clients:
            c.received()
        return clients

    def assertError(self, messages: List[Dict[str, Any]], code: str, fatal: bool) -> None:
        """C{messages} is exactly one error C{code}."""
        self.assertEqual(len(messages), 1, messages)
        [m] = messages
        self.assertEqual((m["type"], m["code"], m["fatal"]), ("error", code, fatal), m)
        self.assertIsInstance(m["text"], str)
        self.assertTrue(m["text"])
        self.assertEqual(set(m), {"type", "code", "text", "fatal"})

    def assertFatal(self, client: FakeClient, code: str) -> None:
        """The client got exactly the fatal error C{code} and is being closed."""
        self.assertError(client.received(), code, True)
        self.assertTrue(client.closed)
        self.assertTrue(client.protocol.closing)

    def assertLeft(self, client: FakeClient, name: str, reason: str) -> Dict[str, Any]:
        [left] = client.received()
        self.assertEqual((left["type"], left["name"], left["reason"]), ("left", name, reason))
        return left
