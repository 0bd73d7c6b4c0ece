# -*- test-case-name: tests.test_turns -*-
"""
Work left for the end of the reactor turn, done in one pass.

The room gathers the broadcasts of a turn and hands them to every member at
its end; the encrypting wrapper gathers each connection's writes of a turn
and encrypts them as one record at its end. With a C{callLater(0)} each, the
second would wait for the I{next} turn (Twisted runs calls made while it is
running delayed calls only after polling again), which costs every
encrypted message one more turn of latency under load. L{end_of_turn} gives
every user of one clock the same L{EndOfTurn}, whose pass also runs what is
scheduled while it runs::

    end_of_turn(reactor).schedule(room.flush)   # may schedule more
"""

from __future__ import annotations

import weakref
from collections import deque
from time import perf_counter
from typing import Any, Callable, Deque, MutableMapping, Optional

from zope.interface import implementer

from ..chat.interfaces import IEndOfTurn


@implementer(IEndOfTurn)
class EndOfTurn:
    """
    Calls to make once the input of the current reactor turn is handled.

    @param clock: an L{IReactorTime}.
    @ivar running: C{True} while the pass runs: what is written then is the
        last of the turn, and needs no more gathering.
    """

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._calls: Deque[Callable[[], object]] = deque()
        self._delayed: Any = None
        self.running = False  # True while the pass runs
        # Called with each pass's duration in seconds (--metrics), or None.
        self.observer: Optional[Callable[[float], None]] = None

    def schedule(self, f: Callable[[], object]) -> None:
        """Call C{f()} at the end of this turn (after what is already there)."""
        self._calls.append(f)
        if self._delayed is None:
            self._delayed = self._clock.callLater(0, self._run)

    def cancel(self, f: Callable[[], object]) -> None:
        """Forget one scheduled C{f} (one that has not run yet), if any."""
        try:
            self._calls.remove(f)
        except ValueError:
            return
        if not self._calls and self._delayed is not None:
            self._delayed.cancel()
            self._delayed = None

    def _run(self) -> None:
        self._delayed = None
        calls = self._calls
        observer = self.observer
        started = perf_counter() if observer is not None else 0.0
        self.running = True
        try:
            while calls:
                calls.popleft()()
        finally:
            self.running = False
            if calls and self._delayed is None:  # after an exception
                self._delayed = self._clock.callLater(0, self._run)
            if observer is not None:
                observer(perf_counter() - started)


_by_clock: MutableMapping[Any, EndOfTurn] = weakref.WeakKeyDictionary()


def end_of_turn(clock: Any) -> EndOfTurn:
    """The one L{EndOfTurn} of C{clock}."""
    try:
        return _by_clock[clock]
    except KeyError:
        batcher = _by_clock[clock] = EndOfTurn(clock)
        return batcher
