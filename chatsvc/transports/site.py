# -*- test-case-name: tests.test_websocket_site -*-
"""
What C{twistd chat --web ENDPOINT} serves (PROTOCOL.md 7.1): the browser
page (the static files of C{chatsvc/web}) at C{/}, the WebSocket at C{/ws}::

    site = web_site(wrapper, origins=["https://chat.example"])
    StreamServerEndpointService(serverFromString(reactor, "tcp:8080"), site)

The WebSocket accepts browsers only from the page's own origin and those
listed (L{origin_allowed}); a request without C{Origin} is not from a page
(browsers always send one on a WebSocket) and is accepted.

Each address may hold at most C{max_per_address} connections to the web
endpoint at once, page fetches and WebSockets alike (L{ConnectionsByAddress};
loopback exempt, as for the chat's own C{--max-per-ip}): the HTTP timeout
bounds how long an idle connection stays, this bounds how many one address
keeps open by trickling bytes. A WebSocket is also counted by the chat's
own per-address limit once it is upgraded.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, Optional, Tuple
from urllib.parse import urlsplit

from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import File
from zope.interface import Interface, implementer

from ..server.factory import address_key, exempt_from_per_address

_log = Logger()

WEB_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "web")
"""The page's files, shipped as package data."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""Nothing but the page's own files and its own WebSocket: a message that
somehow became markup could still neither run code nor send anything away."""

HTTP_TIMEOUT = 30.0
"""Seconds an HTTP connection may stay idle (Twisted's default is 12 hours).
A WebSocket is not idle in this sense: once upgraded, the chat's own
handshake timeout and keepalive apply."""

MAX_PER_ADDRESS = 32
"""Connections one address may hold to the web endpoint at once, by default
(a browser opens up to six for a page, then one per WebSocket; the chat's own
C{--max-per-ip} of 16 still counts the WebSockets). C{twistd chat} makes it
twice C{--max-per-ip}."""

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}


def normalise_origin(origin: str) -> Optional[str]:
    """
    C{scheme://host[:port]} in lower case with the default port left out,
    or C{None} if C{origin} is not a web origin (C{null}, junk).
    """
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https", "ws", "wss") or not host:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme in ("https", "wss") else 80
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def origin_allowed(origin: Optional[str], host: Optional[str], secure: bool,
                   allowed: Iterable[str] = ()) -> bool:
    """
    Whether a WebSocket upgrade with this C{Origin} header may proceed.

    @param origin: the C{Origin} header, or C{None} (not a browser page).
    @param host: the request's C{Host} header: the page's own origin is
        C{http(s)://HOST}. A browser always sends the real one.
    @param secure: whether the request came over TLS.
    @param allowed: the other origins accepted (C{--web-origin}).
    """
    if origin is None:
        return True
    mine = normalise_origin(origin)
    if mine is None:
        return False
    accepted = {normalise_origin(entry) for entry in allowed}
    if host:
        accepted.add(normalise_origin(("https://" if secure else "http://") + host))
    accepted.discard(None)
    return mine in accepted


class OriginGate(Resource):
    """Refuse a WebSocket upgrade from a foreign origin with 403."""

    isLeaf = True

    def __init__(self, inner: Resource, origins: Iterable[str] = ()) -> None:
        Resource.__init__(self)
        self._inner = inner
        self._origins = tuple(origins)

    def render(self, request: Any) -> Any:
        origin = request.getHeader("origin")
        if not origin_allowed(origin, request.getHeader("host"), request.isSecure(), self._origins):
            _log.info("refusing a WebSocket from {peer}: origin {origin!r} is not allowed",
                      peer=request.getClientAddress(), origin=origin[:200])
            request.setResponseCode(403)
            request.setHeader("content-type", "text/plain; charset=utf-8")
            return b"this origin may not use the chat's WebSocket\n"
        return self._inner.render(request)


class PageFile(File):
    """The page's static files, with the headers that keep it to itself."""

    contentTypes = dict(File.contentTypes, **_CONTENT_TYPES)

    def render(self, request: Any) -> Any:
        request.setHeader("content-security-policy", CONTENT_SECURITY_POLICY)
        request.setHeader("x-content-type-options", "nosniff")
        request.setHeader("referrer-policy", "no-referrer")
        request.setHeader("cache-control", "no-cache")
        return File.render(self, request)

    def directoryListing(self) -> Resource:
        return self.childNotFound


class ConnectionsByAddress:
    """
    How many connections each address holds open, within C{limit} (0: no
    limit). Addresses count as the chat's per-address limit counts them
    (an IPv4 address, an IPv6 /64); loopback is counted but never refused.
    No I/O.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Dict[str, int] = {}

    def open(self, host: str) -> Optional[str]:
        """Count a connection from C{host}; its key, or C{None} if refused."""
        key = address_key(host)
        count = self._open.get(key, 0)
        if self.limit and count >= self.limit and not exempt_from_per_address(host):
            return None
        self._open[key] = count + 1
        return key

    def close(self, key: str) -> None:
        """A connection counted under C{key} ended."""
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
        else:
            self._open.pop(key, None)

    def count(self, host: str) -> int:
        """Connections open from C{host}'s address."""
        return self._open.get(address_key(host), 0)


class ICountedConnection(Interface):
    """What the WebSocket asks of the HTTP connection it was upgraded from."""

    def release():
        """
        Stop counting this connection toward its address's limit (at most
        once; an upgraded connection's end reaches the WebSocket, not the
        HTTP channel, so the WebSocket calls this).
        """


@implementer(ICountedConnection)
class CountedChannel(HTTPChannel):
    """An HTTP connection counted toward its address's limit until it ends."""

    counted: Optional[Tuple[ConnectionsByAddress, str]] = None

    def connectionLost(self, reason: Any) -> None:
        self.release()
        HTTPChannel.connectionLost(self, reason)

    def release(self) -> None:
        counted, self.counted = self.counted, None
        if counted is not None:
            counted[0].close(counted[1])


class _Refused(Protocol):
    """A connection over its address's limit: closed at once."""

    def connectionMade(self) -> None:
        self.transport.abortConnection()


class ChatSite(Site):
    """
    The web endpoint's factory. It also starts and stops the chat's
    (wrapping) factory, which a listening TCP port would otherwise be the
    only one to do, and counts connections by address.

    @ivar by_address: the open connections, by address.
    """

    noisy = False
    # HTTP/1.1 only (which is what a WebSocket upgrade needs): the channel
    # itself, not Twisted's wrapper that can also negotiate HTTP/2.
    protocol = CountedChannel

    def __init__(self, resource: Resource, chat_factory: Any, timeout: float = HTTP_TIMEOUT,
                 max_per_address: int = MAX_PER_ADDRESS, reactor: Any = None) -> None:
        Site.__init__(self, resource, timeout=timeout, reactor=reactor)
        self._chat_factory = chat_factory
        self.by_address = ConnectionsByAddress(max_per_address)

    def buildProtocol(self, addr: Any) -> Any:
        host = getattr(addr, "host", None) or str(addr)  # a UNIX address has no host
        key = self.by_address.open(host)
        if key is None:
            _log.warn("refusing web connection from {peer}: too many from its address", peer=host)
            return _Refused()
        channel = Site.buildProtocol(self, addr)
        channel.counted = (self.by_address, key)
        return channel

    def startFactory(self) -> None:
        Site.startFactory(self)
        self._chat_factory.doStart()

    def stopFactory(self) -> None:
        self._chat_factory.doStop()
        Site.stopFactory(self)

    def log(self, request: Any) -> None:
        pass  # no access log: the chat logs connections itself


def web_site(chat_factory: Any, origins: Iterable[str] = (), web_dir: str = WEB_DIR,
             max_per_address: int = MAX_PER_ADDRESS, reactor: Any = None) -> ChatSite:
    """
    The page at C{/} and the WebSocket at C{/ws}, whose connections go
    through C{chat_factory} (the server's wrapping factory); at most
    C{max_per_address} connections from one address at once (0: no limit).
    Its HTTP timeouts run on C{reactor} (default: the global one).

    @raise ImportError: without Twisted's WebSocket support
        (C{pip install "chatsvc[web]"}).
    """
    from twisted.web.websocket import WebSocketResource

    from .websocket import WebSocketChatFactory

    root = PageFile(web_dir)
    socket = WebSocketResource(WebSocketChatFactory(chat_factory))
    root.putChild(b"ws", OriginGate(socket, origins))
    return ChatSite(root, chat_factory, max_per_address=max_per_address, reactor=reactor)
