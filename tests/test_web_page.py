"""
The browser page in a real Chromium against a real C{twistd chat --web}:
a browser user and a raw frame client chat both ways, in plaintext and
encrypted; private messages; C{/nick}; a wrong key.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from chatsvc.keys import load_key

from .procs import DEMO_KEY
from .web_support import Browser, RawClient, start_web_server

DEMO_KEY_LINE = open(DEMO_KEY).read().strip().splitlines()[-1].strip()


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
