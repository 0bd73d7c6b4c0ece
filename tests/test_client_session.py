"""
Tests for L{chatsvc.client.session}: the client's memory and pacing,
driven directly with decoded server messages (no Twisted, no I/O).
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from chatsvc.client.outbox import TokenBucket
from chatsvc.client.session import ClientSession

from .client_helpers import public, texts, welcome


class ClientSessionTests(SynchronousTestCase):
    def registered(self, session: ClientSession) -> Any:
        conn = session.connect()
        session.receive(conn, welcome())
        return conn

    def test_first_hello(self) -> None:
        self.assertEqual(ClientSession("alice").connect().hello, {"type": "hello", "name": "alice"})

    def test_hello_without_name(self) -> None:
        self.assertEqual(ClientSession().connect().hello, {"type": "hello"})

    def test_hello_after_welcome(self) -> None:
        """The next hello carries the current name, the token and the last seq
        of a room message (a version 1 server: an integer; private messages
        are numbered apart)."""
        session = ClientSession("alice")
        conn = self.registered(session)
        session.receive(conn, public(7))
        session.receive(conn, {"type": "private", "from": "bob", "to": "alice", "text": "x", "seq": 9})
        self.assertEqual(
            session.connect().hello,
            {"type": "hello", "name": "alice", "resume": "tok1", "since": 7},
        )

    def test_welcome(self) -> None:
        session = ClientSession("alice")
        conn = session.connect()
        reaction = session.receive(conn, welcome(name="alice_2", resume="r2", motd="hi"))
        self.assertEqual(texts(reaction), ["* connected as alice_2", "* motd: hi"])
        self.assertEqual((session.name, session.resume, session.welcomed, conn.registered),
                         ("alice_2", "r2", True, True))

    def test_motd_once(self) -> None:
        """The motd is shown on the first welcome, not after each reconnection."""
        session = ClientSession("alice")
        session.receive(session.connect(), welcome(motd="hi"))
        self.assertEqual(texts(session.receive(session.connect(), welcome(motd="hi"))),
                         ["* connected as alice"])

    def test_operator_notice(self) -> None:
        """An operator's notice is shown; an unknown type still is not."""
        session = ClientSession("alice")
        conn = self.registered(session)
        notice = {"type": "notice", "text": "restart at 5", "ts": "2026-12-06T05:00:00.000Z"}
        self.assertEqual(texts(session.receive(conn, notice)), ["! notice from the operator: restart at 5"])
        self.assertEqual(texts(session.receive(conn, {"type": "dance", "text": "x"})), [])

    def test_welcome_encrypted(self) -> None:
        session = ClientSession("alice")
        conn = session.connect(encrypted=True)
        self.assertEqual(texts(session.receive(conn, welcome())), ["* connected as alice (encrypted)"])

    def test_first_history(self) -> None:
        """The history of the first connection is shown between markers."""
        session = ClientSession("alice")
        conn = self.registered(session)
        lines = texts(session.receive(conn, {"type": "history", "messages": [public(1), public(2, "yo")],
                                       "complete": False}))
        self.assertEqual(lines, ["-- history: 2 messages --", "bob: hi", "bob: yo",
                                 "-- end of history: some messages before these were missed --"])
        self.assertEqual(session.last_seq, 2)

    def test_catch_up_dedup(self) -> None:
        """History already seen is not shown twice; the report follows."""
        session = ClientSession("alice")
        conn = self.registered(session)
        session.receive(conn, public(5, "five"))
        conn2 = session.connect()
        self.assertEqual(conn2.since, {"#lobby": 5})
        session.receive(conn2, welcome(resume="tok2"))
        lines = texts(session.receive(conn2, {"type": "history", "complete": True,
                                        "messages": [public(4), public(5), public(6, "six")]}))
        self.assertEqual(lines, ["-- history: 1 message --", "bob: six", "-- end of history (complete) --"])
        self.assertEqual(session.last_seq, 6)

    def test_catch_up_incomplete(self) -> None:
        session = ClientSession("alice")
        conn = self.registered(session)
        session.receive(conn, public(5))
        conn2 = session.connect()
        session.receive(conn2, welcome())
        lines = texts(session.receive(conn2, {"type": "history", "complete": False,
                                        "messages": [public(60, "late")]}))
        self.assertEqual(lines, ["-- history: 1 message --", "bob: late",
                                 "-- end of history: some messages before these were missed --"])

    def test_catch_up_in_parts(self) -> None:
        """History split over messages ('more') is shown once it is whole."""
        session = ClientSession("alice")
        self.registered(session)
        conn2 = session.connect()
        session.receive(conn2, welcome())
        first = session.receive(conn2, {"type": "history", "complete": True, "more": True,
                                        "messages": [public(1)]})
        self.assertEqual(texts(first), [])
        last = session.receive(conn2, {"type": "history", "complete": True,
                                       "messages": [public(2, "two")]})
        self.assertEqual(texts(last), ["-- history: 2 messages --", "bob: hi", "bob: two",
                                       "-- end of history (complete) --"])

    def test_server_restarted(self) -> None:
        """After a restart without its log, the server's seqs start again:
        history at or below our since, with complete false, is all new."""
        session = ClientSession("alice")
        conn = self.registered(session)
        session.receive(conn, public(100))
        conn2 = session.connect()
        session.receive(conn2, welcome())
        lines = texts(session.receive(conn2, {"type": "history", "complete": False,
                                        "messages": [public(1, "new1"), public(2, "new2")]}))
        self.assertEqual(lines, ["-- history: 2 messages --", "bob: new1", "bob: new2",
                                 "-- the server's history was reset --"])
        self.assertEqual(session.last_seq, 2)
        session.receive(conn2, public(3))
        self.assertEqual(session.connect().hello["since"], 3)

    def test_private_seq(self) -> None:
        session = ClientSession("alice")
        conn = self.registered(session)
        lines = texts(session.receive(conn, {"type": "private", "from": "alice", "to": "bob",
                                       "text": "x", "seq": 3}))
        self.assertEqual(lines, ["[private] -> bob: x"])
        self.assertIsNone(session.last_seq)  # a counter of its own (PROTOCOL.md 4.2)

    def test_bad_seq_ignored(self) -> None:
        session = ClientSession("alice")
        conn = self.registered(session)
        for seq in [True, -1, "7", 1.5, None]:
            session.receive(conn, dict(public(1), seq=seq))
        self.assertIsNone(session.last_seq)

    def test_renamed_self(self) -> None:
        session = ClientSession("alice")
        conn = self.registered(session)
        lines = texts(session.receive(conn, {"type": "renamed", "old": "alice", "new": "Al"}))
        self.assertEqual(lines, ["* alice is now Al"])
        self.assertEqual(session.name, "Al")

    def test_renamed_other(self) -> None:
        session = ClientSession("alice")
        conn = self.registered(session)
        session.receive(conn, {"type": "renamed", "old": "bob", "new": "alice2"})
        self.assertEqual(session.name, "alice")

    def test_users_in_parts(self) -> None:
        session = ClientSession("alice")
        conn = self.registered(session)
        self.assertEqual(texts(session.receive(conn, {"type": "users", "users": ["a", "b"], "more": True})), [])
        self.assertEqual(texts(session.receive(conn, {"type": "users", "users": ["c"]})),
                         ["* users: a, b, c"])

    def test_fatal_before_welcome(self) -> None:
        """A fatal error before welcome is kept for the caller, not printed."""
        session = ClientSession("alice")
        conn = session.connect()
        reaction = session.receive(conn, {"type": "error", "code": "server-full",
                                          "text": "full", "fatal": True})
        self.assertEqual(texts(reaction), [])
        self.assertEqual((conn.fatal.code, conn.fatal.text, conn.fatal_shown), ("server-full", "full", False))

    def test_fatal_after_welcome(self) -> None:
        session = ClientSession("alice")
        conn = self.registered(session)
        reaction = session.receive(conn, {"type": "error", "code": "shutdown",
                                          "text": "bye", "fatal": True})
        self.assertEqual(texts(reaction), ["! shutdown: bye"])
        self.assertEqual((conn.fatal.code, conn.fatal_shown), ("shutdown", True))

    def test_bad_name_retries_as_guest(self) -> None:
        """A name the server refuses: hello again without one."""
        session = ClientSession("alice")
        conn = session.connect()
        reaction = session.receive(conn, {"type": "error", "code": "bad-name",
                                          "text": "no", "fatal": False})
        self.assertEqual(texts(reaction), ["! bad-name: no"])
        self.assertEqual(reaction.send, [{"type": "hello"}])
        self.assertIsNone(session.name)

    def test_unknown_type(self) -> None:
        session = ClientSession("alice")
        conn = self.registered(session)
        self.assertEqual(texts(session.receive(conn, {"type": "future", "x": 1})), [])


class TokenBucketTests(SynchronousTestCase):
    def test_burst_then_rate(self) -> None:
        bucket = TokenBucket(capacity=3, rate=2.0, now=0.0)
        self.assertEqual([bucket.take(0.0) for _ in range(3)], [0.0, 0.0, 0.0])
        self.assertEqual(bucket.take(0.0), 0.5)
        self.assertEqual(bucket.take(0.25), 0.25)
        self.assertEqual(bucket.take(0.5), 0.0)

    def test_refill_capped(self) -> None:
        bucket = TokenBucket(capacity=2, rate=1.0, now=0.0)
        bucket.take(0.0)
        bucket.take(0.0)
        self.assertEqual([bucket.take(100.0) for _ in range(2)], [0.0, 0.0])
        self.assertEqual(bucket.take(100.0), 1.0)

    def test_reset(self) -> None:
        bucket = TokenBucket(capacity=2, rate=1.0, now=0.0)
        bucket.take(0.0)
        bucket.take(0.0)
        bucket.reset(0.0, used=1)
        self.assertEqual(bucket.take(0.0), 0.0)
        self.assertEqual(bucket.take(0.0), 1.0)
