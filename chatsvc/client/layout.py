# -*- test-case-name: tests.test_client_editor,tests.test_client_screen -*-
"""
What the full screen draws, without I/O: rows of coloured segments laid
out in terminal cells (wide characters take two, combining marks none),
the scrollback, the status line and the visible part of the input line.

A segment is C{(text, style)}, C{style} an SGR parameter string (C{"1"}
bold, C{"2"} dim, C{"33"} yellow, ...) or C{""}; L{paint} turns a row of
segments into the bytes a terminal draws (without colours under
C{NO_COLOR}). Every text here was sanitised already (L{display}); nothing
adds a control character but L{paint}'s own SGR sequences.
"""

from __future__ import annotations

import unicodedata
import zlib
from collections import deque
from datetime import datetime
from typing import Deque, List, Optional, Sequence, Tuple

from .display import sanitize
from .lines import STAMP_WIDTH, Clock, Line, prefix
from .view import Status

Segment = Tuple[str, str]
Row = List[Segment]

SCROLLBACK = 2000
"""Rows of chat kept for PgUp (each may wrap over several screen rows)."""

NAME_COLOURS = ("31", "32", "33", "34", "35", "36", "91", "92", "93", "94", "95", "96")
WARNING = "1;33"  # plaintext: bold yellow
STYLES = {
    "message": "", "own": "1", "action": "35", "private": "36", "presence": "2",
    "marker": "36", "date": "1", "error": "31", "info": "2", "pending": "2", "continuation": "",
}


def cell_width(ch: str) -> int:
    """Terminal cells of one character: 2 wide, 0 combining or zero-width, else 1."""
    if ch < "\u0300":
        return 1
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def cells(text: str) -> int:
    if text.isascii():
        return len(text)
    return sum(cell_width(ch) for ch in text)


def name_colour(name: str) -> str:
    """A stable colour for a name (a hash of it, as WeeChat and senpai do)."""
    return NAME_COLOURS[zlib.crc32(name.casefold().encode("utf-8")) % len(NAME_COLOURS)]


def paint(row: Sequence[Segment], colour: bool = True) -> bytes:
    """A row as bytes: SGR before each styled segment, reset after it."""
    out: List[str] = []
    for text, style in row:
        if colour and style:
            out.append(f"\x1b[{style}m{text}\x1b[0m")
        else:
            out.append(text)
    return "".join(out).encode("utf-8", "replace")


def line_segments(line: Line, when: Optional[datetime]) -> Row:
    """The segments of one row: time, room tag, name in its colour, text."""
    style = STYLES.get(line.kind, "")
    if line.mention:
        style = "1;7"
    head = prefix(line, when)
    row: Row = [(head, "2")] if head else []
    text = line.text
    nick = line.nick
    at = text.find(nick) if nick else -1
    if nick and 0 <= at <= 2 and line.kind in ("message", "own", "action", "private") and not line.mention:
        name_style = "1" if line.kind == "own" else name_colour(nick)
        mark = at
        if line.plaintext and at >= 1 and text[at - 1] == "~":
            mark = at - 1
        if mark:
            row.append((text[:mark], style))
        if mark < at:
            row.append(("~", WARNING))
        row.append((nick, name_style))
        row.append((text[at + len(nick):], style))
    else:
        row.append((text, style))
    return [seg for seg in row if seg[0]]


def wrap(row: Row, width: int, indent: int = STAMP_WIDTH) -> List[Row]:
    """A row of segments cut into screen rows of at most C{width} cells;
    rows after the first are indented by C{indent} spaces."""
    width = max(width, indent + 2)
    rows: List[Row] = []
    current: Row = []
    used = 0
    for text, style in row:
        piece: List[str] = []
        for ch in text:
            w = cell_width(ch)
            if used + w > width:
                if piece:
                    current.append(("".join(piece), style))
                rows.append(current)
                current, piece, used = [(" " * indent, "")], [], indent
            piece.append(ch)
            used += w
        if piece:
            current.append(("".join(piece), style))
    rows.append(current)
    return rows


