# -*- test-case-name: tests.test_metrics -*-
"""
What the server tells a metrics recorder, and the recorder that records
nothing.

The factory, the connections and the chat call an L{IServerMetrics} at
points they already have (a connection opened or closed, a client
registered, a fan-out handed out); by default that is L{NO_METRICS}, so
nothing imports C{prometheus_client} unless C{--metrics} is given
(L{chatsvc.metrics.prometheus}).

No name, text, address or key ever goes into a label: the labels are the
transport (L{TRANSPORTS}), the mode (C{plaintext}, C{encrypted},
C{pending}), and codes the server itself defines (PROTOCOL.md 4.6).
"""

from __future__ import annotations

from typing import Any

from zope.interface import Attribute, Interface, implementer

TRANSPORTS = ("tcp", "websocket", "irc")
"""The values of the C{transport} label."""


class ITransportLabel(Interface):
    """
    A transport (or protocol wrapper) that says which kind of transport a
    connection came through: the WebSocket and IRC adapters provide it, so
    that the metrics count their connections apart from plain TCP ones.
    """

    transport_label = Attribute("One of L{TRANSPORTS}.")


def transport_label(transport: Any) -> str:
    """
    The label of the nearest transport below a connection that provides
    L{ITransportLabel}, following protocol wrappers' public C{transport}
    attributes; C{"tcp"} when none does.
    """
    seen = 0
    while transport is not None and seen < 8:
        if ITransportLabel.providedBy(transport):
            label = transport.transport_label
            return label if label in TRANSPORTS else "tcp"
        transport = getattr(transport, "transport", None)
        seen += 1
    return "tcp"


def close_code(reason: Any) -> str:
    """
    The code of a close a connection did not choose itself, from the
    C{Failure} of its C{connectionLost}: the encrypting wrapper's refusal
    (C{handshake-failed}, C{bad-frame}, ...), else C{disconnected}.
    """
    from ..wire.errors import RemoteProtocolError

    if reason.check(RemoteProtocolError):
        return reason.value.code
    return "disconnected"


class IRedisBacked(Interface):
    """A chat that asks Redis (the Redis backend): its requests can be timed."""

    commands = Attribute(
        "Its L{RedisLink <chatsvc.chat.redis.link.RedisLink>} for requests, whose"
        " C{observer} is called with each round trip in seconds."
    )
    reader = Attribute(
        "Its L{StreamReader <chatsvc.chat.redis.reader.StreamReader>}, whose"
        " C{lag_observer} is called after each read with how far behind its"
        " streams it reads, in seconds."
    )


class IServerMetrics(Interface):
    """
    What the server reports. Every method is cheap and never raises; the
    arguments are server objects (read, never kept past the call unless
    the connection is still open), counts, seconds and fixed codes.
    """

    def connection_opened(connection):
        """A connection (an L{IServerConnection}) was accepted."""

    def connection_closed(connection):
        """
        A connection ended; its C{close_code} (L{IConnectionState
        <chatsvc.server.interfaces.IConnectionState>}) says why: the error
        code it was closed with (C{slow}, C{flood}, C{timeout},
        C{handshake-failed}, ...), C{quit}, or C{disconnected}.
        """

    def registered(connection):
        """A connection said C{hello} and was given a name."""

    def request(kind):
        """A client request of type C{kind} (a known type) was handled."""

    def delivered(count):
        """A fan-out handed C{count} message frames to members."""

    def refused(code):
        """
        A connection was refused before it reached the chat (C{bad-frame},
        C{encryption-required}, C{handshake-failed}, C{banned}, ...).
        """

    def rate_limited():
        """A frame was refused with C{rate-limited}."""

    def throttle(on):
        """The server stopped (C{True}) or started again reading from clients."""

    def turn(seconds):
        """One end-of-turn pass (fan-out and encryption) took C{seconds}."""

    def operator_action(action):
        """An operator did C{action} (C{kick}, C{ban}, ...) over the admin endpoint."""

    def redis_roundtrip(seconds):
        """
        One request to Redis took C{seconds} (the Redis backend calls this
        when it is given a recorder).
        """

    def redis_stream_lag(seconds):
        """How far behind its Redis stream this server's reader is, in seconds."""


@implementer(IServerMetrics)
class NoMetrics:
    """Records nothing: the default."""

    def connection_opened(self, connection: Any) -> None:
        pass

    def connection_closed(self, connection: Any) -> None:
        pass

    def registered(self, connection: Any) -> None:
        pass

    def request(self, kind: str) -> None:
        pass

    def delivered(self, count: int) -> None:
        pass

    def refused(self, code: str) -> None:
        pass

    def rate_limited(self) -> None:
        pass

    def throttle(self, on: bool) -> None:
        pass

    def turn(self, seconds: float) -> None:
        pass

    def operator_action(self, action: str) -> None:
        pass

    def redis_roundtrip(self, seconds: float) -> None:
        pass

    def redis_stream_lag(self, seconds: float) -> None:
        pass


NO_METRICS = NoMetrics()
"""The recorder every server has unless C{--metrics} is given."""
