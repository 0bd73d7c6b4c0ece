# -*- test-case-name: tests.test_requests -*-
"""
Tests for L{chatsvc.server.requests} through L{ChatProtocol}: what each
message of PROTOCOL.md 4.1 does (welcome, names, history, messages,
resume) and the errors of bad requests (bad JSON, unknown types, text).
Every error code of 4.6 that the plaintext server produces is provoked
here, in C{test_protocol}, C{test_protocol_limits}, C{test_protocol_rooms}
or C{test_server} (the encryption codes are in C{test_encryption}).
"""

from __future__ import annotations

import json

from twisted.internet.address import IPv4Address
from zope.interface import alsoProvides

from chatsvc.server.interfaces import IChatTransport
from chatsvc.server.protocol import ChatProtocol
from chatsvc.wire.framing import MAX_FRAME

from .helpers import (
    FakeClient,
    ProtocolTestCase,
    RecordingTransport,
    decode_frames,
    frame,
    make_factory,
    raw_frame,
    v1_view,
)
from .test_room import FakeMember


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
        messages = v1_view(decode_frames(data))  # checks every frame <= 65536 bytes
        self.assertEqual(messages[0]["type"], "welcome")
        parts = messages[1:]
        self.assertGreaterEqual(len(parts), 3)
        self.assertEqual([p["type"] for p in parts], ["history"] * len(parts))
        self.assertEqual([p.get("more") for p in parts], [True] * (len(parts) - 1) + [None])
        self.assertEqual({p["complete"] for p in parts}, {True})
        self.assertEqual([m["seq"] for p in parts for m in p["messages"]], list(range(1, 51)))


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

    def test_private_seq_apart(self) -> None:
        """(v2) C{private} messages are numbered by a counter of their own."""
        alice, bob = self.clients("alice", "bob")
        alice.send({"type": "say", "text": "1"})
        alice.send({"type": "msg", "to": "bob", "text": "2"})
        bob.send({"type": "say", "text": "3"})
        bob.send({"type": "msg", "to": "bob", "text": "4"})
        self.assertEqual([(m["type"], m["seq"]) for m in alice.received()],
                         [("message", 1), ("private", 1), ("message", 2)])
        self.assertEqual([(m["type"], m["seq"]) for m in bob.received()],
                         [("message", 1), ("private", 1), ("message", 2), ("private", 2)])

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
        """A 65,536-byte frame is taken (a pong: nothing answers it)."""
        c = self.connect()
        c.hello("me")
        body = b'{"type":"pong","token":"' + b"t" * (MAX_FRAME - 26) + b'"}'
        self.assertEqual(len(body), MAX_FRAME)
        c.send_raw(raw_frame(body))
        c.send({"type": "ping", "token": 1})
        self.assertEqual(c.received(), [{"type": "pong", "token": 1}])
        self.assertFalse(c.closed)

    def test_ping_token_limit(self) -> None:
        """A token of 256 bytes of JSON is echoed; 257 is C{bad-json} (4.6, v2)."""
        c = self.connect()
        fits = "t" * 254  # 256 bytes with its quotes
        c.send({"type": "ping", "token": fits})
        self.assertEqual(c.received(), [{"type": "pong", "token": fits}])
        for token in ("t" * 255, ["t" * 62] * 4, "t" * (MAX_FRAME - 64)):
            c.send({"type": "ping", "token": token})
            [answer] = c.received()
            self.assertEqual((answer["type"], answer["code"], answer["fatal"]), ("error", "bad-json", False))
        self.assertFalse(c.closed)


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
        """A ping whose echo would not fit a frame is over the token limit: bad-json."""
        c = self.connect()
        body = b'{"type":"ping","token":[' + b",".join([b"1e9"] * 16000) + b"]}"
        self.assertLessEqual(len(body), MAX_FRAME)
        c.send_raw(raw_frame(body))
        self.assertError(c.received(), "bad-json", False)
        self.assertFalse(c.closed)
        c.send({"type": "ping", "token": 1})
        self.assertEqual(c.received(), [{"type": "pong", "token": 1}])


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
