# -*- test-case-name: tests.test_client -*-
"""
Making connections: L{LinkMaker} builds the L{Link}s of one client (a
connection mode and the C{ClientService} that keeps a connection up in
it, through the encrypting wrapper in encrypted mode), starts them, tells
the client when a first attempt failed, and knows when the next attempt
is due (for the status line's "reconnecting in N s")::

    links = LinkMaker(reactor, endpoint, client, psk=key)
    link = links.new(encrypted=True)
    links.start(link, first_failed=client_callback)   # (failure, link), next turn
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IProtocolFactory, IReactorTime
from twisted.python.failure import Failure

from .protocol import ChatClientFactory, Controller, Link


def _default_encrypting_factory(
    factory: IProtocolFactory, psk: bytes, clock: IReactorTime
) -> IProtocolFactory:
    from ..server.encryption import EncryptingFactory

    return EncryptingFactory(factory, psk, initiator=True, clock=clock)


class LinkMaker:
    """
    @param controller: what the links' protocols report to (the client).
    @param encrypting_factory: C{(factory, psk, clock) -> factory}, wraps a
        protocol factory for encrypted mode; defaults to
        L{chatsvc.server.encryption.EncryptingFactory} with C{initiator=True}.
    @param retry_policy: C{ClientService}'s retry policy.
    @param on_retry: called (no arguments) when an attempt is scheduled.

    @ivar retry_at: when the next attempt is due (the reactor's seconds).
    """

    def __init__(self, reactor: IReactorTime, endpoint: Any, controller: Controller,
                 psk: Optional[bytes] = None,
                 encrypting_factory: Optional[Callable[..., IProtocolFactory]] = None,
                 retry_policy: Optional[Callable[[int], float]] = None,
                 on_retry: Optional[Callable[[], None]] = None) -> None:
        self._reactor = reactor
        self._endpoint = endpoint
        self._controller = controller
        self._psk = psk
        self._encrypting_factory = encrypting_factory or _default_encrypting_factory
        self._policy = retry_policy or backoffPolicy(initialDelay=1.0, maxDelay=30.0)
        self._on_retry = on_retry
        self.retry_at: Optional[float] = None

    def new(self, encrypted: bool) -> Link:
        link = Link(encrypted)
        factory: IProtocolFactory = ChatClientFactory(self._controller, link, self._reactor)
        if encrypted:
            factory = self._encrypting_factory(factory, self._psk, self._reactor)
        link.service = ClientService(
            self._endpoint, factory, retryPolicy=self._retry_policy, clock=self._reactor
        )
        return link

    def start(self, link: Link,
              first_failed: Optional[Callable[[Failure, Link], None]] = None) -> None:
        """
        Start C{link}, once it is the client's current link (or the switch
        target): an endpoint may connect before C{startService} returns.
        With C{first_failed}, a failed first attempt is reported to it, on
        the next turn of the reactor.
        """
        assert link.service is not None
        if first_failed is not None:
            # Asked before starting, so that an endpoint failing at once
            # still counts as the first failure.
            link.service.whenConnected(failAfterFailures=1).addErrback(
                self._first_attempt_failed, link, first_failed
            )
        link.service.startService()

    def _first_attempt_failed(self, failure: Failure, link: Link,
                              report: Callable[[Failure, Link], None]) -> None:
        if failure.check(CancelledError):
            return
        # We are inside ClientService's state machine, which must not be
        # re-entered (by stopping the service): act on the next turn.
        self._reactor.callLater(0, report, failure, link)

    def _retry_policy(self, attempt: int) -> float:
        delay = self._policy(attempt)
        self.retry_at = self._reactor.seconds() + delay
        if self._on_retry is not None:
            self._on_retry()
        return delay