def fit(text: str, width: int) -> str:
    """C{text} cut to C{width} cells (a wide character never half shown)."""
    out, used = [], 0
    for ch in text:
        w = cell_width(ch)
        if used + w > width:
            break
        out.append(ch)
        used += w
    return "".join(out)


class Scrollback:
    """The chat's rows with their local times, and date lines between days."""

    def __init__(self, clock: Optional[Clock] = None, size: int = SCROLLBACK) -> None:
        self.clock = clock or Clock()
        self.entries: Deque[Tuple[Line, Optional[datetime]]] = deque(maxlen=size)

    def add(self, line: Line) -> int:
        """Keep C{line}; return how many entries were added (a date line too)."""
        when = self.clock.local(line)
        day = self.clock.new_day(when)
        added = 0
        if day is not None:
            self.entries.append((Line(day, "date"), None))
            added += 1
        self.entries.append((line, when))
        return added + 1

    def rows(self, width: int, height: int, offset: int = 0,
             extra: Sequence[Line] = ()) -> List[Row]:
        """
        The C{height} screen rows that end C{offset} rows above the bottom
        (C{extra}, the pending lines, come last), wrapped at C{width}; only
        as many entries as needed are laid out.
        """
        need = height + offset
        out: List[Row] = []
        items = list(self.entries) + [(line, self.clock.local(line)) for line in extra]
        for line, when in reversed(items):
            out[:0] = wrap(line_segments(line, when), width)
            if len(out) >= need:
                break
        end = len(out) - offset
        return out[max(0, end - height):max(0, end)]


def status_row(status: Status, now: float, offset: int = 0) -> Row:
    """The status line (see L{_status_row}), every text sanitised."""
    return [(sanitize(text), style) for text, style in _status_row(status, now, offset)]


def _status_row(status: Status, now: float, offset: int = 0) -> Row:
    """The status line: rooms (unread), name, encrypted or not, members, state, server."""
    bar = "7"
    row: Row = [(" ", bar)]
    if offset:
        row.append((f"[up {offset} rows: PgDn] ", "1;7"))
    for i, (room, unread) in enumerate(status.rooms):
        active = status.active is not None and room.casefold() == status.active.casefold()
        label = room + (f" ({unread})" if unread and not active else "")
        row.append((label, "1;7" if active else bar))
        if i < len(status.rooms) - 1:
            row.append((" | ", bar))
    if status.rooms:
        row.append((" | ", bar))
    row.append((status.name or "?", bar))
    row.append((" | ", bar))
    row.append(("encrypted", bar) if status.encrypted else ("PLAINTEXT", "1;41;97"))
    row.append((" | ", bar))
    online = f"{status.members} in room"
    row.append((online, bar))
    if status.plaintext:
        row.append((", ", bar))
        row.append((f"{status.plaintext} plaintext", "1;43;30"))
    row.append((" | ", bar))
    row.append(connection_state(status, now))
    row.append((f" | {status.server}", bar))
    return row


def connection_state(status: Status, now: float) -> Segment:
    queued = f", {status.queued} line{'s' if status.queued != 1 else ''} queued" if status.queued else ""
    if status.state == "connected":
        return ("connected" + queued, "7")
    if status.state == "reconnecting":
        if status.retry_at is not None and status.retry_at > now:
            return (f"reconnecting in {int(status.retry_at - now + 0.999)} s{queued}", "1;41;97")
        return (f"reconnecting{queued}", "1;41;97")
    if status.state == "offline":
        return (f"offline{queued}", "1;41;97")
    return ("connecting" + queued, "7")


def input_row(chars: Sequence[str], cursor: int, width: int, prompt: str = "> ") -> Tuple[str, int]:
    """
    The visible part of the input line and the cursor's column: the line
    scrolls sideways so that the cursor stays on screen.
    """
    room = max(width - cells(prompt) - 1, 1)
    start = 0
    before = cells("".join(chars[:cursor]))
    while before > room and start < cursor:
        before -= cell_width(chars[start])
        start += 1
    shown = fit("".join(chars[start:]), room + 1 if start == 0 else room)
    return prompt + shown, cells(prompt) + before
