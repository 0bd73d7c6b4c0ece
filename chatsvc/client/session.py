# -*- test-case-name: tests.test_client_session -*-
"""
What the client knows, without Twisted and without I/O.

L{ClientSession} keeps the client's memory across connections (its name,
the resume token, the last C{seq} seen) and turns each server message into
a L{Reaction}: lines to print and messages to send. L{ConnectionState} is
what one connection has been told so far::

    session = ClientSession("alice")
    conn = session.connect(encrypted=False)   # conn.hello is the hello to send
    reaction = session.receive(conn, message) # reaction.lines, reaction.send

L{TokenBucket} paces our frames under the server's rate limit; the caller
passes the time in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

from .. import display
from ..wire.errors import RemoteProtocolError
from ..wire.messages import Message
from ..wire.names import name_key


def _is_seq(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass
class Reaction:
    """What to do about one server message: lines to print, messages to send."""

    lines: List[str]
    send: List[Message]


class ConnectionState:
    """
    What one connection has been told so far (made by L{ClientSession.connect}).

    @ivar hello: the C{hello} to send first.
    @ivar since: the C{since} that C{hello} carries, or C{None}.
    @ivar encrypted: whether this connection is in encrypted mode.
    @ivar report_catch_up: whether to say how complete the history was
        (on every connection after the first welcome).
    @ivar registered: C{True} once C{welcome} arrived.
    @ivar fatal: the fatal C{error} the server sent, if any.
    @ivar fatal_shown: whether that error was printed already (it is only
        printed at once on a registered connection; before C{welcome}, the
        caller reports it as the reason the connection failed).
    """

    def __init__(
        self, hello: Message, since: Optional[int], encrypted: bool, report_catch_up: bool
    ) -> None:
        self.hello = hello
        self.since = since
        self.encrypted = encrypted
        self.report_catch_up = report_catch_up
        self.registered = False
        self.fatal: Optional[RemoteProtocolError] = None
        self.fatal_shown = False
        self._history: List[dict] = []
        self._users: List[Any] = []


class ClientSession:
    """
    The client's memory across connections: its current name, the resume
    token of the last C{welcome}, the C{seq} of the last message seen.

        conn = session.connect(encrypted=False)   # conn.hello is the hello to send
        reaction = session.receive(conn, message) # lines to print, messages to send

    C{last_seq} is the C{seq} of the latest C{message}/C{private} received,
    which within one server's lifetime is the highest seen. History items
    with C{seq <= last_seq} are not shown again, except after a server
    restart (PROTOCOL.md 4.5: a C{since} beyond the server's newest C{seq}
    gets the most recent messages and C{complete: false}; those are all at
    or below C{since}, and are new to us).
    """

    def __init__(self, name: Optional[str] = None) -> None:
        self.name = name
        self.resume: Optional[str] = None
        self.last_seq: Optional[int] = None
        self.welcomed = False

    def connect(self, encrypted: bool = False) -> ConnectionState:
        """Start a connection: its C{hello} carries C{name}, C{resume}, C{since}."""
        hello: Message = {"type": "hello"}
        if self.name is not None:
            hello["name"] = self.name
        if self.resume is not None:
            hello["resume"] = self.resume
        if self.last_seq is not None:
            hello["since"] = self.last_seq
        return ConnectionState(hello, self.last_seq, encrypted, self.welcomed)

    def receive(self, conn: ConnectionState, message: Message) -> Reaction:
        """Take in one server message (a decoded dict with a string C{type})."""
        kind = message["type"]
        if kind == "welcome":
            return Reaction(self._welcome(conn, message), [])
        if kind == "history":
            return Reaction(self._history(conn, message), [])
        if kind == "users":
            names = message.get("users")
            if isinstance(names, list):
                conn._users.extend(names)
            if message.get("more") is True:
                return Reaction([], [])
            names, conn._users = conn._users, []
            return Reaction(display.format_users(names), [])
        if kind in ("message", "private"):
            if _is_seq(message.get("seq")):
                self.last_seq = message["seq"]
            return Reaction(display.format_message(message, self.name), [])
        if kind == "renamed":
            old, new = message.get("old"), message.get("new")
            lines = display.format_message(message, self.name)
            if (
                conn.registered
                and isinstance(old, str)
                and isinstance(new, str)
                and self.name is not None
                and name_key(old) == name_key(self.name)
            ):
                self.name = new
            return Reaction(lines, [])
        if kind == "error":
            return self._error(conn, message)
        return Reaction(display.format_message(message, self.name), [])

    def _welcome(self, conn: ConnectionState, message: Message) -> List[str]:
        # The motd is shown on the first welcome only, not on every return.
        motd = None if self.welcomed else message.get("motd")
        conn.registered = True
        self.welcomed = True
        if isinstance(message.get("name"), str):
            self.name = message["name"]
        resume = message.get("resume")
        self.resume = resume if isinstance(resume, str) else None
        return display.format_welcome(self.name, conn.encrypted, motd)

    def _history(self, conn: ConnectionState, message: Message) -> List[str]:
        items = message.get("messages")
        if isinstance(items, list):
            conn._history.extend(m for m in items if isinstance(m, dict))
        if message.get("more") is True:
            return []
        history, conn._history = conn._history, []
        complete = message.get("complete") is True
        seqs = [m["seq"] for m in history if _is_seq(m.get("seq"))]
        restarted = (
            conn.since is not None
            and not complete
            and bool(seqs)
            and all(seq <= conn.since for seq in seqs)
        )
        lines: List[str] = []
        for item in history:
            seq = item.get("seq")
            if _is_seq(seq):
                if not restarted and self.last_seq is not None and seq <= self.last_seq:
                    continue  # seen already (on this or an earlier connection)
                if restarted or self.last_seq is None or seq > self.last_seq:
                    self.last_seq = seq
            lines.extend(display.format_message(item, self.name))
        if conn.report_catch_up:
            lines.extend(display.format_catch_up(complete))
        return lines

    def _error(self, conn: ConnectionState, message: Message) -> Reaction:
        code = message.get("code")
        lines = display.format_message(message, self.name)
        if message.get("fatal") is True:
            text = message.get("text")
            conn.fatal = RemoteProtocolError(
                code if isinstance(code, str) else "?",
                text if isinstance(text, str) else "",
            )
            conn.fatal_shown = conn.registered
            return Reaction(lines if conn.registered else [], [])
        if code == "bad-name" and not conn.registered:
            # Our name was refused (the server's rules may differ from ours):
            # register without one, as guest_N; /nick can fix it afterwards.
            self.name = None
            conn.hello = {k: v for k, v in conn.hello.items() if k != "name"}
            return Reaction(lines, [conn.hello])
        return Reaction(lines, [])


class TokenBucket:
    """
    Paces our frames so as to stay under the server's rate limit
    (PROTOCOL.md section 6: a burst of 20, refilled at 2 per second).
    """

    def __init__(self, capacity: float = 20, rate: float = 2.0, now: float = 0.0) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = float(capacity)
        self._at = now

    def reset(self, now: float, used: float = 0.0) -> None:
        """A new connection: a full bucket, less C{used} frames already sent."""
        self.tokens = self.capacity - used
        self._at = now

    def take(self, now: float) -> float:
        """Take a token and return 0, or return how long to wait for one."""
        self.tokens = min(self.capacity, self.tokens + (now - self._at) * self.rate)
        self._at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate
