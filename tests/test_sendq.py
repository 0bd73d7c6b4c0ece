# -*- test-case-name: tests.test_sendq -*-
"""
Tests for L{chatsvc.server.sendq}: the per-client send queue.
"""

from __future__ import annotations

from typing import List

from twisted.internet.interfaces import IPushProducer
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from chatsvc.server.sendq import SendQueue
from chatsvc.wire.framing import encode_frame

from .support.fakes import PausingTransport, QueueOwner, RecordingTransport
from .support.wire import frame


class SendQueueTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.transport = RecordingTransport()
        self.owner = QueueOwner()
        self.q = SendQueue(self.transport, 100, self.owner)
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
        self.assertEqual(self.owner.overflows, 0)
        self.q.write(b"b")
        self.assertEqual(self.owner.overflows, 1)
        self.assertTrue(self.q.overflowed)
        self.assertEqual(self.q.queued, 0)
        self.q.write(b"c" * 1000)
        self.assertEqual(self.owner.overflows, 1)
        self.assertEqual(self.q.queued, 0)
        self.q.flush()
        self.assertEqual(self.transport.value(), b"")

    def test_no_limit(self) -> None:
        owner = QueueOwner()
        q = SendQueue(RecordingTransport(), 0, owner)
        q.pauseProducing()
        q.write(b"x" * 10**6)
        self.assertEqual((q.queued, owner.overflows), (10**6, 0))

    def test_flush_while_paused(self) -> None:
        self.q.pauseProducing()
        self.q.write(b"xy")
        self.q.flush()
        self.assertEqual(self.transport.value(), b"xy")
        self.assertEqual(self.q.queued, 0)
        self.assertTrue(self.q.paused)

    def test_resume_in_batches_until_paused_again(self) -> None:
        transport = PausingTransport(limit=70000)
        q = SendQueue(transport, 0, QueueOwner())
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
        q = SendQueue(transport, 0, QueueOwner())
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


class SyncPausingTransport:
    """
    A transport that records writes and, like Twisted's, pauses its producer
    synchronously once a write leaves over C{pause_at} bytes unsent.
    """

    def __init__(self, pause_at: int = 0) -> None:
        self.writes: List[bytes] = []
        self.pause_at = pause_at
        self.producer: SendQueue = None  # type: ignore[assignment]

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        if self.pause_at and len(data) > self.pause_at:
            self.producer.pauseProducing()

    @property
    def written(self) -> bytes:
        return b"".join(self.writes)


