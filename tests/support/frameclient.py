# -*- test-case-name: tests.test_support -*-
"""
The one frame client of the tests: a wire-level client over any transport
(raw TCP to a real server process, or iosim), plaintext or encrypted, so a
test can send anything at all, byte for byte, the way irctest drives an IRC
server.

    server = yield start_server(self, "--psk", DEMO_KEY, "--allow-plaintext")
    alice = yield connect(self, server.port, psk=PSK)   # handshake done
    yield alice.hello("alice")                           # welcome + every room's history
    alice.say("hi")
    yield alice.wait_for(lambda m: m.get("text") == "hi")

Every wait is a Deferred with a deadline; nothing sleeps.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from chatsvc.keys import load_key
from chatsvc.wire.errors import RemoteProtocolError
from chatsvc.wire.framing import encode_frame
from chatsvc.wire.messages import encode

from .processes import DEMO_KEY
from .waiting import deadline
from .wire import ClientWire

PSK = load_key(DEMO_KEY)
"""The demo key (keys/demo.key), which the servers of the tests use."""
LOOPBACK = "127.0.0.1"
WAIT = 20.0
"""Default deadline of a wait, in seconds (generous: CI machines are busy)."""

Predicate = Callable[[Dict[str, Any]], bool]


class FrameClient(Protocol):
    """
    A wire-level client: frames in, messages out (through L{ClientWire}).

    @ivar messages: every message received, in order.
    @ivar wire: the L{ClientWire}: its C{session} in encrypted mode, the
        C{records} (raw frames) received, the C{bad_frames}.
    @ivar received_bytes: bytes received from the socket so far.
    @ivar lost: fires with the C{connectionLost} reason's exception.
    @ivar lost_reason: that reason, once the connection is lost.
    @ivar record_error: the L{RemoteProtocolError} of a bad record from the
        server, if any (there should never be one).
    @ivar greeting: a message sent as soon as the connection (and the
        handshake) is made, if any.
    """

    def __init__(self, psk: Optional[bytes] = None, label: str = "client",
                 greeting: Optional[Dict[str, Any]] = None) -> None:
        self.label = label
        self.wire = ClientWire(psk)
        self.greeting = greeting
        self.messages: List[Dict[str, Any]] = []
        self.received_bytes = 0
        self.record_error: Optional[RemoteProtocolError] = None
        self._waiters: List[Any] = []
        self._listeners: List[Callable[[Dict[str, Any]], None]] = []
        self.handshaken: defer.Deferred = defer.Deferred()
        self.lost: defer.Deferred = defer.Deferred()
        self.lost_reason: Optional[Failure] = None
        self.lost_at: Optional[float] = None
        self.connected = False
        self.name: Optional[str] = None
        self.first_message1: Optional[bytes] = None

    # -- what the wire kept ----------------------------------------------------

    @property
    def session(self) -> Any:
        return self.wire.session

    @property
    def records(self) -> List[bytes]:
        return self.wire.records

    @property
    def bad_frames(self) -> List[bytes]:
        return self.wire.bad_frames

    # -- connection ---------------------------------------------------------

    def connectionMade(self) -> None:
        self.connected = True
        if self.wire.session is not None:
            self.first_message1 = self.wire.initiate()
            self.transport.write(self.first_message1)
        else:
            self._handshake_done()

    def _handshake_done(self) -> None:
        if self.greeting is not None:
            self.send(self.greeting)
        self.handshaken.callback(self)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.connected = False
        self.lost_reason = reason
        self.lost_at = time.monotonic()
        for _, d in self._waiters:
            if not d.called:
                d.errback(AssertionError(
                    f"{self.label}: connection lost ({reason.getErrorMessage()}) while waiting; "
                    f"last messages: {self.messages[-5:]}"))
        self._waiters = []
        if not self.handshaken.called:
            self.handshaken.errback(AssertionError(
                f"{self.label}: connection lost before the handshake: {self.messages[-3:]}"))
        self.lost.callback(reason.value)

    def dataReceived(self, data: bytes) -> None:
        self.received_bytes += len(data)
        try:
            messages = self.wire.receive(data)
        except RemoteProtocolError as e:
            self.record_error = e
            self.transport.abortConnection()
            return
        if self.wire.handshake_completed and not self.handshaken.called:
            self._handshake_done()
        pending = self.wire.pending()
        if pending:
            self.transport.write(pending)
        for message in messages:
            self._received(message)

    def listen(self, listener: Callable[[Dict[str, Any]], None]) -> None:
        """Call C{listener} with every message received from now on."""
        self._listeners.append(listener)

    def _received(self, message: Dict[str, Any]) -> None:
        self.messages.append(message)
        for listener in list(self._listeners):
            listener(message)
        for waiter in list(self._waiters):
            predicate, d = waiter
            if predicate(message):
                self._waiters.remove(waiter)
                d.callback(message)

    # -- sending ------------------------------------------------------------

    def send(self, message: Dict[str, Any]) -> None:
        self.send_frame(encode_frame(encode(message)))

    def send_frame(self, frame: bytes) -> None:
        """Send one inner frame (encrypted in encrypted mode)."""
        self.transport.write(self.wire.seal(frame))

    def seal(self, frame: bytes) -> bytes:
        """Return C{frame} as the next data record, without sending it."""
        assert self.wire.session is not None
        return self.wire.session.send(frame)

    def send_raw(self, data: bytes) -> None:
        self.transport.write(data)

    def say(self, text: str, room: Optional[str] = None) -> None:
        message = {"type": "say", "text": text}
        if room is not None:
            message["room"] = room
        self.send(message)

    def abort(self) -> None:
        if self.connected:
            self.transport.abortConnection()

    close = abort

    # -- waiting -------------------------------------------------------------

    def wait_for(self, predicate: Predicate, timeout: float = WAIT,
                 since: int = 0, what: str = "") -> defer.Deferred:
        """Fire with the first message from index C{since} on that matches."""
        for message in self.messages[since:]:
            if predicate(message):
                return defer.succeed(message)
        d: defer.Deferred = defer.Deferred()
        if not self.connected:
            return defer.fail(AssertionError(f"{self.label}: not connected ({what})"))
        self._waiters.append((predicate, d))
        return deadline(d, timeout, f"{self.label}: {what or 'a message'}; last: {self.messages[-3:]}")

    def wait_next(self, predicate: Predicate, timeout: float = WAIT,
                  what: str = "") -> defer.Deferred:
        """Fire with the first message from now on that matches."""
        return self.wait_for(predicate, timeout, since=len(self.messages), what=what)

    def wait_text(self, text: str, timeout: float = WAIT) -> defer.Deferred:
        """Fire with the first message (from the start) whose C{text} is C{text}."""
        return self.wait_for(lambda m: m.get("text") == text, timeout, what=repr(text))

    def wait_lost(self, timeout: float = WAIT) -> defer.Deferred:
        """Fire with the exception of the C{connectionLost} reason."""
        if self.lost.called:
            return defer.succeed(self.lost_reason.value)
        d: defer.Deferred = defer.Deferred()
        self.lost.addBoth(lambda r: (d.callback(r) if not d.called else None, r)[1])
        return deadline(d, timeout, f"{self.label} to be disconnected")

    @defer.inlineCallbacks
    def hello(self, name: Optional[str] = None, **members: Any):
        """Register; fire with the C{welcome} once every room's history is in
        (fail on an error)."""
        start = len(self.messages)
        message: Dict[str, Any] = {"type": "hello"}
        if name is not None:
            message["name"] = name
        message.update(members)
        self.send(message)
        welcome = yield self.wait_for(lambda m: m["type"] in ("welcome", "error"),
                                      since=start, what="welcome")
        if welcome["type"] == "error":
            raise AssertionError(f"{self.label}: hello refused: {welcome}")
        rooms = welcome.get("rooms", [None])  # a version 1 server names none
        if rooms:
            last = rooms[-1]
            yield self.wait_for(lambda m: m["type"] == "history" and not m.get("more")
                                and m.get("room") == last, since=start, what="history")
        self.name = welcome["name"]
        return welcome

    # -- reading -------------------------------------------------------------

    def of_type(self, *kinds: str) -> List[Dict[str, Any]]:
        return [m for m in self.messages if m["type"] in kinds]

    def texts(self) -> List[str]:
        return [m["text"] for m in self.messages if m["type"] == "message"]

    def seqs(self) -> List[int]:
        return [m["seq"] for m in self.messages if m["type"] in ("message", "private")]

    def history(self, room: str) -> Dict[str, Any]:
        """The last complete C{history} of C{room} (its parts joined)."""
        parts: List[Dict[str, Any]] = []
        for m in self.messages:
            if m["type"] == "history" and m.get("room") == room:
                if parts and not parts[-1].get("more"):
                    parts = []
                parts.append(m)
        if not parts:
            raise AssertionError(f"no history of {room}")
        return {"room": room, "complete": parts[-1]["complete"],
                "messages": [h for p in parts for h in p["messages"]]}


@defer.inlineCallbacks
def connect(test: Any, port: int, psk: Optional[bytes] = None, label: str = "client",
            handshake: bool = True, timeout: float = WAIT, host: str = LOOPBACK,
            endpoint: Any = None):
    """
    Connect a L{FrameClient} (aborted in cleanup) to C{port} on C{host}, or
    through C{endpoint} (a TLS one, say); wait for the handshake.
    """
    client = FrameClient(psk, label)
    if endpoint is None:
        endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=timeout)
    yield deadline(connectProtocol(endpoint, client), timeout, f"{label} to connect")
    test.addCleanup(client.abort)
    if handshake:
        yield deadline(client.handshaken, timeout, f"{label}'s handshake")
    return client


@defer.inlineCallbacks
def registered(test: Any, port: int, name: str, psk: Optional[bytes] = None,
               endpoint: Any = None, **members: Any):
    """A connected client, registered as C{name} (its history read); C{members}
    go in its C{hello}."""
    client = yield connect(test, port, psk, label=name, endpoint=endpoint)
    yield client.hello(name, **members)
    return client


@defer.inlineCallbacks
def sanity_check(test: Any, port: int, tag: str, psk: Optional[bytes] = None):
    """
    A fresh client connects, registers, says something and gets it back,
    then quits: the server is serving.
    """
    client = yield registered(test, port, f"sanity_{tag}"[:32], psk)
    text = f"sanity {tag}"
    client.say(text)
    yield client.wait_for(lambda m: m.get("text") == text, what=f"sanity echo {tag}")
    client.send({"type": "quit"})
    yield client.wait_lost()
    return client
