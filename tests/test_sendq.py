# -*- test-case-name: tests.test_sendq -*-
"""
Tests for L{chatsvc.server.sendq}: the per-client send queue.
"""

from __future__ import annotations

from typing import List

from twisted.trial.unittest import SynchronousTestCase

from chatsvc.server.sendq import SendQueue
from chatsvc.wire.framing import encode_frame

from .helpers import PausingTransport, RecordingTransport, frame


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
