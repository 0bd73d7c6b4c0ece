"""
Tests for L{chatsvc.client.screen}: the full-screen client tested as a
screen. Its bytes go through C{pyte} (a VT100 emulator) and the tests
assert what the terminal shows, row by row (issue 13): typing survives
incoming messages; recall; Tab; scrollback; resize; the status line
through a lost connection; history and plaintext markers; pending lines.
"""

from __future__ import annotations

from twisted.internet.error import ConnectionLost
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from chatsvc.client.view import IView

from .client_helpers import public, welcome
from .screen_helpers import ScreenHarness

TS = "2026-12-06T14:03:00.000Z"


def said(seq: int, text: str, sender: str = "bob", **extra: object) -> dict:
    message = dict(public(seq, text, sender), ts=TS)
    message.update(extra)
    return message


class LayoutTests(SynchronousTestCase):
    def test_view(self) -> None:
        s = ScreenHarness()
        self.assertTrue(verifyObject(IView, s.screen))

    def test_first_screen(self) -> None:
        s = ScreenHarness(width=80)
        s.connect()
        rows = s.rows()
        self.assertEqual(s.chat(), ["-- Sunday 6 December 2026 --", "14:02 * connected as alice"])
        self.assertEqual(rows[-3], "14:02 * connected as alice")  # the chat ends above the status
        self.assertEqual(rows[-1], ">")
        self.assertIn("#lobby | alice | PLAINTEXT | 1 in room | connected | server:1", rows[-2])

    def test_message_while_typing(self) -> None:
        """A message arriving while half a line is typed leaves it intact,
        and the cursor where it was."""
        s = ScreenHarness()
        server = s.connect()
        s.type("I am typing a long sent")
        before = s.cursor()
        server.send(said(1, "interrupting you alice"))
        s.settle()
        rows = s.rows()
        self.assertEqual(rows[-1], "> I am typing a long sent")
        self.assertEqual(s.cursor(), before)
        self.assertIn("14:03 bob: interrupting you alice", rows)
        self.assertNotIn("sent", "".join(rows[:-1]))

    def test_own_line_once(self) -> None:
        """A typed line is not echoed by the client: it shows once, the server's copy."""
        s = ScreenHarness()
        server = s.connect()
        s.type("hello there\r")
        self.assertEqual(server.received(), [{"type": "say", "text": "hello there"}])
        self.assertEqual(s.input(), ">")
        s.settle()
        self.assertEqual([r for r in s.chat() if "hello there" in r], [])
        server.send(said(1, "hello there", "alice"))
        s.settle()
        self.assertEqual([r for r in s.chat() if "hello there" in r], ["14:03 alice: hello there"])

    def test_unicode_typed(self) -> None:
        """UTF-8 typed a byte at a time is sent intact; wide characters take two cells."""
        s = ScreenHarness()
        server = s.connect()
        s.type("héllo 世界 🎉")
        self.assertEqual(s.input(), "> héllo 世界 🎉")
        self.assertEqual(s.cursor()[0], 2 + 6 + 5 + 2)
        s.key(b"\x7f")  # Backspace removes the whole emoji
        s.type("!\r")
        self.assertEqual(server.received(), [{"type": "say", "text": "héllo 世界 !"}])

    def test_editing_keys(self) -> None:
        s = ScreenHarness()
        s.connect()
        s.type("one two three")
        s.key(b"\x17")  # Ctrl-W
        self.assertEqual(s.input(), "> one two")
        s.key(b"\x01")  # Ctrl-A
        s.type(">")
        s.key(b"\x1b[C\x1b[C")  # Right, Right
        s.key(b"\x0b")  # Ctrl-K
        self.assertEqual(s.input(), "> >on")
        s.key(b"\x05\x15")  # Ctrl-E, Ctrl-U
        self.assertEqual(s.input(), ">")

    def test_recall(self) -> None:
        """Up and Down bring back the lines sent; below them, the draft."""
        s = ScreenHarness()
        server = s.connect()
        s.type("first\rsecond\rdraft")
        s.key(b"\x1b[A")
        self.assertEqual(s.input(), "> second")
        s.key(b"\x1b[A")
        self.assertEqual(s.input(), "> first")
        s.key(b"\x1b[B\x1b[B")
        self.assertEqual(s.input(), "> draft")
        s.key(b"\x1b[A\r")
        self.assertEqual([m["text"] for m in server.received()], ["first", "second", "second"])

    def test_recall_across_reconnect(self) -> None:
        s = ScreenHarness()
        server = s.connect()
        s.type("before\r")
        server.close(ConnectionLost())
        s.h.clock.advance(1)
        server2 = s.h.fake.accept()
        server2.send(welcome(resume="tok2"))
        s.key(b"\x1b[A")
        self.assertEqual(s.input(), "> before")

    def test_tab_completion(self) -> None:
        s = ScreenHarness()
        s.connect(users=["alice", "bob", "bobby", "carol"])
        s.type("ca\t")
        self.assertEqual(s.input(), "> carol:")
        s.key(b"\x15")
        s.type("hi bo\t")
        self.assertEqual(s.input(), "> hi bob")  # bob and bobby: their common start
        s.key(b"\x15")
        s.type("/jo\t")
        self.assertEqual(s.input(), "> /join")

    def test_scrollback(self) -> None:
        """PgUp/PgDn scroll through the chat; new messages do not move the view."""
        s = ScreenHarness(height=12)
        server = s.connect()
        for i in range(1, 61):
            server.send(said(i, f"message {i}"))
        s.settle()
        self.assertEqual(s.chat()[-1], "14:03 bob: message 60")
        s.key(b"\x1b[5~")  # PgUp
        chat = s.chat()
        self.assertEqual(chat[-1], "14:03 bob: message 51")
        self.assertIn("[up 9 rows: PgDn]", s.status())
        server.send(said(61, "message 61"))
        s.settle()
        self.assertEqual(s.chat()[-1], "14:03 bob: message 51")
        for _ in range(20):
            s.key(b"\x1b[5~")
        self.assertEqual(s.chat()[:2], ["-- Sunday 6 December 2026 --", "14:02 * connected as alice"])
        for _ in range(20):
            s.key(b"\x1b[6~")  # PgDn
        self.assertEqual(s.chat()[-1], "14:03 bob: message 61")
        self.assertEqual(len(s.screen.scrollback.entries), 2 + 61)

    def test_scrollback_keeps_1000_lines(self) -> None:
        s = ScreenHarness()
        server = s.connect()
        for i in range(1, 1201):
            server.send(said(i, f"m{i}"))
        self.assertGreaterEqual(len(s.screen.scrollback.entries), 1000)
        self.assertLessEqual(len(s.screen.scrollback.entries), 2000)

    def test_resize(self) -> None:
        """A resize redraws everything, messages included, at the new size."""
        s = ScreenHarness(width=60, height=12)
        server = s.connect()
        server.send(said(1, "a message long enough to wrap when the terminal is narrow"))
        s.type("typed")
        s.settle()
        s.resize(30, 8)
        rows = s.rows()
        self.assertEqual(len(rows), 8)
        self.assertEqual(rows[-1], "> typed")
        self.assertEqual(rows[-5:-2], ["14:03 bob: a message long enou",
                                       "      gh to wrap when the term",
                                       "      inal is narrow"])

    def test_long_input_scrolls_sideways(self) -> None:
        s = ScreenHarness(width=20)
        s.connect()
        s.type("abcdefghijklmnopqrstuvwxyz")
        row = s.input()
        self.assertTrue(row.startswith("> ") and row.endswith("xyz"), row)
        self.assertLessEqual(len(row), 20)


