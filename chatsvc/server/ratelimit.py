# -*- test-case-name: tests.test_ratelimit -*-
"""
Per-client frame rate limits (PROTOCOL.md section 6), without I/O.

A token bucket lets a client send a burst, then a steady rate; a flood guard
turns a client that keeps hammering a full bucket into a fatal C{flood}::

    limiter = RateLimiter(burst=20, per_second=2.0, now=clock.seconds())
    verdict = limiter.check(clock.seconds())   # ALLOW, REFUSE or FLOOD
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Deque, Optional


class Verdict(enum.Enum):
    ALLOW = "allow"
    REFUSE = "refuse"
    FLOOD = "flood"


ALLOW = Verdict.ALLOW
REFUSE = Verdict.REFUSE
FLOOD = Verdict.FLOOD


class RateLimiter:
    """
    A token bucket of C{burst} frames refilled at C{per_second}, and a flood
    guard: the C{flood_factor * burst}th refusal within C{flood_window}
    seconds is a flood (with the defaults, 59 frames are refused with
    C{rate-limited} and the 60th closes the connection with C{flood}).

    C{ping} and C{pong} take from a bucket of their own (C{keepalive_burst},
    refilled at C{keepalive_per_second}; L{check_keepalive}), whose
    refusals count toward the same flood guard.

    A C{burst} of 0 turns the limits off (for benchmarks).
    """

    __slots__ = ("burst", "per_second", "_tokens", "_stamp", "_refusals", "_flood_limit", "_window",
                 "flooded", "keepalive_burst", "keepalive_per_second", "_ka_tokens", "_ka_stamp")

    def __init__(
        self,
        burst: int,
        per_second: float,
        now: float,
        flood_factor: int = 3,
        flood_window: float = 30.0,
        keepalive_burst: int = 10,
        keepalive_per_second: float = 1.0,
    ) -> None:
        self.burst = burst
        self.per_second = per_second
        self._tokens = float(burst)
        self._stamp = now
        self._refusals: Optional[Deque[float]] = None
        self._flood_limit = flood_factor * burst
        self._window = flood_window
        self.flooded = False  # whether check() ever said FLOOD
        self.keepalive_burst = keepalive_burst
        self.keepalive_per_second = keepalive_per_second
        self._ka_tokens = float(keepalive_burst)
        self._ka_stamp = now

    def drain(self) -> None:
        """
        Start from a nearly empty bucket: one frame (a C{hello}), then only
        as fast as it refills.
        """
        self._tokens = min(self._tokens, 1.0)

    def check(self, now: float) -> Verdict:
        """Take one token for a frame received at C{now}, and say what to do."""
        if not self.burst:
            return ALLOW
        tokens = self._tokens + (now - self._stamp) * self.per_second
        if tokens > self.burst:
            tokens = float(self.burst)
        self._stamp = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return ALLOW
        self._tokens = tokens
        return self._refuse(now)

    def check_keepalive(self, now: float) -> Verdict:
        """
        Take one token of the C{ping}/C{pong} bucket (PROTOCOL.md section
        6); its refusals count toward the same flood guard.
        """
        if not self.burst or not self.keepalive_burst:
            return ALLOW
        tokens = self._ka_tokens + (now - self._ka_stamp) * self.keepalive_per_second
        if tokens > self.keepalive_burst:
            tokens = float(self.keepalive_burst)
        self._ka_stamp = now
        if tokens >= 1.0:
            self._ka_tokens = tokens - 1.0
            return ALLOW
        self._ka_tokens = tokens
        return self._refuse(now)

    def _refuse(self, now: float) -> Verdict:
        refusals = self._refusals
        if refusals is None:
            refusals = self._refusals = deque()
        refusals.append(now)
        while refusals and refusals[0] <= now - self._window:
            refusals.popleft()
        if len(refusals) >= self._flood_limit:
            self.flooded = True
            return FLOOD
        return REFUSE


def parse_rate(text: str) -> tuple:
    """
    Parse C{BURST/PER_SECOND} (C{"20/2"}) or C{"0"} (off).

    @return: C{(burst, per_second)}
    @raise ValueError: with a message fit for a command line.
    """
    text = text.strip()
    if text in ("0", "off"):
        return (0, 0.0)
    burst_text, sep, rate_text = text.partition("/")
    try:
        burst = int(burst_text)
        per_second = float(rate_text) if sep else float(burst)
    except ValueError:
        raise ValueError(f"--rate takes BURST/PER_SECOND such as 20/2, or 0; got {text!r}")
    if burst < 0 or per_second <= 0 or per_second != per_second or per_second == float("inf"):
        raise ValueError(f"--rate takes a positive burst and rate, or 0; got {text!r}")
    return (burst, per_second)
