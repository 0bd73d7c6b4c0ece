"""
Tests for L{chatsvc.client.display}: sanitising and formatting what the client prints.
"""

from __future__ import annotations

import unicodedata

from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.client.display import (
    CONTINUATION,
    HISTORY_RESET,
    history_end,
    history_head,
    format_message,
    format_users,
    format_welcome,
    sanitize,
    text_lines,
)

# What must never reach a terminal from the network.
_BIDI = [chr(c) for c in [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]]


def _dangerous(ch: str) -> bool:
    if ch == "\t":
        return False
    return unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in _BIDI


class SanitizeTests(SynchronousTestCase):
    def test_printable_unchanged(self) -> None:
        """Letters of any script, emoji and punctuation pass untouched."""
        for text in [
            "hello, world!",
            "héllo ünïcode ß",
            "日本語のテキスト",
            "مرحبا بالعالم",
            "👩\u200d👩\u200d👧 family",  # ZWJ sequence
            "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # flag of Scotland (tags)
            "a\tb",  # tab is kept
            "non\u00a0breaking",
            "\u0645\u200c\u0646",  # ZWNJ
        ]:
            self.assertEqual(sanitize(text), text)

    def test_escape_sequences(self) -> None:
        """ESC and the rest of C0 become visible escapes: no sequence survives."""
        self.assertEqual(sanitize("\x1b[2J\x1b[H"), "\\x1b[2J\\x1b[H")
        self.assertEqual(sanitize("\x1b]0;title\x07"), "\\x1b]0;title\\x07")
        self.assertEqual(sanitize("a\x00b"), "a\\x00b")
        self.assertEqual(sanitize("bell\x07"), "bell\\x07")
        self.assertEqual(sanitize("back\x08space"), "back\\x08space")

    def test_c1_and_del(self) -> None:
        """C1 controls (CSI 0x9b, NEL 0x85) and DEL are escaped."""
        self.assertEqual(sanitize("\x9b31m"), "\\x9b31m")
        self.assertEqual(sanitize("a\x85b"), "a\\x85b")
        self.assertEqual(sanitize("x\x7f"), "x\\x7f")

    def test_carriage_return(self) -> None:
        """A CR cannot return the cursor to overwrite the start of the line."""
        self.assertEqual(sanitize("harmless\r* bob joined"), "harmless\\x0d* bob joined")

    def test_newline_escaped(self) -> None:
        """In a one-line field, a newline is escaped too."""
        self.assertEqual(sanitize("a\nb"), "a\\x0ab")

    def test_bidi(self) -> None:
        """Bidirectional overrides, embeddings, isolates and marks are escaped."""
        self.assertEqual(sanitize("abc\u202etxt.exe"), "abc\\u202etxt.exe")
        self.assertEqual(sanitize("\u2066x\u2069"), "\\u2066x\\u2069")
        self.assertEqual(sanitize("\u200e\u200f\u061c"), "\\u200e\\u200f\\u061c")
        for ch in _BIDI:
            self.assertNotIn(ch, sanitize(f"a{ch}b"))

    def test_separators_and_invisibles(self) -> None:
        """Line/paragraph separators and invisible format characters are escaped."""
        self.assertEqual(sanitize("a\u2028b\u2029c"), "a\\u2028b\\u2029c")
        self.assertEqual(sanitize("pay\u200bpal"), "pay\\u200bpal")
        self.assertEqual(sanitize("\ufeffx"), "\\ufeffx")
        self.assertEqual(sanitize("\U000e0001"), "\\U000e0001")

    @given(st.text())
    def test_nothing_dangerous_survives(self, text: str) -> None:
        """For any text, the result holds no control, bidi or separator character."""
        result = sanitize(text)
        self.assertFalse(any(_dangerous(ch) for ch in result), ascii(result))

    @given(st.text())
    def test_idempotent(self, text: str) -> None:
        """Sanitising twice changes nothing more (escapes are printable)."""
        once = sanitize(text)
        self.assertEqual(sanitize(once), once)


