"""
Tests for L{chatsvc.wire.names}: the name rules of PROTOCOL.md 4.3.
"""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.wire import confusables
from chatsvc.wire.confusables import UNICODE_VERSION, skeleton
from chatsvc.wire.names import (
    FILLERS,
    MAX_NAME,
    InvalidName,
    look_alike_key,
    name_key,
    normalize,
    with_suffix,
)


class NormalizeTests(SynchronousTestCase):
    def test_good(self) -> None:
        for name in ("alice", "Bob", "a", "x_y-z.w", "007", "\u00e9mile", "\u4e16\u754c",
                     "\u0645\u0631\u062d\u0628\u0627", "\u0967\u0968", "a" * 32, "_", "..."):
            self.assertEqual(normalize(name), name)

    def test_nfc(self) -> None:
        """A decomposed name is stored composed."""
        self.assertEqual(normalize("e\u0301mile"), "\u00e9mile")

    def test_length_counted_after_nfc(self) -> None:
        """33 code points that compose to 32 are a valid name."""
        name = "e\u0301" + "a" * 31
        self.assertEqual(len(name), 33)
        self.assertEqual(normalize(name), "\u00e9" + "a" * 31)

    def test_too_long(self) -> None:
        self.assertRaises(InvalidName, normalize, "a" * 33)
        self.assertRaises(InvalidName, normalize, "\u00e9" * 33)

    def test_empty(self) -> None:
        self.assertRaises(InvalidName, normalize, "")

    def test_not_a_string(self) -> None:
        for name in (None, 1, ["a"], b"alice", True):
            e = self.assertRaises(InvalidName, normalize, name)
            self.assertIsInstance(e, ValueError)

    def test_bad_characters(self) -> None:
        for name in ("a b", "a\tb", "a\nb", "a@b", "a/b", "\u202ealice", "a\u200bb", "a\x00",
                     "\U0001f600", "a+b", "a'b", "\u00b2", "\u2160x"):
            self.assertRaises(InvalidName, normalize, name)

    def test_message_is_safe(self) -> None:
        e = self.assertRaises(InvalidName, normalize, "\x1b[2J")
        self.assertNotIn("\x1b", str(e))

    def test_combining_mark_that_does_not_compose(self) -> None:
        """A combining mark (category M) left after NFC is refused."""
        self.assertRaises(InvalidName, normalize, "q\u0301")


class NameKeyTests(SynchronousTestCase):
    def test_case(self) -> None:
        self.assertEqual(name_key("ALICE"), name_key("alice"))
        self.assertEqual(name_key("Alice"), "alice")

    def test_casefold_not_lower(self) -> None:
        self.assertEqual(name_key("Stra\u00dfe"), name_key("STRASSE"))

    def test_nfc(self) -> None:
        self.assertEqual(name_key("e\u0301mile"), name_key("\u00c9MILE"))

    def test_different(self) -> None:
        self.assertNotEqual(name_key("alice"), name_key("alice_"))
        self.assertNotEqual(name_key("a.b"), name_key("a-b"))

    @settings(deadline=None, max_examples=300)
    @given(st.text(max_size=40))
    def test_definition(self, name: str) -> None:
        """C{NFC(casefold(NFC(name)))}, idempotent."""
        key = name_key(name)
        nfc = unicodedata.normalize
        self.assertEqual(key, nfc("NFC", nfc("NFC", name).casefold()))
        self.assertEqual(name_key(key), key)


class WithSuffixTests(SynchronousTestCase):
    def test_short(self) -> None:
        self.assertEqual(with_suffix("alice", 2), "alice_2")
        self.assertEqual(with_suffix("alice", 13), "alice_13")

    def test_shortened(self) -> None:
        self.assertEqual(with_suffix("a" * 32, 2), "a" * 30 + "_2")
        self.assertEqual(with_suffix("a" * 31, 10), "a" * 29 + "_10")
        self.assertEqual(with_suffix("b" * 30, 2), "b" * 30 + "_2")

    @settings(deadline=None, max_examples=200)
    @given(st.text(st.characters(whitelist_categories=("Lu", "Ll", "Lo", "Nd")), min_size=1,
                   max_size=MAX_NAME),
           st.integers(min_value=2, max_value=10**6))
    def test_valid_and_short(self, name: str, n: int) -> None:
        name = unicodedata.normalize("NFC", name)
        if not 1 <= len(name) <= MAX_NAME:
            return
        try:
            normalize(name)
        except InvalidName:
            return
        result = with_suffix(name, n)
        self.assertLessEqual(len(result), MAX_NAME)
        self.assertTrue(result.endswith(f"_{n}"))
        self.assertEqual(normalize(result), result)


