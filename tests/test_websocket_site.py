"""
Tests for L{chatsvc.transports.site}: the origin rule, and the site itself
on a loopback port (the page, its headers, the WebSocket and its gate).
"""

from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest

from chatsvc.server.encryption import EncryptingFactory
from chatsvc.chat.memory import Room
from chatsvc.server.factory import ChatFactory, ServerConfig
from chatsvc.transports.site import WEB_DIR, normalise_origin, origin_allowed, web_site

from .support.waiting import deadline
from .support.web import connect_websocket


class OriginTests(unittest.SynchronousTestCase):
    def test_own_origin(self) -> None:
        self.assertTrue(origin_allowed("http://chat.example:8080", "chat.example:8080", False))
        self.assertTrue(origin_allowed("https://chat.example", "chat.example", True))
        self.assertTrue(origin_allowed("https://Chat.Example:443", "chat.example", True))

    def test_foreign(self) -> None:
        self.assertFalse(origin_allowed("http://evil.example", "chat.example", False))
        self.assertFalse(origin_allowed("http://chat.example:8081", "chat.example:8080", False))
        self.assertFalse(origin_allowed("null", "chat.example", False))
        self.assertFalse(origin_allowed("", "chat.example", False))

    def test_scheme_matters(self) -> None:
        """A page over plain http may not use the TLS endpoint's WebSocket, nor the reverse."""
        self.assertFalse(origin_allowed("http://chat.example", "chat.example", True))
        self.assertFalse(origin_allowed("https://chat.example", "chat.example", False))

    def test_listed(self) -> None:
        allowed = ["https://friends.example"]
        self.assertTrue(origin_allowed("https://friends.example", "chat.example", False, allowed))
        self.assertFalse(origin_allowed("https://friends.example.evil", "chat.example", False, allowed))

    def test_no_origin(self) -> None:
        """Not from a page: a browser always sends Origin on a WebSocket."""
        self.assertTrue(origin_allowed(None, "chat.example", False))

    def test_normalise(self) -> None:
        self.assertEqual(normalise_origin("HTTPS://A.Example:443/"), "https://a.example")
        self.assertEqual(normalise_origin("http://[::1]:8080"), "http://[::1]:8080")
        self.assertIsNone(normalise_origin("https://a.example/path"))
        self.assertIsNone(normalise_origin("file:///etc/passwd"))
        self.assertIsNone(normalise_origin("http://a.example:99999"))


class _Collect(Protocol):
    def connectionMade(self) -> None:
        self.data = b""
        self.transport.write(self.factory.request)

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if b"\r\n\r\n" in self.data and not self.factory.done.called:
            self.factory.done.callback(self.data)


UPGRADE = (
    "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
)


class SiteTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        room = Room(reactor, history_size=5)
        self.chat = ChatFactory(room, ServerConfig(), reactor)
        wrapper = EncryptingFactory(self.chat, None, clock=reactor)
        site = web_site(wrapper, origins=["https://friends.example"])
        self.port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
        self.addCleanup(self.port.stopListening)
        self.addCleanup(lambda: [p.transport.abortConnection() for p in list(self.chat.connections)])
        self.host = f"127.0.0.1:{self.port.getHost().port}"

    @defer.inlineCallbacks
    def _raw(self, request: str):
        factory = Factory.forProtocol(_Collect)
        factory.request = request.encode()
        factory.done = defer.Deferred()
        proto = yield TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port).connect(factory)
        self.addCleanup(proto.transport.abortConnection)
        data = yield deadline(factory.done, 10, "an HTTP response")
        return data.decode("latin-1")

    @defer.inlineCallbacks
    def test_page(self):
        """The page, with a policy that keeps it to its own files and socket."""
        response = yield self._raw(f"GET / HTTP/1.1\r\nHost: {self.host}\r\n\r\n")
        head = response.lower()
        self.assertIn("200 ok", head.splitlines()[0])
        self.assertIn("content-security-policy: default-src 'none'", head)
        self.assertIn("x-content-type-options: nosniff", head)

    @defer.inlineCallbacks
    def test_module_type(self):
        """JavaScript modules are served as JavaScript (browsers insist)."""
        response = yield self._raw(f"GET /app.js HTTP/1.1\r\nHost: {self.host}\r\n\r\n")
        self.assertIn("content-type: text/javascript", response.lower())

    @defer.inlineCallbacks
    def test_foreign_origin_refused(self):
        response = yield self._raw(UPGRADE.format(host=self.host, extra="Origin: http://evil.example\r\n"))
        self.assertIn(" 403 ", response.splitlines()[0])
        self.assertEqual(len(self.chat.connections), 0)

    @defer.inlineCallbacks
    def test_own_origin_upgraded(self):
        extra = f"Origin: http://{self.host}\r\n"
        response = yield self._raw(UPGRADE.format(host=self.host, extra=extra))
        self.assertIn(" 101 ", response.splitlines()[0])
        self.assertEqual(len(self.chat.connections), 1)

    @defer.inlineCallbacks
    def test_listed_origin_upgraded(self):
        extra = "Origin: https://friends.example\r\n"
        response = yield self._raw(UPGRADE.format(host=self.host, extra=extra))
        self.assertIn(" 101 ", response.splitlines()[0])

    @defer.inlineCallbacks
    def test_round_trip(self):
        """Twisted's own WebSocket client: hello, welcome; a text message is refused."""
        client = yield connect_websocket(f"ws://{self.host}/ws", "ws")
        yield deadline(client.welcomed, 10, "welcome")
        self.assertEqual(client.received[0]["name"], "ws")
        client.transport.sendTextMessage('{"type":"say","text":"hi"}')
        yield deadline(client.closed, 10, "the server to close")
        last = client.received[-1]
        self.assertEqual((last["type"], last["code"]), ("error", "bad-frame"))

    def test_idle_http_closes(self):
        """An idle HTTP connection is closed after HTTP_TIMEOUT, not Twisted's 12 hours."""
        from chatsvc.transports.site import HTTP_TIMEOUT

        site = web_site(EncryptingFactory(self.chat, None, clock=reactor))
        self.assertEqual(site.timeOut, HTTP_TIMEOUT)
        self.assertLessEqual(HTTP_TIMEOUT, 60)

    def test_files_shipped(self):
        """The page's modules are all in the package directory."""
        import os

        for name in ("index.html", "style.css", "app.js", "noise.js", "records.js", "wire.js",
                     "state.js", "view.js", "commands.js", "keys.js"):
            self.assertTrue(os.path.isfile(os.path.join(WEB_DIR, name)), name)


class WebOptionTests(unittest.SynchronousTestCase):
    """C{twistd chat --web ... --web-origin ...}."""

    def parse(self, *argv: str):
        from chatsvc import tap

        options = tap.Options()
        options.parseOptions(list(argv))
        return options

    def test_repeatable(self) -> None:
        options = self.parse("--web", "tcp:8080", "--web", "tcp:8081",
                             "--web-origin", "https://a.example", "--web-origin", "http://b.example:81")
        self.assertEqual(options["web"], ["tcp:8080", "tcp:8081"])
        self.assertEqual(options["web-origin"], ["https://a.example", "http://b.example:81"])

    def test_none_by_default(self) -> None:
        self.assertEqual(self.parse()["web"], [])

    def test_bad_origin(self) -> None:
        from twisted.python.usage import UsageError

        for origin in ("chat.example", "https://a.example/path", "null"):
            with self.assertRaises(UsageError) as caught:
                self.parse("--web-origin", origin)
            self.assertIn("--web-origin", str(caught.exception))

    def test_services(self) -> None:
        """The page's site listens on every --web endpoint, beside the --listen ones."""
        from twisted.internet.testing import MemoryReactorClock

        from chatsvc import tap

        reactor = MemoryReactorClock()
        options = self.parse("--listen", "tcp:8123", "--web", "tcp:8080", "--web", "tcp:8081")
        service = tap.makeService(options, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        listening = sorted((port, type(factory).__name__) for port, factory, _, _ in reactor.tcpServers)
        self.assertEqual(listening, [(8080, "ChatSite"), (8081, "ChatSite"), (8123, "EncryptingFactory")])

    def test_per_address_limit_follows_max_per_ip(self) -> None:
        """The web endpoint takes twice --max-per-ip connections per address (0: none)."""
        from twisted.internet.testing import MemoryReactorClock

        from chatsvc import tap

        for given, expected in ((None, 32), ("5", 10), ("0", 0)):
            reactor = MemoryReactorClock()
            extra = ["--max-per-ip", given] if given is not None else []
            service = tap.makeService(self.parse("--web", "tcp:8080", *extra), reactor)
            service.startService()
            self.addCleanup(service.stopService)
            site = reactor.tcpServers[-1][1]
            self.assertEqual(site.by_address.limit, expected, given)
            self.assertIs(site.reactor, reactor)

    def test_bad_endpoint(self) -> None:
        from chatsvc import tap

        with self.assertRaises(SystemExit) as caught:
            tap.makeService(self.parse("--web", "nonsense:1"))
        self.assertIn("--web endpoint", str(caught.exception))
