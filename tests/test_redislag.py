"""
The stream reader's lag (C{chatsvc_redis_stream_lag_seconds}): after each
read, how long ago Redis wrote the newest entry applied (each entry carries
Redis's time, field C{t}), on this server's clock corrected by the offset
measured against Redis's C{TIME}; 0 after a read that found nothing new.
Unit tests on a fake connection and a L{Clock}, then a real C{redis-server}.
"""

from __future__ import annotations

import time
from typing import Any, List

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from chatsvc.chat.redis.entries import parse_entry
from chatsvc.chat.redis.keys import RoomKeys
from chatsvc.chat.redis.reader import StreamReader
from chatsvc.metrics import IRedisBacked
from chatsvc.metrics.prometheus import PrometheusMetrics
from chatsvc.metrics.service import instrument

from .helpers import make_factory
from .redischat import RedisChatTestsMixin
from .scaleout import wait_until


class FakeLink:
    """A connection whose every C{XREAD} waits for the test to answer it."""

    def __init__(self) -> None:
        self.reads: List[Deferred] = []

    def when_ready(self) -> Deferred:
        return succeed(self)

    def command(self, *args: Any, blocking: bool = False) -> Deferred:
        assert args[0] == "XREAD" and blocking, args
        d: Deferred = Deferred()
        self.reads.append(d)
        return d

    def abort(self) -> None:
        raise AssertionError("the watchdog should not fire")


def xread(stream: bytes, *entries: tuple) -> list:
    """An C{XREAD} reply: C{(n, t or None)} entries of C{stream}."""
    items = []
    for n, t in entries:
        fields = [b"k", b"m", b"s", b"%d" % n, b"b", b"{}"]
        if t is not None:
            fields[2:2] = [b"t", t]
        items.append([b"%d-0" % n, fields])
    return [[stream, items]]


class ReaderLagTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.link = FakeLink()
        self.applied: List[int] = []
        self.lags: List[float] = []

        async def prepare() -> None:
            pass

        def on_entry(stream: str, entry: Any) -> None:
            self.applied.append(entry.n)

        self.reader = StreamReader(self.link, self.clock, on_entry, lambda *a: None, prepare,
                                   lambda: None)
        self.reader.lag_observer = self.lags.append
        self.reader.follow("s", 0)
        self.reader.running = True
        self.done = Deferred.fromCoroutine(self.reader.run())
        self.addCleanup(self.stop)

    def stop(self) -> None:
        self.reader.running = False
        self.link.reads[-1].callback(None)
        self.assertIsNone(self.successResultOf(self.done))

    def answer(self, reply: Any) -> None:
        self.link.reads[-1].callback(reply)

    def test_entry_time(self) -> None:
        entry = parse_entry(b"7-0", [b"k", b"m", b"t", b"1700000000123"])
        self.assertEqual(entry.time, 1_700_000_000.123)
        self.assertIsNone(parse_entry(b"7-0", [b"k", b"m"]).time)
        self.assertIsNone(parse_entry(b"7-0", [b"k", b"m", b"t", b"soon"]).time)

    def test_lag_of_the_newest_entry_applied(self) -> None:
        # Redis wrote them 2.5 s and 1.25 s ago: after the read, 1.25 s behind.
        self.answer(xread(b"s", (1, b"999997500"), (2, b"999998750")))
        self.assertEqual(self.applied, [1, 2])
        self.assertEqual(self.lags, [1.25])
        self.answer(None)  # a read that found nothing: not behind
        self.assertEqual(self.lags, [1.25, 0.0])
        self.answer(xread(b"s", (2, b"999000000")))  # seen already: nothing applied
        self.assertEqual(self.lags, [1.25, 0.0, 0.0])
        self.answer(xread(b"s", (3, None)))  # an entry that does not say when
        self.assertEqual((self.applied, self.lags[-1]), ([1, 2, 3], 0.0))

    def test_newest_over_several_streams(self) -> None:
        self.reader.follow("r", 0)
        self.answer(xread(b"s", (1, b"999000000")) + xread(b"r", (1, b"999999500")))
        self.assertEqual(self.lags, [0.5])

    def test_clock_offset(self) -> None:
        """
        Redis's clock 100 s behind this server's: TIME asked at 1,000,000 s
        and answered 0.2 s later said 999,900.1 s; entries are then read
        on this server's clock, never as 100 s late nor below 0.
        """
        self.reader.measure_offset(1_000_000.0, [b"999900", b"100000"], 1_000_000.2)
        self.assertAlmostEqual(self.reader.clock_offset, 100.0)
        self.answer(xread(b"s", (1, b"999899000")))  # 1 s before now on Redis's clock
        self.assertAlmostEqual(self.lags[-1], 1.0)
        self.answer(xread(b"s", (2, b"999900500")))  # "in the future": a late TIME reply
        self.assertEqual(self.lags[-1], 0.0)


class InstrumentTests(SynchronousTestCase):
    def test_metrics_hook(self) -> None:
        """C{--metrics} hands the Redis chat's reader the stream lag gauge."""
        from twisted.internet.endpoints import TCP4ClientEndpoint

        from chatsvc.chat.redis.room import RedisChat

        clock = Clock()
        chat = RedisChat(clock, TCP4ClientEndpoint(clock, "127.0.0.1", 1), chat="lag")
        verifyObject(IRedisBacked, chat)
        self.assertIsNone(chat.reader.lag_observer)
        metrics = PrometheusMetrics()
        instrument(make_factory(clock), chat, metrics)
        self.assertEqual(chat.reader.lag_observer, metrics.redis_stream_lag)
        chat.reader.lag_observer(0.25)
        self.assertEqual(
            metrics.registry.get_sample_value("chatsvc_redis_stream_lag_seconds", {}), 0.25)


class RedisLagTests(RedisChatTestsMixin, TestCase):
    timeout = 30

    async def test_lag_reported_after_reading(self) -> None:
        a, b = await self.server(), await self.server()
        self.assertLess(abs(a.reader.clock_offset), 1.0)  # one machine, one clock
        lags: List[float] = []
        b.reader.lag_observer = lags.append
        alice = await self.join(a, "alice")
        await self.join(b, "bob")
        before = time.time()
        await a.say(alice, None, "hello")
        await self.settle([a, b])
        reply = await a.commands.command("XREVRANGE", RoomKeys(a.keys.chat, "#lobby").events,
                                         "+", "-", "COUNT", 1)
        [(entry_id, fields)] = reply
        stamp = int(dict(zip(fields[::2], fields[1::2]))[b"t"]) / 1000
        self.assertLess(abs(stamp - before), 2.0)  # Redis's time, in ms
        await wait_until(lambda: len(lags) >= 2, 10, "the lag to be reported")
        self.assertTrue(all(0.0 <= lag < 5.0 for lag in lags), lags)
