"""
Bounded waits for real-process tests: every wait is a Deferred with a
deadline, never a fixed sleep.

    yield deadline(d, 10, "the server to answer")
    yield wait_until(lambda: server.logged("ready"), 10, "the server")
"""

from __future__ import annotations

from typing import Any, Callable, List

from twisted.internet import defer, reactor
from twisted.python.failure import Failure


def deadline(d: defer.Deferred, seconds: float, what: str) -> defer.Deferred:
    """C{d}, failed with a message saying C{what} if it takes over C{seconds}."""
    timer = reactor.callLater(seconds, d.cancel)

    def done(result: Any) -> Any:
        if timer.active():
            timer.cancel()
            return result
        if isinstance(result, Failure) and result.check(defer.CancelledError):
            raise AssertionError(f"timed out after {seconds} s: {what}")
        return result

    return d.addBoth(done)


def wait_until(check: Callable[[], bool], seconds: float, what: str,
               every: float = 0.02) -> defer.Deferred:
    """Poll C{check} on the reactor until it is true (bounded)."""
    done: defer.Deferred = defer.Deferred()
    end = reactor.seconds() + seconds

    def poll() -> None:
        if done.called:
            return
        try:
            ok = check()
        except Exception as e:  # pragma: no cover - a test bug
            done.errback(e)
            return
        if ok:
            done.callback(None)
        elif reactor.seconds() > end:
            done.errback(AssertionError(f"timed out after {seconds} s: {what}"))
        else:
            reactor.callLater(every, poll)

    poll()
    return done


def pause(seconds: float) -> defer.Deferred:
    """A Deferred that fires after C{seconds} (real time; for real processes)."""
    d: defer.Deferred = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


@defer.inlineCallbacks
def gather(deferreds: List[defer.Deferred]):
    """Wait for all; fail with the first failure."""
    results = yield defer.gatherResults(deferreds, consumeErrors=True).addErrback(
        lambda f: f.value.subFailure if hasattr(f.value, "subFailure") else f)
    return results
