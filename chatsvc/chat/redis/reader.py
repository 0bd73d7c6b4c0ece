# -*- test-case-name: tests.test_redisroom -*-
"""
L{StreamReader}: reads the chat's event stream and the event streams of the
rooms this server's members are in, all with one blocking C{XREAD}, and
hands each entry over in its stream's order.

Every stream numbers its entries C{1-0}, C{2-0}, ...; an entry whose number
is not the next one means the stream moved on without this server (it was
trimmed past it, or Redis lost data): the reader says so (C{on_gap}) and
goes on from there.

Following a new stream while an C{XREAD} blocks wakes it (the C{wake}
callable, C{CLIENT UNBLOCK} from the other connection), so that the next
C{XREAD} includes it.

Its lag (C{--metrics}: C{chatsvc_redis_stream_lag_seconds}): after each
read, how long ago Redis wrote the newest entry it applied (every entry
carries Redis's time in ms, field C{t}), on this server's clock corrected
by L{clock_offset}; 0 after a read that found nothing new.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, List, Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from .entries import Entry, parse_xread
from .link import NotReady, RedisLink, connection_errors

_log = Logger()

READ_BATCH = 1000
READ_BLOCK_MS = 2000


class StreamReader:
    """
    @param link: the connection to read on (it blocks).
    @param on_entry: C{(stream, entry)}; may return a Deferred to wait for.
    @param on_gap: C{(stream, last, next)}; returns a Deferred (it catches up)
        or C{None}.
    @param prepare: awaited after every (re)connection, before reading.
    @param wake: called to end a blocking C{XREAD} early.
    """

    def __init__(self, link: RedisLink, clock: Any,
                 on_entry: Callable[[str, Entry], Optional[Deferred]],
                 on_gap: Callable[[str, int, int], Optional[Deferred]],
                 prepare: Callable[[], Awaitable[None]],
                 wake: Callable[[], None]) -> None:
        self._link = link
        self._clock = clock
        self._on_entry = on_entry
        self._on_gap = on_gap
        self._prepare = prepare
        self._wake = wake
        self._last: Dict[str, int] = {}
        self._blocking = False
        self._watchdog: Any = None
        self.running = False
        self.needs_prepare = True
        self.lag_observer: Optional[Callable[[float], None]] = None
        self.clock_offset = 0.0
        """This server's clock minus Redis's, in seconds (L{measure_offset})."""

    def measure_offset(self, sent: float, redis_time: Any, received: float) -> None:
        """
        Set L{clock_offset} from a C{TIME} reply (C{[seconds, microseconds]})
        asked at C{sent} and answered at C{received} (this server's clock),
        taking Redis's time as that of the middle of the round trip.
        """
        redis_seconds = int(redis_time[0]) + int(redis_time[1]) / 1e6
        self.clock_offset = (sent + received) / 2 - redis_seconds

    def position(self, stream: str) -> Optional[int]:
        return self._last.get(stream)

    def set_position(self, stream: str, n: int) -> None:
        self._last[stream] = n

    def follow(self, stream: str, after: int) -> None:
        """Read C{stream} from entry C{after + 1} on, unless it is read already."""
        if stream in self._last:
            return
        self._last[stream] = after
        if self._blocking:
            self._wake()

    def unfollow(self, stream: str) -> None:
        self._last.pop(stream, None)

    def streams(self) -> List[str]:
        return list(self._last)

    async def run(self) -> None:
        link = self._link
        errors = connection_errors()
        while self.running:
            try:
                await link.when_ready()
            except NotReady:
                return
            try:
                if self.needs_prepare:
                    await self._prepare()
                    self.needs_prepare = False
                reply = await self._xread()
            except errors:
                continue
            newest: Optional[float] = None
            for stream, entries in parse_xread(reply):
                applied = await self._deliver(stream, entries)
                if applied is not None and (newest is None or applied > newest):
                    newest = applied
            self._report_lag(newest)

    def _report_lag(self, newest: Optional[float]) -> None:
        observer = self.lag_observer
        if observer is not None:
            lag = 0.0 if newest is None else self._clock.seconds() - newest - self.clock_offset
            observer(max(0.0, lag))

    async def _deliver(self, stream: str, entries: List[Entry]) -> Optional[float]:
        """Apply C{entries} of C{stream}; the Redis time of the newest applied, if any."""
        newest = None
        for entry in entries:
            last = self._last.get(stream)
            if last is None or entry.n <= last:
                continue
            if entry.n != last + 1:
                _log.warn("a stream moved on without this server (at {at}, next {next})",
                          at=last, next=entry.n)
                self._last[stream] = entry.n - 1
                waiting = self._on_gap(stream, last, entry.n)
                if waiting is not None:
                    await waiting
                if self._last.get(stream) != entry.n - 1:
                    return newest  # the catch-up moved the position on
            self._last[stream] = entry.n
            newest = entry.time if entry.time is not None else newest
            try:
                waiting = self._on_entry(stream, entry)
                if waiting is not None:
                    await waiting
            except Exception:
                _log.failure("applying an event failed (event {n})", n=entry.n)
        return newest

    def _xread(self) -> Deferred:
        streams = list(self._last)
        ids = [f"{self._last[s]}-0" for s in streams]
        d = self._link.command("XREAD", "COUNT", READ_BATCH, "BLOCK", READ_BLOCK_MS,
                               "STREAMS", *streams, *ids, blocking=True)
        self._blocking = True
        # A Redis that stops answering (frozen, or a half-open TCP connection).
        self._watchdog = self._clock.callLater(READ_BLOCK_MS / 1000 + 10, self._link.abort)
        return d.addBoth(self._done)

    def _done(self, result: Any) -> Any:
        self._blocking = False
        self.cancel_watchdog()
        return result

    def cancel_watchdog(self) -> None:
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = None
