"""
The page's pure modules (commands.js, keys.js, state.js) run in Chromium:
input lines to requests, key lines to keys, server messages to what is shown.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from .web_support import Browser, start_web_server

PARSE = r"""
const [lines, done] = [arguments[0], arguments[arguments.length - 1]];
import("/commands.js").then(({parseInput}) => {
  done(lines.map(([line, active]) => parseInput(line, active, ["#lobby", "#tea", "@bob"])));
}).catch((e) => done({error: String(e)}));
"""

KEYS = r"""
const [texts, done] = [arguments[0], arguments[arguments.length - 1]];
import("/keys.js").then(({parseKey}) => {
  done(texts.map((t) => { try { return Array.from(parseKey(t)); } catch (e) { return e.message; } }));
}).catch((e) => done({error: String(e)}));
"""

STATE = r"""
const [messages, done] = [arguments[0], arguments[arguments.length - 1]];
import("/state.js").then(({ChatState}) => {
  const s = new ChatState();
  s.switchTo("#lobby");
  for (const m of messages) s.handle(m);
  const views = {};
  for (const [k, v] of s.views) {
    views[k] = {unread: v.unread, users: [...v.users].sort(), plaintext: [...v.plaintext],
                topic: v.topic, lines: v.lines.map((l) => [l.kind, l.from || null, l.text])};
  }
  done({me: s.me, views});
}).catch((e) => done({error: String(e)}));
"""


class ModuleTests(unittest.TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        server, url = yield start_web_server(self)
        self.browser = yield Browser.start(self)
        yield self.browser.call(self.browser.open, url)

    def run_js(self, script, arg):
        return self.browser.call(self.browser.run_async, script, arg)

    @defer.inlineCallbacks
    def test_commands(self):
        cases = [
            ("hello", "#tea"), ("hello", "@bob"), ("//not a command", "#lobby"),
            ("/me waves", "#tea"), ("/me waves", "@bob"), ("/msg bob hi there", "#lobby"),
            ("/msg bob", "#lobby"), ("/join tea", "#lobby"), ("/part bye now", "#tea"),
            ("/part #lobby", "#tea"), ("/topic tea time", "#tea"), ("/topic x", "@bob"),
            ("/nick ana", "#tea"), ("/switch 3", "#lobby"), ("/switch 9", "#lobby"),
            ("/W tea", "#lobby"), ("/rooms", "#lobby"), ("/who", "#lobby"), ("/who tea", "#lobby"),
            ("/quit gone", "#lobby"), ("/frobnicate", "#lobby"), ("   ", "#lobby"),
        ]
        got = yield self.run_js(PARSE, cases)
        expected = [
            {"send": {"type": "say", "room": "#tea", "text": "hello"}},
            {"send": {"type": "msg", "to": "bob", "text": "hello"}},
            {"send": {"type": "say", "room": "#lobby", "text": "/not a command"}},
            {"send": {"type": "say", "room": "#tea", "text": "waves", "action": True}},
            {"send": {"type": "msg", "to": "bob", "text": "waves", "action": True}},
            {"send": {"type": "msg", "to": "bob", "text": "hi there"}, "open": "@bob"},
            {"switchTo": "@bob"},
            {"send": {"type": "join", "room": "#tea"}, "open": "#tea"},
            {"send": {"type": "part", "room": "#tea", "reason": "bye now"}},
            {"send": {"type": "part", "room": "#lobby"}},
            {"send": {"type": "topic", "room": "#tea", "text": "tea time"}},
            {"error": "/topic works in a room"},
            {"send": {"type": "nick", "name": "ana"}},
            {"switchTo": "@bob"},
            {"error": "no view number 9"},
            {"switchTo": "#tea"},
            {"send": {"type": "rooms"}},
            {"send": {"type": "who"}},
            {"send": {"type": "who", "room": "#tea"}},
            {"quit": "gone"},
            {"error": "unknown command /frobnicate; /help lists them"},
            None,
        ]
        for case, want, have in zip(cases, expected, got):
            self.assertEqual(have, want, case)

    @defer.inlineCallbacks
    def test_keys(self):
        line = "NFHjMGSjfitQQfexf1ZQp2bJLtWjpXraQpFmXHesyNw="
        got = yield self.run_js(KEYS, [line, f"# a comment\n\n  {line}\r\n", "", "hunter2",
                                       f"{line}\n{line}"])
        self.assertEqual(len(got[0]), 32)
        self.assertEqual(got[0], got[1])
        self.assertIn("no key given", got[2])
        self.assertIn("not a key", got[3])
        self.assertIn("more than one line", got[4])

    @defer.inlineCallbacks
    def test_state(self):
        ts = "2026-12-06T04:00:00.000Z"
        messages = [
            {"type": "welcome", "name": "ana", "id": "1", "users": ["ana", "bob", "eve"],
             "plaintext": ["eve"], "rooms": ["#lobby"], "epoch": "e1", "resume": "r"},
            {"type": "room", "room": "#lobby", "topic": "hi", "count": 3,
             "users": ["ana", "bob", "eve"], "plaintext": ["eve"], "presence": True},
            {"type": "history", "room": "#lobby", "complete": False,
             "messages": [{"type": "message", "room": "#lobby", "from": "bob", "text": "old",
                           "ts": ts, "seq": 4}]},
            {"type": "message", "room": "#lobby", "from": "bob", "text": "new", "ts": ts, "seq": 5},
            {"type": "message", "room": "#lobby", "from": "bob", "text": "again", "ts": ts, "seq": 5},
            {"type": "room", "room": "#tea", "topic": "", "count": 1, "users": ["ana"],
             "plaintext": [], "presence": True},
            {"type": "message", "room": "#tea", "from": "bob", "text": "tea?", "ts": ts, "seq": 1},
            {"type": "message", "room": "#tea", "from": "bob", "text": "waves", "ts": ts, "seq": 2,
             "action": True},
            {"type": "private", "from": "bob", "to": "ana", "text": "psst", "ts": ts, "seq": 1},
            {"type": "renamed", "old": "bob", "new": "bobby", "ts": ts},
            {"type": "joined", "room": "#lobby", "name": "mallory", "ts": ts, "plaintext": True},
            {"type": "left", "name": "eve", "reason": "quit", "ts": ts},
            {"type": "topic", "room": "#lobby", "text": "new topic", "by": "bobby", "ts": ts},
            {"type": "notice", "room": "#tea", "text": "tea is out", "ts": ts},
            {"type": "notice", "text": "restart at 5", "ts": ts},
        ]
        got = yield self.run_js(STATE, messages)
        self.assertEqual(got["me"], "ana")
        lobby, tea, bob = got["views"]["#lobby"], got["views"]["#tea"], got["views"]["@bob"]
        texts = [line[2] for line in lobby["lines"]]
        self.assertEqual(texts.count("new"), 1)
        self.assertNotIn("again", texts)  # the same seq twice is shown once
        self.assertIn("earlier messages are not available", texts)
        self.assertLess(texts.index("old"), texts.index("new"))
        self.assertEqual(lobby["users"], ["ana", "bobby", "mallory"])
        self.assertEqual(lobby["plaintext"], ["mallory"])
        self.assertIn("bob is now bobby", texts)
        self.assertTrue(any("mallory joined (not encrypted" in t for t in texts))
        self.assertEqual(lobby["topic"], "new topic")
        self.assertIn("notice from the operator: restart at 5", texts)
        self.assertIn(["system", None, "notice from the operator: tea is out"], tea["lines"])
        self.assertEqual((tea["unread"], bob["unread"], lobby["unread"]), (2, 1, 0))
        self.assertEqual(tea["lines"][1], ["action", "bob", "waves"])
