# -*- test-case-name: tests.test_protocol_limits -*-
"""
Tests for the limits a L{ChatProtocol} enforces (PROTOCOL.md section 6):
the frame rate, floods, and clients that stop reading (C{slow}).
"""

from __future__ import annotations

import json

from twisted.internet.address import IPv4Address

from chatsvc.server.protocol import ChatProtocol

from .helpers import (
    FakeClient,
    PausingTransport,
    ProtocolTestCase,
    decode_frames,
    frame,
    make_factory,
    only,
    raw_frame,
)


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

    def test_keepalive_bucket_apart(self) -> None:
        """
        (v2) Pings and pongs take from a bucket of their own (burst 10, 1
        per second): past it they are dropped without an answer; an empty
        frame bucket does not stop them, and C{quit} is never limited.
        """
        alice, bob = self.clients("alice", "bob")
        self.burst(alice, 30)
        alice.received()
        for _ in range(6):
            alice.send({"type": "ping", "token": 1})
            alice.send({"type": "pong", "token": 1})
        self.assertEqual(alice.received(), [{"type": "pong", "token": 1}] * 5)
        self.clock.advance(3)
        for _ in range(5):
            alice.send({"type": "ping", "token": 2})
        self.assertEqual(alice.received(), [{"type": "pong", "token": 2}] * 3)
        alice.send({"type": "quit", "reason": "bye"})
        self.assertEqual(only(bob.received(), "left")[0]["text"], "bye")

    def test_keepalive_refusals_count_toward_flood(self) -> None:
        """(v2) Dropped pings count toward C{flood} with the frames' refusals."""
        alice, bob = self.clients("alice", "bob")
        for _ in range(10 + 59):
            alice.send({"type": "ping"})
        self.assertFalse(alice.closed)
        alice.send({"type": "ping"})
        self.assertEqual(only(alice.received(), "error")[-1]["code"], "flood")
        self.assertTrue(alice.closed)

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