class StatusTests(SynchronousTestCase):
    def test_through_loss_and_return(self) -> None:
        """The status line says reconnecting (counting down), then connected;
        lines typed meanwhile show as pending and are confirmed once."""
        s = ScreenHarness(width=100, retry_policy=lambda attempt: 5.0)
        server = s.connect()
        server.close(ConnectionLost())
        self.assertIn("reconnecting in 5 s", s.status())
        s.h.clock.advance(2)
        self.assertIn("reconnecting in 3 s", s.status())
        s.type("said offline\r")
        s.settle()
        self.assertIn("reconnecting in 3 s, 1 line queued", s.status())
        self.assertEqual(s.chat()[-1], "14:02 (not sent yet) alice: said offline")
        s.h.clock.advance(3)
        server2 = s.h.fake.accept()
        server2.received()
        server2.send(welcome(resume="tok2"))
        server2.send({"type": "history", "messages": [], "complete": True})
        self.assertEqual(server2.received(), [{"type": "say", "text": "said offline"}])
        self.assertIn("| connected", s.status())
        server2.send(said(1, "said offline", "alice"))
        s.settle()
        chat = s.chat()
        self.assertEqual([r for r in chat if "said offline" in r], ["14:03 alice: said offline"])

    def test_encrypted_and_plaintext_members(self) -> None:
        s = ScreenHarness(width=100)
        server = s.connect(users=["alice", "dave"], plaintext=["dave"])
        self.assertIn("| 2 in room, 1 plaintext |", s.status())
        server.send({"type": "joined", "name": "erin", "ts": TS, "plaintext": True})
        server.send(said(1, "hi", "erin"))
        s.settle()
        chat = s.chat()
        self.assertIn("14:03 * erin joined (plaintext: anyone on the network can read erin)", chat)
        self.assertIn("14:03 ~erin: hi", chat)
        self.assertIn("3 in room, 2 plaintext", s.status())

    def test_no_colour(self) -> None:
        s = ScreenHarness(colour=False)
        server = s.connect()
        server.send(said(1, "hi alice"))
        s.settle()
        s.rows()
        self.assertNotIn(b"m\x1b[0m", s.raw)
        self.assertNotRegex(s.raw.decode(), r"\x1b\[[0-9;]*3[0-9]m")

    def test_colours(self) -> None:
        """Names in a stable colour; a mention highlighted; PLAINTEXT in a warning colour."""
        s = ScreenHarness()
        server = s.connect()
        server.send(said(1, "hi alice"))
        server.send(said(2, "no mention"))
        s.settle()
        s.rows()
        cells = s.vt.buffer
        mention_row = next(y for y in range(s.height) if "hi alice" in s.vt.display[y])
        self.assertTrue(cells[mention_row][8].reverse)
        plain_row = next(y for y in range(s.height) if "no mention" in s.vt.display[y])
        self.assertNotEqual(cells[plain_row][6].fg, "default")  # 'bob' in its colour
        status = s.height - 2
        x = s.vt.display[status].index("PLAINTEXT")
        self.assertEqual(cells[status][x].bg, "red")


