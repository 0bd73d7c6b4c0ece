# -*- test-case-name: tests.test_protocol -*-
"""
Tests for L{chatsvc.server.protocol}: one L{ChatProtocol} per client on a
L{StringTransport}, time on a L{Clock}: the life of a connection (its
registration, closing, frames it cannot read, timeouts, the log, a chat
that answers later, the socket). The requests are in C{test_requests}, the
limits in C{test_protocol_limits}, version 2 in C{test_protocol_rooms}.
"""

from __future__ import annotations

import json
from typing import Any, List

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from chatsvc.chat.interfaces import IChatMember
from chatsvc.server.protocol import ChatProtocol
from chatsvc.server.sendq import SendQueue
from chatsvc.wire.framing import MAX_FRAME

from . import test_requests
from .helpers import ProtocolTestCase, RecordingTransport, frame, make_factory, only, raw_frame


class ConnectionTests(ProtocolTestCase):
    def test_interface(self) -> None:
        c = self.connect()
        self.assertTrue(verifyObject(IChatMember, c.protocol))
        self.assertIsInstance(c.protocol, ChatProtocol)

    def test_send_queue_registered(self) -> None:
        """The send queue, not the protocol, is the streaming producer."""
        c = self.connect()
        self.assertIsInstance(c.transport.producer, SendQueue)
        self.assertTrue(c.transport.streaming)
        self.assertEqual(c.received_bytes(), b"")

    def test_max_length(self) -> None:
        self.assertEqual(ChatProtocol.MAX_LENGTH, MAX_FRAME)

    def test_connection_counted(self) -> None:
        c = self.connect()
        self.assertIn(c.protocol, self.factory.connections)
        c.lose()
        self.assertNotIn(c.protocol, self.factory.connections)


class QuitTests(ProtocolTestCase):
    def test_quit_with_reason(self) -> None:
        alice, bob = self.clients("alice", "bob")
        alice.send({"type": "quit", "reason": "bye \u00e9"})
        self.assertEqual(bob.received(), [{"type": "left", "name": "alice", "reason": "quit",
                                           "ts": "1970-01-01T00:00:00.000Z", "text": "bye \u00e9"}])
        self.assertEqual(alice.received(), [])
        self.assertTrue(alice.closed)
        self.assertIsNone(alice.transport.producer)
        self.assertEqual(alice.transport.producerState, "paused")
        alice.lose()
        self.assertEqual(bob.received(), [])
        self.assertNotIn(alice.protocol, self.factory.connections)

    def test_quit_reason_left_out(self) -> None:
        for reason in ("\x1b[2J", "", 5, "a" * 5000, "\u202e", ["x"], None):
            alice, bob = self.clients("alice", "bob")
            message = {"type": "quit"}
            if reason is not None:
                message["reason"] = reason
            alice.send(message)
            left = self.assertLeft(bob, "alice", "quit")
            self.assertNotIn("text", left)
            bob.lose()

    def test_quit_reason_too_big_for_a_frame(self) -> None:
        """With a large --max-message, a reason that would not fit is left out."""
        self.factory = make_factory(max_text=65536)
        alice, bob = self.clients("alice", "bob")
        alice.send({"type": "quit", "reason": "r" * (MAX_FRAME - 60)})
        self.assertNotIn("text", self.assertLeft(bob, "alice", "quit"))
        self.assertTrue(alice.closed)

    def test_quit_before_hello(self) -> None:
        c = self.connect()
        c.send({"type": "quit"})
        self.assertError(c.received(), "not-registered", False)

    def test_frames_after_quit_ignored(self) -> None:
        alice, bob = self.clients("alice", "bob")
        alice.send_raw(frame({"type": "quit"}) + frame({"type": "say", "text": "ghost"}))
        alice.send({"type": "say", "text": "ghost"})
        self.assertEqual([m["type"] for m in bob.received()], ["left"])
        self.assertEqual(alice.received(), [])

    def test_abort_if_close_does_not_complete(self) -> None:
        [alice] = self.clients("alice")
        alice.send({"type": "quit"})
        self.clock.advance(4.9)
        self.assertFalse(alice.aborted)
        self.clock.advance(0.1)
        self.assertTrue(alice.aborted)

    def test_no_abort_after_close(self) -> None:
        [alice] = self.clients("alice")
        alice.send({"type": "quit"})
        alice.lose()
        self.clock.advance(10)
        self.assertFalse(alice.aborted)


