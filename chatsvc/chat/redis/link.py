# -*- test-case-name: tests.test_redisroom -*-
"""
L{RedisLink}: one Redis connection, kept up by C{ClientService} with backoff,
with the chat's Lua scripts loaded, speaking RESP through C{txredisapi}.

    link = RedisLink(endpoint, reactor, "commands", on_ready=reconcile)
    link.start()
    d = link.call("say", RoomKeys("team", "#lobby").all, [server, request, ...])
    link.ready          # False between a lost connection and on_ready's end

C{txredisapi} is imported here only, lazily: the single-process server never
needs it. It is used for its RESP protocol (with C{hiredis} when installed,
whose C parser matters for large C{XREAD} replies); the connection's life
(connect, back off, prepare, reconnect) is ours, on L{ClientService} and the
clock we are given.
"""

from __future__ import annotations

import random
from time import perf_counter
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred, fail
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from .scripts import SCRIPTS, script_sha

_log = Logger()

RETRY = backoffPolicy(initialDelay=0.05, maxDelay=2.0, factor=2.0,
                      jitter=lambda: random.random() * 0.05)
"""Reconnect after 50 ms, doubling up to 2 s."""


def _txredisapi() -> Any:
    try:
        import txredisapi
    except ImportError as e:  # pragma: no cover - depends on the install
        raise SystemExit(
            "chat: --redis needs txredisapi: pip install 'chatsvc[redis]'"
        ) from e
    return txredisapi


def connection_errors() -> tuple:
    """The exceptions that mean "the connection to Redis is gone"."""
    from twisted.internet.error import ConnectionDone, ConnectionLost

    return (_txredisapi().ConnectionError, ConnectionDone, ConnectionLost, NotReady)


class NotReady(Exception):
    """The link has no usable connection right now."""


class _RedisFactory(Factory):
    noisy = False

    def __init__(self, reply_timeout: Optional[float]) -> None:
        self._reply_timeout = reply_timeout

    def buildProtocol(self, addr: Any) -> Any:
        txredisapi = _txredisapi()
        # charset None, no number conversion: values stay bytes, as stored.
        proto = txredisapi.RedisProtocol(charset=None, convertNumbers=False,
                                         replyTimeout=self._reply_timeout)
        proto.factory = self
        return proto

    # txredisapi's protocol calls these on a failed AUTH/SELECT only.
    def stopTrying(self) -> None:  # pragma: no cover
        pass

    def connectionError(self, why: str) -> None:  # pragma: no cover
        _log.error("Redis: {why}", why=why)


