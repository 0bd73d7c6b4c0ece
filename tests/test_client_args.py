"""
Tests for L{chatsvc.client.args}: the command line, without I/O.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from chatsvc.client.args import UsageError, parse_args


class ParseArgsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        args = parse_args([])
        self.assertEqual(args.endpoints, (("127.0.0.1:8000", None),))
        self.assertEqual((args.host, args.port), ("127.0.0.1", 8000))
        self.assertEqual((args.name, args.psk, args.encrypted, args.reconnect), (None, None, False, True))

    def test_host_port_then_options(self) -> None:
        """Options may follow the positional arguments."""
        args = parse_args(["chat.example", "9000", "--name", "bob", "--no-reconnect"])
        self.assertEqual(args.endpoints, (("chat.example:9000", None),))
        self.assertEqual((args.host, args.port, args.name, args.reconnect),
                         ("chat.example", 9000, "bob", False))

    def test_ipv6_host(self) -> None:
        self.assertEqual(parse_args(["::1", "8001"]).endpoints, (("[::1]:8001", None),))

    def test_connect_repeatable(self) -> None:
        args = parse_args(["--connect", "tcp:host=a:port=1", "--connect", "tcp:host=b:port=2"])
        self.assertEqual(args.endpoints, (("tcp:host=a:port=1", "tcp:host=a:port=1"),
                                          ("tcp:host=b:port=2", "tcp:host=b:port=2")))

    def test_encrypted(self) -> None:
        args = parse_args(["--encrypted", "--psk", "k.key"])
        self.assertEqual((args.encrypted, args.psk), (True, "k.key"))

    def test_name_normalised(self) -> None:
        self.assertEqual(parse_args(["--name", "Jose\u0301"]).name, "Jos\u00e9")

    def test_errors(self) -> None:
        for argv, message in [
            (["a", "b", "c"], "unrecognized arguments"),
            (["h", "99999"], "PORT must be a number from 1 to 65535"),
            (["h", "0"], "PORT must be a number"),
            (["h", "eighty"], "PORT must be a number"),
            (["h", "--connect", "tcp:host=a:port=1"], "not both"),
            (["--encrypted"], "--encrypted needs --psk FILE"),
            (["--psk", "k", "--encrypted", "--plaintext"], "not both"),
            (["--name", "a b"], "invalid --name"),
            (["--bogus"], "unrecognized arguments"),
        ]:
            e = self.assertRaises(UsageError, parse_args, argv)
            self.assertIn(message, str(e), argv)

    def test_a_key_means_encrypted(self) -> None:
        """--psk FILE alone connects encrypted (issue 13); --plaintext asks for
        plaintext; --encrypted is still accepted."""
        self.assertTrue(parse_args(["--psk", "k"]).encrypted)
        self.assertTrue(parse_args(["--psk", "k", "--encrypted"]).encrypted)
        plain = parse_args(["--psk", "k", "--plaintext"])
        self.assertEqual((plain.encrypted, plain.psk), (False, "k"))
        self.assertFalse(parse_args([]).encrypted)

    def test_modes(self) -> None:
        args = parse_args([])
        self.assertEqual((args.line_mode, args.timestamps), (False, True))
        args = parse_args(["--line-mode", "--no-timestamps"])
        self.assertEqual((args.line_mode, args.timestamps), (True, False))