class DisconnectTests(ProtocolTestCase):
    def test_left_disconnected(self) -> None:
        alice, bob = self.clients("alice", "bob")
        alice.lose(Failure(ConnectionLost("reset")))
        left = self.assertLeft(bob, "alice", "disconnected")
        self.assertEqual(set(left), {"type", "name", "reason", "ts"})
        self.assertIsNone(self.room.find("alice"))
        self.assertNotIn(alice.protocol, self.factory.registered_connections)

    def test_unregistered_leaves_silently(self) -> None:
        [bob] = self.clients("bob")
        self.connect().lose()
        self.assertEqual(bob.received(), [])

    def test_lose_twice(self) -> None:
        alice, bob = self.clients("alice", "bob")
        alice.lose()
        alice.lose()
        self.assertEqual(len(bob.received()), 1)


class FrameErrorTests(ProtocolTestCase):
    def test_empty_frame(self) -> None:
        alice, bob = self.clients("alice", "bob")
        alice.send_raw(raw_frame(b""))
        self.assertFatal(alice, "bad-frame")
        self.assertLeft(bob, "alice", "disconnected")

    def test_empty_frame_before_hello(self) -> None:
        c = self.connect()
        c.send_raw(b"\x00\x00\x00\x00", one_byte_at_a_time=True)
        self.assertFatal(c, "bad-frame")

    def test_frame_too_long(self) -> None:
        alice, bob = self.clients("alice", "bob")
        alice.send_raw(b"\x00\x01\x00\x01", one_byte_at_a_time=True)  # 65,537
        self.assertFatal(alice, "frame-too-long")
        self.assertLeft(bob, "alice", "disconnected")

    def test_huge_frame(self) -> None:
        c = self.connect()
        c.send_raw(b"\xff\xff\xff\xff" + b"x" * 100)
        self.assertFatal(c, "frame-too-long")
        c.send_raw(b"x" * 100)  # still arriving: ignored
        self.assertEqual(c.received(), [])

    def test_stops_reading(self) -> None:
        """Once the server decided to close, it reads nothing more."""
        alice, bob = self.clients("alice", "bob")
        alice.send_raw(raw_frame(b"") + frame({"type": "say", "text": "after"}))
        self.assertEqual(alice.transport.producerState, "paused")
        alice.send({"type": "say", "text": "later"})
        alice.send({"type": "hello"})
        self.assertFatal(alice, "bad-frame")
        self.assertEqual([m["type"] for m in bob.received()], ["left"])

    def test_fatal_then_close(self) -> None:
        """A fatal error is sent, the producer unregistered, the connection closed."""
        c = self.connect()
        c.send_raw(raw_frame(b""))
        self.assertIsNone(c.transport.producer)
        self.assertTrue(c.transport.disconnecting)
        self.assertFalse(c.aborted)
        self.clock.advance(5)
        self.assertTrue(c.aborted)


