# -*- test-case-name: tests.test_mixed_mode -*-
"""
Issue 12, finding 1, through the service that C{twistd chat} builds: a
server given a key serves no plaintext client unless told to
(C{--allow-plaintext}), and then every member sees who is plaintext
(PROTOCOL.md sections 2 and 4.8).
"""

from __future__ import annotations

import os
from typing import Any, Dict, List

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from chatsvc import tap

from .helpers import LogCapture, decode_frames, frame

DEMO_KEY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "keys", "demo.key")


class MixedModeTests(SynchronousTestCase):
    def plaintext_hello(self, *argv: str) -> List[Dict[str, Any]]:
        """What a plaintext client with no key gets for its C{hello}."""
        LogCapture.install(self)  # the demo key's warning stays out of the output
        options = tap.Options()
        options.parseOptions(["--listen", "tcp:0"] + list(argv))
        service = tap.makeService(options, MemoryReactorClock())
        self.chat = service.factory.room
        wrapper = list(service)[0].factory
        protocol = wrapper.buildProtocol(IPv4Address("TCP", "10.0.0.5", 4000))
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(frame({"type": "hello", "name": "eve"}))
        service.factory.room.flush()
        self.transport = transport
        return decode_frames(transport.value())

    def test_a_key_refuses_plaintext(self) -> None:
        """9cadb28 served this client (C{--psk} alone), beside encrypted users."""
        [error] = self.plaintext_hello("--psk", DEMO_KEY)
        self.assertEqual((error["type"], error["code"], error["fatal"]),
                         ("error", "encryption-required", True))
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(len(self.chat), 0)

    def test_allow_plaintext_marks_it(self) -> None:
        received = self.plaintext_hello("--psk", DEMO_KEY, "--allow-plaintext")
        welcome = received[0]
        self.assertEqual((welcome["type"], welcome["name"]), ("welcome", "eve"))
        self.assertEqual(welcome["plaintext"], ["eve"])
        self.assertIs(welcome["encrypted"], False)
        self.assertEqual(len(self.chat), 1)
