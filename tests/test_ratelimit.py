"""
Tests for L{chatsvc.server.ratelimit}: the token bucket, the flood guard, and
C{--rate} parsing (PROTOCOL.md section 6).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from zope.interface import implementer
from zope.interface.verify import verifyObject

from chatsvc.server.interfaces import IServerConnection
from chatsvc.server.ratelimit import ALLOW, FLOOD, REFUSE, RateLimiter, Verdict, parse_rate

from .helpers import make_factory


def checks(limiter: RateLimiter, now: float, n: int):
    return [limiter.check(now) for _ in range(n)]


class BucketTests(SynchronousTestCase):
    def test_burst(self) -> None:
        limiter = RateLimiter(20, 2.0, now=100.0)
        self.assertEqual(checks(limiter, 100.0, 20), [ALLOW] * 20)
        self.assertEqual(limiter.check(100.0), REFUSE)

    def test_refill(self) -> None:
        """Two frames a second come back; half a second gives one."""
        limiter = RateLimiter(20, 2.0, now=0.0)
        checks(limiter, 0.0, 20)
        self.assertEqual(limiter.check(0.25), REFUSE)
        self.assertEqual(limiter.check(0.5), ALLOW)
        self.assertEqual(limiter.check(0.5), REFUSE)
        self.assertEqual(checks(limiter, 1.5, 3), [ALLOW, ALLOW, REFUSE])

    def test_refused_frames_do_not_cost(self) -> None:
        """A refusal takes no token: refill is not delayed by refused frames."""
        limiter = RateLimiter(20, 2.0, now=0.0)
        checks(limiter, 0.0, 20)
        checks(limiter, 0.1, 5)
        self.assertEqual(limiter.check(0.5), ALLOW)

    def test_refill_capped_at_burst(self) -> None:
        limiter = RateLimiter(20, 2.0, now=0.0)
        checks(limiter, 0.0, 20)
        self.assertEqual(checks(limiter, 1000.0, 21), [ALLOW] * 20 + [REFUSE])

    def test_sustained_rate_always_allowed(self) -> None:
        """A client that keeps to burst and rate is never refused."""
        limiter = RateLimiter(20, 2.0, now=0.0)
        self.assertEqual(checks(limiter, 0.0, 20), [ALLOW] * 20)
        verdicts = {limiter.check(i * 0.5) for i in range(1, 2000)}
        self.assertEqual(verdicts, {ALLOW})

    def test_off(self) -> None:
        limiter = RateLimiter(0, 0.0, now=0.0)
        self.assertEqual(set(checks(limiter, 0.0, 10000)), {ALLOW})

    def test_verdicts(self) -> None:
        self.assertEqual({v.value for v in Verdict}, {"allow", "refuse", "flood"})


class FloodTests(SynchronousTestCase):
    def test_flood_after_three_bursts_refused(self) -> None:
        """
        With a burst of 20, the 60th refusal within 30 s is a flood; the 59
        before it are plain refusals.
        """
        limiter = RateLimiter(20, 2.0, now=0.0)
        checks(limiter, 0.0, 20)
        self.assertEqual(checks(limiter, 0.0, 59), [REFUSE] * 59)
        self.assertEqual(limiter.check(0.0), FLOOD)

    def test_allowed_frames_do_not_reset(self) -> None:
        """Frames allowed in between do not forgive earlier refusals."""
        limiter = RateLimiter(20, 2.0, now=0.0)
        checks(limiter, 0.0, 20)
        verdicts = []
        for i in range(1, 31):
            now = i * 0.5
            verdicts.append(limiter.check(now))  # refilled: allowed
            verdicts.extend(checks(limiter, now, 2))
        self.assertEqual(verdicts.count(ALLOW), 30)
        self.assertEqual(verdicts.count(REFUSE), 59)
        self.assertEqual(verdicts[-1], FLOOD)

    def test_window(self) -> None:
        """Refusals older than the window are forgotten."""
        limiter = RateLimiter(2, 0.01, now=0.0, flood_factor=3, flood_window=30.0)
        checks(limiter, 0.0, 2)
        self.assertEqual(checks(limiter, 0.0, 5), [REFUSE] * 5)
        # 31 s later the five are out of the window: five more are refused.
        self.assertEqual(checks(limiter, 31.0, 5), [REFUSE] * 5)
        self.assertEqual(limiter.check(31.0), FLOOD)

    def test_window_edge(self) -> None:
        """A refusal exactly C{flood_window} seconds old is out of the window."""
        limiter = RateLimiter(2, 0.01, now=0.0, flood_factor=3, flood_window=30.0)
        checks(limiter, 0.0, 2)
        self.assertEqual(checks(limiter, 0.0, 5), [REFUSE] * 5)
        # At 30.0 the five of 0.0 leave: this is the first of a new count.
        self.assertEqual(checks(limiter, 30.0, 5), [REFUSE] * 5)
        self.assertEqual(limiter.check(30.0), FLOOD)

    def test_window_edge_inside(self) -> None:
        """A refusal just under C{flood_window} seconds old still counts."""
        limiter = RateLimiter(2, 0.01, now=0.0, flood_factor=3, flood_window=30.0)
        checks(limiter, 0.0, 2)
        checks(limiter, 0.0, 5)
        self.assertEqual(limiter.check(29.999), FLOOD)

    def test_flooded_flag(self) -> None:
        limiter = RateLimiter(1, 0.01, now=0.0, flood_factor=1)
        self.assertFalse(limiter.flooded)
        self.assertEqual(checks(limiter, 0.0, 2), [ALLOW, FLOOD])
        self.assertTrue(limiter.flooded)

    def test_custom_factor(self) -> None:
        limiter = RateLimiter(5, 1.0, now=0.0, flood_factor=1)
        checks(limiter, 0.0, 5)
        self.assertEqual(checks(limiter, 0.0, 5), [REFUSE] * 4 + [FLOOD])


class DrainTests(SynchronousTestCase):
    def test_drain_leaves_one_token(self) -> None:
        """After drain(): one frame (the C{hello}), then only the refill rate."""
        limiter = RateLimiter(20, 2.0, now=0.0)
        limiter.drain()
        self.assertEqual(checks(limiter, 0.0, 3), [ALLOW, REFUSE, REFUSE])
        self.assertEqual(checks(limiter, 0.5, 2), [ALLOW, REFUSE])

    def test_drain_never_adds(self) -> None:
        limiter = RateLimiter(20, 2.0, now=0.0)
        checks(limiter, 0.0, 20)
        limiter.drain()
        self.assertEqual(limiter.check(0.0), REFUSE)


@implementer(IServerConnection)
class _Stub:
    """
    A connection as L{ChatFactory <chatsvc.server.factory.ChatFactory>}
    sees it, with nothing behind it but a peer and a rate limiter.
    """

    closing = False
    queue = None

    def __init__(self, peer: str, limiter: RateLimiter) -> None:
        self.peer = peer
        self.limiter = limiter

    def throttle(self, on: bool) -> None:
        pass

    def fatal(self, code: str, text: str) -> None:
        raise AssertionError(f"unexpected fatal {code}")

    def check_idle(self, now: float) -> None:
        pass

    def abort(self) -> None:
        raise AssertionError("unexpected abort")


class FloodedAddressTests(SynchronousTestCase):
    """
    The factory remembers addresses dropped for C{flood}: their next
    connections start drained (one token) within the flood window.
    """

    def setUp(self) -> None:
        self.factory = make_factory(max_per_ip=0)
        self.clock = self.factory.clock
        self.addCleanup(self.factory.stopFactory)

    def flood_from(self, peer: str) -> None:
        limiter = RateLimiter(1, 0.01, now=self.clock.seconds(), flood_factor=1)
        checks(limiter, self.clock.seconds(), 2)
        self.assertTrue(limiter.flooded)
        proto = _Stub(peer, limiter)
        self.assertIsNone(self.factory.connection_opened(proto))
        self.factory.connection_closed(proto)

    def drained_on_connect(self, peer: str) -> bool:
        limiter = RateLimiter(20, 2.0, now=self.clock.seconds())
        proto = _Stub(peer, limiter)
        self.factory.connection_opened(proto)
        self.factory.connection_closed(proto)
        now = self.clock.seconds()
        return checks(limiter, now, 2) == [ALLOW, REFUSE]

    def test_stub_is_a_connection(self) -> None:
        self.assertTrue(verifyObject(IServerConnection, _Stub("192.0.2.1", None)))

    def test_flooder_starts_drained(self) -> None:
        self.flood_from("192.0.2.1")
        self.assertTrue(self.drained_on_connect("192.0.2.1"))
        self.assertFalse(self.drained_on_connect("192.0.2.2"))

    def test_forgiven_at_the_window(self) -> None:
        """Forgiven once C{flood_window} (30 s) has passed: at 30.0, not 29.99."""
        self.flood_from("192.0.2.1")
        self.clock.advance(29.99)
        self.assertTrue(self.drained_on_connect("192.0.2.1"))
        self.clock.advance(0.01)
        self.assertFalse(self.drained_on_connect("192.0.2.1"))

    def test_loopback_exempt(self) -> None:
        self.flood_from("127.0.0.1")
        self.assertFalse(self.drained_on_connect("127.0.0.1"))

    def test_table_is_pruned(self) -> None:
        """
        The table is bounded (65,536 addresses): flooded from that many
        others since, the oldest is forgotten, the newest remembered.
        """
        self.flood_from("10.0.0.0")
        for i in range(1, 65537):
            self.flood_from(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}")
        self.assertFalse(self.drained_on_connect("10.0.0.0"))
        self.assertTrue(self.drained_on_connect("10.0.0.2"))
        self.assertTrue(self.drained_on_connect("10.1.0.0"))


class ParseRateTests(SynchronousTestCase):
    def test_good(self) -> None:
        self.assertEqual(parse_rate("20/2"), (20, 2.0))
        self.assertEqual(parse_rate(" 5/0.5 "), (5, 0.5))
        self.assertEqual(parse_rate("10"), (10, 10.0))

    def test_off(self) -> None:
        self.assertEqual(parse_rate("0"), (0, 0.0))
        self.assertEqual(parse_rate("off"), (0, 0.0))

    def test_bad(self) -> None:
        for text in ("", "abc", "20/x", "x/2", "-1/2", "20/0", "20/-1", "20/nan", "20/inf", "1.5/2"):
            e = self.assertRaises(ValueError, parse_rate, text)
            self.assertIn("--rate", str(e))


class KeepaliveBucketTests(SynchronousTestCase):
    """(v2) ping and pong: a bucket of their own, refusals toward the same flood."""

    def test_own_bucket(self) -> None:
        limiter = RateLimiter(burst=20, per_second=2, now=0)
        for _ in range(20):
            self.assertIs(limiter.check(0), ALLOW)
        self.assertIs(limiter.check(0), REFUSE)
        self.assertEqual([limiter.check_keepalive(0) for _ in range(11)], [ALLOW] * 10 + [REFUSE])
        self.assertIs(limiter.check_keepalive(1.0), ALLOW, "refilled at 1 per second")
        self.assertIs(limiter.check_keepalive(1.0), REFUSE)

    def test_refusals_count_together(self) -> None:
        limiter = RateLimiter(burst=2, per_second=1, now=0, flood_factor=2, keepalive_burst=1)
        self.assertEqual([limiter.check(0) for _ in range(3)], [ALLOW, ALLOW, REFUSE])
        self.assertEqual([limiter.check_keepalive(0) for _ in range(2)], [ALLOW, REFUSE])
        self.assertIs(limiter.check_keepalive(0), REFUSE)
        self.assertIs(limiter.check(0), FLOOD, "the fourth refusal of both buckets")

    def test_off(self) -> None:
        limiter = RateLimiter(burst=0, per_second=1, now=0)
        self.assertEqual({limiter.check_keepalive(0) for _ in range(100)}, {ALLOW})
