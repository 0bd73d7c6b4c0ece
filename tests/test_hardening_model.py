"""
A stateful model test (issue #3, part 2): a Hypothesis
C{RuleBasedStateMachine} drives several in-memory clients (plaintext and
encrypted) against the real server stack (L{EncryptingFactory} around
L{ChatFactory}, a real L{MessageLog}) over L{twisted.test.iosim}
transports with flow control, and after every step checks:

  - the message log holds every accepted message exactly once, each room's
    (and the private messages') C{seq} counting from 1 in order;
  - for every room (clients join, part, set topics, say in rooms and in
    the default room, and say hello with rooms, since and epochs), every
    registered client that reads got every public message of the room
    accepted while it was in it exactly once, in C{seq} order, and none
    of a room it was not in (one that stalls or was dropped got a prefix);
    no history holds a message from after its membership;
  - private messages reach their recipient and sender exactly once;
  - no client sees a traceback, nothing is logged as a failure, and every
    close the server starts is explained by a fatal error (unless the
    client itself sent a record that failed to decrypt, or had stopped
    reading, as PROTOCOL.md 3.2 and 4.6 allow);
  - registered names are unique under the same-name rule.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Tuple

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.test.iosim import FakeTransport
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.server.encryption import EncryptingFactory
from chatsvc.server.msglog import MessageLog
from chatsvc.chat.memory import MemoryChat
from chatsvc.server.factory import ChatFactory, ServerConfig
from chatsvc.wire.errors import RemoteProtocolError
from chatsvc.wire.framing import FrameDecoder, encode_frame
from chatsvc.wire.messages import decode_from_server, encode
from chatsvc.wire.names import name_key
from chatsvc.wire.rooms import room_key
from chatsvc.wire.records import DataReceived, HandshakeComplete, PlaintextFrame, RecordSession

from . import hypothesis_profile  # noqa: F401

PSK = bytes(range(32))
IDX = st.integers(0, 1000)
ROOMS = st.sampled_from(["#lobby", "#a", "#A", "#b", "#c", "bad", 5])
TRANSPORT_BUFFER = 1024
"""Bytes a server transport holds before it pauses its producer (the
send queue); small, so that stalls reach the queue limits quickly."""


class RecordingRoom(MemoryChat):
    """
    The real chat, noting what it accepted and, for every member and room,
    the spans of the room's C{seq} while the member was in it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        MemoryChat.__init__(self, *args, **kwargs)
        self.accepted: List[Tuple[str, Optional[str], int, str, Optional[str], str]] = []
        self.registered: set = set()
        self.spans: Dict[Tuple[Any, str], List[List[Optional[int]]]] = {}
        self.private_ends: Dict[int, Tuple[Any, Any]] = {}

    def register(self, member: Any, *args: Any, **kwargs: Any) -> str:
        name = MemoryChat.register(self, member, *args, **kwargs)
        self.registered.add(member)
        return name

    def _enter(self, member: Any, room: Any, announce: bool) -> None:
        spans = self.spans.setdefault((member, room.key), [])
        if not spans or spans[-1][1] is not None:
            spans.append([room.seq, None])
        MemoryChat._enter(self, member, room, announce)

    def _end(self, member: Any, rooms: Any) -> None:
        for room in rooms:
            spans = self.spans.get((member, room.key))
            if spans and spans[-1][1] is None:
                spans[-1][1] = room.seq

    def _replace(self, old: Any, new: Any) -> None:
        self._end(old, list(self._rooms_of.get(old, ())))
        MemoryChat._replace(self, old, new)

    def leave(self, member: Any, reason: str, text: Optional[str] = None) -> None:
        self._end(member, list(self._rooms_of.get(member, ())))
        MemoryChat.leave(self, member, reason, text)

    def part(self, member: Any, room: object, reason: Optional[str] = None) -> None:
        before = list(self._rooms_of.get(member, ()))
        MemoryChat.part(self, member, room, reason)
        self._end(member, [r for r in before if r not in self._rooms_of.get(member, ())])

    def say(self, member: Any, room: object, text: str, action: bool = False) -> int:
        seq = MemoryChat.say(self, member, room, text, action)
        target = self.room(room or self.default_room)
        self.accepted.append(("message", target.key, seq, member.name, None, text))
        return seq

    def private(self, member: Any, to: object, text: str, action: bool = False) -> int:
        seq = MemoryChat.private(self, member, to, text, action)
        target = self.find(to)
        self.accepted.append(("private", None, seq, member.name, target.name, text))
        self.private_ends[seq] = (member, target)
        return seq

    def seq_of(self, key: str) -> int:
        room = self.rooms.get(key)
        return room.seq if room is not None else 0


