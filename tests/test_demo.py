"""The demo script (scripts/demo.py) still runs and shows both modes."""

from __future__ import annotations

import os
import sys

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from .procs import REPO, LineProcess, _spawn


class DemoTests(TestCase):
    timeout = 150

    @defer.inlineCallbacks
    def test_demo_runs(self):
        output = os.path.abspath(self.mktemp())
        proto = LineProcess("demo")
        _spawn(self, proto, [os.path.join(REPO, "scripts", "demo.py"), output], stdin=False)
        code = yield proto.wait_exit(timeout=140)
        self.assertEqual(code, 0, proto.output())
        with open(output, encoding="utf-8") as f:
            page = f.read()
        page, browser = page.split("## A browser user")
        plain, encrypted = page.split("## Encrypted")
        self.assertIn('plaintext    31 B  {"type":"hello","name":"alice"}', plain)
        self.assertIn("[private] carol: lunch at noon?", encrypted)
        self.assertIn("record handshake    48 B", encrypted)
        self.assertIn("record data", encrypted)
        wire = encrypted.split("What crossed the wire")[1]
        self.assertNotIn("lunch", wire)
        self.assertNotIn('"type"', wire)
        # dana in Chromium, through the relay in front of --web
        self.assertIn("alice hello dana! naïve café ☕", browser)
        browser_wire = browser.split("What crossed the relay")[1]
        self.assertIn("server->client http HTTP/1.1 101 Switching Protocols", browser_wire)
        self.assertIn("client->server record handshake    48 B", browser_wire)
        self.assertNotIn("lunch", browser_wire)
