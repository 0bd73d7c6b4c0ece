"""Tests for L{chatsvc.transports.irc.names}: chat names as IRC nicks and back."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.transports.irc.names import NICKLEN, chat_name, irc_nick
from chatsvc.wire.names import InvalidName, normalize

_NAME_CHARS = st.characters(whitelist_categories=("Lu", "Ll", "Lo", "Nd"),
                            whitelist_characters="_-.")

# An IRC nick (RFC 2812, plus UTF-8 letters): no digit or '-' first, no '.'.
_IRC_NICK = re.compile(r"^[^\d\-.\s,*?!@#:][^\s.,*?!@#:]*$")


class NameTests(SynchronousTestCase):
    def test_examples(self) -> None:
        self.assertEqual(irc_nick("alice"), "alice")
        self.assertEqual(irc_nick("j.doe"), "j^doe")
        self.assertEqual(irc_nick("1337"), "`1337")
        self.assertEqual(irc_nick("-x-"), "`-x-")
        self.assertEqual(irc_nick(".dot"), "^dot")
        self.assertEqual(chat_name("j^doe"), "j.doe")
        self.assertEqual(chat_name("`1337"), "1337")
        self.assertEqual(chat_name("Zoë"), "Zoë")

    def test_nicks_that_stand_for_no_name(self) -> None:
        for nick in ("", "1bob", "-bob", "a.b", "`abc", "`", "a|b", "[x]", "a b", "x" * 34, "a\\b"):
            self.assertIsNone(chat_name(nick), nick)

    @given(st.text(_NAME_CHARS, min_size=1, max_size=32))
    def test_round_trip(self, raw: str) -> None:
        """Every chat name maps to a valid IRC nick, and back to itself."""
        try:
            name = normalize(raw)
        except InvalidName:
            return
        nick = irc_nick(name)
        self.assertRegex(nick, _IRC_NICK)
        self.assertLessEqual(len(nick), NICKLEN)
        self.assertEqual(chat_name(nick), name)

    @given(st.text(min_size=1, max_size=40))
    def test_reverse_round_trip(self, nick: str) -> None:
        """A nick that stands for a name is that name's nick (up to NFC)."""
        name = chat_name(nick)
        if name is not None:
            self.assertEqual(irc_nick(name), unicodedata.normalize("NFC", nick))
