# -*- test-case-name: tests.test_protocol -*-
"""
What the server's parts ask of each other, beyond Twisted's own interfaces.

  - L{IChatTransport}: what a L{ChatProtocol
    <chatsvc.server.protocol.ChatProtocol>} asks of its transport (the
    encrypting wrapper provides it; a plain transport gets L{PLAIN}).
  - L{IWrappedFactory}: what the encrypting wrapper asks of the factory it
    wraps on a server (the refusal it writes, the end-of-turn pass), so that
    the wrapper knows nothing of the chat.
  - L{IServerConnection}: what the L{ChatFactory
    <chatsvc.server.factory.ChatFactory>} asks of each connection.
  - L{IConnectionState}: what the metrics and an operator read or set on one.
  - L{ISendQueueOwner}: what a L{SendQueue <chatsvc.server.sendq.SendQueue>}
    tells the connection it belongs to.
"""

from __future__ import annotations

from typing import Callable, Optional

from zope.interface import Attribute, Interface, implementer


class IChatTransport(Interface):
    """What a chat connection asks of its transport, beyond C{ITransport}."""

    encrypted = Attribute(
        "True when the bytes travel encrypted (PROTOCOL.md 4.8); fixed once"
        " the first message has been read."
    )

    def direct_writer():
        """
        A write function that reaches the socket without this transport's
        own processing (a plaintext connection's fan-out path), or C{None}.
        """


@implementer(IChatTransport)
class _Plain:
    """L{IChatTransport} for a transport that is just a socket."""

    encrypted = False

    def direct_writer(self) -> Optional[Callable[[bytes], None]]:
        return None


PLAIN = _Plain()
"""The L{IChatTransport} of a transport that does not provide it:
C{IChatTransport(transport, PLAIN)}."""


class IWrappedFactory(Interface):
    """What a server-side encrypting wrapper asks of the factory it wraps."""

    clock = Attribute("An IReactorTime.")
    end_of_turn = Attribute(
        "The L{EndOfTurn <chatsvc.server.turns.EndOfTurn>} whose pass also"
        " encrypts each connection's writes of the turn."
    )

    def refusal(code, text):
        """
        The encoded frame (length prefix included) of the fatal error
        C{code} with C{text}, written before closing a connection that the
        wrapper refuses.
        """


class IServerConnection(Interface):
    """What the factory asks of one connection."""

    peer = Attribute("The peer's address (a host string), or C{'?'}.")
    closing = Attribute("True once the connection has decided to close.")
    limiter = Attribute("Its L{RateLimiter <chatsvc.server.ratelimit.RateLimiter>}, or None.")
    queue = Attribute("Its L{SendQueue <chatsvc.server.sendq.SendQueue>}.")

    def throttle(on):
        """Stop (or start again) reading from the client."""

    def fatal(code, text):
        """Send the fatal error C{code} and close."""

    def check_idle(now):
        """Ping a silent client; time out one that stays silent."""

    def abort():
        """Drop the connection at once (shutdown stragglers)."""


class IConnectionState(Interface):
    """
    What the metrics (L{chatsvc.metrics}) and an operator (L{chatsvc.admin})
    read or set on a connection, beyond L{IServerConnection}.
    """

    transport = Attribute("Its transport (for the transport label of the metrics).")
    bytes_in = Attribute("Frame bytes read from the client so far.")
    close_code = Attribute(
        "The code it closed with (C{slow}, C{kicked}, C{quit}, ...), or C{None}"
        " while open; C{disconnected} for a close nobody chose."
    )
    muted = Attribute("True while an operator has muted it: C{say}/C{msg} get C{muted}.")


class ISendQueueOwner(Interface):
    """
    What a send queue tells its connection. (One object, not two callbacks:
    two bound methods would cost every idle connection 128 bytes.)
    """

    def send_queue_overflowed():
        """
        The queue passed its hard limit and dropped what it held (called
        once). It may be called inside a fan-out: do not re-enter the chat.
        """

    def send_queue_behind(behind):
        """The queue passed its soft limit (C{True}), or drained to half of it (C{False})."""
