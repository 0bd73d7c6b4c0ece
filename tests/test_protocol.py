"""
Tests for L{chatsvc.server.protocol} and L{chatsvc.server.sendq}: one L{ChatProtocol} per
client on a L{StringTransport}, time on a L{Clock}, frames in, decoded
messages out. Every error code of PROTOCOL.md 4.6 that the plaintext server
produces is provoked here or in C{test_server} (the encryption codes are in
C{test_encryption}).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import alsoProvides
from zope.interface.verify import verifyObject

from chatsvc.chat.interfaces import IChatMember
from chatsvc.server.interfaces import IChatTransport
from chatsvc.server.protocol import ChatProtocol
from chatsvc.server.sendq import SendQueue
from chatsvc.wire.framing import MAX_FRAME, encode_frame

from .helpers import (
    FakeClient,
    LogCapture,
    PausingTransport,
    RecordingTransport,
    decode_frames,
    frame,
    make_factory,
    only,
    raw_frame,
)
from .test_room import FakeMember


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


# -- connection and registration -------------------------------------------


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


class WelcomeTests(ProtocolTestCase):
    factory_args = {"motd": "Welcome to \u00e9chat"}

    def test_welcome(self) -> None:
        [alice] = self.clients("alice")
        c = self.connect()
        welcome, history = c.hello("bob")
        self.assertEqual(set(welcome), {"type", "name", "id", "users", "encrypted", "resume", "motd"})
        self.assertEqual(welcome["name"], "bob")
        self.assertIsInstance(welcome["id"], str)
        self.assertEqual(welcome["users"], ["bob", "alice"])
        self.assertIs(welcome["encrypted"], False)
        self.assertIsInstance(welcome["resume"], str)
        self.assertEqual(welcome["motd"], "Welcome to \u00e9chat")
        self.assertEqual(history, {"type": "history", "complete": True, "messages": []})
        self.assertEqual(alice.received(), [{"type": "joined", "name": "bob",
                                             "ts": "1970-01-01T00:00:00.000Z"}])
        self.assertIn(c.protocol, self.factory.registered_connections)

    def test_ids_and_tokens_unique(self) -> None:
        welcomes = [self.connect().hello()[0] for _ in range(20)]
        self.assertEqual(len({w["id"] for w in welcomes}), 20)
        self.assertEqual(len({w["resume"] for w in welcomes}), 20)

    def test_encrypted_transport(self) -> None:
        """C{encrypted} comes from the transport (the encrypting wrapper)."""
        transport = RecordingTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1))
        transport.encrypted = True
        transport.direct_writer = lambda: None
        alsoProvides(transport, IChatTransport)
        c = self.connect(transport=transport)
        self.assertIs(c.hello("x")[0]["encrypted"], True)

    def test_one_byte_at_a_time(self) -> None:
        c = self.connect()
        c.send_raw(frame({"type": "hello", "name": "slowpoke"}) + frame({"type": "who"}),
                   one_byte_at_a_time=True)
        welcome, history, users = c.received()
        self.assertEqual(welcome["name"], "slowpoke")
        self.assertEqual(history["type"], "history")
        self.assertEqual(users, {"type": "users", "users": ["slowpoke"]})

    def test_frames_in_one_chunk(self) -> None:
        c = self.connect()
        c.send_raw(frame({"type": "hello"}) + frame({"type": "say", "text": "a"})
                   + frame({"type": "say", "text": "b"}))
        self.assertEqual([m["type"] for m in c.received()], ["welcome", "history", "message", "message"])

    def test_no_motd(self) -> None:
        self.factory = make_factory()
        self.assertNotIn("motd", self.connect().hello("a")[0])


class NameTests(ProtocolTestCase):
    def test_guest_names(self) -> None:
        names = [self.connect().hello()[0]["name"] for _ in range(3)]
        self.assertEqual(names, ["guest_1", "guest_2", "guest_3"])
        c = self.connect()
        c.send({"type": "hello", "name": None})
        self.assertEqual(c.received()[0]["name"], "guest_4")

    def test_suffixes(self) -> None:
        self.clients("alice")
        self.assertEqual(self.connect().hello("alice")[0]["name"], "alice_2")
        self.assertEqual(self.connect().hello("Alice")[0]["name"], "Alice_3")

    def test_suffix_truncates(self) -> None:
        name = "\u00e9" * 32
        self.clients(name)
        self.assertEqual(self.connect().hello(name)[0]["name"], "\u00e9" * 30 + "_2")

    def test_case_insensitive_nfc(self) -> None:
        self.clients("\u00e9mile")
        self.assertEqual(self.connect().hello("E\u0301MILE")[0]["name"], "\u00c9MILE_2")

    def test_bad_name_then_hello_again(self) -> None:
        c = self.connect()
        for name in ("", "a b", "x" * 33, 42, ["a"], "\u202eevil", "tab\t"):
            self.assertError(c.hello(name), "bad-name", False)
        self.assertIsNone(c.protocol.name)
        self.assertFalse(c.closed)
        self.assertEqual(c.hello("fine")[0]["name"], "fine")

    def test_already_registered(self) -> None:
        [alice] = self.clients("alice")
        self.assertError(alice.hello("other"), "already-registered", False)
        self.assertEqual(alice.protocol.name, "alice")
        self.assertFalse(alice.closed)

    def test_nick(self) -> None:
        alice, bob = self.clients("alice", "bob")
        alice.send({"type": "nick", "name": "alicia"})
        expected = [{"type": "renamed", "old": "alice", "new": "alicia",
                     "ts": "1970-01-01T00:00:00.000Z"}]
        self.assertEqual(alice.received(), expected)
        self.assertEqual(bob.received(), expected)

    def test_nick_taken(self) -> None:
        alice, bob = self.clients("alice", "bob")
        alice.send({"type": "nick", "name": "BOB"})
        self.assertError(alice.received(), "name-taken", False)
        self.assertEqual(bob.received(), [])

    def test_nick_case_change(self) -> None:
        alice, bob = self.clients("alice", "bob")
        alice.send({"type": "nick", "name": "ALICE"})
        self.assertEqual(bob.received()[0]["new"], "ALICE")
        self.assertEqual(alice.received()[0]["new"], "ALICE")

    def test_nick_bad(self) -> None:
        [alice] = self.clients("alice")
        for message in ({"type": "nick"}, {"type": "nick", "name": ""}, {"type": "nick", "name": "a/b"}):
            alice.send(message)
            self.assertError(alice.received(), "bad-name", False)


class HistoryTests(ProtocolTestCase):
    factory_args = {"rate_burst": 0}

    def say_n(self, client: FakeClient, n: int, size: int = 1) -> None:
        for i in range(n):
            client.send({"type": "say", "text": f"{i + 1}:" + "x" * size})
            self.clock.advance(0)  # each in its own reactor turn

    def test_since(self) -> None:
        [alice] = self.clients("alice")
        self.say_n(alice, 5)
        welcome, history = self.connect().hello("bob", since=3)
        self.assertEqual([m["seq"] for m in history["messages"]], [4, 5])
        self.assertEqual(set(history["messages"][0]), {"type", "from", "text", "ts", "seq"})
        self.assertIs(history["complete"], True)

    def test_since_beyond_newest(self) -> None:
        [alice] = self.clients("alice")
        self.say_n(alice, 2)
        _, history = self.connect().hello("bob", since=99)
        self.assertEqual([m["seq"] for m in history["messages"]], [1, 2])
        self.assertIs(history["complete"], False)

    def test_since_ignored(self) -> None:
        [alice] = self.clients("alice")
        self.say_n(alice, 2)
        for since in ("1", True, -1, 1.5, None, {}):
            _, history = self.connect().hello(since=since)
            self.assertEqual([m["seq"] for m in history["messages"]], [1, 2], since)
            self.assertIs(history["complete"], True)

    def test_dropped(self) -> None:
        self.factory = make_factory(history_size=3, rate_burst=0)
        [alice] = self.clients("alice")
        self.say_n(alice, 5)
        _, history = self.connect().hello()
        self.assertEqual([m["seq"] for m in history["messages"]], [3, 4, 5])
        self.assertIs(history["complete"], False)
        _, history = self.connect().hello(since=2)
        self.assertIs(history["complete"], True)

    def test_history_zero(self) -> None:
        self.factory = make_factory(history_size=0, rate_burst=0)
        [alice] = self.clients("alice")
        self.say_n(alice, 2)
        _, history = self.connect().hello("bob")
        self.assertEqual(history["messages"], [])
        self.assertIs(history["complete"], False)

    def test_split(self) -> None:
        [alice] = self.clients("alice")
        self.say_n(alice, 50, size=4000)
        c = self.connect()
        c.send({"type": "hello", "since": 0})
        data = c.received_bytes()
        messages = decode_frames(data)  # checks every frame <= 65536 bytes
        self.assertEqual(messages[0]["type"], "welcome")
        parts = messages[1:]
        self.assertGreaterEqual(len(parts), 3)
        self.assertEqual([p["type"] for p in parts], ["history"] * len(parts))
        self.assertEqual([p.get("more") for p in parts], [True] * (len(parts) - 1) + [None])
        self.assertEqual({p["complete"] for p in parts}, {True})
        self.assertEqual([m["seq"] for p in parts for m in p["messages"]], list(range(1, 51)))


# -- messages ---------------------------------------------------------------


class MessageTests(ProtocolTestCase):
    def test_say(self) -> None:
        alice, bob = self.clients("alice", "bob")
        self.clock.advance(1.5)
        alice.send({"type": "say", "text": "hello \u00e9", "extra": "ignored"})
        expected = [{"type": "message", "from": "alice", "text": "hello \u00e9",
                     "ts": "1970-01-01T00:00:01.500Z", "seq": 1}]
        self.assertEqual(alice.received(), expected)
        self.assertEqual(bob.received(), expected)

    def test_non_ascii_as_utf8(self) -> None:
        alice, bob = self.clients("\u00e9mile", "bob")
        alice.send({"type": "say", "text": "\u00e9\u4e16\U0001f600"})
        data = bob.received_bytes()
        self.assertIn("\u00e9\u4e16\U0001f600".encode("utf-8"), data)
        self.assertIn("\u00e9mile".encode("utf-8"), data)
        self.assertNotIn(b"\\u", data)

    def test_private(self) -> None:
        alice, bob, carol = self.clients("alice", "bob", "carol")
        alice.send({"type": "msg", "to": "BOB", "text": "psst"})
        expected = [{"type": "private", "from": "alice", "to": "bob", "text": "psst",
                     "ts": "1970-01-01T00:00:00.000Z", "seq": 1}]
        self.assertEqual(bob.received(), expected)
        self.assertEqual(alice.received(), expected)
        self.assertEqual(carol.received(), [])

    def test_no_such_user(self) -> None:
        [alice] = self.clients("alice")
        for to in ("nobody", None, 7):
            message = {"type": "msg", "text": "x"}
            if to is not None:
                message["to"] = to
            alice.send(message)
            self.assertError(alice.received(), "no-such-user", False)

    def test_seq_shared(self) -> None:
        alice, bob = self.clients("alice", "bob")
        alice.send({"type": "say", "text": "1"})
        alice.send({"type": "msg", "to": "bob", "text": "2"})
        bob.send({"type": "say", "text": "3"})
        bob.send({"type": "msg", "to": "bob", "text": "4"})
        self.assertEqual([m["seq"] for m in alice.received()], [1, 2, 3])
        self.assertEqual([m["seq"] for m in bob.received()], [1, 2, 3, 4])

    def test_who(self) -> None:
        alice, bob = self.clients("alice", "bob")
        alice.send({"type": "who"})
        self.assertEqual(alice.received(), [{"type": "users", "users": ["alice", "bob"]}])

    def test_who_split(self) -> None:
        names = ["".join(chr(0x20000 + i * 32 + j) for j in range(32)) for i in range(700)]
        for name in names:
            self.room.register(FakeMember(keep=False), name=name)
        self.clock.advance(0)  # the turn of all those joins ends
        c = self.connect()
        c.hello("me")
        c.send({"type": "who"})
        parts = decode_frames(c.received_bytes())
        self.assertGreater(len(parts), 1)
        self.assertEqual([p["type"] for p in parts], ["users"] * len(parts))
        self.assertEqual([p.get("more") for p in parts], [True] * (len(parts) - 1) + [None])
        self.assertEqual([n for p in parts for n in p["users"]], names + ["me"])

    def test_welcome_users_capped(self) -> None:
        for i in range(1100):
            self.room.register(FakeMember(keep=False), name=f"user{i}")
        welcome, _ = self.connect().hello("me")
        self.assertEqual(len(welcome["users"]), 1000)
        self.assertEqual(welcome["users"][0], "me")

    def test_ping(self) -> None:
        c = self.connect()
        for token in ("abc", 5, 1.5, None, [1, {"a": "\u00e9"}], {"x": [True]}):
            c.send({"type": "ping", "token": token})
            self.assertEqual(c.received(), [{"type": "pong", "token": token}])
        c.send({"type": "ping"})
        self.assertEqual(c.received(), [{"type": "pong"}])

    def test_pong_ignored(self) -> None:
        [alice] = self.clients("alice")
        alice.send({"type": "pong", "token": 1})
        self.assertEqual(alice.received(), [])

    def test_largest_frame(self) -> None:
        """A 65,536-byte frame is taken, and its echo fits."""
        c = self.connect()
        body = b'{"type":"ping","token":"' + b"t" * (MAX_FRAME - 26) + b'"}'
        self.assertEqual(len(body), MAX_FRAME)
        c.send_raw(raw_frame(body))
        [pong] = c.received()
        self.assertEqual(len(pong["token"]), MAX_FRAME - 26)
        self.assertFalse(c.closed)


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


# -- errors -------------------------------------------------------------------


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


class BadJsonTests(ProtocolTestCase):
    BODIES = [
        b'{"type":"say","text":"\xff"}',  # invalid UTF-8
        b"\xc3(",
        b"{not json}",
        b"[1,2]",  # not an object
        b'"hello"',
        b"{}",  # no type
        b'{"type":5}',  # no string type
        b'{"type":null}',
        b'{"type":"ping","token":NaN}',
        b'{"type":"ping","token":Infinity}',
        b'{"type":"say","text":"\\ud800"}',  # lone surrogate
        b'{"type":"ping","token":' + b"[" * 5000 + b"]" * 5000 + b"}",  # deep nesting
        b'{"type":"ping","token":' + b"[" * 150 + b'"\\u00e9"' + b"]" * 150 + b"}",
        b'{"type":"ping","token":' + b"9" * 5000 + b"}",  # 5000-digit int
    ]

    def test_each(self) -> None:
        alice, bob = self.clients("alice", "bob")
        for body in self.BODIES:
            alice.send_raw(raw_frame(body))
            self.assertError(alice.received(), "bad-json", False)
            self.assertFalse(alice.closed)
            self.clock.advance(1)  # keep under the rate limit
        self.assertEqual(bob.received(), [])
        alice.send({"type": "say", "text": "still here"})
        self.assertEqual(bob.received()[0]["text"], "still here")

    def test_before_hello(self) -> None:
        c = self.connect()
        for body in self.BODIES:
            c.send_raw(raw_frame(body))
            self.assertError(c.received(), "bad-json", False)

    def test_no_traceback_logged(self) -> None:
        c = self.connect()
        for body in self.BODIES:
            c.send_raw(raw_frame(body), one_byte_at_a_time=len(body) < 100)
        self.logs.assert_no_failures(self)
        self.assertEqual(len(c.received()), len(self.BODIES))


class TypeErrorTests(ProtocolTestCase):
    def test_unknown_type(self) -> None:
        [alice] = self.clients("alice")
        for kind in ("dance", "SAY", "", "welcome", "x" * 1000):
            alice.send({"type": kind})
            self.assertError(alice.received(), "unknown-type", False)

    def test_not_registered(self) -> None:
        c = self.connect()
        for message in ({"type": "say", "text": "hi"}, {"type": "msg", "to": "a", "text": "b"},
                        {"type": "nick", "name": "a"}, {"type": "who"}, {"type": "pong"},
                        {"type": "quit"}):
            c.send(message)
            self.assertError(c.received(), "not-registered", False)
        self.assertFalse(c.closed)

    def test_precedence(self) -> None:
        """bad-json, then unknown-type, then not-registered."""
        c = self.connect()
        c.send({"type": 1, "text": "x"})
        self.assertError(c.received(), "bad-json", False)
        c.send({"type": "dance"})
        self.assertError(c.received(), "unknown-type", False)
        c.send({"type": "say"})  # bad text too, but not registered comes first
        self.assertError(c.received(), "not-registered", False)

    def test_ping_before_hello(self) -> None:
        c = self.connect()
        c.send({"type": "ping", "token": "t"})
        self.assertEqual(c.received(), [{"type": "pong", "token": "t"}])


class TextErrorTests(ProtocolTestCase):
    def test_bad_text(self) -> None:
        alice, bob = self.clients("alice", "bob")
        for message in ({"type": "say"}, {"type": "say", "text": 5}, {"type": "say", "text": None},
                        {"type": "say", "text": ["a"]}, {"type": "say", "text": ""},
                        {"type": "say", "text": "a\x07b"}, {"type": "say", "text": "line\r\n"},
                        {"type": "say", "text": "\x1b[31mred"}, {"type": "say", "text": "abc\u202edef"},
                        {"type": "say", "text": "\u2066x\u2069"}, {"type": "say", "text": "\x85"},
                        {"type": "msg", "to": "bob", "text": "\r"}, {"type": "msg", "to": "bob"}):
            alice.send(message)
            self.assertError(alice.received(), "bad-text", False)
            self.clock.advance(1)
        self.assertEqual(bob.received(), [])
        self.assertEqual(self.room.seq, 0)

    def test_tab_and_newline_allowed(self) -> None:
        alice, bob = self.clients("alice", "bob")
        alice.send({"type": "say", "text": "a\tb\nc"})
        self.assertEqual(bob.received()[0]["text"], "a\tb\nc")

    def test_too_long(self) -> None:
        alice, bob = self.clients("alice", "bob")
        alice.send({"type": "say", "text": "a" * 4097})
        self.assertError(alice.received(), "too-long", False)
        alice.send({"type": "msg", "to": "bob", "text": "\u00e9" * 2049})
        self.assertError(alice.received(), "too-long", False)
        self.assertEqual(bob.received(), [])
        alice.send({"type": "say", "text": "\u00e9" * 2048})
        self.assertEqual(len(bob.received()[0]["text"]), 2048)

    def test_max_message_option(self) -> None:
        self.factory = make_factory(max_text=10)
        alice, bob = self.clients("alice", "bob")
        alice.send({"type": "say", "text": "a" * 11})
        self.assertError(alice.received(), "too-long", False)
        alice.send({"type": "say", "text": "a" * 10})
        self.assertEqual(bob.received()[0]["text"], "a" * 10)

    def test_escaped_text_too_big_for_a_frame(self) -> None:
        """With a large --max-message, a text that escapes past a frame is too-long."""
        self.factory = make_factory(max_text=65536)
        alice, bob = self.clients("alice", "bob")
        alice.send({"type": "say", "text": "a" * (MAX_FRAME - 60)})
        self.assertError(alice.received(), "too-long", False)
        alice.send({"type": "msg", "to": "bob", "text": "a" * (MAX_FRAME - 60)})
        self.assertError(alice.received(), "too-long", False)
        self.assertEqual(bob.received(), [])
        self.assertEqual(self.room.seq, 0)

    def test_pong_too_long(self) -> None:
        """A ping whose echo would not fit a frame gets too-long."""
        c = self.connect()
        body = b'{"type":"ping","token":[' + b",".join([b"1e9"] * 16000) + b"]}"
        self.assertLessEqual(len(body), MAX_FRAME)
        c.send_raw(raw_frame(body))
        self.assertError(c.received(), "too-long", False)
        self.assertFalse(c.closed)
        c.send({"type": "ping", "token": 1})
        self.assertEqual(c.received(), [{"type": "pong", "token": 1}])


class RateLimitTests(ProtocolTestCase):
    def burst(self, client: FakeClient, n: int, start: int = 0) -> None:
        for i in range(n):
            client.send({"type": "say", "text": str(start + i)})

    def test_burst_then_refused(self) -> None:
        alice, bob = self.clients("alice", "bob")
        self.clock.advance(10)  # the hello's token is back
        self.burst(alice, 20)
        self.assertEqual(len(bob.received()), 20)
        alice.received()
        alice.send({"type": "say", "text": "one too many"})
        self.assertError(alice.received(), "rate-limited", False)
        self.assertEqual(bob.received(), [])
        self.assertFalse(alice.closed)

    def test_refill(self) -> None:
        alice, bob = self.clients("alice", "bob")
        self.clock.advance(10)
        self.burst(alice, 20)
        bob.received()
        alice.received()
        self.clock.advance(0.5)
        self.burst(alice, 2)
        self.assertEqual(len(bob.received()), 1)
        self.assertEqual(only(alice.received(), "error")[0]["code"], "rate-limited")
        self.clock.advance(1)
        self.burst(alice, 3)
        self.assertEqual(len(bob.received()), 2)

    def test_steady_rate_never_refused(self) -> None:
        alice, bob = self.clients("alice", "bob")
        self.clock.advance(10)
        self.burst(alice, 20)
        for i in range(100):
            self.clock.advance(0.5)
            alice.send({"type": "say", "text": "steady"})
        self.assertEqual(len(only(bob.received(), "message")), 120)
        self.assertEqual(only(alice.received(), "error"), [])

    def test_exempt(self) -> None:
        alice, bob = self.clients("alice", "bob")
        self.burst(alice, 30)
        alice.received()
        for _ in range(100):
            alice.send({"type": "ping", "token": 1})
            alice.send({"type": "pong", "token": 1})
        self.assertEqual(alice.received(), [{"type": "pong", "token": 1}] * 100)
        alice.send({"type": "quit", "reason": "bye"})
        self.assertEqual(only(bob.received(), "left")[0]["text"], "bye")

    def test_bad_frames_count(self) -> None:
        c = self.connect()
        for _ in range(20):
            c.send_raw(raw_frame(b"junk"))
        self.assertEqual({m["code"] for m in c.received()}, {"bad-json"})
        c.send_raw(raw_frame(b"junk"))
        self.assertError(c.received(), "rate-limited", False)

    def test_flood(self) -> None:
        alice, bob = self.clients("alice", "bob")
        self.clock.advance(10)
        self.burst(alice, 20)
        alice.received()
        bob.received()
        self.burst(alice, 59)
        errors = alice.received()
        self.assertEqual([e["code"] for e in errors], ["rate-limited"] * 59)
        self.assertFalse(alice.closed)
        alice.send({"type": "say", "text": "flood"})
        self.assertFatal(alice, "flood")
        self.assertLeft(bob, "alice", "flood")

    def test_off(self) -> None:
        self.factory = make_factory(rate_burst=0)
        alice, bob = self.clients("alice", "bob")
        self.burst(alice, 500)
        self.assertEqual(len(bob.received()), 500)


class SlowTests(ProtocolTestCase):
    factory_args = {"sendq": 20000, "rate_burst": 0}

    def slow_client(self, name: str) -> FakeClient:
        transport = PausingTransport(limit=5000, peerAddress=IPv4Address("TCP", "127.0.0.1", 9))
        c = self.connect(transport=transport)
        c.hello(name)
        return c

    def test_slow(self) -> None:
        alice, bob = self.clients("alice", "bob")
        slow = self.slow_client("slow")
        alice.received()
        bob.received()
        for i in range(60):
            alice.send({"type": "say", "text": f"{i:03d}" + "x" * 500})
            self.room.flush()  # the end of a reactor turn
        sendq = slow.protocol.queue
        self.assertTrue(sendq.overflowed)
        self.assertFalse(slow.protocol.closing)  # not inside the fan-out
        self.clock.advance(0)
        self.assertTrue(slow.protocol.closing)
        messages = decode_frames(slow.transport.value())
        # what the transport had taken before it paused, then the error:
        # the queued output was discarded.
        self.assertEqual(messages[-1]["type"], "error")
        self.assertEqual((messages[-1]["code"], messages[-1]["fatal"]), ("slow", True))
        said = only(messages, "message")
        self.assertLess(len(said), 20)
        self.assertEqual([m["seq"] for m in said], list(range(1, len(said) + 1)))
        self.assertEqual(sendq.queued, 0)
        for other in (alice, bob):
            [left] = only(other.received(), "left")
            self.assertEqual((left["name"], left["reason"]), ("slow", "slow"))
        self.assertIsNone(self.room.find("slow"))
        self.assertTrue(slow.closed)
        self.assertFalse(slow.aborted)
        self.clock.advance(5)
        self.assertTrue(slow.aborted)

    def test_resumes_when_read(self) -> None:
        """A client that reads again gets everything queued, in order."""
        alice, = self.clients("alice")
        slow = self.slow_client("slow")
        alice.received()
        for i in range(30):
            alice.send({"type": "say", "text": f"{i:03d}" + "x" * 500})
            self.room.flush()  # the end of a reactor turn
        self.assertGreater(slow.protocol.queue.queued, 0)
        data = slow.transport.read_all() + slow.transport.read_all() + slow.transport.read_all()
        seqs = [m["seq"] for m in decode_frames(data) if m["type"] == "message"]
        self.assertEqual(seqs, list(range(1, 31)))
        self.clock.advance(0)
        self.assertFalse(slow.protocol.closing)

    def test_fatal_flushes_queue(self) -> None:
        """Another fatal error keeps the queued output and adds the error."""
        [alice] = self.clients("alice")
        slow = self.slow_client("slow")
        for i in range(20):
            alice.send({"type": "say", "text": f"{i:03d}" + "x" * 500})
            self.room.flush()  # the end of a reactor turn
        self.assertGreater(slow.protocol.queue.queued, 0)
        slow.send_raw(raw_frame(b""))
        messages = decode_frames(slow.transport.value())
        self.assertEqual([m["seq"] for m in only(messages, "message")], list(range(1, 21)))
        self.assertEqual(messages[-1]["code"], "bad-frame")


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


class ReplacedTests(ProtocolTestCase):
    def test_resume(self) -> None:
        old = self.connect()
        token = old.hello("alice")[0]["resume"]
        [bob] = self.clients("bob")
        old.received()
        new = self.connect()
        welcome, history = new.hello("ignored", resume=token)
        self.assertEqual(welcome["name"], "alice")
        self.assertNotEqual(welcome["resume"], token)
        self.assertEqual(sorted(welcome["users"]), ["alice", "bob"])
        self.assertEqual(history["type"], "history")
        self.assertFatal(old, "replaced")
        self.assertEqual(bob.received(), [])
        old.lose()
        self.assertEqual(bob.received(), [])
        self.assertIs(self.room.find("alice"), new.protocol)
        new.send({"type": "say", "text": "back"})
        self.assertEqual(bob.received()[0]["from"], "alice")

    def test_single_use(self) -> None:
        old = self.connect()
        token = old.hello("alice")[0]["resume"]
        second = self.connect()
        second.hello(resume=token)
        third = self.connect()
        welcome, _ = third.hello("alice", resume=token)
        self.assertEqual(welcome["name"], "alice_2")
        self.assertEqual(second.received(), [{"type": "joined", "name": "alice_2",
                                              "ts": "1970-01-01T00:00:00.000Z"}])
        self.assertFalse(second.closed)

    def test_token_of_closed_session(self) -> None:
        [bob] = self.clients("bob")
        old = self.connect()
        token = old.hello("alice")[0]["resume"]
        old.lose()
        bob.received()
        new = self.connect()
        self.assertEqual(new.hello(resume=token)[0]["name"], "guest_1")
        self.assertEqual(bob.received()[0]["type"], "joined")

    def test_token_of_quit_session(self) -> None:
        old = self.connect()
        token = old.hello("alice")[0]["resume"]
        old.send({"type": "quit"})
        new = self.connect()
        self.assertEqual(new.hello("x", resume=token)[0]["name"], "x")


class LogTests(ProtocolTestCase):
    def test_bad_input_battery(self) -> None:
        """Nothing a client sends puts a traceback in the server log."""
        bodies = BadJsonTests.BODIES + [
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


class SendQueueTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.transport = RecordingTransport()
        self.overflows: List[bool] = []
        self.q = SendQueue(self.transport, 100, lambda: self.overflows.append(True))
        self.transport.registerProducer(self.q, True)

    def test_writes_through(self) -> None:
        self.q.write(b"abc")
        self.assertEqual(self.transport.value(), b"abc")
        self.assertEqual(self.q.queued, 0)

    def test_queues_while_paused(self) -> None:
        self.q.pauseProducing()
        self.q.write(b"a" * 40)
        self.q.write(b"b" * 40)
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.q.queued, 80)
        self.q.resumeProducing()
        self.assertEqual(self.transport.value(), b"a" * 40 + b"b" * 40)
        self.assertEqual(self.q.queued, 0)
        self.q.write(b"c")
        self.assertEqual(self.transport.value()[-1:], b"c")

    def test_overflow(self) -> None:
        self.q.pauseProducing()
        self.q.write(b"a" * 100)
        self.assertEqual(self.overflows, [])
        self.q.write(b"b")
        self.assertEqual(self.overflows, [True])
        self.assertTrue(self.q.overflowed)
        self.assertEqual(self.q.queued, 0)
        self.q.write(b"c" * 1000)
        self.assertEqual(self.overflows, [True])
        self.assertEqual(self.q.queued, 0)
        self.q.flush()
        self.assertEqual(self.transport.value(), b"")

    def test_no_limit(self) -> None:
        q = SendQueue(RecordingTransport(), 0, lambda: self.fail("overflow"))
        q.pauseProducing()
        q.write(b"x" * 10**6)
        self.assertEqual(q.queued, 10**6)

    def test_flush_while_paused(self) -> None:
        self.q.pauseProducing()
        self.q.write(b"xy")
        self.q.flush()
        self.assertEqual(self.transport.value(), b"xy")
        self.assertEqual(self.q.queued, 0)
        self.assertTrue(self.q.paused)

    def test_resume_in_batches_until_paused_again(self) -> None:
        transport = PausingTransport(limit=70000)
        q = SendQueue(transport, 0, lambda: None)
        transport.registerProducer(q, True)
        q.pauseProducing()
        transport.producer_paused = True
        for i in range(300):
            q.write(b"%05d" % i + b"." * 995)
        transport.read_all()
        # the transport paused the queue again after about two batches
        self.assertTrue(q.paused)
        taken = len(transport.value())
        self.assertLess(taken, 300 * 1000)
        self.assertEqual(q.queued, 300 * 1000 - taken)
        while q.queued:
            transport.read_all()
        transport.read_all()
        self.assertEqual(q.queued, 0)

    def test_order_across_resumes(self) -> None:
        transport = PausingTransport(limit=3000)
        q = SendQueue(transport, 0, lambda: None)
        transport.registerProducer(q, True)
        for i in range(100):
            q.write(encode_frame(b"%d" % i + b"-" * 100))
        out = b""
        for _ in range(200):
            out += transport.read_all()
        self.assertEqual(decode_raw(out), [b"%d" % i + b"-" * 100 for i in range(100)])

    def test_stop_producing(self) -> None:
        self.q.pauseProducing()
        self.q.write(b"abc")
        self.q.stopProducing()
        self.assertEqual(self.q.queued, 0)
        self.assertTrue(self.q.paused)


def decode_raw(data: bytes) -> List[bytes]:
    from chatsvc.wire.framing import FrameDecoder

    d = FrameDecoder()
    d.receive_data(data)
    return list(d.frames())


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

    def say(self, member: Any, text: str) -> Deferred:
        return self._later(self._room.say, member, text)

    def private(self, member: Any, to: Any, text: str) -> Deferred:
        return self._later(self._room.private, member, to, text)

    def rename(self, member: Any, name: Any) -> Deferred:
        return self._later(self._room.rename, member, name)

    def leave(self, member: Any, reason: str, text: Any = None) -> None:
        self._room.leave(member, reason, text)

    def who_frames(self) -> List[bytes]:
        return self._room.who_frames()

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
