"""
The page from another address: over https (ssl:) it encrypts; over plain
http the browser gives it no WebCrypto, and it says so instead of pretending
(docs/web.md, "Encryption in the browser").
"""

from __future__ import annotations

import os

from twisted.internet import defer
from twisted.trial import unittest

from chatsvc.keys import load_key

from .procs import DEMO_KEY
from .test_web_page import DEMO_KEY_LINE
from .web_support import Browser, RawClient, non_loopback_address, self_signed, start_web_server


class AnotherAddressTests(unittest.TestCase):
    timeout = 90

    @defer.inlineCallbacks
    def test_https_encrypts(self):
        """--web ssl: on a non-loopback address: a secure context, the page encrypts."""
        address = non_loopback_address()
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        key, cert = self_signed(directory, address)
        server, url = yield start_web_server(
            self, "--encrypted", "--psk", DEMO_KEY,
            web=f"ssl:{{port}}:interface={address}:privateKey={key}:certKey={cert}",
            url=f"https://{address}:{{port}}/")
        # The throwaway certificate is not signed by anyone the browser knows.
        browser = yield Browser.start(self, flags=("--ignore-certificate-errors",))
        yield browser.call(browser.open, url)
        secure = yield browser.call(browser.driver.execute_script,
                                    "return window.isSecureContext && Boolean(crypto.subtle)")
        self.assertTrue(secure)
        yield browser.call(browser.login, "tls", DEMO_KEY_LINE)
        yield browser.call(browser.wait_open)
        bob = yield RawClient.connect(self, server.port, "bob", load_key(DEMO_KEY))
        yield browser.call(browser.type, "over TLS and Noise")
        said = yield bob.wait_text("over TLS and Noise")
        self.assertEqual(said["from"], "tls")

    @defer.inlineCallbacks
    def test_plain_http_cannot_encrypt(self):
        """Plain http from another address: no WebCrypto; the page says so, the key box is off."""
        address = non_loopback_address()
        server, url = yield start_web_server(
            self, "--psk", DEMO_KEY, "--allow-plaintext",
            web=f"tcp:{{port}}:interface={address}", url=f"http://{address}:{{port}}/")
        browser = yield Browser.start(self)
        yield browser.call(browser.open, url)
        banner = yield browser.call(browser.text_of, "banner")
        self.assertIn("cannot encrypt", banner)
        disabled = yield browser.call(browser.driver.execute_script,
                                      "return document.getElementById('key').disabled")
        self.assertTrue(disabled)
        yield browser.call(browser.login, "plainweb")
        yield browser.call(browser.wait_open)
        banner = yield browser.call(browser.text_of, "banner")
        self.assertIn("Not encrypted", banner)

    @defer.inlineCallbacks
    def test_tcp_listener_over_tls(self):
        """--listen ssl: too: nothing may skip the TLS layer (the fast send path did)."""
        import re

        from twisted.internet import reactor
        from twisted.internet.endpoints import SSL4ClientEndpoint
        from twisted.internet.ssl import CertificateOptions

        from .procs import ChatServer

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        key, cert = self_signed(directory, "127.0.0.1")
        server = yield ChatServer.start(
            self, "--encrypted", "--psk", DEMO_KEY,
            "--listen", f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}")
        line = yield server.wait_for(re.compile(r"\(TLS\) starting on (\d+)"))
        port = int(re.search(r"starting on (\d+)", line).group(1))
        endpoint = SSL4ClientEndpoint(reactor, "127.0.0.1", port, CertificateOptions())
        psk = load_key(DEMO_KEY)
        alice = yield RawClient.connect(self, port, "alice", psk, endpoint=endpoint)
        bob = yield RawClient.connect(self, server.port, "bob", psk)
        alice.send(type="say", text="over TLS")
        said = yield bob.wait_text("over TLS")
        self.assertEqual(said["from"], "alice")
        bob.send(type="say", text="back over TLS")
        yield alice.wait_text("back over TLS")
