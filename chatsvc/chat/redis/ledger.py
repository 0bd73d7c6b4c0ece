# -*- test-case-name: tests.test_redisroom -*-
"""
L{RequestLedger}: the requests (C{say}, C{msg}) whose reply may be lost
with the connection, numbered so that one re-sent after a reconnection is
applied at most once (the scripts remember each server's last number).

    ledger = RequestLedger(link, clock)
    d = ledger.send("say", keys, [server_id, 0, ...])   # args[1] is the number
    ...
    await ledger.resend()           # from the link's on_ready, in order
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ...wire.errors import RemoteProtocolError
from .link import RedisLink, connection_errors

_log = Logger()

INFLIGHT_GRACE = 10.0
"""Seconds a request whose reply was lost waits for Redis to come back (to
be re-sent) before its client is told C{unavailable}."""


def unavailable(text: str = "the chat store is unreachable; not delivered, try again shortly"
                ) -> RemoteProtocolError:
    return RemoteProtocolError("unavailable", text, fatal=False)


@dataclass
class _Request:
    number: int
    script: str
    keys: List[str]
    args: list
    result: Deferred = field(default_factory=Deferred)
    timer: Any = None


class RequestLedger:
    """Numbered requests in flight, re-sent after a reconnection."""

    def __init__(self, link: RedisLink, clock: Any) -> None:
        self._link = link
        self._clock = clock
        self._numbers = itertools.count(1)
        self._inflight: Dict[int, _Request] = {}

    def results(self) -> List[Deferred]:
        return [r.result for r in self._inflight.values()]

    def send(self, script: str, keys: List[str], args: list) -> Deferred:
        """
        Run C{script} with a new request number in C{args[1]}.

        @raise RemoteProtocolError: C{unavailable} if the link is down.
        """
        if not self._link.ready:
            raise unavailable()
        number = next(self._numbers)
        args[1] = number
        request = _Request(number, script, keys, args)
        self._inflight[number] = request
        self._send(request)
        return request.result

    def _send(self, request: _Request, early: bool = False) -> Deferred:
        d = self._link.call(request.script, request.keys, request.args, early=early)

        def done(reply: Any) -> None:
            self._settle(request)
            if not request.result.called:
                request.result.callback(reply)

        def failed(failure: Failure) -> Optional[Failure]:
            if failure.check(*connection_errors()):
                if request.timer is None and request.number in self._inflight:
                    request.timer = self._clock.callLater(INFLIGHT_GRACE, self._expire, request)
                return failure if early else None
            self._settle(request)
            _log.failure("Redis script {script} failed", failure, script=request.script)
            if not request.result.called:
                request.result.errback(unavailable("the chat store refused this; not delivered"))
            return None

        return d.addCallbacks(done, failed)

    def _settle(self, request: _Request) -> None:
        self._inflight.pop(request.number, None)
        if request.timer is not None and request.timer.active():
            request.timer.cancel()

    def _expire(self, request: _Request) -> None:
        request.timer = None
        if self._inflight.pop(request.number, None) is not None and not request.result.called:
            request.result.errback(unavailable(
                "the chat store did not confirm this message; it may or may not have been delivered"))

    def lost(self) -> None:
        """The connection is gone: start the grace period of every request."""
        for request in self._inflight.values():
            if request.timer is None:
                request.timer = self._clock.callLater(INFLIGHT_GRACE, self._expire, request)

    async def resend(self) -> None:
        """Re-send, in order, every request whose reply was lost (before the link is ready)."""
        for number in sorted(self._inflight):
            request = self._inflight.get(number)
            if request is not None:
                await self._send(request, early=True)
