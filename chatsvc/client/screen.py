# -*- test-case-name: tests.test_client_screen -*-
"""
The full-screen view, on Twisted's own terminal layer: L{ChatScreen}, a
C{twisted.conch.recvline.HistoricRecvLine} run by insults'
C{ServerProtocol} (over C{StandardIO} on a raw tty: see
L{chatsvc.client.terminal}), which is also the client's L{IView}.

The screen, C{h} rows high::

    rows 0 .. h-3   the chat (scrollback: PgUp/PgDn), pending lines last
    row h-2         the status line
    row h-1         the input line, which incoming text never touches

Messages are drawn in batches (at most every L{PAINT_DELAY} seconds),
keystrokes at once. C{RecvLine}'s key table and history fields are used;
its drawing is not, since it counts one byte as one cell: the line is
held by a L{LineEditor} (any Unicode, typed as UTF-8 a byte at a time,
wide characters as two cells) and redrawn whole, scrolling sideways.
"""

from __future__ import annotations

from typing import Any, List, Optional

from twisted.conch.recvline import HistoricRecvLine
from twisted.internet.interfaces import IPushProducer, IReactorTime
from zope.interface import implementer

from .commands import COMMANDS
from .editor import LineEditor, Utf8Keys
from .layout import Scrollback, cells, fit, input_row, line_segments, paint, status_row, wrap
from .lines import Clock, Line
from .view import IView, Pending, Status

PAINT_DELAY = 0.03
"""Seconds between two paints of the chat area (keystrokes are drawn at once)."""

PROMPT = "> "



