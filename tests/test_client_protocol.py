"""
Tests for L{chatsvc.client.protocol}: one connection's ping/pong and
keepalive, under a L{ChatClient} over a fake endpoint, driven by a
L{Clock}. (tests.test_client covers the rest of what connections do.)
"""

from __future__ import annotations

from twisted.internet.error import ConnectionLost
from twisted.trial.unittest import SynchronousTestCase

from .client_helpers import Harness, frame


class PingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = Harness()
        self.server = self.h.connect()

    def test_pong(self) -> None:
        """A server ping is answered with the same token."""
        for token, body in [
            (12345, b'{"type":"pong","token":12345}'),
            ("abc", b'{"type":"pong","token":"abc"}'),
            ({"n": [1, None]}, b'{"type":"pong","token":{"n":[1,null]}}'),
        ]:
            self.server.send({"type": "ping", "token": token})
            self.assertEqual(self.server.raw(), frame(body))

    def test_pong_without_token(self) -> None:
        self.server.send({"type": "ping"})
        self.assertEqual(self.server.raw(), frame(b'{"type":"pong"}'))

    def test_keepalive(self) -> None:
        """30 s of silence: ping; 30 s more: the connection is aborted."""
        self.h.clock.advance(29.9)
        self.assertEqual(self.server.raw(), b"")
        self.h.clock.advance(0.1)
        self.assertEqual(self.server.raw(), frame(b'{"type":"ping","token":1}'))
        self.h.clock.advance(29.9)
        self.assertFalse(self.server.transport.disconnecting)
        self.h.clock.advance(0.1)
        self.assertTrue(self.server.transport.disconnecting)
        self.server.close(ConnectionLost())
        self.assertEqual(self.h.output.lines()[-1], "* connection lost; reconnecting...")

    def test_any_frame_resets(self) -> None:
        self.h.clock.advance(30)
        self.server.raw()
        self.h.clock.advance(20)
        self.server.send({"type": "pong", "token": 1})
        self.h.clock.advance(29)
        self.assertFalse(self.server.transport.disconnecting)
        self.assertEqual(self.server.raw(), b"")
        self.h.clock.advance(1)
        self.assertEqual(self.server.raw(), frame(b'{"type":"ping","token":2}'))
