"""Tests for the IRC gateway's options of C{twistd chat} (--irc, --irc-name)."""

from __future__ import annotations

import socket

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from chatsvc import tap
from chatsvc.transports.irc.gateway import IRCGatewayFactory

from .procs import DEMO_KEY


def make(*argv: str):
    options = tap.Options()
    options.parseOptions(list(argv))
    reactor = MemoryReactorClock()
    return reactor, tap.makeService(options, reactor)


class IRCOptionTests(SynchronousTestCase):
    def test_repeatable_and_named(self) -> None:
        reactor, service = make("--listen", "tcp:8123", "--irc", "tcp:6667", "--irc", "tcp:6668",
                                "--irc-name", "irc.example")
        service.startService()
        self.addCleanup(service.stopService)
        ports = {port: factory for port, factory, _, _ in reactor.tcpServers}
        self.assertEqual(sorted(ports), [6667, 6668, 8123])
        self.assertIsInstance(ports[6667], IRCGatewayFactory)
        self.assertIs(ports[6667], ports[6668])
        self.assertEqual(ports[6667].info.name, "irc.example")
        self.assertIs(ports[6667].wrappedFactory, ports[8123].wrappedFactory)

    def test_default_name_is_the_host_name(self) -> None:
        self.assertEqual(tap.Options()["irc-name"], socket.gethostname())

    def test_plain_irc_refused_where_encryption_is_required(self) -> None:
        with self.assertRaises(SystemExit) as e:
            make("--encrypted", "--psk", DEMO_KEY, "--irc", "tcp:6667")
        self.assertIn("only over TLS", str(e.exception))

    def test_plain_irc_where_plaintext_is_served(self) -> None:
        reactor, service = make("--encrypted", "--allow-plaintext", "--psk", DEMO_KEY, "--irc", "tcp:6667")
        [irc] = [s.factory for s in service if isinstance(s.factory, IRCGatewayFactory)]
        self.assertEqual(len(irc.psk), 32)
        self.assertFalse(irc.require_encryption)

    def test_bad_endpoint(self) -> None:
        with self.assertRaises(SystemExit) as e:
            make("--irc", "bogus:1")
        self.assertIn("bad --irc endpoint", str(e.exception))
