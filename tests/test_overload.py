"""
Overload without casualties: when many send queues fall behind at once the
server stops reading from its clients until they drain, instead of dropping
healthy readers as C{slow}; a reader that stalls on its own is still dropped.
"""

from __future__ import annotations

from typing import Any, List

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from .support.fakes import PausingTransport
from .support.protocol import FakeClient, make_factory


class ThrottleTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        # Small queues so that a few messages are enough; no rate limit.
        self.factory = make_factory(self.clock, rate_burst=0, sendq=40_000, sendq_soft=4_000,
                                    stall_timeout=5.0, max_per_ip=0)
        self.sender = FakeClient(self.factory)
        self.sender.hello("sender")

    def readers(self, n: int) -> List[FakeClient]:
        clients = []
        for i in range(n):
            client = FakeClient(self.factory, transport=PausingTransport(limit=2_000))
            client.hello(f"reader{i}")
            client.transport.read_all()
            clients.append(client)
        self.sender.received()
        return clients

    def say(self, count: int, start: int = 0) -> None:
        for i in range(start, start + count):
            self.sender.send({"type": "say", "text": f"message {i:04d} " + "x" * 190})  # (v2: messages carry their room)
            self.clock.advance(0)

    def drain(self, client: FakeClient) -> bytes:
        """The reader reads until nothing is left for it."""
        data = b""
        while True:
            chunk = client.transport.read_all()
            if not chunk:
                return data
            data += chunk

    def catch_up(self, readers: List[FakeClient], got: dict) -> None:
        """Turns pass and the readers read, until nothing is left to do."""
        for _ in range(100):
            for r in readers:
                got[id(r)] += self.drain(r)
            self.clock.advance(0)
            if not self.factory.throttled and not any(r.transport.value() for r in readers):
                return
        self.fail("the readers never caught up")

    def texts(self, client: FakeClient, data: bytes) -> List[str]:
        from .support.wire import decode_frames

        return [m["text"][:12] for m in decode_frames(data) if m["type"] == "message"]

    def test_everyone_behind_pauses_reading_and_drops_nobody(self) -> None:
        readers = self.readers(10)
        got = {id(r): b"" for r in readers}
        self.say(40)  # ~10 KB each: past the soft limit, far below the hard one
        self.assertTrue(self.factory.throttled)
        self.assertEqual(self.sender.transport.producerState, "paused")
        self.assertTrue(all(r.transport.producerState == "paused" for r in readers))
        # The readers catch up: reading resumes (the sender's held frames are
        # handled then), and nobody was dropped.
        self.catch_up(readers, got)
        self.assertFalse(self.factory.throttled)
        self.assertEqual(self.sender.transport.producerState, "producing")
        self.say(10, start=40)
        self.catch_up(readers, got)
        expected = [f"message {i:04d}" for i in range(50)]
        for r in readers:
            self.assertFalse(r.closed)
            self.assertEqual(self.texts(r, got[id(r)]), expected)

    def test_lone_stalled_reader_hits_the_hard_limit(self) -> None:
        readers = self.readers(40)  # 1 of 40 behind: no throttle
        stalled, healthy = readers[0], readers[1:]
        for i in range(300):
            self.sender.send({"type": "say", "text": f"m{i} " + "x" * 200})
            for r in healthy:
                self.drain(r)
            self.clock.advance(0)
            self.assertFalse(self.factory.throttled)
            if stalled.closed:
                break
        self.assertTrue(stalled.closed)
        messages = [m for m in stalled.received() if m["type"] == "error"]
        self.assertEqual(messages[-1]["code"], "slow")
        self.assertTrue(all(not r.closed for r in healthy))

    def test_stalled_readers_dropped_while_the_others_catch_up(self) -> None:
        readers = self.readers(10)
        stalled, healthy = readers[:3], readers[3:]
        self.say(40)
        self.assertTrue(self.factory.throttled)
        for step in range(30):  # 15 s of the others draining: stalled ones go in waves
            for r in healthy:
                self.drain(r)
            self.clock.advance(0.5)
        for r in stalled:
            self.assertTrue(r.closed)
            self.assertIn("slow", [m.get("code") for m in r.received()])
        self.assertFalse(self.factory.throttled)
        self.assertTrue(all(not r.closed for r in healthy))
        left = [m for m in self.sender.received() if m["type"] == "left"]
        self.assertEqual(sorted(m["reason"] for m in left), ["slow"] * 3)

    def test_new_connection_while_throttled_is_paused_too(self) -> None:
        self.readers(10)
        self.say(40)
        self.assertTrue(self.factory.throttled)
        late = FakeClient(self.factory)
        self.assertEqual(late.transport.producerState, "paused")


