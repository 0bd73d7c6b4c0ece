"""
Tests for L{chatsvc.tap}: the twistd plugin, its options and the service.
"""

from __future__ import annotations

import os

from twisted.application.service import IServiceMaker
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from chatsvc import tap
from chatsvc.keys import generate_key_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_KEY = os.path.join(REPO, "keys", "demo.key")


def parse(*argv: str) -> tap.Options:
    options = tap.Options()
    options.parseOptions(list(argv))
    return options


class PluginTests(SynchronousTestCase):
    def test_plugin_is_found(self) -> None:
        makers = {p.tapname: p for p in getPlugins(IServiceMaker)}
        self.assertIn("chat", makers)
        self.assertIs(makers["chat"].options, tap.Options)


class OptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        options = parse()
        self.assertEqual(options["listen"], ["tcp:8000"])
        config = options.config()
        self.assertEqual((config.rate_burst, config.rate_per_second), (20, 2.0))
        self.assertEqual(config.max_text, 4096)
        self.assertEqual(config.sendq, 1 << 20)
        self.assertEqual(config.max_clients, 10000)
        self.assertEqual(config.max_per_ip, 16)
        self.assertEqual(config.handshake_timeout, 10.0)
        self.assertEqual((config.ping_interval, config.ping_timeout), (60.0, 30.0))
        self.assertEqual(options["history"], 50)

    def test_listen_repeats(self) -> None:
        options = parse("--listen", "tcp:1", "--listen", "tcp6:2")
        self.assertEqual(options["listen"], ["tcp:1", "tcp6:2"])

    def test_rate_off(self) -> None:
        self.assertEqual(parse("--rate", "0").config().rate_burst, 0)

    def test_bad_values(self) -> None:
        for argv in (["--rate", "x"], ["--rate", "5/0"], ["--history", "-1"],
                     ["--sendq", "lots"], ["--max-message", "0"], ["--default-room", "lobby"],
                     ["--ping-interval", "0"], ["--motd", "x" * 5000], ["--motd", "\x1b[2J"]):
            self.assertRaises(usage.UsageError, parse, *argv)


class MakeServiceTests(SynchronousTestCase):
    def make(self, *argv: str):
        reactor = MemoryReactorClock()
        service = tap.makeService(parse(*argv), reactor)
        return reactor, service

    def test_listens_everywhere_asked(self) -> None:
        reactor, service = self.make("--listen", "tcp:8123:interface=127.0.0.1", "--listen", "tcp:8124")
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual([(port, interface) for port, _, _, interface in reactor.tcpServers],
                         [(8123, "127.0.0.1"), (8124, "")])
        wrapper = reactor.tcpServers[0][1]
        self.assertIsNone(wrapper.psk)
        self.assertFalse(wrapper.require_encryption)

    def test_encrypted(self) -> None:
        reactor, service = self.make("--encrypted", "--psk", DEMO_KEY, "--listen", "tcp:1")
        wrapper = list(service)[0].factory
        self.assertEqual(len(wrapper.psk), 32)
        self.assertTrue(wrapper.require_encryption)

    def test_cipher_cache(self) -> None:
        """The wrapper gets a cache of its own; no global is changed."""
        reactor, service = self.make("--cipher-cache", "7")
        self.assertEqual(list(service)[0].factory.cipher_cache.size, 7)
        reactor, service = self.make()
        self.assertEqual(list(service)[0].factory.cipher_cache.size, 2048)
        self.assertRaises(usage.UsageError, parse, "--cipher-cache", "-1")

    def test_allow_plaintext(self) -> None:
        reactor, service = self.make("--encrypted", "--allow-plaintext", "--psk", DEMO_KEY)
        self.assertFalse(list(service)[0].factory.require_encryption)

    def test_encrypted_needs_key(self) -> None:
        with self.assertRaises(SystemExit) as e:
            self.make("--encrypted")
        self.assertIn("--psk", str(e.exception))

    def test_bad_key_names_file_not_key(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("not a key\n")
        with self.assertRaises(SystemExit) as e:
            self.make("--encrypted", "--psk", path)
        self.assertIn(path, str(e.exception))
        self.assertNotIn("not a key", str(e.exception))

    def test_missing_key(self) -> None:
        with self.assertRaises(SystemExit) as e:
            self.make("--psk", self.mktemp())
        self.assertIn("no such file", str(e.exception))

    def test_bad_endpoint(self) -> None:
        with self.assertRaises(SystemExit) as e:
            self.make("--listen", "nonsense:1")
        self.assertIn("nonsense:1", str(e.exception))

    def test_message_log_restores_seq(self) -> None:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b'{"type":"message","from":"a","text":"x","ts":"2026-01-01T00:00:00.000Z","seq":41}\n')
        reactor, service = self.make("--log-messages", path)
        self.assertEqual(service.factory.room.seq, 41)
        service.message_log.close()

    def test_stop_sends_shutdown_and_closes_log(self) -> None:
        path = self.mktemp()
        reactor, service = self.make("--log-messages", path, "--listen", "tcp:1")
        service.startService()
        d = service.stopService()
        self.successResultOf(d)
        self.assertTrue(service.message_log._file.closed)

    def test_generated_key_works(self) -> None:
        path = self.mktemp()
        generate_key_file(path)
        reactor, service = self.make("--encrypted", "--psk", path)
        self.assertTrue(list(service)[0].factory.require_encryption)


