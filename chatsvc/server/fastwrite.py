# -*- test-case-name: tests.test_fastwrite -*-
"""
Send at once when nothing is waiting: the per-recipient fast path.

C{transport.write()} on Twisted's TCP transports never sends: it appends to
a buffer and asks the reactor to watch the socket for writability; on the
next turn the reactor wakes the transport, which sends, and stops watching.
For a server that writes to a thousand sockets per message that is two
C{epoll_ctl} calls, an C{epoll_wait} entry and a logged dispatch per write,
several times the cost of the C{send()} itself, and a whole reactor turn of
latency.

L{send_now} calls C{send()} on the socket itself while the transport's
buffer is empty (always, for a client that keeps up) and hands the rest, or everything while anything is buffered, to
C{transport.write()}, so ordering, flow control (producers), errors and
closing stay Twisted's. This reads three attributes of Twisted's
L{FileDescriptor <twisted.internet.abstract.FileDescriptor>} that are not
public API (C{dataBuffer}, C{_tempDataLen}, C{socket}); for a transport
without them (IOCP on Windows, TLS, test transports) L{supports} says no and
the caller keeps using C{transport.write()}.
"""

from __future__ import annotations

from typing import Any

from twisted.protocols.policies import ProtocolWrapper


def supports(transport: Any) -> bool:
    """
    Whether L{send_now} may be used on C{transport}: a plain (not TLS)
    socket transport built on Twisted's C{FileDescriptor}. Ask once, when
    the connection is made.
    """
    return (
        # A protocol wrapper (TLS over TCP) hands missing attributes on to
        # the socket transport under it, whose send() would skip the
        # wrapper: cleartext on a TLS connection.
        not isinstance(transport, ProtocolWrapper)
        and isinstance(getattr(transport, "dataBuffer", None), bytes)
        and isinstance(getattr(transport, "_tempDataLen", None), int)
        and hasattr(transport, "disconnecting")
        and hasattr(getattr(transport, "socket", None), "send")
        and not getattr(transport, "TLS", False)
    )


def send_now(transport: Any, data: bytes) -> None:
    """
    Write C{data} to C{transport} (for which L{supports} said yes), calling
    C{send()} at once if nothing is waiting in the transport's buffer.
    """
    if (transport._tempDataLen or transport.dataBuffer or transport.disconnecting
            or not transport.connected):
        transport.write(data)  # keep the order; or let Twisted drop it
        return
    try:
        sent = transport.socket.send(data)
    except OSError:
        # EWOULDBLOCK (the kernel's buffer is full) or a dead peer: Twisted's
        # own write path retries, or finds the error and closes the
        # connection as it always does.
        transport.write(data)
        return
    if sent < len(data):
        transport.write(data[sent:])
