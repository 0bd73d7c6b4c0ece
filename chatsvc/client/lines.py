# -*- test-case-name: tests.test_client_lines -*-
"""
What the client shows, as data, without I/O: a L{Line} is one row laid
out by the client (its text already sanitised), with what a screen needs
to colour it (its kind, the sender's name, a mention) and where it belongs
(the server's C{ts}, the room).

L{LineFormatter} turns them into plain text for line mode (pipes, scripts,
C{--line-mode})::

    fmt = LineFormatter(timestamps=True)
    fmt.render(Line("bob: hi", kind="message", ts="2026-12-06T14:02:00.000Z"))
    # ['-- Sunday 6 December 2026 --', '14:02 bob: hi']  (in UTC)

The full-screen view (L{chatsvc.client.screen}) uses the same rows, with
colours.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone, tzinfo
from typing import Callable, List, Optional, Sequence

KINDS = frozenset(
    {
        "message",  # someone's line in a room
        "own",  # our own line, the server's copy
        "action",  # * alice waves
        "private",  # [private] ...
        "presence",  # joined, parted, left, renamed, topic
        "marker",  # -- history ... --
        "error",  # ! code: text
        "info",  # * the client's own notes
        "pending",  # a line typed while disconnected, not sent yet
        "continuation",  # the second and later rows of a multi-line text
        "date",  # -- Sunday 6 December 2026 --, when the day changes
    }
)


@dataclass(frozen=True)
class Line:
    """
    One row the client shows.

    @ivar text: the row, sanitised (see L{chatsvc.client.display}).
    @ivar kind: one of L{KINDS}.
    @ivar ts: the server's C{ts} (ISO 8601 UTC), if the row comes from a
        server message that has one.
    @ivar room: the room to tag the row with (a room other than the active
        one), or C{None}.
    @ivar nick: the name the row starts with (after C{* } for actions), to
        colour it; C{None} for none.
    @ivar mention: the row mentions the user's name.
    @ivar plaintext: the sender is connected without encryption.
    """

    text: str
    kind: str = "info"
    ts: Optional[str] = None
    room: Optional[str] = None
    nick: Optional[str] = None
    mention: bool = False
    plaintext: bool = False


def rows(texts: Sequence[str], kind: str = "info", **attributes: object) -> List[Line]:
    """
    L{Line}s for the rows of one laid-out text (see
    L{chatsvc.client.display.text_lines}): the first of C{kind}, the
    others continuation rows.
    """
    lines: List[Line] = []
    for i, text in enumerate(texts):
        if i == 0:
            lines.append(Line(text, kind, **attributes))  # type: ignore[arg-type]
        else:
            first = lines[0]
            lines.append(replace(first, text=text, kind="continuation", nick=None))
    return lines


def parse_ts(ts: Optional[str]) -> Optional[datetime]:
    """The server's C{ts} as an aware datetime, or C{None} if it is not one."""
    if not isinstance(ts, str) or not ts.endswith("Z") or len(ts) > 40:
        return None
    try:
        when = datetime.fromisoformat(ts[:-1])
    except ValueError:
        return None
    if when.tzinfo is not None:
        return None
    return when.replace(tzinfo=timezone.utc)


def date_line(day: datetime) -> str:
    """C{-- Sunday 6 December 2026 --} (English names, whatever the locale)."""
    weekday = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
               "Sunday")[day.weekday()]
    month = ("January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December")[day.month - 1]
    return f"-- {weekday} {day.day} {month} {day.year} --"


class Clock:
    """
    Local times for rows: the server's C{ts} in the local time zone (or
    C{tz}), or now for rows without one; and the date line when the day
    changes.

    @param tz: the time zone to show (C{None}: the machine's local time).
    @param now: returns the current time in seconds since the epoch.
    """

    def __init__(self, tz: Optional[tzinfo] = None, now: Optional[Callable[[], float]] = None) -> None:
        import time

        self._tz = tz
        self._now = now or time.time
        self._day: Optional[tuple] = None

    def local(self, line: Line) -> Optional[datetime]:
        """The local time of C{line}; C{None} for a continuation row."""
        if line.kind == "continuation":
            return None
        when = parse_ts(line.ts)
        if when is None:
            when = datetime.fromtimestamp(self._now(), timezone.utc)
        return when.astimezone(self._tz) if self._tz is not None else when.astimezone()

    def new_day(self, when: Optional[datetime]) -> Optional[str]:
        """The date line to show before a row at C{when}, if its day is new."""
        if when is None:
            return None
        day = (when.year, when.month, when.day)
        if day == self._day:
            return None
        self._day = day
        return date_line(when)


STAMP_WIDTH = 6
"""C{HH:MM } before every row (blank for continuation rows)."""


def prefix(line: Line, when: Optional[datetime], timestamps: bool = True) -> str:
    """What comes before C{line.text}: the time, and the room tag."""
    head = ""
    if line.kind == "date":
        return head
    if timestamps:
        head = when.strftime("%H:%M ") if when is not None else " " * STAMP_WIDTH
    if line.room is not None and line.kind != "continuation":
        head += f"[{line.room}] "
    if line.kind == "pending":
        head += "(not sent yet) "
    return head


class LineFormatter:
    """
    Rows as plain text for line mode: C{HH:MM [#room] text}, a date line
    when the day changes; with C{timestamps=False}, the text alone (and
    the room tag).
    """

    def __init__(self, timestamps: bool = True, clock: Optional[Clock] = None) -> None:
        self.timestamps = timestamps
        self.clock = clock or Clock()

    def render(self, line: Line) -> List[str]:
        if not self.timestamps:
            return [prefix(line, None, timestamps=False) + line.text]
        when = self.clock.local(line)
        out: List[str] = []
        day = self.clock.new_day(when)
        if day is not None:
            out.append(day)
        out.append(prefix(line, when) + line.text)
        return out
