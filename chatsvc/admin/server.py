# -*- test-case-name: tests.test_admin_endpoint -*-
"""
The admin endpoint (C{twistd chat --admin ENDPOINT}): a thin line adapter
over L{AdminRequests}.

C{unix:/path} is the intended endpoint: the socket is created with mode
0600 (C{mode=600} is added unless the description gives a mode), so the
file's owner, the service user, is the operator; the service refuses to
start if the socket ends up readable or writable by others. A TCP endpoint
must name a loopback interface (C{tcp:9001:interface=127.0.0.1}): anyone who
reaches the admin endpoint is an operator. Windows has no UNIX sockets: use
that loopback TCP form there.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any, Optional, Tuple

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

from .requests import AdminRequests

_log = Logger()

MAX_REQUEST = 65536
"""The longest request line, in bytes."""

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class AdminProtocol(LineOnlyReceiver):
    """One operator connection: each request line gets one reply line."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_REQUEST

    def __init__(self, requests: AdminRequests) -> None:
        self._requests = requests
        self._replies: Deferred = succeed(None)  # the replies go out in the requests' order

    def lineReceived(self, line: bytes) -> None:
        line = line.rstrip(b"\r")
        if line.strip():
            reply = self._requests.handle_line(line)
            self._replies.addCallback(lambda _: reply).addCallback(self.sendLine)

    def lineLengthExceeded(self, line: bytes) -> None:
        self.sendLine(b'{"ok": false, "error": "request line too long"}')
        self.transport.loseConnection()


class AdminFactory(Factory):
    noisy = False

    def __init__(self, requests: AdminRequests) -> None:
        self._requests = requests

    def buildProtocol(self, addr: Any) -> AdminProtocol:
        return AdminProtocol(self._requests)


def _unix_path(description: str) -> str:
    """The socket path of a C{unix:} description (C{unix:PATH} or C{unix:address=PATH})."""
    rest = description[len("unix:"):]
    first = re.split(r"(?<!\\):", rest, maxsplit=1)[0]
    if first.startswith("address="):
        first = first[len("address="):]
    return first.replace("\\:", ":")


def checked_description(description: str) -> str:
    """
    The admin endpoint description to listen on: C{mode=600} (and
    C{lockfile=1}, so a socket left by a crash is replaced) added to a UNIX
    socket that names none; a TCP one must be on loopback.

    @raise ValueError: for a socket mode that lets others in, a TCP endpoint
        open to the network, or another kind of endpoint.
    """
    kind = description.split(":", 1)[0].lower()
    if kind == "unix":
        mode = re.search(r"(^|:)mode=([0-7]+)(:|$)", description[5:])
        if mode is None:
            if re.search(r"(^|:)mode=", description[5:]):
                raise ValueError("the admin socket's mode is octal, e.g. mode=600")
            description += ":mode=600"
        elif int(mode.group(2), 8) & 0o077:
            raise ValueError(f"the admin socket's mode {mode.group(2)} lets other users in: "
                             "whoever can use it is an operator; use mode=600")
        if not re.search(r"(^|:)lockfile=", description[5:]):
            description += ":lockfile=1"
        return description
    if kind in ("tcp", "tcp6"):
        found = re.search(r"(^|:)interface=([^:]+)", description.split(":", 1)[1])
        if found is None or found.group(2).replace("\\", "") not in _LOOPBACK:
            raise ValueError("a TCP admin endpoint must listen on loopback only "
                             "(tcp:PORT:interface=127.0.0.1): whoever reaches it is an operator")
        return description
    raise ValueError("the admin endpoint is unix:/path (mode 0600) or tcp:PORT:interface=127.0.0.1")


def socket_mode_problem(path: str) -> Optional[str]:
    """Why the socket at C{path} must not be served, or C{None}."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as e:
        return f"the admin socket {path} cannot be checked: {e.strerror}"
    if mode & 0o077:
        return f"the admin socket {path} is mode {mode:04o}: other users could act as operators"
    return None


class AdminService(StreamServerEndpointService):
    """
    Listens on the admin endpoint; once a UNIX socket exists, checks its
    mode, and closes it again (logged as critical) if others could use it.

    @raise ValueError: from L{checked_description}.
    """

    def __init__(self, reactor: Any, description: str, requests: AdminRequests) -> None:
        self.description = checked_description(description)
        endpoint = serverFromString(reactor, self.description)
        StreamServerEndpointService.__init__(self, endpoint, AdminFactory(requests))
        self.port: Optional[Any] = None

    def privilegedStartService(self) -> None:
        StreamServerEndpointService.privilegedStartService(self)
        self._waitingForPort.addCallback(self._listening)

    def _listening(self, port: Any) -> Any:
        if self.description.lower().startswith("unix:"):
            path = _unix_path(self.description)
            problem = socket_mode_problem(path)
            if problem is not None:
                _log.critical("{problem}: not serving it", problem=problem)
                port.stopListening()
                return port
            _log.info("admin endpoint on {path} (mode 0600)", path=path)
        else:
            _log.info("admin endpoint on {where}", where=port.getHost())
        self.port = port
        return port


def enable_admin(description: str, reactor: Any, factory: Any, chat: Any,
                 parent: Any, redis: Optional[Tuple[Any, str]] = None) -> Any:
    """
    Give C{factory} a ban list and serve the admin endpoint C{description}
    under C{parent} (C{--admin}). With C{redis} (the C{--redis} client
    endpoint and the chat's name), bans, unbans and kicks go to every server
    of the chat. Returns the L{LocalOperator
    <chatsvc.admin.operator.LocalOperator>}.

    @raise SystemExit: for an endpoint that would let others in, or a bad one.
    """
    from .bans import BanList
    from .operator import LocalOperator

    bans = BanList(reactor)
    operator = LocalOperator(factory, chat, bans, reactor)
    try:
        service = AdminService(reactor, description, AdminRequests(operator, factory.metrics))
    except (ValueError, TypeError, KeyError) as e:
        raise SystemExit(f"chat: --admin {description!r}: {e}")
    factory.bans = bans
    if redis is not None:
        from .redisbus import RedisOperatorBus

        endpoint, chat_name = redis
        operator.bus = RedisOperatorBus(endpoint, reactor, chat_name, operator.apply)
        _BusService(operator.bus).setServiceParent(parent)
    service.setServiceParent(parent)
    return operator


class _BusService(Service):
    """Starts and stops a L{RedisOperatorBus} with the server."""

    def __init__(self, bus: Any) -> None:
        self._bus = bus

    def startService(self) -> None:
        Service.startService(self)
        self._bus.start()

    def stopService(self) -> Any:
        Service.stopService(self)
        return self._bus.stop()
