"""
Tests for L{chatsvc.transports.irc.lines}: splitting, parsing and
formatting IRC lines, and the text rules between IRC and the chat.
"""

from __future__ import annotations

from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.transports.irc.lines import (
    BadLine, LineBuffer, LineTooLong, MAX_LINE, format_line, parse, split_ctcp, split_text,
    strip_formatting, unescape_tag_value,
)


class LineBufferTests(SynchronousTestCase):
    def test_lines_split_across_reads(self) -> None:
        """A line (and a UTF-8 character) split over two reads arrives whole."""
        data = "PRIVMSG #a :héllo\r\nPING x\n".encode("utf-8")
        buffer = LineBuffer()
        cut = data.index(b"\xc3") + 1  # in the middle of the é
        lines = list(buffer.feed(data[:cut])) + list(buffer.feed(data[cut:]))
        self.assertEqual(lines, ["PRIVMSG #a :héllo".encode("utf-8"), b"PING x"])

    def test_long_line_refused_once_and_skipped(self) -> None:
        """An unterminated line past the limit is refused once; the next line is read."""
        buffer = LineBuffer(limit=10)
        first = list(buffer.feed(b"x" * 11))
        self.assertEqual(len(first), 1)
        self.assertIsInstance(first[0], LineTooLong)
        self.assertEqual(list(buffer.feed(b"yyyy" * 5)), [])
        self.assertEqual(list(buffer.feed(b"zz\nPING a\r\n")), [b"PING a"])

    def test_long_terminated_line(self) -> None:
        buffer = LineBuffer(limit=4)
        out = list(buffer.feed(b"abcdefg\nab\n"))
        self.assertIsInstance(out[0], LineTooLong)
        self.assertEqual(out[1:], [b"ab"])


class ParseTests(SynchronousTestCase):
    def test_command_and_params(self) -> None:
        m = parse(b"privmsg #lobby :hello  there")
        self.assertEqual((m.command, m.params, m.prefix), ("PRIVMSG", ["#lobby", "hello  there"], ""))

    def test_prefix_tags_and_spaces(self) -> None:
        m = parse(b"@time=2026-01-01T00:00:00.000Z;+draft/x=a\\sb :nick!u@h  JOIN   #a,#b  key")
        self.assertEqual(m.tags, {"time": "2026-01-01T00:00:00.000Z", "+draft/x": "a b"})
        self.assertEqual((m.prefix, m.command, m.params), ("nick!u@h", "JOIN", ["#a,#b", "key"]))

    def test_tab_is_not_a_separator(self) -> None:
        """Twisted's parsemsg splits on tabs; IRC does not."""
        self.assertEqual(parse(b"NICK a\tb").params, ["a\tb"])

    def test_trailing_right_after_command(self) -> None:
        self.assertEqual(parse(b"QUIT :bye now").params, ["bye now"])
        self.assertEqual(parse(b"PING :").params, [""])

    def test_empty_line(self) -> None:
        self.assertIsNone(parse(b""))
        self.assertIsNone(parse(b"   "))

    def test_bad_lines(self) -> None:
        for line in (b"\xff\xfe", b":prefixonly", b"PRIV\x00MSG", b"A\rB", b"@tags :p"):
            self.assertRaises(BadLine, parse, line)

    def test_too_long(self) -> None:
        self.assertRaises(LineTooLong, parse, b"PRIVMSG #a :" + b"x" * MAX_LINE)
        # the 512 bytes do not count the tags
        m = parse(b"@" + b"a" * 600 + b" PRIVMSG #a :" + b"x" * 400)
        self.assertEqual(m.command, "PRIVMSG")

    def test_unescape(self) -> None:
        self.assertEqual(unescape_tag_value("a\\:b\\sc\\\\d\\ne\\x"), "a;b c\\d\nex")

    @given(st.binary(max_size=600))
    def test_any_bytes(self, data: bytes) -> None:
        """Any line parses to a message, None, or BadLine: nothing else escapes."""
        try:
            m = parse(data)
        except BadLine:
            return
        if m is not None:
            self.assertTrue(m.command)


class FormatTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        line = format_line("PRIVMSG", ["#a", "hi there"], "n!u@h", {"time": "T", "x": "a;b c"})
        self.assertEqual(line, b"@time=T;x=a\\:b\\sc :n!u@h PRIVMSG #a :hi there\r\n")
        m = parse(line[:-2])
        self.assertEqual((m.tags["x"], m.params), ("a;b c", ["#a", "hi there"]))

    def test_colon_only_where_needed(self) -> None:
        self.assertEqual(format_line("JOIN", ["#a"], "n"), b":n JOIN #a\r\n")
        self.assertEqual(format_line("PRIVMSG", ["#a", "x"]), b"PRIVMSG #a :x\r\n")
        self.assertEqual(format_line("324", ["me", "#a", "+n"], "s", colon=False), b":s 324 me #a +n\r\n")
        self.assertEqual(format_line("X", [":y"]), b"X ::y\r\n")


class TextTests(SynchronousTestCase):
    def test_strip_formatting(self) -> None:
        text = "\x02bold\x02 \x0304,12red\x03 \x1ditalic\x1d \x04ff0000hex\x0f \x1fu\x1f \x11m \x1es"
        self.assertEqual(strip_formatting(text), "bold red italic hex u m s")

    def test_other_controls_stay(self) -> None:
        """Only formatting goes; a bell stays for the chat's text rules to refuse."""
        self.assertEqual(strip_formatting("a\x07b\x02c"), "a\x07bc")

    def test_ctcp(self) -> None:
        self.assertEqual(split_ctcp("\x01ACTION waves\x01"), ("ACTION", "waves"))
        self.assertEqual(split_ctcp("\x01action waves"), ("ACTION", "waves"))
        self.assertEqual(split_ctcp("\x01VERSION\x01"), ("VERSION", ""))
        self.assertIsNone(split_ctcp("hello"))

    def test_split_at_newlines_and_spaces(self) -> None:
        self.assertEqual(split_text("a\n\nb c", 100), ["a", "b c"])
        self.assertEqual(split_text("aaaa bbbb cccc", 10), ["aaaa bbbb ", "cccc"])

    @given(st.text(min_size=1, max_size=2000), st.integers(min_value=4, max_value=500))
    def test_split_never_loses_text(self, text: str, budget: int) -> None:
        text = text.replace("\r", "")
        pieces = split_text(text, budget)
        for piece in pieces:
            self.assertLessEqual(len(piece.encode("utf-8")), budget)
            self.assertNotIn("\n", piece)
        self.assertEqual("".join(pieces), "".join(text.split("\n")))
