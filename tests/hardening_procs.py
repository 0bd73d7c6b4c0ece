"""
Helpers for the hardening tests that drive a real C{twistd chat} process
over raw sockets, the way irctest drives an IRC server: the server is
L{tests.procs.ChatServer} (a child process, killed in cleanup), the clients
are L{RawClient}s in the test's own reactor, speaking the wire protocol
byte for byte, plaintext or encrypted, so a test can send anything at all.

    server = yield start_server(self, "--psk", DEMO_KEY, "--allow-plaintext")
    alice = yield connect(server.port, psk=PSK)        # handshake done
    yield alice.hello("alice")                          # welcome + history
    alice.say("hi")
    yield alice.wait_for(lambda m: m.get("text") == "hi")

Every wait is a Deferred with a deadline; nothing sleeps. A failing test
shows the server's log (L{shows_server_log}).
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any, Callable, Dict, List, Optional

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from chatsvc.keys import load_key
from chatsvc.wire.errors import RemoteProtocolError
from chatsvc.wire.framing import FrameDecoder, encode_frame
from chatsvc.wire.messages import decode_from_server, encode
from chatsvc.wire.records import DataReceived, HandshakeComplete, PlaintextFrame, RecordSession

from .procs import DEMO_KEY, ChatServer, deadline

PSK = load_key(DEMO_KEY)
WAIT = 20.0
"""Default deadline of a wait, in seconds (generous: CI machines are busy)."""

# The full sizes (1,000 clients, 1,000 connect cycles) by default, as
# CI runs them; CHATSVC_QUICK_TESTS=1 shrinks them for a fast local loop.
SLOW = not os.environ.get("CHATSVC_QUICK_TESTS")
"""Run the heavy tests at full size (1,000 clients, 1,000-cycle storms)."""


def pause(seconds: float) -> defer.Deferred:
    """A Deferred that fires after C{seconds} (real time; for real processes)."""
    d: defer.Deferred = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


class RawClient(Protocol):
    """
    A wire-level client: frames in, messages out.

    @ivar messages: every message received, in order.
    @ivar session: the L{RecordSession} in encrypted mode, else C{None}.
    @ivar records: every raw frame (record) received, in encrypted mode.
    @ivar received_bytes: bytes received from the socket so far.
    @ivar lost: fires with the C{connectionLost} reason's exception.
    @ivar record_error: the L{RemoteProtocolError} of a bad record from the
        server, if any (there should never be one).
    """

    def __init__(self, psk: Optional[bytes] = None, label: str = "client") -> None:
        self.label = label
        self.session = RecordSession(psk, initiator=True) if psk else None
        self.decoder = FrameDecoder()
        self._raw = FrameDecoder()
        self.records: List[bytes] = []
        self.messages: List[Dict[str, Any]] = []
        self.received_bytes = 0
        self.bad_frames: List[bytes] = []
        self.record_error: Optional[RemoteProtocolError] = None
        self._waiters: List[Any] = []
        self.handshaken: defer.Deferred = defer.Deferred()
        self.lost: defer.Deferred = defer.Deferred()
        self.lost_reason: Optional[Failure] = None
        self.lost_at: Optional[float] = None
        self.connected = False
        self.name: Optional[str] = None
        self.first_message1: Optional[bytes] = None

    # -- connection ---------------------------------------------------------

    def connectionMade(self) -> None:
        self.connected = True
        if self.session is not None:
            self.first_message1 = self.session.initiate()
            self.transport.write(self.first_message1)
        else:
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
        session = self.session
        if session is None:
            self._inner(data)
            return
        self._raw.receive_data(data)
        for body in self._raw.frames():
            self.records.append(body)
        session.receive_data(data)
        try:
            for event in session.events():
                if isinstance(event, HandshakeComplete):
                    self.handshaken.callback(self)
                elif isinstance(event, DataReceived):
                    self._inner(event.data)
                elif isinstance(event, PlaintextFrame):
                    self._inner(encode_frame(event.body))
        except RemoteProtocolError as e:
            self.record_error = e
            self.transport.abortConnection()

    def _inner(self, data: bytes) -> None:
        self.decoder.receive_data(data)
        for body in self.decoder.frames():
            try:
                message = decode_from_server(body)
            except RemoteProtocolError:
                self.bad_frames.append(body)
                continue
            self.messages.append(message)
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
        if self.session is not None:
            self.transport.write(self.session.send(frame))
        else:
            self.transport.write(frame)

    def seal(self, frame: bytes) -> bytes:
        """Return C{frame} as the next data record, without sending it."""
        assert self.session is not None
        return self.session.send(frame)

    def send_raw(self, data: bytes) -> None:
        self.transport.write(data)

    def say(self, text: str) -> None:
        self.send({"type": "say", "text": text})

    def abort(self) -> None:
        if self.connected:
            self.transport.abortConnection()

    # -- waiting -------------------------------------------------------------

    def wait_for(self, predicate: Callable[[Dict[str, Any]], bool], timeout: float = WAIT,
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

    def wait_lost(self, timeout: float = WAIT) -> defer.Deferred:
        """Fire with the exception of the C{connectionLost} reason."""
        if self.lost.called:
            return defer.succeed(self.lost_reason.value)
        d: defer.Deferred = defer.Deferred()
        self.lost.addBoth(lambda r: (d.callback(r) if not d.called else None, r)[1])
        return deadline(d, timeout, f"{self.label} to be disconnected")

    @defer.inlineCallbacks
    def hello(self, name: Optional[str] = None, **members: Any):
        """Register; fire with the welcome once the whole history is in."""
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
        yield self.wait_for(lambda m: m["type"] == "history" and not m.get("more"),
                            since=start, what="history")
        self.name = welcome["name"]
        return welcome

    def of_type(self, kind: str) -> List[Dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def texts(self) -> List[str]:
        return [m["text"] for m in self.messages if m["type"] == "message"]

    def seqs(self) -> List[int]:
        return [m["seq"] for m in self.messages if m["type"] in ("message", "private")]


@defer.inlineCallbacks
def connect(test: Any, port: int, psk: Optional[bytes] = None, label: str = "client",
            handshake: bool = True, timeout: float = WAIT):
    """Connect a L{RawClient} (aborted in cleanup); wait for the handshake."""
    client = RawClient(psk, label)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=timeout)
    yield deadline(connectProtocol(endpoint, client), timeout, f"{label} to connect")
    test.addCleanup(client.abort)
    if handshake:
        yield deadline(client.handshaken, timeout, f"{label}'s handshake")
    return client


@defer.inlineCallbacks
def registered(test: Any, port: int, name: str, psk: Optional[bytes] = None, **members: Any):
    client = yield connect(test, port, psk, label=name)
    yield client.hello(name, **members)
    return client


def start_server(test: Any, *options: str, port: int = 0) -> defer.Deferred:
    """Start C{twistd chat} (killed in cleanup) and remember it for the log."""
    servers = test.__dict__.setdefault("_hardening_servers", [])
    d = ChatServer.start(test, *options, port=port)
    d.addCallback(lambda server: (servers.append(server), server)[1])
    return d


def shows_server_log(method: Callable[..., Any]) -> Callable[..., Any]:
    """
    Run an inlineCallbacks-style test method; if it fails, add the tail of
    every server's log (and its tracebacks) to the failure's message.
    """
    body = defer.inlineCallbacks(method)

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> defer.Deferred:
        def add_log(failure: Failure) -> Failure:
            servers = self.__dict__.get("_hardening_servers", [])
            if not servers:
                return failure
            tails = []
            for i, server in enumerate(servers):
                lines = server.lines + server.err_lines
                tails.append(f"--- server {i} (port {server.port}), last 60 of {len(lines)} lines ---")
                tails.extend(lines[-60:])
            message = f"{failure.getErrorMessage()}\n" + "\n".join(tails)
            error = AssertionError(message)
            error.__cause__ = failure.value
            return Failure(error)

        return body(self, *args, **kwargs).addErrback(add_log)

    return wrapper


# -- the server process, seen from outside ----------------------------------------


def pid_of(server: ChatServer) -> int:
    return server.transport.pid


def rss_kib(pid: int) -> int:
    """Resident memory of C{pid} in KiB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def fd_count(pid: int) -> int:
    """Open file descriptors of C{pid} (Linux /proc)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of C{pid} so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def tracebacks(server: ChatServer) -> List[str]:
    return server.tracebacks()


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


@defer.inlineCallbacks
def gather(deferreds: List[defer.Deferred]):
    """Wait for all; fail with the first failure."""
    results = yield defer.gatherResults(deferreds, consumeErrors=True).addErrback(
        lambda f: f.value.subFailure if hasattr(f.value, "subFailure") else f)
    return results
