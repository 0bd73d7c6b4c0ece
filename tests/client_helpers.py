"""
Fakes for the client tests (tests/test_client*.py): a L{ChatClient} on a
L{Clock}, a fake endpoint whose connections the test accepts or refuses,
and the server's end of each connection over a L{StringTransport}::

    h = Harness()                       # ChatClient "alice", one FakeEndpoint
    server = h.connect()                # start, accept, welcome, history
    h.type("hello")                     # typed lines
    server.received()                   # [{"type": "say", "text": "hello"}]
    server.send(public(1, "hi"))        # a message from the server
    h.output.lines()                    # ["bob: hi"]
"""

from __future__ import annotations

import struct
from typing import Any, List, Optional, Tuple

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from chatsvc.client import ChatClient, RoundRobinEndpoint
from chatsvc.client.view import LineView
from chatsvc.wire.framing import FrameDecoder, encode_frame
from chatsvc.wire.messages import decode, encode


def frame(body: bytes) -> bytes:
    """A frame with a literal body: what the tests expect on the wire."""
    return struct.pack(">I", len(body)) + body


def welcome(name: str = "alice", resume: str = "tok1", **extra: Any) -> dict:
    message = {"type": "welcome", "name": name, "id": "1", "users": [name],
               "encrypted": False, "resume": resume}
    message.update(extra)
    return message


def public(seq: int, text: str = "hi", sender: str = "bob") -> dict:
    return {"type": "message", "from": sender, "text": text, "ts": "2026-11-22T02:50:00.123Z", "seq": seq}


def texts(reaction: Any) -> List[str]:
    """The texts of a L{chatsvc.client.session.Reaction}'s rows (or of a list of rows)."""
    lines = reaction if isinstance(reaction, list) else reaction.lines
    return [line.text for line in lines]


class FakeOutput:
    """Collects what the client writes for its user."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def lines(self) -> List[str]:
        """The complete lines written since the last call."""
        done, _, rest = self.text.rpartition("\n")
        self.text = rest
        return done.split("\n") if done else []


class ServerEnd:
    """The server's view of one fake connection."""

    def __init__(self, protocol: Any, transport: StringTransport) -> None:
        self.protocol = protocol
        self.transport = transport

    def raw(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data

    def received(self) -> List[dict]:
        decoder = FrameDecoder()
        decoder.receive_data(self.raw())
        return [decode(body) for body in decoder.frames()]

    def send(self, message: dict, bytewise: bool = False) -> None:
        data = encode_frame(encode(message))
        if bytewise:
            for i in range(len(data)):
                self.protocol.dataReceived(data[i : i + 1])
        else:
            self.protocol.dataReceived(data)

    def close(self, reason: Optional[BaseException] = None) -> None:
        self.protocol.connectionLost(Failure(reason or ConnectionDone()))


@implementer(IStreamClientEndpoint)
class FakeEndpoint:
    """Connections that the test accepts or refuses, one at a time."""

    def __init__(self) -> None:
        self.pending: List[Tuple[Any, Deferred]] = []
        self.cancelled = 0

    def _cancel(self, d: Deferred) -> None:
        self.cancelled += 1
        d.errback(CancelledError())

    def connect(self, factory: Any) -> Deferred:
        d: Deferred = Deferred(self._cancel)
        self.pending.append((factory, d))
        return d

    def accept(self) -> ServerEnd:
        factory, d = self.pending.pop(0)
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        transport.encrypted = getattr(factory, "encrypting", False)
        protocol.makeConnection(transport)
        d.callback(protocol)
        return ServerEnd(protocol, transport)

    def refuse(self) -> None:
        factory, d = self.pending.pop(0)
        d.errback(ConnectionRefusedError())


class FakeEncryptingFactory:
    """Stands in for EncryptingFactory: its transports say encrypted."""

    encrypting = True

    def __init__(self, wrapped: Any, psk: bytes, clock: Any) -> None:
        self.wrapped = wrapped
        self.psk = psk

    def buildProtocol(self, addr: Any) -> Any:
        return self.wrapped.buildProtocol(addr)


class FakeProducer:
    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        pass


class Harness:
    """A ChatClient on a Clock, a fake endpoint and a fake output."""

    def __init__(self, name: Optional[str] = "alice", endpoints: int = 1, view: Any = None,
                 **kwargs: Any) -> None:
        self.clock = Clock()
        self.fakes = [FakeEndpoint() for _ in range(endpoints)]
        self.endpoint = RoundRobinEndpoint(
            [(f"server:{i + 1}", fake) for i, fake in enumerate(self.fakes)]
        )
        self.output = FakeOutput()
        self.errors: List[str] = []
        kwargs.setdefault("retry_policy", lambda attempt: 1.0)
        self.view = view if view is not None else LineView(self.output, timestamps=False)
        self.client = ChatClient(
            self.clock, self.endpoint, self.view, name=name,
            errors=self.errors.append, **kwargs,
        )
        self.results: List[int] = []
        self.client.done.addCallback(self.results.append)

    @property
    def fake(self) -> FakeEndpoint:
        return self.fakes[0]

    def connect(self, **welcome_extra: Any) -> ServerEnd:
        """Start, accept the connection, welcome; return the server end."""
        self.client.start()
        server = self.fake.accept()
        server.received()
        server.send(welcome(**welcome_extra))
        server.send({"type": "history", "messages": [], "complete": True})
        return server

    def type(self, *lines: str) -> None:
        for line in lines:
            self.client.line_received(line)