class FlowTransport(FakeTransport):
    """
    An iosim transport with flow control in both directions: it pauses its
    streaming producer once C{TRANSPORT_BUFFER} bytes wait for the peer,
    and honours C{pauseProducing} (stop reading) from its protocol.
    """

    reading = True
    aborted = False

    def write(self, data: bytes) -> None:
        if self.disconnecting:
            return
        self.stream.append(data)
        if (self.producer is not None and self.streamingProducer
                and sum(map(len, self.stream)) > TRANSPORT_BUFFER):
            self.producer.pauseProducing()

    def drained(self) -> None:
        if self.producer is not None and self.streamingProducer and not self.disconnecting:
            self.producer.resumeProducing()

    def pauseProducing(self) -> None:
        self.reading = False

    def resumeProducing(self) -> None:
        self.reading = True

    def abortConnection(self) -> None:
        self.aborted = True
        self.stream = []  # a reset drops what was not yet sent
        self.disconnecting = True


class ModelClient(Protocol):
    """The client side: bytes in, messages out."""

    def __init__(self, conn: "Conn") -> None:
        self.conn = conn

    def dataReceived(self, data: bytes) -> None:
        self.conn.client_bytes(data)


class Conn:
    """One connection: its two transports and what the client saw."""

    counter = 0

    def __init__(self, wrapper: EncryptingFactory, encrypted: bool) -> None:
        Conn.counter += 1
        self.label = f"c{Conn.counter}"
        peer = IPv4Address("TCP", "127.0.0.1", 40000 + Conn.counter)
        self.server = wrapper.buildProtocol(peer)
        self.client = ModelClient(self)
        self.server_io = FlowTransport(self.server, isServer=True, peerAddress=peer)
        self.client_io = FakeTransport(self.client, isServer=False)
        self.encrypted = encrypted
        self.session = RecordSession(PSK, initiator=True) if encrypted else None
        self.decoder = FrameDecoder()
        self.messages: List[Dict[str, Any]] = []
        self.pending: List[bytes] = []  # inner frames waiting for the handshake
        self.stalled = False
        self.open = True
        self.closed_by_server = False
        self.silent_close_ok = False  # we sent a record that must fail to decrypt
        self.stalled_at_close = False
        self.quit_sent = False
        self.server.makeConnection(self.server_io)
        self.chat = self.server.wrappedProtocol  # the wrapper forgets it when closed
        self.client.makeConnection(self.client_io)
        if self.session is not None:
            self.client_io.write(self.session.initiate())


    # client side

    def client_bytes(self, data: bytes) -> None:
        if self.session is None:
            self.inner(data)
            return
        self.session.receive_data(data)
        try:
            for event in self.session.events():
                if isinstance(event, HandshakeComplete):
                    frames, self.pending = self.pending, []
                    for frame in frames:
                        self.send_frame(frame)
                elif isinstance(event, DataReceived):
                    self.inner(event.data)
                elif isinstance(event, PlaintextFrame):
                    self.inner(encode_frame(event.body))
        except RemoteProtocolError as e:
            raise AssertionError(f"{self.label}: the server sent a bad record: {e!r}")

    def inner(self, data: bytes) -> None:
        self.decoder.receive_data(data)
        for body in self.decoder.frames():
            message = decode_from_server(body)  # the server never sends bad JSON
            if message["type"] == "error" and "Traceback" in message.get("text", ""):
                raise AssertionError(f"{self.label} got a traceback: {message}")
            self.messages.append(message)
            if message["type"] == "ping":
                self.send({"type": "pong", "token": message.get("token")})  # as real clients do

    def send_frame(self, frame: bytes) -> None:
        if not self.open:
            return
        if self.session is not None:
            if self.session.state.name != "OPEN":
                self.pending.append(frame)
                return
            frame = self.session.send(frame)
        self.client_io.write(frame)

    def send(self, message: Dict[str, Any]) -> None:
        self.send_frame(encode_frame(encode(message)))

    # pumping

    def pump(self) -> bool:
        moved = False
        if not self.open:
            return False
        if self.server_io.reading and not self.server_io.disconnecting:
            data = self.client_io.getOutBuffer()
            if data:
                self.server.dataReceived(data)
                moved = True
        if not self.stalled:
            data = self.server_io.getOutBuffer()
            if data:
                self.client.dataReceived(data)
                moved = True
            self.server_io.drained()
        if self.server_io.disconnecting and (self.server_io.aborted or not self.server_io.stream):
            self.closed_by_server = not self.client_io.disconnecting
            self.stalled_at_close = self.stalled
            self.close(Failure(ConnectionLost() if self.server_io.aborted else ConnectionDone()))
            moved = True
        return moved

    def close(self, reason: Failure) -> None:
        if not self.open:
            return
        self.open = False
        self.server_io.disconnected = True
        self.client_io.disconnected = True
        self.server.connectionLost(reason)


