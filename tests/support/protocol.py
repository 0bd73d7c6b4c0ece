# -*- test-case-name: tests.test_support -*-
"""
A chat server in memory, for the protocol's unit tests: a
L{ChatFactory} on a L{Clock} (L{make_factory}) and fake clients over a
L{RecordingTransport} (L{FakeClient}) that decode what they get.

    factory = make_factory(clock)               # ChatFactory + MemoryChat on a Clock
    alice = FakeClient(factory)                 # connected, nothing sent yet
    alice.send({"type": "hello", "name": "alice"})
    [welcome, history] = alice.received()       # decoded messages, in order
    alice.send_raw(raw_frame(b""))              # any bytes, even bad frames
    alice.lose()                                # the peer closes its socket

No network, no real reactor: time is a L{Clock}, transports are in memory.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.chat.memory import MemoryChat
from chatsvc.server.factory import ChatFactory, ServerConfig
from chatsvc.server.turns import end_of_turn

from .fakes import LogCapture, RecordingTransport
from .wire import decode_frames, frame, v1_view

LOOPBACK = "127.0.0.1"


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