class SendQueueThresholdTests(SynchronousTestCase):
    def make(self, limit: int = 1000, soft: int = 0, pause_at: int = 0) -> SendQueue:
        self.transport = SyncPausingTransport(pause_at)
        self.owner = QueueOwner()
        queue = SendQueue(self.transport, limit, self.owner, soft=soft)
        self.transport.producer = queue
        return queue

    def test_interface(self) -> None:
        self.assertTrue(verifyObject(IPushProducer, self.make()))

    def test_written_at_once_while_not_paused(self) -> None:
        queue = self.make()
        queue.write(b"abc")
        queue.write(b"def")
        self.assertEqual(self.transport.writes, [b"abc", b"def"])
        self.assertEqual((queue.queued, queue.drained), (0, 0))

    def test_queued_while_paused_then_handed_over_in_order(self) -> None:
        queue = self.make()
        queue.pauseProducing()
        for chunk in (b"one", b"two", b"three"):
            queue.write(chunk)
        self.assertEqual(self.transport.writes, [])
        self.assertEqual(queue.queued, 11)
        queue.resumeProducing()
        self.assertEqual(self.transport.written, b"onetwothree")
        self.assertEqual((queue.queued, queue.drained), (0, 11))
        queue.write(b"four")
        self.assertEqual(self.transport.writes[-1], b"four")

    def test_overflow(self) -> None:
        """Past the limit: all queued is dropped, C{on_overflow} once, then nothing."""
        queue = self.make(limit=10)
        queue.pauseProducing()
        queue.write(b"x" * 10)
        self.assertEqual(self.owner.overflows, 0)
        queue.write(b"y")
        self.assertEqual((self.owner.overflows, queue.overflowed, queue.queued), (1, True, 0))
        queue.write(b"z" * 100)
        self.assertEqual((self.owner.overflows, queue.queued), (1, 0))
        queue.resumeProducing()
        self.assertEqual(self.transport.writes, [])

    def test_no_limit(self) -> None:
        queue = self.make(limit=0)
        queue.pauseProducing()
        queue.write(b"x" * 10_000_000)
        self.assertEqual((self.owner.overflows, queue.queued), (0, 10_000_000))

    def test_handed_over_a_batch_at_a_time(self) -> None:
        """
        Resuming hands over up to 64 KiB at a write; a transport that pauses
        again keeps the rest queued.
        """
        queue = self.make(limit=0, pause_at=1)
        queue.pauseProducing()
        for _ in range(4):
            queue.write(b"a" * 40_000)
        queue.resumeProducing()
        self.assertEqual([len(w) for w in self.transport.writes], [80_000])
        self.assertEqual((queue.queued, queue.drained, queue.paused), (80_000, 80_000, True))
        queue.resumeProducing()
        self.assertEqual((queue.queued, queue.drained), (0, 160_000))

    def test_behind_past_soft(self) -> None:
        queue = self.make(limit=0, soft=100_000)
        queue.pauseProducing()
        queue.write(b"a" * 100_000)
        self.assertEqual((self.owner.behind, queue.behind), ([], False))
        queue.write(b"a")
        self.assertEqual((self.owner.behind, queue.behind), ([True], True))
        queue.write(b"a" * 1000)
        self.assertEqual(self.owner.behind, [True])

    def test_caught_up_at_half_the_soft_limit(self) -> None:
        """
        A queue that is behind has caught up once it drained to soft/2, not
        as soon as it is under soft (the throttle would flap otherwise).
        """
        queue = self.make(limit=0, soft=100_000, pause_at=1)
        queue.pauseProducing()
        for _ in range(4):
            queue.write(b"a" * 40_000)
        self.assertEqual(self.owner.behind, [True])
        queue.resumeProducing()  # 80,000 left: under soft, over soft/2
        self.assertEqual(queue.queued, 80_000)
        self.assertEqual((self.owner.behind, queue.behind), ([True], True))
        queue.resumeProducing()
        self.assertEqual((self.owner.behind, queue.behind), ([True, False], False))

    def test_caught_up_at_exactly_half(self) -> None:
        queue = self.make(limit=0, soft=100_000, pause_at=1)
        queue.pauseProducing()
        for size in (70_000, 50_000):
            queue.write(b"a" * size)
        queue.resumeProducing()  # 70,000 handed over; 50,000 = soft/2 left
        self.assertEqual(queue.queued, 50_000)
        self.assertEqual(self.owner.behind, [True, False])

    def test_overflow_and_discard_catch_up(self) -> None:
        queue = self.make(limit=150_000, soft=100_000)
        queue.pauseProducing()
        queue.write(b"a" * 120_000)
        queue.write(b"a" * 40_000)
        self.assertEqual((self.owner.overflows, self.owner.behind), (1, [True, False]))

    def test_flush_while_paused(self) -> None:
        queue = self.make(limit=0, soft=10)
        queue.pauseProducing()
        queue.write(b"abc")
        queue.write(b"defghijkl")
        queue.flush()
        self.assertEqual(self.transport.writes, [b"abcdefghijkl"])
        self.assertEqual((queue.queued, self.owner.behind), (0, [True, False]))
        queue.flush()
        self.assertEqual(len(self.transport.writes), 1)

    def test_stop_producing(self) -> None:
        queue = self.make()
        queue.pauseProducing()
        queue.write(b"abc")
        queue.stopProducing()
        self.assertEqual((queue.queued, queue.paused), (0, True))
        queue.resumeProducing()
        self.assertEqual(self.transport.writes, [])

    def test_use_writer(self) -> None:
        queue = self.make()
        other: List[bytes] = []
        queue.use_writer(other.append)
        queue.write(b"x")
        self.assertEqual((other, self.transport.writes), ([b"x"], []))

    def test_no_soft_limit_at_zero(self) -> None:
        owner = QueueOwner()
        queue = SendQueue(SyncPausingTransport(), 0, owner, soft=0)
        queue.pauseProducing()
        queue.write(b"a" * 100)
        self.assertEqual((queue.behind, owner.behind, owner.overflows), (False, [], 0))

    def test_the_protocol_is_its_queues_owner(self) -> None:
        from chatsvc.server.interfaces import ISendQueueOwner

        from .support.protocol import FakeClient, make_factory

        client = FakeClient(make_factory())
        self.assertTrue(verifyObject(ISendQueueOwner, client.protocol))