@implementer(IView, IPushProducer)
class ChatScreen(HistoricRecvLine):
    """
    The full screen (see the module's docstring).

    @param reactor: an C{IReactorTime}, for batching paints and the status
        line's countdown.
    @param colour: draw colours (C{False} under C{NO_COLOR}).
    @param clock: the L{Clock} for local times (tests pass a time zone).
    """

    client: Any = None

    def __init__(self, reactor: IReactorTime, colour: bool = True, clock: Optional[Clock] = None) -> None:
        self.reactor = reactor
        self.colour = colour
        self.editor = LineEditor()
        self.keys = Utf8Keys()
        self.scrollback = Scrollback(clock)
        self.pending = Pending()
        self.status = Status()
        self.offset = 0
        self.prompt_text = PROMPT
        self.paused = False
        self._paint_call: Any = None
        self._tick_call: Any = None
        editor = self.editor
        self._control_keys = {
            b"\x01": editor.home, b"\x05": editor.end, b"\x15": editor.kill_to_start,
            b"\x0b": editor.kill_to_end, b"\x17": editor.kill_word, b"\x08": editor.backspace,
            b"\x02": editor.left, b"\x06": editor.right,
        }

    def attach(self, client: Any) -> None:
        """The L{ChatClient} that typed lines go to."""
        self.client = client

    # -- insults -----------------------------------------------------------------

    def connectionMade(self) -> None:
        HistoricRecvLine.connectionMade(self)
        t = self.terminal
        self.keyHandlers.update({t.PGUP: self.handle_PGUP, t.PGDN: self.handle_PGDN})

    def initializeScreen(self) -> None:
        # The alternate screen (as irssi and WeeChat use): what the terminal
        # showed before comes back when the client ends.
        self.terminal.write(b"\x1b[?1049h\x1b[H\x1b[2J")
        self.repaint()

    def terminalSize(self, width: int, height: int) -> None:
        """A resize: everything is drawn again, the chat included."""
        self.width, self.height = max(width, 10), max(height, 4)
        self.terminal.write(b"\x1b[2J")
        self.repaint()

    def keystrokeReceived(self, keyID: Any, modifier: Any) -> None:
        if modifier is self.terminal.ALT and isinstance(keyID, bytes) and keyID in b"123456789":
            if self.client is not None:
                self.client.switch_to(int(keyID) - 1)
            return
        handler = self.keyHandlers.get(keyID)
        if handler is not None:
            handler()
        elif keyID in self._control_keys:
            self._control_keys[keyID]()
            self.draw_input()
        elif keyID in (b"\x0e", b"\x10"):  # Ctrl-N, Ctrl-P
            if self.client is not None:
                self.client.switch_room(1 if keyID == b"\x0e" else -1)
        elif keyID == b"\x0c":  # Ctrl-L
            self.terminalSize(self.width, self.height)
        elif keyID in (b"\x03", b"\x04"):  # Ctrl-C; Ctrl-D on an empty line
            if keyID == b"\x03" or not self.editor.chars:
                self._send("/quit")
        elif isinstance(keyID, bytes) and (keyID >= b" " or keyID == b"\t"):
            text = self.keys.feed(keyID)
            if text:
                self.editor.insert(text)
                self.draw_input()

    def characterReceived(self, ch: bytes, moreCharactersComing: bool) -> None:
        self.keystrokeReceived(ch, None)

    def unhandledControlSequence(self, seq: bytes) -> None:
        pass

    # -- RecvLine's keys, on the editor ----------------------------------------

    def handle_LEFT(self) -> None:
        self.editor.left()
        self.draw_input()

    def handle_RIGHT(self) -> None:
        self.editor.right()
        self.draw_input()

    def handle_HOME(self) -> None:
        self.editor.home()
        self.draw_input()

    def handle_END(self) -> None:
        self.editor.end()
        self.draw_input()

    def handle_BACKSPACE(self) -> None:
        self.editor.backspace()
        self.draw_input()

    def handle_DELETE(self) -> None:
        self.editor.delete()
        self.draw_input()

    def handle_INSERT(self) -> None:
        pass  # always insert

    def handle_UP(self) -> None:
        self.editor.recall(-1)
        self.draw_input()

    def handle_DOWN(self) -> None:
        self.editor.recall(1)
        self.draw_input()

    def handle_TAB(self) -> None:
        self.editor.complete(self.completions())
        self.draw_input()

    def handle_PGUP(self) -> None:
        self.offset += max(self.chat_height - 1, 1)
        self.offset = min(self.offset, max(self._total_rows() - self.chat_height, 0))
        self.repaint()

    def handle_PGDN(self) -> None:
        self.offset = max(0, self.offset - max(self.chat_height - 1, 1))
        self.repaint()

    def handle_RETURN(self) -> None:
        text = self.editor.submit()
        self.historyLines = self.editor.history  # RecvLine's own record of them
        self.historyPosition = len(self.historyLines)
        self.prompt_text = PROMPT
        if self.offset:
            self.offset = 0
            self.schedule_paint()
        self.draw_input()
        self._send(text)

    def _send(self, text: str) -> None:
        if self.client is not None:
            self.client.line_received(text)

    def completions(self) -> List[str]:
        names = list(COMMANDS)
        if self.client is not None:
            rooms = self.client.session.rooms
            names += rooms.names()
            for state in rooms.states():
                names += state.members.values()
        return names

    # -- IView -------------------------------------------------------------------------

    def show(self, lines: Any) -> None:
        group: Optional[List[Line]] = None
        for line in lines:
            if line.kind == "pending":
                group = [line]
                self.pending.add(group)  # shown last, until the server's copy arrives
                continue
            if line.kind == "continuation" and group is not None:
                group.append(line)
                continue
            group = None
            added = self.scrollback.add(line)
            if self.offset:
                self.offset += added  # stay on the rows being read
        if lines:
            self.schedule_paint()

    def prompt(self, text: str) -> None:
        self.prompt_text = text
        self.draw_input()

    def confirm(self, count: int) -> None:
        self.pending.confirm(count)
        self.schedule_paint()

    def update(self, status: Status) -> None:
        self.status = status
        self.draw_status()
        if status.state == "reconnecting" and (self._tick_call is None or not self._tick_call.active()):
            self._tick_call = self.reactor.callLater(1, self._tick)

    def _tick(self) -> None:
        self._tick_call = None
        if self.status.state == "reconnecting":
            self.draw_status()
            self._tick_call = self.reactor.callLater(1, self._tick)

    # -- drawing ------------------------------------------------------------------------

    @property
    def chat_height(self) -> int:
        return max(self.height - 2, 1)

    def _total_rows(self) -> int:
        return sum(len(wrap(line_segments(line, when), self.width))
                   for line, when in self.scrollback.entries)

    def schedule_paint(self) -> None:
        if self._paint_call is None or not self._paint_call.active():
            self._paint_call = self.reactor.callLater(PAINT_DELAY, self.repaint)

    def repaint(self) -> None:
        """Draw the whole screen: chat, status, input."""
        if self._paint_call is not None and self._paint_call.active():
            self._paint_call.cancel()
        self._paint_call = None
        if self.paused or self.terminal is None:
            return
        rows = self.scrollback.rows(self.width, self.chat_height, self.offset, self.pending.rows())
        out = [b"\x1b[r"]  # no scroll region: each row is placed
        blank = self.chat_height - len(rows)
        for r in range(self.chat_height):
            row = rows[r - blank] if r >= blank else []
            out.append(b"\x1b[%d;1H\x1b[2K" % (r + 1) + paint(row, self.colour))
        self.terminal.write(b"".join(out))
        self.draw_status()
        self.draw_input()

    def draw_status(self) -> None:
        if self.paused or self.terminal is None:
            return
        row = status_row(self.status, self.reactor.seconds(), self.offset)
        fitted, used = [], 0
        for text, style in row:
            piece = fit(text, self.width - used)
            if not piece:
                break
            fitted.append((piece, style))
            used += cells(piece)
        fitted.append((" " * max(self.width - used, 0), "7"))
        self.terminal.write(b"\x1b7\x1b[%d;1H\x1b[2K" % (self.height - 1)
                            + paint(fitted, self.colour) + b"\x1b8")

    def draw_input(self) -> None:
        if self.paused or self.terminal is None:
            return
        text, column = input_row(self.editor.chars, self.editor.cursor, self.width, self.prompt_text)
        self.terminal.write(b"\x1b[%d;1H\x1b[2K" % self.height + text.encode("utf-8", "replace")
                            + b"\x1b[%d;%dH" % (self.height, column + 1))

    # -- IPushProducer: stdout's consumer pauses us when the terminal stops reading ------

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        if self.paused:
            self.paused = False
            self.repaint()

    def stopProducing(self) -> None:
        self.paused = True