class HistoryMarkerTests(SynchronousTestCase):
    def test_catch_up_after_reconnect(self) -> None:
        s = ScreenHarness(width=80)
        server = s.connect()
        server.send(said(5, "before"))
        server.close(ConnectionLost())
        s.h.clock.advance(1)
        server2 = s.h.fake.accept()
        server2.send(welcome(resume="tok2"))
        server2.send({"type": "history", "complete": True,
                      "messages": [said(5, "before"), said(6, "while away", "carol")]})
        s.settle()
        chat = s.chat()
        self.assertEqual(chat[-3:], ["14:02 -- history: 1 message --",
                                     "14:03 carol: while away",
                                     "14:02 -- end of history (complete) --"])
        self.assertEqual(len([r for r in chat if "before" in r]), 1)

    def test_rooms_switching(self) -> None:
        """Other rooms' messages are tagged and counted unread; Alt-2 and Ctrl-P switch."""
        s = ScreenHarness(width=100)
        s.h.client.start()
        server = s.h.fake.accept()
        server.received()
        server.send({"type": "welcome", "name": "alice", "users": ["alice"], "plaintext": [],
                     "resume": "t", "epoch": "e", "rooms": ["#lobby", "#dev"]})
        for room in ("#lobby", "#dev"):
            server.send({"type": "room", "room": room, "topic": "", "count": 1, "users": ["alice"],
                         "plaintext": [], "presence": True})
            server.send({"type": "history", "room": room, "messages": [], "complete": True})
        server.send(dict(said(1, "pushed the fix"), room="#dev"))
        s.settle()
        self.assertIn("14:03 [#dev] bob: pushed the fix", s.chat())
        self.assertIn("#lobby | #dev (1) | alice", s.status())
        s.key(b"\x1b2")  # Alt-2
        self.assertIn("#lobby | #dev | alice", s.status())
        s.type("to dev\r")
        self.assertEqual(server.received(), [{"type": "say", "text": "to dev", "room": "#dev"}])
        s.key(b"\x10")  # Ctrl-P
        s.settle()
        self.assertEqual(s.h.client.session.rooms.active_name, "#lobby")


class OutputBoundTests(SynchronousTestCase):
    def test_paused_terminal_gets_nothing(self) -> None:
        """While stdout's consumer has paused the screen (the terminal stopped
        reading), nothing is drawn, however much arrives; on resume, one repaint."""
        s = ScreenHarness()
        server = s.connect()
        s.rows()
        s.screen.pauseProducing()
        for i in range(1, 2001):
            server.send(said(i, f"flood {i}"))
            s.settle()
        s.type("typed")
        self.assertEqual(s.transport.value(), b"")
        s.screen.resumeProducing()
        self.assertLess(len(s.transport.value()), 8000)
        self.assertEqual(s.chat()[-1], "14:03 bob: flood 2000")
        self.assertEqual(s.input(), "> typed")


class PromptTests(SynchronousTestCase):
    def test_name_asked_on_the_input_line(self) -> None:
        s = ScreenHarness(name=None)
        s.h.client.start()
        self.assertEqual(s.input(), "Enter your username:")
        s.type("a b\r")
        s.settle()
        self.assertEqual(s.input(), "Enter your username:")
        self.assertTrue(any("invalid name" in row for row in s.chat()))
        s.type("Zoë\r")
        server = s.h.fake.accept()
        self.assertEqual(server.received(), [{"type": "hello", "name": "Zoë"}])
        self.assertEqual(s.input(), ">")

    def test_quit_keys(self) -> None:
        """Ctrl-D on an empty line quits; with text typed it does nothing."""
        s = ScreenHarness()
        server = s.connect()
        s.type("text")
        s.key(b"\x04")
        self.assertEqual(server.received(), [])
        s.key(b"\x15\x04")
        self.assertEqual(server.received(), [{"type": "quit"}])