class TurnBudgetTests(SynchronousTestCase):
    def test_one_turn_fans_out_a_bounded_amount(self) -> None:
        """
        A sender whose one read holds hundreds of messages does not make one
        enormous fan-out: past the turn budget its remaining frames wait for
        the next turn, and everything still arrives, in order.
        """
        from .support.wire import frame

        clock = Clock()
        factory = make_factory(clock, rate_burst=0, turn_budget=8_000)
        sender, reader = FakeClient(factory), FakeClient(factory)
        sender.hello("sender")
        reader.hello("reader")
        sender.received()
        burst = b"".join(frame({"type": "say", "text": f"{i:03d} " + "y" * 996})
                         for i in range(100))
        sender.protocol.dataReceived(burst)
        # This turn handled only what fits the budget (and one more).
        self.assertEqual(sender.transport.producerState, "paused")
        self.assertEqual(factory.room.seq, 8)  # 8 x ~1 KB pass 8,000 bytes
        self.assertLessEqual(factory.room.outbox_size, 8_000 + 1_100)
        clock.advance(0)  # later turns handle the rest
        texts = [m["text"][:3] for m in reader.received() if m["type"] == "message"]
        self.assertEqual(texts, [f"{i:03d}" for i in range(100)])
        self.assertEqual(sender.transport.producerState, "producing")


    def _senders_in_rooms(self, factory: Any, count: int, messages: int) -> List[FakeClient]:
        """
        C{count} clients, client I{i} alone in room C{#r}I{i}, each of which
        then sends C{messages} messages of about 1 KB in one read, in turn.
        """
        from .support.wire import frame

        senders = [FakeClient(factory, version=2) for _ in range(count)]
        for i, sender in enumerate(senders):
            sender.hello(f"sender{i}", rooms=[f"#r{i}"])
        for i, sender in enumerate(senders):
            sender.protocol.dataReceived(b"".join(
                frame({"type": "say", "room": f"#r{i}", "text": f"{n:03d} " + "y" * 996})
                for n in range(messages)))
        return senders

    def _assert_all_arrive(self, clock: Clock, senders: List[FakeClient], messages: int) -> None:
        """Later turns handle the rest: every sender gets all its own messages back, in order."""
        for _ in range(3):
            clock.advance(0)
        for i, sender in enumerate(senders):
            texts = [m["text"][:3] for m in sender.received() if m["type"] == "message"]
            self.assertEqual(texts, [f"{n:03d}" for n in range(messages)], i)

    def test_the_budget_is_per_room(self) -> None:
        """
        Two senders in two rooms, in one turn: each room gathers its own
        budget's worth, so the second sender is not held after a single
        message because the first filled the turn.
        """
        clock = Clock()
        factory = make_factory(clock, rate_burst=0, turn_budget=8_000)
        senders = self._senders_in_rooms(factory, 2, 100)
        self.assertEqual([s.transport.producerState for s in senders], ["paused"] * 2)
        self.assertEqual([factory.room.room(f"#r{i}").seq for i in range(2)], [8, 8])
        self._assert_all_arrive(clock, senders, 100)

    def test_all_rooms_together_are_bounded_too(self) -> None:
        """
        More senders in more rooms in one turn than the turn takes budgets:
        each room may gather its budget, but the turn as a whole stops at
        L{TURN_AUDIENCES} budgets.
        """
        from chatsvc.chat.fanout import TURN_AUDIENCES

        clock = Clock()
        factory = make_factory(clock, rate_burst=0, turn_budget=8_000, max_per_ip=0,
                               max_clients=0)
        count = TURN_AUDIENCES + TURN_AUDIENCES // 2
        senders = self._senders_in_rooms(factory, count, 20)
        handled = [factory.room.room(f"#r{i}").seq for i in range(count)]
        full = TURN_AUDIENCES * 8 // 9  # rooms of ~9 KB (8 frames of ~1.1 KB) fit in all
        self.assertEqual(handled[:full], [8] * full)  # the first rooms: their own budget
        self.assertLessEqual(sum(handled), TURN_AUDIENCES * 8 + count)  # one over each
        self.assertEqual(handled[-1], 1)  # the last sender: one message, then held
        self._assert_all_arrive(clock, senders, 20)


class ThrottleReleaseTests(SynchronousTestCase):
    """
    The throttle's end, on the factory alone: most queues caught up is not
    enough while one still behind holds over half the hard limit.
    """

    def setUp(self) -> None:
        from types import SimpleNamespace

        class Proto:  # hashable, as ChatProtocol is
            def __init__(self) -> None:
                self.queue = SimpleNamespace(queued=0, drained=0)

        self.clock = Clock()
        self.factory = make_factory(self.clock, sendq=1000, throttle_share=0.2)
        self.protos = [Proto() for _ in range(20)]
        self.factory.registered_connections.update(id(p) for p in self.protos)

    def behind(self, proto, queued: int) -> None:
        proto.queue.queued = queued
        self.factory.queue_behind(proto, True)

    def caught_up(self, proto) -> None:
        proto.queue.queued = 0
        self.factory.queue_behind(proto, False)

    def test_a_queue_near_the_limit_holds_the_throttle(self) -> None:
        near, others = self.protos[0], self.protos[1:4]
        self.behind(near, 600)  # over half of 1000
        for p in others:
            self.behind(p, 100)
        self.assertTrue(self.factory.throttled, "4 of 20 behind (20%) throttles")
        for p in others:
            self.caught_up(p)
        self.assertTrue(self.factory.throttled, "the one near the limit keeps it")
        near.queue.queued = 400  # drained below half: still behind
        self.caught_up(self.protos[0])
        self.assertFalse(self.factory.throttled)

    def test_without_one_near_the_limit_most_caught_up_is_enough(self) -> None:
        for p in self.protos[:4]:
            self.behind(p, 300)
        self.assertTrue(self.factory.throttled)
        for p in self.protos[1:4]:
            self.caught_up(p)
        self.assertFalse(self.factory.throttled, "1 left behind, far from the limit")
