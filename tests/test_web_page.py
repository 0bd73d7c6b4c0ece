"""
The browser page in a real Chromium against a real C{twistd chat --web}:
a browser user and a raw frame client chat both ways, in plaintext and
encrypted; private messages; C{/nick}; a wrong key.
"""

from __future__ import annotations

import json
import os

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial import unittest
from twisted.web.server import Site
from twisted.web.static import Data

from chatsvc.keys import load_key

from .procs import DEMO_KEY
from .web_support import Browser, RawClient, start_web_server

with open(DEMO_KEY) as _f:
    DEMO_KEY_LINE = [line.strip() for line in _f if line.strip() and not line.startswith("#")][0]


class PageTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def _chat_both_ways(self, key_line: str, *server_options: str):
        server, url = yield start_web_server(self, *server_options)
        browser = yield Browser.start(self)
        yield browser.call(browser.open, url)
        yield browser.call(browser.login, "webby", key_line)
        yield browser.call(browser.wait_open)
        psk = load_key(DEMO_KEY) if key_line else None
        bob = yield RawClient.connect(self, server.port, "bob", psk)
        yield browser.call(browser.wait_text, "member-list", "bob")
        yield browser.call(browser.type, "hello from the browser")
        said = yield bob.wait_text("hello from the browser")
        self.assertEqual(said["from"], "webby")
        bob.send(type="say", text="hello from bob")
        lines = yield browser.call(browser.wait_text, "lines", "bob\\s*hello from bob")
        self.assertIn("hello from the browser", lines)
        return server, browser, bob

    @defer.inlineCallbacks
    def test_plaintext(self):
        """Plaintext both ways, with the not-encrypted banner shown."""
        server, browser, bob = yield self._chat_both_ways("")
        banner = yield browser.call(browser.text_of, "banner")
        self.assertIn("Not encrypted", banner)

    @defer.inlineCallbacks
    def test_encrypted(self):
        """Encrypted both ways (the page's own Noise), no banner."""
        server, browser, bob = yield self._chat_both_ways(DEMO_KEY_LINE, "--encrypted", "--psk", DEMO_KEY)
        banner = yield browser.call(browser.driver.execute_script,
                                    "return document.getElementById('banner').hidden")
        self.assertTrue(banner)
        status = yield browser.call(browser.text_of, "status")
        self.assertEqual(status, "encrypted")

    @defer.inlineCallbacks
    def test_wrong_key(self):
        """A wrong key is told as such, on the login form."""
        server, url = yield start_web_server(self, "--encrypted", "--psk", DEMO_KEY)
        browser = yield Browser.start(self)
        yield browser.call(browser.open, url)
        yield browser.call(browser.login, "webby", "A" * 43 + "=")
        text = yield browser.call(browser.wait_text, "login-error", "Wrong key")
        self.assertIn("handshake failed", text)

    @defer.inlineCallbacks
    def test_key_needed(self):
        """Without a key, an encrypted-only server's refusal is told plainly."""
        server, url = yield start_web_server(self, "--encrypted", "--psk", DEMO_KEY)
        browser = yield Browser.start(self)
        yield browser.call(browser.open, url)
        yield browser.call(browser.login, "webby", "")
        text = yield browser.call(browser.wait_text, "login-error", "encrypted clients only")
        self.assertIn("give its key", text)

    @defer.inlineCallbacks
    def test_not_a_key(self):
        """Something that is not a key line is refused before connecting."""
        server, url = yield start_web_server(self)
        browser = yield Browser.start(self)
        yield browser.call(browser.open, url)
        yield browser.call(browser.login, "webby", "hunter2")
        text = yield browser.call(browser.wait_text, "login-error", "not a key")
        self.assertIn("44 URL-safe base64", text)

    @defer.inlineCallbacks
    def test_private_messages_and_nick(self):
        """/msg both ways in a conversation of its own, marked private; /nick."""
        server, browser, bob = yield self._chat_both_ways(DEMO_KEY_LINE, "--encrypted", "--psk", DEMO_KEY)
        yield browser.call(browser.type, "/msg bob psst, bob")
        said = yield bob.wait_text("psst, bob")
        self.assertEqual((said["type"], said["from"]), ("private", "webby"))
        bob.send(type="msg", to="webby", text="psst yourself")
        lines = yield browser.call(browser.wait_text, "lines", "psst yourself")
        self.assertIn("private to bob", lines)
        title = yield browser.call(browser.text_of, "title")
        self.assertEqual(title, "@bob")
        yield browser.call(browser.type, "/nick webster")
        renamed = yield bob.wait_for(lambda m: m["type"] == "renamed", "renamed")
        self.assertEqual((renamed["old"], renamed["new"]), ("webby", "webster"))
        yield browser.call(browser.click_view, "#lobby")
        yield browser.call(browser.wait_text, "lines", "webby is now webster")
        yield browser.call(browser.type, "/me waves")
        action = yield bob.wait_text("waves")
        self.assertEqual((action["from"], action.get("action")), ("webster", True))
        yield browser.call(browser.wait_text, "lines", r"\* webster waves")

    @defer.inlineCallbacks
    def test_key_file_and_remember(self):
        """The key from a chosen file; kept in this browser only when "remember" is ticked."""
        server, url = yield start_web_server(self, "--encrypted", "--psk", DEMO_KEY)
        browser = yield Browser.start(self)
        yield browser.call(browser.open, url)
        d = browser.driver
        yield browser.call(d.execute_script, "document.getElementById('name').value = 'filer'")
        yield browser.call(lambda: d.find_element("id", "keyfile").send_keys(DEMO_KEY))
        yield browser.call(browser.wait_until, lambda drv: drv.execute_script(
            "return document.getElementById('key').value.length") == 44, "the key file to be read")
        yield browser.call(lambda: d.find_element("id", "remember").click())
        yield browser.call(lambda: d.find_element("id", "connect").click())
        yield browser.call(browser.wait_open)
        stored = yield browser.call(d.execute_script, "return localStorage.getItem('chatsvc.key')")
        self.assertEqual(stored, DEMO_KEY_LINE)
        yield browser.call(browser.open, url)
        prefilled = yield browser.call(d.execute_script, "return document.getElementById('key').value")
        self.assertEqual(prefilled, DEMO_KEY_LINE)
        ticked = yield browser.call(d.execute_script, "return document.getElementById('remember').checked")
        self.assertTrue(ticked)
        yield browser.call(browser.login, "filer2", DEMO_KEY_LINE, True)  # click: untick it
        yield browser.call(browser.wait_open)
        stored = yield browser.call(d.execute_script, "return localStorage.getItem('chatsvc.key')")
        self.assertIsNone(stored)

    @defer.inlineCallbacks
    def test_unread_counts(self):
        """A message in a view not shown counts as unread in the side list."""
        server, browser, bob = yield self._chat_both_ways("")
        yield browser.call(browser.type, "/switch @bob")
        bob.send(type="say", text="one")
        bob.send(type="say", text="two")
        views = yield browser.call(browser.wait_text, "view-list", r"#lobby\s*2")
        self.assertIn("@bob", views)


class ReconnectTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def test_server_restarted(self):
        """
        The server is killed and started again (with its message log): the
        page reconnects by itself, keeps its name and catches up, without
        showing a message twice.
        """
        log = os.path.abspath(self.mktemp())
        os.makedirs(log)
        options = ("--log-messages", os.path.join(log, "messages.log"))
        server, url = yield start_web_server(self, *options)
        web_port = int(url.rsplit(":", 1)[1].strip("/"))
        browser = yield Browser.start(self)
        yield browser.call(browser.open, url)
        yield browser.call(browser.login, "webby")
        yield browser.call(browser.wait_open)
        bob = yield RawClient.connect(self, server.port, "bob")
        bob.send(type="say", text="before the crash")
        yield browser.call(browser.wait_text, "lines", "before the crash")

        server.signal("KILL")
        yield server.wait_exit()
        yield browser.call(browser.wait_text, "status", "reconnecting")
        server, _ = yield start_web_server(self, *options, port=server.port, web_port=web_port)
        carol = yield RawClient.connect(self, server.port, "carol")
        carol.send(type="say", text="while you were away")
        lines = yield browser.call(browser.wait_text, "lines", "while you were away")
        self.assertIn("reconnected as webby", lines)
        self.assertEqual(lines.count("before the crash"), 1)
        yield carol.wait_for(lambda m: m["type"] == "joined" and m["name"] == "webby", "webby joined")
        yield browser.call(browser.type, "still me")
        said = yield carol.wait_text("still me")
        self.assertEqual(said["from"], "webby")


# Runs in the page: open a WebSocket, optionally send a text message, and
# report what happened.
SOCKET_PROBE = r"""
const [url, text, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const events = [];
const ws = new WebSocket(url);
ws.binaryType = "arraybuffer";
ws.onopen = () => { events.push("open"); if (text) ws.send(text); };
ws.onmessage = (e) => events.push(typeof e.data === "string" ? "text" : new TextDecoder().decode(e.data));
ws.onerror = () => events.push("error");
ws.onclose = (e) => { events.push("close"); done(events); };
"""


class RefusalTests(unittest.TestCase):
    timeout = 90

    @defer.inlineCallbacks
    def setUp(self):
        self.server, self.url = yield start_web_server(self)
        self.browser = yield Browser.start(self)
        self.ws_url = self.url.replace("http:", "ws:") + "ws"

    @defer.inlineCallbacks
    def test_foreign_origin(self):
        """A page of another site cannot use the visitor's browser as a client."""
        evil = Site(Data(b"<!doctype html><title>another site</title>", "text/html"))
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(evil)
        self.addCleanup(port.stopListening)
        yield self.browser.call(self.browser.driver.get, f"http://127.0.0.1:{port.getHost().port}/")
        events = yield self.browser.call(self.browser.run_async, SOCKET_PROBE, self.ws_url, "")
        self.assertNotIn("open", events)
        self.assertEqual(events[-1], "close")
        yield self.server.wait_for(f"origin 'http://127.0.0.1:{port.getHost().port}' is not allowed")

    @defer.inlineCallbacks
    def test_text_message(self):
        """A text message from the browser is the fatal bad-frame."""
        yield self.browser.call(self.browser.open, self.url)
        events = yield self.browser.call(self.browser.run_async, SOCKET_PROBE, self.ws_url,
                                         '{"type":"hello"}')
        self.assertEqual(events[0], "open")
        error = json.loads(events[1])
        self.assertEqual((error["code"], error["fatal"]), ("bad-frame", True))
        self.assertEqual(events[-1], "close")
