# -*- test-case-name: tests.test_client -*-
"""
What the user typed and the client has not sent yet: L{Outbox} keeps the
actions in order, sends them when the connection is ready, paced by a
L{TokenBucket} (under the server's rate limit; the caller passes the
time in), and pauses the input
while too many wait::

    outbox = Outbox(reactor, bucket, ready=lambda: connected, perform=send)
    outbox.add(Say("hi"))      # sent at once if ready and a token is free
    outbox.pump()              # try again (after a reconnection, ...)
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, Optional

from twisted.internet.interfaces import IPushProducer, IReactorTime

from .commands import Action, Quit, SwitchEncryption


class TokenBucket:
    """
    Paces our frames so as to stay under the server's rate limit
    (PROTOCOL.md section 6: a burst of 20, refilled at 2 per second).
    """

    def __init__(self, capacity: float = 20, rate: float = 2.0, now: float = 0.0) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = float(capacity)
        self._at = now

    def reset(self, now: float, used: float = 0.0) -> None:
        """A new connection: a full bucket, less C{used} frames already sent."""
        self.tokens = self.capacity - used
        self._at = now

    def take(self, now: float) -> float:
        """Take a token and return 0, or return how long to wait for one."""
        self.tokens = min(self.capacity, self.tokens + (now - self._at) * self.rate)
        self._at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Outbox:
    """
    @param ready: whether actions may be sent now (a registered connection,
        no switch of mode under way, not quitting).
    @param perform: sends one action.
    """

    HIGH = 100
    LOW = 20
    """Stop reading input while more actions than this wait to be sent;
    read again once they are down to L{LOW}."""

    def __init__(self, reactor: IReactorTime, bucket: TokenBucket, ready: Callable[[], bool],
                 perform: Callable[[Action], None]) -> None:
        self._reactor = reactor
        self._bucket = bucket
        self._ready = ready
        self._perform = perform
        self._actions: Deque[Action] = deque()
        self._input: Optional[IPushProducer] = None
        self._input_paused = False
        self._call: Any = None
        self._pumping = False
        self._again = False
        self.closed = False

    def __len__(self) -> int:
        return len(self._actions)

    def waiting(self) -> int:
        """Lines waiting (a quit does not count)."""
        return sum(1 for action in self._actions if not isinstance(action, Quit))

    def attach_input(self, producer: IPushProducer) -> None:
        self._input = producer

    def add(self, action: Action) -> None:
        self._actions.append(action)
        self.pump()

    def restart(self, used: float = 0.0) -> None:
        """A new connection: a full bucket less C{used}, and send at once."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._bucket.reset(self._reactor.seconds(), used=used)
        self.pump()

    def pump(self) -> None:
        """Send what can be sent now; schedule the rest."""
        if self._pumping:
            self._again = True
            return
        self._pumping = True
        try:
            again = True
            while again:
                self._again = False
                self._send_ready()
                self._throttle_input()
                again = self._again
        finally:
            self._pumping = False

    def close(self) -> None:
        """The client is finished: nothing more is sent; the input reads again."""
        self.closed = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        if self._input is not None and self._input_paused:
            self._input_paused = False
            self._input.resumeProducing()

    def _send_ready(self) -> None:
        while self._actions and not self.closed:
            if not self._ready() or (self._call is not None and self._call.active()):
                return
            action = self._actions[0]
            if not isinstance(action, (Quit, SwitchEncryption)):
                wait = self._bucket.take(self._reactor.seconds())
                if wait > 0:
                    self._call = self._reactor.callLater(wait, self.pump)
                    return
            self._actions.popleft()
            self._perform(action)

    def _throttle_input(self) -> None:
        if self._input is None:
            return
        if not self._input_paused and len(self._actions) >= self.HIGH:
            self._input_paused = True
            self._input.pauseProducing()
        elif self._input_paused and len(self._actions) <= self.LOW:
            self._input_paused = False
            self._input.resumeProducing()
