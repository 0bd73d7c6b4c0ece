# -*- test-case-name: tests.test_websocket_site -*-
"""
What C{twistd chat --web ENDPOINT} serves (PROTOCOL.md 7.1): the browser
page (the static files of C{chatsvc/web}) at C{/}, the WebSocket at C{/ws}::

    site = web_site(wrapper, origins=["https://chat.example"])
    StreamServerEndpointService(serverFromString(reactor, "tcp:8080"), site)

The WebSocket accepts browsers only from the page's own origin and those
listed (L{origin_allowed}); a request without C{Origin} is not from a page
(browsers always send one on a WebSocket) and is accepted.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Optional
from urllib.parse import urlsplit

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import File

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


class ChatSite(Site):
    """
    The web endpoint's factory. It also starts and stops the chat's
    (wrapping) factory, which a listening TCP port would otherwise be the
    only one to do.
    """

    noisy = False

    def __init__(self, resource: Resource, chat_factory: Any, timeout: float = HTTP_TIMEOUT) -> None:
        Site.__init__(self, resource, timeout=timeout)
        self._chat_factory = chat_factory

    def startFactory(self) -> None:
        Site.startFactory(self)
        self._chat_factory.doStart()

    def stopFactory(self) -> None:
        self._chat_factory.doStop()
        Site.stopFactory(self)

    def log(self, request: Any) -> None:
        pass  # no access log: the chat logs connections itself


def web_site(chat_factory: Any, origins: Iterable[str] = (), web_dir: str = WEB_DIR) -> ChatSite:
    """
    The page at C{/} and the WebSocket at C{/ws}, whose connections go
    through C{chat_factory} (the server's wrapping factory).

    @raise ImportError: without Twisted's WebSocket support
        (C{pip install "chatsvc[web]"}).
    """
    from twisted.web.websocket import WebSocketResource

    from .websocket import WebSocketChatFactory

    root = PageFile(web_dir)
    socket = WebSocketResource(WebSocketChatFactory(chat_factory))
    root.putChild(b"ws", OriginGate(socket, origins))
    return ChatSite(root, chat_factory)
