"""
Screenshots of the page for docs/web.md and the README, desktop and phone
widths, taken from a real conversation (so they cannot show a page that
does not work).
"""

from __future__ import annotations

import os

from twisted.internet import defer
from twisted.trial import unittest

from chatsvc.keys import load_key

from .procs import DEMO_KEY
from .test_web_page import DEMO_KEY_LINE
from .web_support import Browser, RawClient, start_web_server

DESKTOP = (1200, 720)
PHONE = (390, 760)


def _png_size(path: str):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


class ScreenshotTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def test_screenshots(self):
        server, url = yield start_web_server(
            self, "--encrypted", "--allow-plaintext", "--psk", DEMO_KEY,
            "--motd", "Welcome to the chatsvc demo. Type /help for commands.")
        psk = load_key(DEMO_KEY)
        bob = yield RawClient.connect(self, server.port, "bob", psk, rooms=["#lobby", "#tea"])
        carol = yield RawClient.connect(self, server.port, "carol", rooms=["#lobby"])
        bob.send(type="topic", room="#lobby", text="Be nice · chatsvc demo · /help lists the commands")
        bob.send(type="topic", room="#tea", text="☕ only")
        bob.send(type="say", text="morning all")
        carol.send(type="say", text="hi bob — I'm on the plain TCP port, so I'm marked")
        bob.send(type="say", room="#tea", text="kettle's on")
        bob.send(type="say", room="#tea", text="who wants one?")
        browser = yield Browser.start(self, *DESKTOP)
        yield browser.call(browser.open, url)
        yield browser.call(browser.login, "ana", DEMO_KEY_LINE)
        yield browser.call(browser.wait_open)
        yield browser.call(browser.wait_text, "lines", "marked")
        yield browser.call(browser.type, "/join #tea")
        yield browser.call(browser.wait_text, "lines", "who wants one")
        yield browser.call(browser.type, "/switch #lobby")
        yield browser.call(browser.type, "/me waves")
        bob.send(type="msg", to="ana", text="psst: tea in #tea")
        bob.send(type="say", text="hello ana!")
        yield browser.call(browser.wait_text, "lines", "hello ana!")
        yield browser.call(browser.wait_text, "topic", "Be nice")
        yield browser.call(browser.wait_text, "view-list", "@bob")
        desktop = yield browser.call(browser.screenshot, "web-desktop.png", *DESKTOP)
        phone = yield browser.call(browser.screenshot, "web-phone.png", *PHONE)
        yield browser.call(browser.driver.execute_script, "document.getElementById('menu').click()")
        yield browser.call(browser.screenshot, "web-phone-rooms.png", *PHONE)
        self.assertEqual(_png_size(desktop)[0] >= DESKTOP[0] * 0.9, True)
        width, height = _png_size(phone)
        self.assertLess(width, 500)
        self.assertTrue(os.path.getsize(phone) > 5000)
