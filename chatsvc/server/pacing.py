# -*- test-case-name: tests.test_protocol_limits,tests.test_protocol -*-
"""
How fast a connection's input is taken: L{InputPacing}, the part of
L{chatsvc.server.protocol.ChatProtocol} that holds and releases reading
from one client, and acts on the rate limiter's verdicts.

Reading from a client (and handling the frames already buffered) stops
while any reason to hold it lasts, each a bit of C{_holds}:
L{HOLD_ROOM}, a room request in flight (a chat that answers later);
L{HOLD_TURN}, this turn's fan-out budget spent; L{HOLD_THROTTLE}, the
factory's throttle (too many send queues behind).
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure

from ..wire.errors import RemoteProtocolError
from ..wire.messages import Message
from .ratelimit import ALLOW, FLOOD, RateLimiter

_log = Logger(namespace="chatsvc.server.protocol")

HOLD_ROOM = 1
HOLD_TURN = 2
HOLD_THROTTLE = 4


class InputPacing(Int32StringReceiver):
    """
    Holding input and rate limiting, for L{ChatProtocol} (which inherits
    them; split out only to keep each module readable). It relies on
    the protocol's C{factory}, C{closing}, C{fatal}, C{_send_error},
    C{_about} and clock.
    """

    factory: Any
    closing: bool
    limiter: Optional[RateLimiter] = None
    _holds = 0
    _clock: Any

    def fatal(self, code: str, text: str) -> None:
        raise NotImplementedError

    def _send_error(self, e: RemoteProtocolError) -> None:
        raise NotImplementedError

    def _about(self, kind: str, message: Message, e: RemoteProtocolError) -> RemoteProtocolError:
        raise NotImplementedError

    def throttle(self, on: bool) -> None:
        """Stop (or start again) reading from this client, for the factory."""
        if self.closing or self.transport is None:
            return
        if on:
            self._hold(HOLD_THROTTLE)
        else:
            # On the next turn: handling buffered frames now could throttle
            # again in the middle of the factory's loop over its clients.
            self._clock.callLater(0, self._throttle_released)

    def _wait_for(self, result: Deferred, kind: str, message: Message) -> None:
        """
        A room that answers later (a distributed one) returned a Deferred:
        read nothing more from this client until it fires, so that its
        requests are still handled one at a time and in order.
        """

        def failed(failure: Failure) -> None:
            failure.trap(RemoteProtocolError)
            if not self.closing:
                self._send_error(self._about(kind, message, failure.value))

        answered = []
        result.addErrback(failed)
        result.addErrback(lambda f: _log.failure("room request failed", f))
        result.addCallback(answered.append)
        if answered:
            # Already fired: carry on in the current dataReceived loop.
            # Pausing and resuming here would re-enter dataReceived, which
            # would handle this frame and the ones after it a second time.
            return
        self._hold(HOLD_ROOM)
        result.addCallback(lambda _: self._release(HOLD_ROOM))

    # -- holding input ---------------------------------------------------------

    def _hold(self, reason: int) -> None:
        if not self._holds and not self.paused:
            Int32StringReceiver.pauseProducing(self)
        self._holds |= reason

    def _release(self, reason: int) -> None:
        self._holds &= ~reason
        if not self._holds and self.paused and not self.closing and self.transport is not None:
            Int32StringReceiver.resumeProducing(self)  # handles what is buffered

    def _end_turn(self) -> None:
        self._release(HOLD_TURN)

    def _throttle_released(self) -> None:
        if not self.factory.throttled:
            self._release(HOLD_THROTTLE)

    # -- the rate limiter's verdicts -------------------------------------------

    def _keepalive_limited(self, now: float) -> bool:
        """A C{ping} or C{pong} past its own bucket: dropped, counted toward C{flood}."""
        limiter = self.limiter
        if limiter is None:
            return False
        verdict = limiter.check_keepalive(now)
        if verdict is FLOOD:
            self.fatal("flood", "far over the message rate for too long")
        return verdict is not ALLOW

    def _limited(self, now: float) -> bool:
        limiter = self.limiter
        if limiter is None:
            return False
        verdict = limiter.check(now)
        if verdict is ALLOW:
            return False
        if verdict is FLOOD:
            self.fatal("flood", "far over the message rate for too long")
        else:
            self.factory.metrics.rate_limited()
            self._send_error(RemoteProtocolError(
                "rate-limited", "too many messages; this one was not delivered", fatal=False))
        return True