class FillerTests(SynchronousTestCase):
    """Finding 8: the fillers show as nothing, so they are not name characters."""

    def test_fillers_refused(self) -> None:
        self.assertEqual(FILLERS, {"\u115f", "\u1160", "\u3164", "\uffa0"})
        for filler in sorted(FILLERS):
            self.assertEqual(unicodedata.category(filler), "Lo")
            for name in (filler, "alice" + filler, filler + "bob", filler * 3):
                self.assertRaises(InvalidName, normalize, name)

    def test_other_hangul_kept(self) -> None:
        for name in ("\ud55c\uae00", "\u1100\u1161", "\u3131", "\uffa1"):
            self.assertEqual(normalize(name), unicodedata.normalize("NFC", name))


class LookAlikeTests(SynchronousTestCase):
    """Finding 8: TR39 skeletons (PROTOCOL.md 4.3 v2)."""

    def assertLookAlike(self, a: str, b: str) -> None:
        self.assertEqual(look_alike_key(a), look_alike_key(b), f"{a!r} and {b!r}")

    def test_data_version(self) -> None:
        """Unicode 15.1 or later, as the protocol asks."""
        major, minor, _ = (int(part) for part in UNICODE_VERSION.split("."))
        self.assertGreaterEqual((major, minor), (15, 1))
        self.assertGreater(len(confusables._prototypes()), 6000)

    def test_cyrillic_a(self) -> None:
        self.assertNotEqual(name_key("\u0430lice"), name_key("alice"))
        self.assertLookAlike("\u0430lice", "alice")
        self.assertLookAlike("\u0430lice", "Alice")

    def test_capital_i_before_case_folding(self) -> None:
        """C{PayPaI} (capital i) looks like C{paypal}: skeleton, then casefold."""
        self.assertLookAlike("PayPaI", "paypal")
        self.assertEqual(look_alike_key("PayPaI"), "paypal")

    def test_tr39_examples(self) -> None:
        self.assertEqual(skeleton("m"), "rn")
        self.assertLookAlike("mary", "rnary")
        self.assertLookAlike("g00gle", "gOOgle")
        self.assertLookAlike("l1I", "lll")
        self.assertLookAlike("\u0391\u039c\u0391", "AMA")  # Greek capitals

    def test_different_names(self) -> None:
        for a, b in (("alice", "bob"), ("alice", "alice2"), ("anna", "ana")):
            self.assertNotEqual(look_alike_key(a), look_alike_key(b))

    def test_same_name_same_key(self) -> None:
        for name in ("alice", "\u00e9mile", "e\u0301mile", "\u4e16\u754c"):
            self.assertEqual(look_alike_key(name), look_alike_key(unicodedata.normalize("NFC", name)))

    def test_ignorables_removed(self) -> None:
        self.assertEqual(skeleton("a\u200bb\u00adc\u3164"), "abc")

    def test_data_round_trip(self) -> None:
        """The generator's parser reads the lines it is made from."""
        text = ("# Version: 18.0.0\n"
                "0430 ;\t0061 ;\tMA\t# ( \u0430 \u2192 a ) CYRILLIC SMALL LETTER A\n"
                "006D ;\t0072 006E ;\tMA\t# ( m \u2192 rn )\n")
        version, mappings = confusables.parse(text)
        self.assertEqual((version, mappings), ("18.0.0", [("0430", ["0061"]), ("006D", ["0072", "006E"])]))
        self.assertIn("0430 0061\n006D 0072 006E\n", confusables.render(version, mappings))
        self.assertRaises(ValueError, confusables.parse, "no data")

    @settings(max_examples=200, deadline=None)
    @given(st.text(min_size=1, max_size=32))
    def test_total(self, name: str) -> None:
        """Any string has a key; a name's key does not depend on its form."""
        key = look_alike_key(name)
        self.assertIsInstance(key, str)
        self.assertEqual(look_alike_key(unicodedata.normalize("NFD", name)), key)
