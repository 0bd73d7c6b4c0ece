"""
Rooms in the browser (PROTOCOL.md version 2): joining, talking and reading
in several rooms, topics, parting, actions, plaintext members marked.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from chatsvc.keys import load_key

from .procs import DEMO_KEY
from .test_web_page import DEMO_KEY_LINE
from .web_support import Browser, RawClient, start_web_server


class RoomTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def test_rooms(self):
        server, url = yield start_web_server(self, "--encrypted", "--allow-plaintext", "--psk", DEMO_KEY)
        bob = yield RawClient.connect(self, server.port, "bob", load_key(DEMO_KEY), rooms=["#lobby", "#tea"])
        browser = yield Browser.start(self)
        yield browser.call(browser.open, url)
        yield browser.call(browser.login, "webby", DEMO_KEY_LINE)
        yield browser.call(browser.wait_open)
        yield browser.call(browser.type, "/join #tea")
        joined = yield bob.wait_for(lambda m: m["type"] == "joined" and m.get("room") == "#tea", "joined #tea")
        self.assertEqual(joined["name"], "webby")
        title = yield browser.call(browser.text_of, "title")
        self.assertEqual(title, "#tea")

        yield browser.call(browser.type, "tea, anyone?")
        said = yield bob.wait_text("tea, anyone?")
        self.assertEqual((said["room"], said["from"]), ("#tea", "webby"))
        bob.send(type="say", room="#lobby", text="over in the lobby")
        yield browser.call(browser.wait_text, "view-list", r"#lobby\s*1")
        bob.send(type="say", room="#tea", text="yes please")
        lines = yield browser.call(browser.wait_text, "lines", "yes please")
        self.assertNotIn("over in the lobby", lines)

        yield browser.call(browser.type, "/me pours")
        action = yield bob.wait_text("pours")
        self.assertEqual((action["room"], action.get("action")), ("#tea", True))
        yield browser.call(browser.wait_text, "lines", r"\* webby pours")

        yield browser.call(browser.type, "/topic tea time")
        topic = yield bob.wait_for(lambda m: m["type"] == "topic", "topic")
        self.assertEqual((topic["room"], topic["text"], topic["by"]), ("#tea", "tea time", "webby"))
        yield browser.call(browser.wait_text, "topic", "tea time")

        carol = yield RawClient.connect(self, server.port, "carol", None, rooms=["#tea"])
        members = yield browser.call(browser.wait_text, "member-list", "carol")
        self.assertIn("not encrypted", members.split("carol", 1)[1].splitlines()[0])
        yield browser.call(browser.wait_text, "lines", "carol joined \\(not encrypted")

        yield browser.call(browser.click_view, "#lobby")
        lines = yield browser.call(browser.wait_text, "lines", "over in the lobby")
        views = yield browser.call(browser.text_of, "view-list")
        self.assertNotIn("#lobby\n1", views)
        yield browser.call(browser.type, "/part #tea see you")
        parted = yield carol.wait_for(lambda m: m["type"] == "parted", "parted")
        self.assertEqual((parted["name"], parted.get("text")), ("webby", "see you"))
