"""
Tests for L{chatsvc.client.lines} (rows as data, line mode's text with
timestamps and date lines) and L{chatsvc.client.view} (L{LineView},
L{BoundedOutput}: output to a stdout that stops reading is bounded, issue
12 finding 6), and the choice between line mode and the full screen.
"""

from __future__ import annotations

from datetime import timedelta, timezone

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from chatsvc.client.args import parse_args
from chatsvc.client.lines import Clock, Line, LineFormatter, date_line, parse_ts, rows
from chatsvc.client.stdio import use_screen
from chatsvc.client.terminal import colour_wanted
from chatsvc.client.view import BoundedOutput, IView, LineView

from .client_helpers import FakeOutput

NOW = 1_796_565_720.0  # 2026-12-06T14:02:00Z


class FormatterTests(SynchronousTestCase):
    def formatter(self, tz=timezone.utc) -> LineFormatter:
        return LineFormatter(clock=Clock(tz=tz, now=lambda: NOW))

    def test_timestamps_and_date_line(self) -> None:
        fmt = self.formatter()
        self.assertEqual(fmt.render(Line("bob: hi", "message", ts="2026-12-06T14:03:59.999Z")),
                         ["-- Sunday 6 December 2026 --", "14:03 bob: hi"])
        self.assertEqual(fmt.render(Line("bob: again", "message", ts="2026-12-06T23:59:00.000Z")),
                         ["23:59 bob: again"])
        self.assertEqual(fmt.render(Line("bob: late", "message", ts="2026-12-07T00:01:00.000Z")),
                         ["-- Monday 7 December 2026 --", "00:01 bob: late"])

    def test_local_time(self) -> None:
        fmt = self.formatter(tz=timezone(timedelta(hours=9)))
        self.assertEqual(fmt.render(Line("x", ts="2026-12-06T14:03:00.000Z"))[-1], "23:03 x")

    def test_rows_without_ts_use_now(self) -> None:
        self.assertEqual(self.formatter().render(Line("* connected as alice"))[-1],
                         "14:02 * connected as alice")

    def test_bad_ts(self) -> None:
        for ts in ["yesterday", "2026-12-06T14:03:00", "2026-13-06T14:03:00Z", 5, None, "x" * 100 + "Z"]:
            self.assertIsNone(parse_ts(ts), ts)
        self.assertEqual(self.formatter().render(Line("x", ts="garbage"))[-1], "14:02 x")

    def test_continuation_and_room_tag(self) -> None:
        fmt = self.formatter()
        lines = rows(["bob: a", "    b"], "message", ts="2026-12-06T14:03:00.000Z", room="#dev")
        out = [r for line in lines for r in fmt.render(line)]
        self.assertEqual(out[1:], ["14:03 [#dev] bob: a", "          b"])

    def test_no_timestamps(self) -> None:
        fmt = LineFormatter(timestamps=False)
        self.assertEqual(fmt.render(Line("bob: hi", ts="2026-12-06T14:03:00.000Z", room="#dev")),
                         ["[#dev] bob: hi"])

    def test_pending(self) -> None:
        self.assertEqual(LineFormatter(timestamps=False).render(Line("alice: x", "pending")),
                         ["(not sent yet) alice: x"])

    def test_date_line_english(self) -> None:
        self.assertEqual(date_line(parse_ts("2026-02-01T00:00:00.000Z")), "-- Sunday 1 February 2026 --")


class LineViewTests(SynchronousTestCase):
    def test_view(self) -> None:
        output = FakeOutput()
        view = LineView(output, timestamps=False)
        self.assertTrue(verifyObject(IView, view))
        view.show([Line("a"), Line("b")])
        view.prompt("Enter your username: ")
        self.assertEqual(output.text, "a\nb\nEnter your username: ")


class BoundedOutputTests(SynchronousTestCase):
    def test_writes_through(self) -> None:
        transport = StringTransport()
        out = BoundedOutput(transport)
        self.assertIs(transport.producer, out)
        out.write("héllo\n")
        self.assertEqual(transport.value(), "héllo\n".encode())

    def test_bounded_while_paused(self) -> None:
        """A reader that stops: at most the limit is held, the rest dropped and counted."""
        transport = StringTransport()
        out = BoundedOutput(transport, limit=100)
        out.pauseProducing()
        for i in range(1000):
            out.write(f"line {i:04d}\n")
        self.assertEqual(transport.value(), b"")
        self.assertLessEqual(out.held, 100)
        out.resumeProducing()
        text = transport.value().decode()
        self.assertTrue(text.startswith("line 0000\n"))
        self.assertTrue(text.endswith("! 990 writes were dropped: the output was not being read\n"))

    def test_stop(self) -> None:
        out = BoundedOutput(StringTransport(), limit=100)
        out.pauseProducing()
        out.write("x" * 50)
        out.stopProducing()
        self.assertEqual(out.held, 0)


class ModeTests(SynchronousTestCase):
    class Tty:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    def test_use_screen(self) -> None:
        tty, pipe = self.Tty(True), self.Tty(False)
        args = parse_args([])
        self.assertTrue(use_screen(args, tty, tty, {"TERM": "xterm"}))
        self.assertFalse(use_screen(args, pipe, tty, {"TERM": "xterm"}))
        self.assertFalse(use_screen(args, tty, pipe, {"TERM": "xterm"}))
        self.assertFalse(use_screen(args, tty, tty, {"TERM": "dumb"}))
        self.assertFalse(use_screen(args, tty, tty, {}))
        self.assertFalse(use_screen(parse_args(["--line-mode"]), tty, tty, {"TERM": "xterm"}))

    def test_colours(self) -> None:
        self.assertTrue(colour_wanted({"TERM": "xterm"}))
        self.assertFalse(colour_wanted({"TERM": "xterm", "NO_COLOR": ""}))
        self.assertFalse(colour_wanted({"TERM": "dumb"}))


class EchoTests(SynchronousTestCase):
    def test_erase_echo(self) -> None:
        """Line mode on a terminal erases the terminal's echo of a typed line:
        the server's copy shows it once (issue 13)."""
        from chatsvc.client.stdio import LineInput

        from .client_helpers import Harness

        h = Harness()
        server = h.connect()
        lines = LineInput(erase_echo=True)
        lines.makeConnection(StringTransport())
        lines.attach(h.client)
        lines.dataReceived(b"hello\n")
        self.assertEqual(lines.transport.value(), LineInput.ERASE_ECHO)
        self.assertEqual(server.received(), [{"type": "say", "text": "hello"}])
        quiet = LineInput()
        quiet.makeConnection(StringTransport())
        quiet.attach(h.client)
        quiet.dataReceived(b"again\n")
        self.assertEqual(quiet.transport.value(), b"")
