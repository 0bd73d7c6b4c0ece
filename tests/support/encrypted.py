# -*- test-case-name: tests.test_encryption -*-
"""
The encrypting wrapper in memory: an L{EncryptingFactory} in front of a
chat on a L{Clock}, with transports that record aborts and pauses.

    h = EncryptionHarness()                         # the demo PSK of the tests: bytes(range(32))
    proto, transport = h.connect_raw()              # raw bytes in, raw bytes out
    proto, transport, session = h.connect_encrypted_raw()   # handshake done
    client, c, s, pump = h.connect(hello={"type": "hello", "name": "a"})  # over iosim
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.test import iosim

from chatsvc.chat.memory import Room
from chatsvc.server.encryption import EncryptingFactory
from chatsvc.server.factory import ChatFactory, ServerConfig
from chatsvc.wire.records import HandshakeComplete, RecordSession

from .frameclient import FrameClient
from .wire import frame

PSK = bytes(range(32))
"""The key of the in-memory encryption tests."""


class ServerTransport(StringTransport):
    """A StringTransport that records aborts and pauses, like a TCP one."""

    aborted = False
    reading_paused = False

    def abortConnection(self) -> None:
        self.aborted = True
        self.disconnecting = True

    def pauseProducing(self) -> None:
        self.reading_paused = True


class DirectTransport(ServerTransport):
    """
    A L{ServerTransport} that looks like Twisted's TCP transport to
    L{chatsvc.server.fastwrite}: what is sent at once is counted.
    """

    dataBuffer = b""
    _tempDataLen = 0
    connected = True

    def __init__(self) -> None:
        ServerTransport.__init__(self)
        self.socket = self
        self.direct = 0

    def send(self, data: bytes) -> int:
        self.direct += 1
        self.io.write(bytes(data))
        return len(data)


class EncryptionHarness:
    """
    A chat (L{ChatFactory} on a L{Clock}) behind an L{EncryptingFactory}:
    server protocols on a L{ServerTransport} for raw bytes, or a
    L{FrameClient} in its own initiating wrapper over iosim.
    """

    def __init__(self, psk: Optional[bytes] = PSK, require: bool = False, **config: Any) -> None:
        self.clock = Clock()
        self.room = Room(self.clock)
        self.chat = ChatFactory(self.room, ServerConfig(**config), self.clock)
        self.server = EncryptingFactory(self.chat, psk, require_encryption=require, clock=self.clock)

    def connect_raw(self) -> tuple:
        """A server protocol on a StringTransport, for raw bytes."""
        proto = self.server.buildProtocol(None)
        transport = ServerTransport()
        proto.makeConnection(transport)
        return proto, transport

    def connect_encrypted_raw(self) -> tuple:
        """
        A server protocol on a StringTransport, its handshake done by a bare
        L{RecordSession} (returned), the transport cleared.
        """
        proto, transport = self.connect_raw()
        session = RecordSession(PSK, initiator=True)
        proto.dataReceived(session.initiate())
        session.receive_data(transport.value())
        events = list(session.events())
        if [type(e) for e in events] != [HandshakeComplete]:
            raise AssertionError(f"handshake did not complete: {events}")
        transport.clear()
        return proto, transport, session

    def registered_encrypted_raw(self, name: str) -> tuple:
        """L{connect_encrypted_raw}, then registered as C{name}: welcome and
        history read, the transport cleared."""
        proto, transport, session = self.connect_encrypted_raw()
        proto.dataReceived(session.send(frame({"type": "hello", "name": name})))
        self.clock.advance(0)
        session.receive_data(transport.value())  # welcome and history
        list(session.events())
        transport.clear()
        return proto, transport, session

    def connect(self, psk: Optional[bytes] = PSK, hello: Optional[dict] = None,
                encrypted: bool = True) -> tuple:
        """A real client wrapped in its own EncryptingProtocol, over iosim."""
        client = FrameClient(greeting=hello)
        if encrypted:
            client_factory = EncryptingFactory(Factory.forProtocol(lambda: client), psk,
                                               initiator=True, clock=self.clock)
            client_side = lambda: client_factory.buildProtocol(None)  # noqa: E731
        else:
            client_side = lambda: client  # noqa: E731
        c, s, pump = iosim.connectedServerAndClient(
            lambda: self.server.buildProtocol(None), client_side, clock=self.clock
        )
        return client, c, s, pump