class RedisLink:
    """
    One connection to Redis.

    @param endpoint: an C{IStreamClientEndpoint} for the Redis server.
    @param clock: the reactor (time and reconnection delays).
    @param label: names the connection in logs.
    @param on_ready: called with this link on every new connection, after
        the scripts are loaded and before L{ready} turns true; it may return
        an awaitable (use L{call} with C{early=True} in it).
    @param on_lost: called when a ready connection is lost.
    @param reply_timeout: seconds to wait for a reply before the connection
        is dropped (not applied to the commands that block on purpose).
    """

    def __init__(
        self,
        endpoint: Any,
        clock: Any,
        label: str,
        on_ready: Optional[Callable[["RedisLink"], Optional[Awaitable[Any]]]] = None,
        on_lost: Optional[Callable[[], None]] = None,
        reply_timeout: Optional[float] = 10.0,
    ) -> None:
        self.label = label
        self.ready = False
        self._proto: Any = None
        self._on_ready = on_ready
        self._on_lost = on_lost
        self._shas: Dict[str, str] = {name: script_sha(text) for name, (_, text) in SCRIPTS.items()}
        self.client_id: Optional[int] = None
        self._waiters: List[Deferred] = []
        self._was_down = False
        self._service = ClientService(
            endpoint, _RedisFactory(reply_timeout), retryPolicy=RETRY, clock=clock,
            prepareConnection=self._prepare,
        )

    def start(self) -> None:
        self._service.startService()

    def stop(self) -> Deferred:
        """Stop reconnecting and close the connection."""
        self.ready = False
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(NotReady(f"{self.label}: stopped"))
        return self._service.stopService()

    def when_ready(self) -> Deferred:
        """Fires (with this link) as soon as the link is ready."""
        if self.ready:
            d: Deferred = Deferred()
            d.callback(self)
            return d
        d = Deferred()
        self._waiters.append(d)
        return d

    # -- connecting ---------------------------------------------------------

    def _prepare(self, proxy: Any) -> None:
        # Get ready in the background rather than in prepareConnection's
        # Deferred: ClientService neither closes a connection whose
        # preparation failed nor expects it to close later (it raises
        # NoTransition then), and stopService() cancels a preparation under
        # way the same way. A connection handed over at once is one it
        # closes on stopService() and reconnects when it is lost.
        d = Deferred.fromCoroutine(self._get_ready(proxy))
        d.addErrback(self._not_ready, proxy)

    async def _get_ready(self, proxy: Any) -> None:
        # ClientService hands us a proxy; txredisapi's notifications carry
        # the protocol itself, so keep that.
        proto = await proxy.whenConnected()
        self._proto = proto
        set_no_delay = getattr(proto.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:  # small commands, sent one after another
            set_no_delay(True)
        proto.whenDisconnected().addCallback(self._lost)
        self.client_id = int(await proto.execute_command("CLIENT", "ID"))
        for name, (_, text) in SCRIPTS.items():
            sha = await proto.execute_command("SCRIPT", "LOAD", text)
            if isinstance(sha, bytes):
                sha = sha.decode("ascii")
            if sha != self._shas[name]:  # pragma: no cover - Redis computes SHA1
                raise RuntimeError(f"script {name}: Redis says {sha}")
        if self._on_ready is not None:
            result = self._on_ready(self)
            if result is not None:
                await result
        if proto is not self._proto or not proto.connected:
            raise NotReady(f"{self.label}: lost while getting ready")
        self.ready = True
        if self._was_down:
            _log.info("Redis ({label}): connected again", label=self.label)
        else:
            _log.info("Redis ({label}): connected", label=self.label)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(self)

    def _not_ready(self, failure: Failure, proxy: Any) -> None:
        if not failure.check(*connection_errors()):
            _log.failure("Redis ({label}): getting the connection ready failed; reconnecting",
                         failure, label=self.label)
        if proxy.transport is not None:
            proxy.transport.loseConnection()

    def _lost(self, proto: Any) -> None:
        if proto is not self._proto:
            return
        self._proto = None
        was_ready, self.ready = self.ready, False
        if was_ready:
            self._was_down = True
            _log.warn("Redis ({label}): connection lost; reconnecting", label=self.label)
            if self._on_lost is not None:
                self._on_lost()

    # -- commands ------------------------------------------------------------

    observer: Optional[Callable[[float], None]] = None
    """Called with the round trip of each request, in seconds (C{--metrics})."""

    def _timed(self, d: Deferred) -> Deferred:
        observer = self.observer
        if observer is not None:
            started = perf_counter()

            def done(result: Any) -> Any:
                observer(perf_counter() - started)
                return result

            d.addBoth(done)
        return d

    def call(self, script: str, keys: Sequence[str], args: Sequence[Any],
             early: bool = False) -> Deferred:
        """
        Run one of the scripts (L{SCRIPTS}) with C{EVALSHA}.

        @param early: allow the call before L{ready} (from C{on_ready}).
        @return: a Deferred with the script's reply; it fails with one of
            L{connection_errors} if the connection is (or gets) lost.
        """
        proto = self._proto
        if proto is None or not (self.ready or early):
            return fail(NotReady(f"{self.label}: not connected to Redis"))
        try:
            return self._timed(proto.execute_command("EVALSHA", self._shas[script], len(keys),
                                                     *keys, *args))
        except _txredisapi().ConnectionError as e:
            return fail(e)

    def command(self, *args: Any, blocking: bool = False) -> Deferred:
        """Run one Redis command; C{blocking} ones get no reply timeout."""
        proto = self._proto
        if proto is None or not self.ready:
            return fail(NotReady(f"{self.label}: not connected to Redis"))
        try:
            d = proto.execute_command(*args, apply_timeout=not blocking)
            return d if blocking else self._timed(d)
        except _txredisapi().ConnectionError as e:
            return fail(e)

    def abort(self) -> None:
        """Drop the connection (it reconnects): for a reply that never comes."""
        proto = self._proto
        if proto is not None and proto.transport is not None:
            proto.transport.abortConnection()
