# -*- test-case-name: tests.test_client_lines -*-
"""
Where the client's rows go: L{IView}, implemented by L{LineView} (plain
lines on an output with C{write(text)}: stdout in line mode, a test's
buffer) and by the full-screen view (L{chatsvc.client.screen}).

L{Status} is what a status line shows; L{BoundedOutput} keeps what is
written to a stdout that stopped reading within a limit (issue 12,
finding 6).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, List, Optional, Sequence, Tuple

from twisted.internet.interfaces import IPushProducer
from zope.interface import Interface, implementer

from .lines import Line, LineFormatter


@dataclass(frozen=True)
class Status:
    """
    What the status line shows.

    @ivar rooms: (room, unread count) for each room, in the order joined.
    @ivar state: C{connecting}, C{connected}, C{reconnecting} or C{offline}.
    @ivar retry_at: when the next attempt is due (the reactor's seconds),
        while C{reconnecting}.
    @ivar queued: lines typed and not sent yet.
    """

    server: str = ""
    name: Optional[str] = None
    encrypted: bool = False
    rooms: Tuple[Tuple[str, int], ...] = ()
    active: Optional[str] = None
    members: int = 0
    plaintext: int = 0
    state: str = "connecting"
    retry_at: Optional[float] = None
    queued: int = 0


def status_of(session: Any, state: str, encrypted: bool, server: str,
              retry_at: Optional[float], queued: int) -> Status:
    """The L{Status} of a client whose L{ClientSession} is C{session}."""
    rooms = session.rooms
    active = rooms.active_state
    return Status(
        server=server,
        name=session.name,
        encrypted=encrypted,
        rooms=tuple((s.name, s.unread) for s in rooms.states()),
        active=active.name if active is not None else None,
        members=active.count if active is not None else 0,
        plaintext=rooms.plaintext_in(active) if active is not None else 0,
        state=state,
        retry_at=retry_at if state == "reconnecting" else None,
        queued=queued,
    )


class IView(Interface):
    """Shows the client's rows and state to its user."""

    def show(lines: Sequence[Line]) -> None:
        """Show these rows, after those shown before."""

    def prompt(text: str) -> None:
        """Ask the user something (the name): C{text} without a line end."""

    def confirm(count: int) -> None:
        """The server's copy of C{count} pending lines arrived."""

    def update(status: Status) -> None:
        """The status changed."""


@implementer(IView)
class LineView:
    """
    Rows as plain lines on C{output} (anything with C{write(text)}).

    @param timestamps: put C{HH:MM} before each row, a date line when the
        day changes.
    """

    def __init__(self, output: Any, timestamps: bool = True,
                 formatter: Optional[LineFormatter] = None) -> None:
        self.output = output
        self.formatter = formatter or LineFormatter(timestamps=timestamps)
        self.status = Status()

    def show(self, lines: Sequence[Line]) -> None:
        text: List[str] = []
        for line in lines:
            text.extend(self.formatter.render(line))
        if text:
            self.output.write("\n".join(text) + "\n")

    def prompt(self, text: str) -> None:
        self.output.write(text)

    def confirm(self, count: int) -> None:
        pass  # the server's copy is shown as it arrives

    def update(self, status: Status) -> None:
        self.status = status


@implementer(IPushProducer)
class BoundedOutput:
    """
    C{write(text)} to a transport (stdout), UTF-8 encoded, that holds at
    most C{limit} bytes while the transport's consumer has paused us (the
    terminal or the pipe stopped reading): past that, whole writes are
    dropped and counted, and one line says how many when it reads again.

    Twisted's transports buffer without end, so without this a reader
    that stops would let a busy chat grow the client's memory forever.
    """

    def __init__(self, transport: Any, limit: int = 1 << 20) -> None:
        self.transport = transport
        self.limit = limit
        self.paused = False
        self.dropped = 0
        self._held: Deque[bytes] = deque()
        self._held_bytes = 0
        register = getattr(transport, "registerProducer", None)
        if register is not None:
            register(self, True)

    @property
    def held(self) -> int:
        return self._held_bytes

    def write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        if not self.paused:
            self.transport.write(data)
            return
        if self._held_bytes + len(data) > self.limit:
            self.dropped += 1
            return
        self._held.append(data)
        self._held_bytes += len(data)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        while self._held and not self.paused:
            data = self._held.popleft()
            self._held_bytes -= len(data)
            self.transport.write(data)
        if self.dropped and not self.paused:
            dropped, self.dropped = self.dropped, 0
            self.transport.write(
                f"! {dropped} writes were dropped: the output was not being read\n".encode()
            )

    def stopProducing(self) -> None:
        self._held.clear()
        self._held_bytes = 0


@dataclass
class Pending:
    """Lines typed while offline, for a view that shows them until confirmed."""

    lines: Deque[List[Line]] = field(default_factory=deque)

    def add(self, rows: List[Line]) -> None:
        self.lines.append(rows)

    def confirm(self, count: int) -> None:
        for _ in range(min(count, len(self.lines))):
            self.lines.popleft()

    def rows(self) -> List[Line]:
        return [row for rows in self.lines for row in rows]