class TimeoutTests(ProtocolTestCase):
    def test_no_hello(self) -> None:
        c = self.connect()
        self.clock.advance(9.9)
        self.assertEqual(c.received(), [])
        self.clock.advance(0.1)
        self.assertFatal(c, "timeout")

    def test_bad_name_does_not_stop_the_clock(self) -> None:
        c = self.connect()
        c.hello("")
        c.send({"type": "ping"})
        c.received()
        self.clock.advance(10)
        self.assertFatal(c, "timeout")

    def test_hello_in_time(self) -> None:
        [bob] = self.clients("bob")
        c = self.connect()
        self.clock.advance(9)
        c.hello("alice")
        bob.received()
        self.clock.advance(30)
        self.assertEqual(c.received(), [])
        self.assertFalse(c.closed)

    def test_ping_then_timeout(self) -> None:
        alice, bob = self.clients("alice", "bob")
        for _ in range(59):
            self.clock.advance(1)
            bob.send({"type": "pong"})  # bob stays alive
        self.assertEqual(alice.received(), [])
        self.clock.advance(1)
        self.assertEqual(alice.received(), [{"type": "ping", "token": 60000}])
        for _ in range(29):
            self.clock.advance(1)
            bob.send({"type": "pong"})
        self.assertEqual(alice.received(), [])  # one ping only
        self.clock.advance(1)
        self.assertFatal(alice, "timeout")
        self.assertLeft(bob, "alice", "timeout")  # and bob was never pinged

    def test_pong_keeps_alive(self) -> None:
        [alice] = self.clients("alice")
        self.clock.pump([1] * 60)
        [ping] = alice.received()
        self.clock.advance(10)
        alice.send({"type": "pong", "token": ping["token"]})
        self.clock.pump([1] * 50)
        self.assertEqual(alice.received(), [])
        self.clock.pump([1] * 13)  # 60 s after the pong, within a sweep
        self.assertEqual([m["type"] for m in alice.received()], ["ping"])
        self.assertFalse(alice.closed)

    def test_any_frame_is_life(self) -> None:
        alice, bob = self.clients("alice", "bob")
        for _ in range(10):
            self.clock.advance(50)
            alice.send({"type": "say", "text": "alive"})
            bob.send({"type": "who"})
        self.assertEqual(only(alice.received(), "ping"), [])
        self.assertFalse(alice.closed)


class LogTests(ProtocolTestCase):
    def test_bad_input_battery(self) -> None:
        """Nothing a client sends puts a traceback in the server log."""
        bodies = test_requests.BadJsonTests.BODIES + [
            json.dumps(m).encode() for m in (
                {"type": "hello", "name": ["x"]}, {"type": "hello", "since": "x", "resume": {}},
                {"type": "say", "text": {"a": 1}}, {"type": "msg", "to": [1], "text": "x"},
                {"type": "nick", "name": None}, {"type": "quit", "reason": {"x": 1}},
                {"type": "ping", "token": {"deep": [[[[]]]]}}, {"type": "hello"},
                {"type": "hello"}, {"type": "say", "text": "\x00"},
            )
        ]
        inputs = [raw_frame(b) for b in bodies]
        inputs += [raw_frame(b""), b"\xff\xff\xff\xff"]
        for data in inputs:
            c = self.connect()
            c.send_raw(data)
            c.send_raw(data)
            self.clock.advance(100)
            c.lose()
        self.clock.advance(100)
        self.assertEqual(self.logs.failures(), [])
        self.assertTrue(self.logs.events)


class DeferredRoom:
    """
    A room that answers later, as a distributed one would: C{register},
    C{say}, C{private} and C{rename} return Deferreds and are carried out
    by L{release} (or at once, already fired, with C{immediate}).
    """

    def __init__(self, room: Any, immediate: bool = False) -> None:
        self._room = room
        self.immediate = immediate
        self.pending: List[Any] = []

    def _later(self, operation: Any, *args: Any, **kwargs: Any) -> Deferred:
        d: Deferred = Deferred()

        def run() -> None:
            try:
                result = operation(*args, **kwargs)
            except Exception:
                d.errback()
            else:
                d.callback(result)

        if self.immediate:
            run()
        else:
            self.pending.append(run)
        return d

    def release(self) -> int:
        """Carry out every pending operation, in order; return how many."""
        pending, self.pending = self.pending, []
        for run in pending:
            run()
        return len(pending)

    def flush(self) -> None:
        self._room.flush()

    def register(self, member: Any, **kwargs: Any) -> Deferred:
        return self._later(self._room.register, member, **kwargs)

    def say(self, member: Any, room: Any, text: str, action: bool = False) -> Deferred:
        return self._later(self._room.say, member, room, text, action)

    def private(self, member: Any, to: Any, text: str, action: bool = False) -> Deferred:
        return self._later(self._room.private, member, to, text, action)

    def rename(self, member: Any, name: Any) -> Deferred:
        return self._later(self._room.rename, member, name)

    def leave(self, member: Any, reason: str, text: Any = None) -> None:
        self._room.leave(member, reason, text)

    def who_frames(self, room: Any = None) -> List[bytes]:
        return self._room.who_frames(room)

    @property
    def default_room(self) -> str:
        return self._room.default_room

    @property
    def outbox_size(self) -> int:
        return self._room.outbox_size

    def find(self, name: Any) -> Any:
        return self._room.find(name)

    def __contains__(self, member: Any) -> bool:
        return member in self._room

    def __len__(self) -> int:
        return len(self._room)