class TacTests(SynchronousTestCase):
    def test_tac_builds_the_same_service(self) -> None:
        namespace: dict = {}
        old = os.environ.get("CHATSVC_OPTIONS")
        os.environ["CHATSVC_OPTIONS"] = "--listen tcp:0:interface=127.0.0.1 --history 7"
        try:
            with open(os.path.join(REPO, "chat.tac")) as f:
                exec(compile(f.read(), "chat.tac", "exec"), namespace)
        finally:
            if old is None:
                del os.environ["CHATSVC_OPTIONS"]
            else:
                os.environ["CHATSVC_OPTIONS"] = old
        from twisted.application.service import IServiceCollection

        services = list(IServiceCollection(namespace["application"]))
        self.assertEqual(len(services), 1)
        self.assertIsInstance(services[0], tap.ChatService)
        self.assertEqual(services[0].factory.room.history.size, 7)


class VersionTwoOptionsTests(SynchronousTestCase):
    """(v2) Section 2's modes, and the room options."""

    def make(self, *argv: str):
        reactor = MemoryReactorClock()
        service = tap.makeService(parse(*argv), reactor)
        return reactor, service

    def test_a_key_requires_encryption(self) -> None:
        reactor, service = self.make("--psk", DEMO_KEY)
        self.assertTrue(list(service)[0].factory.require_encryption)

    def test_allow_plaintext_beside_a_key_is_loud(self) -> None:
        from .helpers import LogCapture

        logs = LogCapture.install(self)
        reactor, service = self.make("--psk", DEMO_KEY, "--allow-plaintext")
        self.assertFalse(list(service)[0].factory.require_encryption)
        self.assertTrue(any("PLAINTEXT CLIENTS ARE SERVED" in e.get("log_format", "")
                            and e["log_level"].name == "warn" for e in logs.events))

    def test_allow_plaintext_needs_a_key(self) -> None:
        with self.assertRaises(SystemExit) as e:
            self.make("--allow-plaintext")
        self.assertIn("--allow-plaintext", str(e.exception))

    def test_room_options(self) -> None:
        reactor, service = self.make("--default-room", "#Main", "--presence-limit", "5",
                                     "--max-rooms", "7", "--rooms-per-client", "3")
        chat = service.factory.room
        self.assertEqual((chat.default_room, chat.presence_limit, chat.rooms.limit,
                          chat.max_rooms_per_client), ("#Main", 5, 7, 3))

    def test_room_option_defaults(self) -> None:
        chat = self.make()[1].factory.room
        self.assertEqual((chat.default_room, chat.presence_limit, chat.rooms.limit,
                          chat.max_rooms_per_client), ("#lobby", 1000, 10000, 20))
        self.assertRaises(usage.UsageError, parse, "--presence-limit", "-1")
