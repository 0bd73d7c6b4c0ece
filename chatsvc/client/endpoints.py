# -*- test-case-name: tests.test_client_endpoints -*-
"""
Where the client connects: L{RoundRobinEndpoint}, an
C{IStreamClientEndpoint} over several servers that moves on to the next one
when a server goes away, and L{build_endpoint}, which makes one from a
parsed command line::

    endpoint = RoundRobinEndpoint([("a", endpoint_a), ("b", endpoint_b)])
    protocol = await endpoint.connect(factory)   # or CannotConnect
    endpoint.current                             # "a" or "b"

L{describe_error} gives the one-line reason for a failed or lost
connection that the user sees.
"""

from __future__ import annotations

from typing import Any, List, Sequence, Tuple

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    DNSLookupError,
)
from twisted.internet.error import TimeoutError as ConnectTimeoutError
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.logger import Logger
from zope.interface import implementer

from . import display
from ..wire.errors import ChatsvcError, RemoteProtocolError
from .args import ClientArgs

# The namespace the single chatsvc.client module logged under.
_log = Logger(namespace="chatsvc.client")


class CannotConnect(ChatsvcError):
    """
    No endpoint of a L{RoundRobinEndpoint} would connect.

    @ivar failures: (description, exception) for each endpoint tried.
    """

    def __init__(self, failures: Sequence[Tuple[str, BaseException]]) -> None:
        super().__init__(failures)
        self.failures = list(failures)

    def __str__(self) -> str:
        return "; ".join(f"{where}: {describe_error(e)}" for where, e in self.failures)


def describe_error(error: BaseException) -> str:
    """A short, sanitised, one-line reason for a failed or lost connection."""
    if isinstance(error, CannotConnect):
        return str(error)
    if isinstance(error, RemoteProtocolError):
        return display.sanitize(f"{error.code}: {error.text}")
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, DNSLookupError):
        return "host not found"
    if isinstance(error, ConnectTimeoutError):
        return "timed out"
    if isinstance(error, ConnectionDone):
        return "the server closed the connection"
    if isinstance(error, ConnectionLost):
        return "the connection was lost"
    return display.sanitize(str(error) or type(error).__name__)


@implementer(IStreamClientEndpoint)
class RoundRobinEndpoint:
    """
    Connect to the first of several endpoints that accepts, starting after
    the one used last: when a server goes away, the next connection goes to
    the next server. An attempt fails (L{CannotConnect}) only when every
    endpoint has failed once, so with C{ClientService} each retry is one
    round, and a first attempt that fails means no server is reachable.

    @ivar current: the description of the endpoint connected to last (or
        the first one, before any connection).
    """

    def __init__(self, endpoints: Sequence[Tuple[str, IStreamClientEndpoint]]) -> None:
        if not endpoints:
            raise ValueError("RoundRobinEndpoint needs at least one endpoint")
        self._endpoints = list(endpoints)
        self._current = 0
        self._next = 0

    @property
    def current(self) -> str:
        return self._endpoints[self._current][0]

    def stay(self) -> None:
        """Make the next connection go to the current endpoint again."""
        self._next = self._current

    def connect(self, protocolFactory: IProtocolFactory) -> "Deferred[Any]":
        return Deferred.fromCoroutine(self._connect(protocolFactory))

    async def _connect(self, factory: IProtocolFactory) -> Any:
        failures: List[Tuple[str, BaseException]] = []
        start = self._next
        for step in range(len(self._endpoints)):
            index = (start + step) % len(self._endpoints)
            description, endpoint = self._endpoints[index]
            try:
                protocol = await endpoint.connect(factory)
            except CancelledError:
                raise
            except Exception as e:  # endpoint plug-ins fail in many ways
                _log.debug("cannot connect to {where}: {error}", where=description, error=e)
                failures.append((description, e))
                continue
            self._current = index
            self._next = (index + 1) % len(self._endpoints)
            return protocol
        raise CannotConnect(failures)


def build_endpoint(reactor: Any, args: ClientArgs) -> RoundRobinEndpoint:
    """
    The endpoint for a parsed command line.

    @raise ValueError: for a C{--connect} string Twisted cannot parse.
    """
    from twisted.internet.endpoints import HostnameEndpoint, clientFromString

    endpoints = []
    for description, spec in args.endpoints:
        if spec is None:
            endpoint = HostnameEndpoint(reactor, args.host, args.port, timeout=10)
        elif args.ca and spec.startswith("tls:"):
            from .tls import tls_endpoint
            endpoint = tls_endpoint(reactor, spec, args.ca)  # ValueError: a clear message
        else:
            try:
                endpoint = clientFromString(reactor, spec)
            except (ValueError, TypeError, KeyError) as e:
                raise ValueError(f"{description}: {display.sanitize(str(e))}") from None
        endpoints.append((description, endpoint))
    return RoundRobinEndpoint(endpoints)