class ChatMachine(RuleBasedStateMachine):
    """Clients connect, register, talk, misbehave and leave; invariants hold."""

    def live(self, i: int) -> Optional[Conn]:
        """The C{i}th open connection (modulo), or C{None} if none is open."""
        open_ = [c for c in self.all if c.open]
        return open_[i % len(open_)] if open_ else None

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.dir = tempfile.mkdtemp(prefix="chatsvc-model-")
        self.log_path = os.path.join(self.dir, "messages.jsonl")
        self.log = MessageLog(self.log_path)
        self.room = RecordingRoom(self.clock, history_size=4, message_log=self.log)
        self.all: List[Conn] = []
        self.failures: List[Any] = []
        globalLogPublisher.addObserver(self._observe)
        self.texts = 0

    def _observe(self, event: Dict[str, Any]) -> None:
        if "log_failure" in event or event.get("isError"):
            self.failures.append(event)

    def teardown(self) -> None:
        globalLogPublisher.removeObserver(self._observe)
        for conn in self.all:
            conn.close(Failure(ConnectionDone()))
        if hasattr(self, "factory"):
            self.factory.stopFactory()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def pump(self) -> None:
        """Move bytes (and run what is due now) until nothing moves."""
        for _ in range(500):
            self.clock.advance(0)
            moved = False
            for conn in self.all:
                moved = conn.pump() or moved
            if not moved:
                return
        raise AssertionError("the connections never went quiet")

    def text(self, base: str) -> str:
        self.texts += 1
        return f"{base} #{self.texts}"

    # -- rules ------------------------------------------------------------------

    @initialize(n=st.integers(1, 4), encrypted=st.lists(st.booleans(), min_size=4, max_size=4),
                sendq=st.sampled_from([3000, 20000]))
    def some_registered(self, n: int, encrypted: List[bool], sendq: int) -> None:
        """The server (a small or a larger send queue), and a few registered clients."""
        config = ServerConfig(sendq=sendq, sendq_soft=1500, rate_burst=0, stall_timeout=5.0,
                              max_per_ip=0, max_clients=0)
        self.factory = ChatFactory(self.room, config, self.clock)
        self.factory.startFactory()
        self.wrapper = EncryptingFactory(self.factory, PSK, clock=self.clock)
        for i in range(n):
            conn = Conn(self.wrapper, encrypted[i])
            self.all.append(conn)
            conn.send({"type": "hello", "name": f"user{i}"})
            self.pump()

    @precondition(lambda self: sum(c.open for c in self.all) < 7)
    @rule(encrypted=st.booleans())
    def connect(self, encrypted: bool) -> None:
        self.all.append(Conn(self.wrapper, encrypted))
        self.pump()

    @rule(conn=IDX, name=st.sampled_from(["alice", "Alice", "bob", "ß", "SS", "", "a b", None,
                                            "x" * 33]),
          since=st.sampled_from([None, 0, 2, 1000, -1, "x", {"#a": 1, "#lobby": 0}, {"#B": 99}]),
          rooms=st.sampled_from([None, None, [], ["#a"], ["#lobby", "#b"], ["#A", "#a", "#c"],
                                 ["bad"], "#a"]),
          epoch=st.sampled_from([None, "other", "current"]))
    def hello(self, conn: int, name: Optional[str], since: Any, rooms: Any, epoch: Any) -> None:
        conn = self.live(conn)
        if conn is None:
            return
        message: Dict[str, Any] = {"type": "hello"}
        for key, value in (("name", name), ("since", since), ("rooms", rooms)):
            if value is not None:
                message[key] = value
        if epoch is not None:
            message["epoch"] = self.room.epoch if epoch == "current" else epoch
        conn.send(message)
        self.pump()

    @rule(conn=IDX, room=ROOMS)
    def join(self, conn: int, room: Any) -> None:
        conn = self.live(conn)
        if conn is None:
            return
        conn.send({"type": "join", "room": room})
        self.pump()

    @rule(conn=IDX, room=ROOMS, reason=st.sampled_from([None, "bye", "\x1b[2J", 5]))
    def part(self, conn: int, room: Any, reason: Any) -> None:
        conn = self.live(conn)
        if conn is None:
            return
        message: Dict[str, Any] = {"type": "part", "room": room}
        if reason is not None:
            message["reason"] = reason
        conn.send(message)
        self.pump()

    @rule(conn=IDX, room=ROOMS, text=st.sampled_from(["plans", "", "x" * 391, "a\nb", None]))
    def topic(self, conn: int, room: Any, text: Any) -> None:
        conn = self.live(conn)
        if conn is None:
            return
        conn.send({"type": "topic", "room": room, "text": text})
        self.pump()

    @rule(conn=IDX, room=st.sampled_from([None, "#a", "#lobby", "#nowhere", 5]))
    def lists(self, conn: int, room: Any) -> None:
        conn = self.live(conn)
        if conn is None:
            return
        conn.send({"type": "rooms"})
        conn.send({"type": "who"} if room is None else {"type": "who", "room": room})
        self.pump()

    @rule(conn=IDX, base=st.sampled_from(["hi", "hello there", "é" * 10, "x" * 3000]),
          bad=st.sampled_from([None, None, None, "", "\x1b[2J", "\u202e", "x" * 5000, 7]),
          room=st.sampled_from([None, None, "#a", "#b", "#LOBBY", "#c"]),
          action=st.sampled_from([None, None, True, False, 1]))
    def say(self, conn: int, base: str, bad: Any, room: Any, action: Any) -> None:
        conn = self.live(conn)
        if conn is None:
            return
        message: Dict[str, Any] = {"type": "say", "text": self.text(base) if bad is None else bad}
        if room is not None:
            message["room"] = room
        if action is not None:
            message["action"] = action
        conn.send(message)
        self.pump()

    @rule(conn=IDX, to=IDX, base=st.sampled_from(["psst", "ü"]),
          other=st.sampled_from([None, None, "nobody", 5]))
    def msg(self, conn: int, to: int, base: str, other: Any) -> None:
        conn = self.live(conn)
        if conn is None:
            return
        to = self.all[to % len(self.all)]
        target = other if other is not None else (to.chat.name or "nobody")
        conn.send({"type": "msg", "to": target, "text": self.text(base)})
        self.pump()

    @rule(conn=IDX, name=st.sampled_from(["carol", "Carol", "alice", "", "dave.d", "b" * 40]))
    def nick(self, conn: int, name: str) -> None:
        conn = self.live(conn)
        if conn is None:
            return
        conn.send({"type": "nick", "name": name})
        self.pump()

    @rule(conn=IDX, old=st.integers(0, 1000))
    def resume(self, conn: int, old: int) -> None:
        """hello with the resume token of another connection's welcome."""
        conn = self.live(conn)
        if conn is None:
            return
        old = self.all[old % len(self.all)]
        tokens = [m["resume"] for m in old.messages if m["type"] == "welcome"]
        message: Dict[str, Any] = {"type": "hello", "name": "someone"}
        if tokens:
            message["resume"] = tokens[-1]
        conn.send(message)
        self.pump()

    @rule(conn=IDX)
    def who(self, conn: int) -> None:
        conn = self.live(conn)
        if conn is None:
            return
        conn.send({"type": "who"})
        self.pump()

    @rule(conn=IDX, data=st.one_of(
        st.sampled_from([b"\x00\x00\x00\x05{\"ty", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff",
                         b"\x00\x00\x00\x01{"]),
        st.binary(min_size=1, max_size=40)),
        how=st.sampled_from(["body", "body", "body", "body", "stream", "record"]))
    def garbage(self, conn: int, data: bytes, how: str) -> None:
        """
        Garbage: as the body of a frame (mostly), as raw bytes of the inner
        stream (may break the framing), or, encrypted, as a raw record.
        """
        conn = self.live(conn)
        if conn is None:
            return
        opened = conn.session is None or conn.session.state.name == "OPEN"
        if how == "record" and conn.encrypted and opened:
            conn.client_io.write(b"\x00\x00\x00\x13\x02" + data[:18].ljust(18, b"\x00"))
            conn.silent_close_ok = True
        elif how == "stream":
            conn.send_frame(data)
        else:
            conn.send_frame(len(data).to_bytes(4, "big") + data)
        self.pump()

    @rule(a=IDX, b=IDX, base=st.sampled_from(["one", "two", "y" * 2000]),
          room=st.sampled_from([None, "#a", "#b"]))
    def chatter(self, a: int, b: int, base: str, room: Optional[str]) -> None:
        """Two clients say something (the common case, made more common)."""
        for i in (a, b):
            conn = self.live(i)
            if conn is not None:
                message = {"type": "say", "text": self.text(base)}
                if room is not None:
                    message["room"] = room
                conn.send(message)
        self.pump()

    @rule(conn=IDX)
    def stall(self, conn: int) -> None:
        conn = self.live(conn)
        if conn is None:
            return
        conn.stalled = True
        self.pump()

    @rule(conn=IDX)
    def unstall(self, conn: int) -> None:
        conn = self.live(conn)
        if conn is None:
            return
        conn.stalled = False
        self.pump()

    @rule(conn=IDX)
    def quit(self, conn: int) -> None:
        conn = self.live(conn)
        if conn is None:
            return
        conn.quit_sent = True
        conn.send({"type": "quit", "reason": "bye"})
        self.pump()

    @rule(conn=IDX)
    def disconnect(self, conn: int) -> None:
        """The client's socket goes away at once."""
        conn = self.live(conn)
        if conn is None:
            return
        conn.client_io.disconnecting = True
        conn.close(Failure(ConnectionLost()))
        self.pump()

    @rule(seconds=st.sampled_from([0.5, 0.5, 2.0, 2.0, 6.0, 11.0, 61.0, 95.0]))
    def time_passes(self, seconds: float) -> None:
        # In steps, so that the sweeps and stall checks run as they would.
        step = min(seconds, 1.0)
        elapsed = 0.0
        while elapsed < seconds:
            self.clock.advance(step)
            elapsed += step
            self.pump()

    # -- invariants -------------------------------------------------------------

    @invariant()
    def log_holds_every_accepted_message_once(self) -> None:
        with open(self.log_path, "rb") as f:
            lines = [json.loads(line) for line in f if line.strip()]
        got = [(r["type"], room_key(r["room"]) if "room" in r else None, r["seq"], r["from"],
                r.get("to"), r["text"]) for r in lines]
        assert got == self.room.accepted, (got[-3:], self.room.accepted[-3:])
        numbering: Dict[Any, List[int]] = {}
        for kind, key, seq, *_ in got:
            numbering.setdefault(key, []).append(seq)
        for key, seqs in numbering.items():
            assert seqs == list(range(1, len(seqs) + 1)), (key, seqs)

    @invariant()
    def delivery(self) -> None:
        """Per room: members only, exactly once, in seq order; history before joining."""
        public: Dict[str, List[Tuple[int, str]]] = {}
        for kind, key, seq, _, _, text in self.room.accepted:
            if kind == "message":
                public.setdefault(key, []).append((seq, text))
        for conn in self.all:
            member = conn.chat
            live = [(room_key(m["room"]), m["seq"], m["text"]) for m in conn.messages
                    if m["type"] == "message"]
            if member not in self.room.registered:
                assert not live and not [m for m in conn.messages if m["type"] == "private"]
                continue
            whole = conn.open and not conn.stalled and member in self.room
            for key in set(public) | {k for k, _, _ in live}:
                spans = self.room.spans.get((member, key), [])
                expected = [(s, t) for s, t in public.get(key, ())
                            if any(a < s <= (self.room.seq_of(key) if b is None else b)
                                   for a, b in spans)]
                got = [(s, t) for k, s, t in live if k == key]
                if whole:
                    assert got == expected, (conn.label, key, got[-3:], expected[-3:])
                else:
                    assert got == expected[: len(got)], (conn.label, key, "not a prefix")
                history = [m["seq"] for h in conn.messages
                           if h["type"] == "history" and room_key(h["room"]) == key
                           for m in h["messages"]]
                # (A join of a room it is in answers its recent history again.)
                newest = max((self.room.seq_of(key) if b is None else b for _, b in spans),
                             default=0)
                assert all(s <= newest for s in history), \
                    f"{conn.label}: history from the future in {key}"
            privates = [m["seq"] for m in conn.messages if m["type"] == "private"]
            assert len(privates) == len(set(privates)), f"{conn.label}: a private message twice"
            assert privates == sorted(privates)

    @invariant()
    def private_messages_reach_both_ends(self) -> None:
        by_member = {conn.chat: conn for conn in self.all}
        for seq, (sender, target) in self.room.private_ends.items():
            for member in {sender, target}:
                conn = by_member[member]
                got = [m for m in conn.messages if m["type"] == "private" and m["seq"] == seq]
                whole = conn.open and not conn.stalled and member in self.room
                assert len(got) == 1 if whole else len(got) <= 1, (conn.label, seq, got)
            for conn in self.all:
                if conn.chat not in (sender, target):
                    assert not [m for m in conn.messages
                                if m["type"] == "private" and m["seq"] == seq], "leaked"

    @invariant()
    def closes_are_explained(self) -> None:
        for conn in self.all:
            if conn.open or not conn.closed_by_server:
                continue
            if conn.silent_close_ok or conn.stalled_at_close or conn.quit_sent:
                continue
            last = conn.messages[-1] if conn.messages else None
            assert last is not None and last["type"] == "error" and last["fatal"], \
                f"{conn.label}: closed by the server without a fatal error: {conn.messages[-3:]}"

    @invariant()
    def nothing_failed(self) -> None:
        if self.failures:
            failure = self.failures[0].get("log_failure")
            raise AssertionError("the server logged an error: " +
                                 (failure.getTraceback() if failure else repr(self.failures[0])))

    @invariant()
    def names_unique(self) -> None:
        names = self.room.names()
        assert len({name_key(n) for n in names}) == len(names), names
        for conn in self.all:
            if conn.open and conn.chat in self.room:
                assert self.room.find(conn.chat.name) is conn.chat


class ModelTests(SynchronousTestCase):
    def test_model(self) -> None:
        machine = ChatMachine.TestCase
        machine.settings = settings(max_examples=200 if os.environ.get("CHATSVC_QUICK_TESTS")
                                    else 1000, stateful_step_count=50, deadline=None)
        machine("runTest").runTest()
