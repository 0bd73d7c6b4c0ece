"""
Tests for L{chatsvc.client.commands}: typed lines to actions.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from chatsvc.client.commands import (
    Help,
    Hint,
    Me,
    Nick,
    Private,
    Quit,
    Say,
    SwitchEncryption,
    Who,
    parse_command,
)


class ParseCommandTests(SynchronousTestCase):
    def test_commands(self) -> None:
        for line, action in [
            ("hello", Say("hello")),
            ("  indented text ", Say("  indented text ")),
            ("quit", Quit()),
            (" quit ", Quit()),
            ("quit now", Say("quit now")),
            ("/quit", Quit()),
            ("/quit see you later", Quit("see you later")),
            ("/QUIT", Quit()),
            ("/nick al", Nick("al")),
            ("/who", Who()),
            ("/msg bob hi there", Private("bob", "hi there")),
            ("/msg bob   spaced", Private("bob", "spaced")),
            ("/me waves", Me("waves")),
            ("/encrypt on", SwitchEncryption(True)),
            ("/encrypt OFF", SwitchEncryption(False)),
            ("/help", Help()),
            ("//etc/passwd", Say("/etc/passwd")),
        ]:
            self.assertEqual(parse_command(line), action, line)

    def test_ignored(self) -> None:
        for line in ["", "   ", "\t"]:
            self.assertIsNone(parse_command(line))

    def test_hints(self) -> None:
        for line, hint in [
            ("/msg bob", "! usage: /msg NAME TEXT"),
            ("/msg", "! usage: /msg NAME TEXT"),
            ("/nick", "! usage: /nick NAME"),
            ("/nick a b", "! usage: /nick NAME"),
            ("/me", "! usage: /me TEXT"),
            ("/encrypt maybe", "! usage: /encrypt on|off"),
            ("/dance", "! unknown command /dance; type /help for the list"),
            ("/", "! unknown command /; type /help for the list"),
            ("/x\x1b[2J", "! unknown command /x\\x1b[2j; type /help for the list"),
        ]:
            self.assertEqual(parse_command(line), Hint(hint), line)