class DeferredRoomTests(ProtocolTestCase):
    """ChatProtocol with a room that answers with Deferreds."""

    def use(self, immediate: bool) -> DeferredRoom:
        self.deferred_room = DeferredRoom(self.factory.room, immediate)
        self.factory.room = self.deferred_room
        return self.deferred_room

    def test_already_fired(self) -> None:
        """Answers that are already there: every frame is handled once."""
        self.use(immediate=True)
        alice = self.connect()
        bob = self.connect()
        bob.hello("bob")
        alice.send_raw(frame({"type": "hello", "name": "alice"})
                       + frame({"type": "say", "text": "one"})
                       + frame({"type": "say", "text": "two"})
                       + frame({"type": "nick", "name": "alicia"}))
        self.assertEqual([m["type"] for m in alice.received()],
                         ["welcome", "history", "message", "message", "renamed"])
        self.assertEqual([m["type"] for m in bob.received()],
                         ["joined", "message", "message", "renamed"])
        self.assertEqual(self.room.seq, 2)

    def test_one_at_a_time_in_order(self) -> None:
        room = self.use(immediate=False)
        alice = self.connect()
        alice.send_raw(frame({"type": "hello", "name": "alice"})
                       + frame({"type": "say", "text": "one"})
                       + frame({"type": "say", "text": "two"}))
        self.assertEqual(alice.received(), [])
        self.assertEqual(alice.transport.producerState, "paused")  # not reading
        self.assertEqual(room.release(), 1)
        self.assertEqual([m["type"] for m in alice.received()], ["welcome", "history"])
        self.assertEqual(room.release(), 1)
        self.assertEqual([m["text"] for m in alice.received()], ["one"])
        self.assertEqual(room.release(), 1)
        self.assertEqual([m["text"] for m in alice.received()], ["two"])
        self.assertEqual(room.release(), 0)
        self.assertEqual(alice.transport.producerState, "producing")
        self.assertIn(alice.protocol, self.factory.registered_connections)

    def test_error_answer(self) -> None:
        room = self.use(immediate=False)
        alice = self.connect()
        alice.send({"type": "hello", "name": ""})
        room.release()
        self.assertError(alice.received(), "bad-name", False)
        alice.send({"type": "hello", "name": "alice"})
        room.release()
        self.assertEqual(alice.received()[0]["name"], "alice")
        alice.send({"type": "msg", "to": "nobody", "text": "x"})
        room.release()
        self.assertError(alice.received(), "no-such-user", False)

    def test_closed_while_registering(self) -> None:
        """A connection that ends before the room answers leaves no ghost."""
        room = self.use(immediate=False)
        bob = self.connect()
        bob.send({"type": "hello", "name": "bob"})
        room.release()
        bob.received()
        alice = self.connect()
        alice.send({"type": "hello", "name": "alice"})
        alice.lose()
        room.release()
        self.assertIsNone(self.room.find("alice"))
        self.assertNotIn(alice.protocol, self.factory.registered_connections)
        self.assertEqual([m["type"] for m in bob.received()], ["joined", "left"])

    def test_timeout_while_registering(self) -> None:
        room = self.use(immediate=False)
        alice = self.connect()
        alice.send({"type": "hello", "name": "alice"})
        self.clock.advance(10)
        self.assertFatal(alice, "timeout")
        room.release()
        self.assertIsNone(self.room.find("alice"))
        self.assertEqual(alice.received(), [])


class SocketTuningTests(ProtocolTestCase):
    def test_small_send_buffer_and_no_nagle(self) -> None:
        import socket

        calls = []

        class Handle:
            def setsockopt(self, level, option, value):
                calls.append((level, option, value))

        class TCPTransport(RecordingTransport):
            def getHandle(self):
                return Handle()

        self.connect(transport=TCPTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 7)))
        self.assertIn((socket.SOL_SOCKET, socket.SO_SNDBUF, 65536), calls)
        self.assertIn((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1), calls)
