"""
Tests for L{chatsvc.client.protocol}: one connection's ping/pong and
keepalive, under a L{ChatClient} over a fake endpoint, driven by a
L{Clock}. (tests.test_client covers the rest of what connections do.)
"""

from __future__ import annotations

from typing import Any

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


class HandshakeGate:
    """
    An encrypting factory whose connections are not encrypted yet (the
    handshake has not completed) while C{open} is false: what a man in the
    middle can answer before the handshake.
    """

    def __init__(self) -> None:
        self.open = True

    def __call__(self, wrapped: Any, psk: bytes, clock: Any) -> Any:
        gate = self

        class Factory:
            @property
            def encrypting(self) -> bool:
                return gate.open

            def buildProtocol(self, addr: Any) -> Any:
                return wrapped.buildProtocol(addr)

        return Factory()


class BeforeHandshakeTests(SynchronousTestCase):
    """
    Issue 12, finding 7: before the handshake completes, only the errors
    that can come then are taken, as the unauthenticated reason the attempt
    failed; nothing else is shown or acted on.
    """

    def setUp(self) -> None:
        self.gate = HandshakeGate()
        self.h = Harness(psk=b"k" * 32, encrypted=True, encrypting_factory=self.gate)
        self.server = self.h.connect()
        self.h.output.lines()
        self.gate.open = False
        self.server.close(ConnectionLost())
        self.h.clock.advance(1)
        self.fake = self.h.fake.accept()  # a reconnection, answered by someone without the key
        self.h.output.lines()

    def test_fake_replaced_ignored(self) -> None:
        """A plaintext 'replaced' before the handshake does not make the client exit."""
        self.fake.send({"type": "error", "code": "replaced", "text": "gone", "fatal": True})
        self.fake.send({"type": "error", "code": "key-rotated",
                        "text": "Server key rotated. Type /encrypt off", "fatal": False})
        self.fake.send({"type": "welcome", "name": "mallory", "resume": "x"})
        self.fake.send({"type": "message", "from": "bob", "text": "fake", "seq": 99})
        self.fake.close()
        self.assertEqual(self.h.results, [])  # still running: reconnecting
        self.assertEqual(self.h.output.lines(), [])
        self.assertEqual(self.h.client.session.name, "alice")
        self.h.clock.advance(1)
        self.assertEqual(len(self.h.fake.pending), 1)

    def test_allowed_error_marked_unauthenticated(self) -> None:
        """An error that can come before the handshake ends the attempt, and
        says it is unauthenticated; a fatal one in EXIT_ON still exits."""
        self.fake.send({"type": "error", "code": "encryption-not-enabled", "text": "no key here",
                        "fatal": True})
        self.fake.close()
        self.assertEqual(self.h.results, [1])
        self.assertEqual(self.h.output.lines(), [
            "! encryption-not-enabled: no key here [unauthenticated: sent before the handshake]"])

    def test_allowed_error_then_handshake_forgotten(self) -> None:
        """An allowed error before a handshake that then completes was not
        the server's: a later loss reconnects (it exited 1 on the stale
        fake, printing its text; bench/client_malicious.py found it)."""
        self.fake.send({"type": "error", "code": "encryption-required",
                        "text": "Server key rotated. Type /encrypt off", "fatal": True})
        self.fake.transport.encrypted = True  # the real handshake completes
        self.fake.send({"type": "welcome", "name": "alice", "resume": "r2"})
        self.h.output.lines()
        self.fake.close(ConnectionLost())
        self.assertEqual(self.h.results, [])
        self.assertEqual(self.h.output.lines(), ["* connection lost; reconnecting..."])