class TextLinesTests(SynchronousTestCase):
    def test_one_line(self) -> None:
        self.assertEqual(text_lines("bob: ", "hi"), ["bob: hi"])

    def test_continuation(self) -> None:
        """Each newline starts an indented continuation line."""
        self.assertEqual(
            text_lines("bob: ", "one\ntwo\n\nthree"),
            ["bob: one", "    two", "    ", "    three"],
        )

    def test_fake_line(self) -> None:
        """A text cannot make a line that looks like another user's."""
        self.assertEqual(
            text_lines("mallory: ", "hi\nalice: send me your password"),
            ["mallory: hi", CONTINUATION + "alice: send me your password"],
        )

    def test_suffix(self) -> None:
        """The suffix goes at the end of the last line."""
        self.assertEqual(text_lines("(", "a\nb", ")"), ["(a", "    b)"])

    def test_crlf(self) -> None:
        """CR before a newline is escaped, not obeyed."""
        self.assertEqual(text_lines("x: ", "a\r\nb"), ["x: a\\x0d", "    b"])

    @given(st.text())
    def test_layout(self, text: str) -> None:
        """One line per newline; every later line is indented; none holds a
        control character but tab."""
        lines = text_lines("bob: ", text)
        self.assertEqual(len(lines), text.count("\n") + 1)
        self.assertTrue(lines[0].startswith("bob: "))
        for line in lines[1:]:
            self.assertTrue(line.startswith(CONTINUATION))
        for line in lines:
            self.assertFalse(any(_dangerous(ch) for ch in line), ascii(line))


class FormatMessageTests(SynchronousTestCase):
    def test_public(self) -> None:
        message = {"type": "message", "from": "bob", "text": "hello", "ts": "x", "seq": 1}
        self.assertEqual(format_message(message, "alice"), ["bob: hello"])

    def test_public_multiline(self) -> None:
        message = {"type": "message", "from": "bob", "text": "a\n* alice joined", "seq": 1}
        self.assertEqual(format_message(message, "alice"), ["bob: a", "    * alice joined"])

    def test_public_escapes(self) -> None:
        message = {"type": "message", "from": "bob", "text": "\x1b[31mred\u202e", "seq": 1}
        self.assertEqual(format_message(message, "alice"), ["bob: \\x1b[31mred\\u202e"])

    def test_private_received(self) -> None:
        message = {"type": "private", "from": "bob", "to": "alice", "text": "psst", "seq": 2}
        self.assertEqual(format_message(message, "alice"), ["[private] bob: psst"])


    def test_operator_notice(self) -> None:
        """An operator's notice (docs/protocol.md 8), to everyone or to a room, sanitised."""
        message = {"type": "notice", "text": "restart at 5\x1b[2J", "ts": "2026-12-06T05:00:00.000Z"}
        self.assertEqual(format_message(message, "alice"),
                         ["! notice from the operator: restart at 5\\x1b[2J"])
        message["room"] = "#dev"
        self.assertEqual(format_message(message, "alice"),
                         ["! notice from the operator to #dev: restart at 5\\x1b[2J"])
    def test_private_echo(self) -> None:
        """The echo of our own private message names the recipient."""
        message = {"type": "private", "from": "alice", "to": "bob", "text": "psst", "seq": 2}
        self.assertEqual(format_message(message, "alice"), ["[private] -> bob: psst"])

    def test_private_echo_case_insensitive(self) -> None:
        """Names match as the server matches them (case-folded)."""
        message = {"type": "private", "from": "Alice", "to": "bob", "text": "x", "seq": 2}
        self.assertEqual(format_message(message, "ALICE"), ["[private] -> bob: x"])

    def test_private_without_me(self) -> None:
        message = {"type": "private", "from": "alice", "to": "bob", "text": "x", "seq": 2}
        self.assertEqual(format_message(message, None), ["[private] alice: x"])

    def test_joined(self) -> None:
        self.assertEqual(format_message({"type": "joined", "name": "bob", "ts": "x"}), ["* bob joined"])

    def test_left(self) -> None:
        message = {"type": "left", "name": "bob", "reason": "quit", "ts": "x"}
        self.assertEqual(format_message(message), ["* bob left (quit)"])

    def test_left_with_text(self) -> None:
        message = {"type": "left", "name": "bob", "reason": "quit", "text": "bye all"}
        self.assertEqual(format_message(message), ["* bob left (quit: bye all)"])

    def test_left_with_multiline_text(self) -> None:
        message = {"type": "left", "name": "bob", "reason": "quit", "text": "bye\nall"}
        self.assertEqual(format_message(message), ["* bob left (quit: bye", "    all)"])

    def test_left_timeout(self) -> None:
        message = {"type": "left", "name": "bob", "reason": "timeout"}
        self.assertEqual(format_message(message), ["* bob left (timeout)"])

    def test_renamed(self) -> None:
        message = {"type": "renamed", "old": "alice", "new": "al", "ts": "x"}
        self.assertEqual(format_message(message), ["* alice is now al"])

    def test_error(self) -> None:
        message = {"type": "error", "code": "name-taken", "text": "bob is taken", "fatal": False}
        self.assertEqual(format_message(message), ["! name-taken: bob is taken"])

    def test_error_escaped(self) -> None:
        message = {"type": "error", "code": "x\x1b", "text": "t\x07", "fatal": True}
        self.assertEqual(format_message(message), ["! x\\x1b: t\\x07"])

    def test_missing_and_odd_members(self) -> None:
        """A missing member shows as '?', a non-string one as JSON."""
        self.assertEqual(format_message({"type": "message", "text": "x"}), ["?: x"])
        self.assertEqual(
            format_message({"type": "message", "from": "b", "text": ["\x1b", 1]}),
            ['b: ["\\u001b", 1]'],
        )
        self.assertEqual(format_message({"type": "joined", "name": 7}), ["* 7 joined"])

    def test_names_sanitised(self) -> None:
        """Even a name (checked by the server) cannot hold control characters."""
        message = {"type": "joined", "name": "b\x1b[2Job\n"}
        self.assertEqual(format_message(message), ["* b\\x1b[2Job\\x0a joined"])

    def test_unknown_types(self) -> None:
        """Types that are not simply shown give no line."""
        for kind in ["ping", "pong", "welcome", "history", "users", "future-type"]:
            self.assertEqual(format_message({"type": kind}), [])


class OtherFormatsTests(SynchronousTestCase):
    def test_welcome(self) -> None:
        self.assertEqual(format_welcome("alice", False), ["* connected as alice"])

    def test_welcome_encrypted(self) -> None:
        self.assertEqual(format_welcome("alice", True), ["* connected as alice (encrypted)"])

    def test_welcome_motd(self) -> None:
        self.assertEqual(
            format_welcome("alice", False, "be nice\nno \x1b spam"),
            ["* connected as alice", "* motd: be nice", "    no \\x1b spam"],
        )

    def test_welcome_bad_motd(self) -> None:
        """A motd that is not a string is left out."""
        self.assertEqual(format_welcome("alice", False, 5), ["* connected as alice"])

    def test_users(self) -> None:
        self.assertEqual(format_users(["a", "b", "c\u202e"]), ["* users: a, b, c\\u202e"])

    def test_history_markers(self) -> None:
        self.assertEqual(history_head(1), "-- history: 1 message --")
        self.assertEqual(history_head(12), "-- history: 12 messages --")
        self.assertEqual(history_end(True), "-- end of history (complete) --")
        self.assertEqual(history_end(False), "-- end of history: some messages before these were missed --")
        self.assertEqual(HISTORY_RESET, "-- the server's history was reset --")

    def test_action(self) -> None:
        """An action is '* alice waves', never 'alice: * alice waves'."""
        message = {"type": "message", "from": "alice", "text": "waves", "action": True}
        self.assertEqual(format_message(message), ["* alice waves"])
        private = {"type": "private", "from": "bob", "to": "alice", "text": "nods", "action": True}
        self.assertEqual(format_message(private, "alice"), ["[private] bob: * bob nods"])

    def test_v1_action(self) -> None:
        """A version 1 client's /me ('* NAME text' from NAME) shows as an action;
        the same text from someone else does not."""
        self.assertEqual(format_message({"type": "message", "from": "bob", "text": "* bob waves"}),
                         ["* bob waves"])
        self.assertEqual(format_message({"type": "message", "from": "eve", "text": "* bob waves"}),
                         ["eve: * bob waves"])

    def test_plaintext_marked(self) -> None:
        message = {"type": "message", "from": "Dave", "text": "hi"}
        self.assertEqual(format_message(message, "alice", frozenset({"dave"})), ["~Dave: hi"])
        self.assertEqual(format_users(["a", "Dave"], frozenset({"dave"})), ["* users: a, ~Dave"])
        joined = {"type": "joined", "room": "#lobby", "name": "dave", "plaintext": True}
        self.assertEqual(format_message(joined),
                         ["* dave joined (plaintext: anyone on the network can read dave)"])

    def test_parted_and_topic(self) -> None:
        self.assertEqual(format_message({"type": "parted", "room": "#dev", "name": "bob", "reason": "part"}),
                         ["* bob left #dev (part)"])
        self.assertEqual(format_message({"type": "topic", "room": "#dev", "by": "bob", "text": ""}),
                         ["* bob cleared the topic of #dev"])
