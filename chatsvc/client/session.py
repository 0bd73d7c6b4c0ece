# -*- test-case-name: tests.test_client_session,tests.test_client_rooms -*-
"""
What the client knows, without Twisted and without I/O.

L{ClientSession} keeps the client's memory across connections (its name,
the resume token, the history epoch, and for each room the last C{seq}
seen, in L{Rooms}) and turns each server message into a L{Reaction}: rows
to show (L{Line}s) and messages to send. L{ConnectionState} is what one
connection has been told so far::

    session = ClientSession("alice")
    conn = session.connect(encrypted=False)   # conn.hello is the hello to send
    reaction = session.receive(conn, message) # reaction.lines, reaction.send

What the user asks for goes the other way through
L{chatsvc.client.outgoing}.

Version 1 servers (no C{rooms} and no C{epoch} in C{welcome}) keep
working: the client is then in one room, L{DEFAULT_ROOM}, and sends
C{since} as an integer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..wire.errors import RemoteProtocolError
from ..wire.messages import Message
from ..wire.names import name_key
from . import display
from .catchup import catch_up
from .lines import Line, rows
from .parts import Parts
from .rooms import DEFAULT_ROOM, Rooms, room_key


def _is_seq(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass
class Reaction:
    """What to do about one server message: rows to show, messages to send,
    and how many of our lines typed while offline the server confirmed."""

    lines: List[Line]
    send: List[Message] = field(default_factory=list)
    confirmed: int = 0


class ConnectionState:
    """
    What one connection has been told so far (made by L{ClientSession.connect}).

    @ivar hello: the C{hello} to send first.
    @ivar since: the C{since} that C{hello} carries, by room key.
    @ivar epoch: the C{epoch} that C{hello} carries, or C{None}.
    @ivar encrypted: whether this connection is in encrypted mode.
    @ivar report_catch_up: whether to say how complete each room's history
        was (on every connection after the first welcome).
    @ivar registered: C{True} once C{welcome} arrived.
    @ivar fatal: the fatal C{error} the server sent, if any.
    @ivar fatal_shown: whether that error was printed already.
    @ivar unauthenticated: whether C{fatal} came before the handshake.
    @ivar parts: lists split over several messages, being gathered.
    """

    def __init__(self, hello: Message, since: Dict[str, int], epoch: Optional[str],
                 encrypted: bool, report_catch_up: bool) -> None:
        self.hello = hello
        self.since = since
        self.epoch = epoch
        self.encrypted = encrypted
        self.report_catch_up = report_catch_up
        self.registered = False
        self.fatal: Optional[RemoteProtocolError] = None
        self.fatal_shown = False
        self.unauthenticated = False
        self.parts = Parts()


class ClientSession:
    """
    The client's memory across connections (see the module's docstring).

    @ivar v2: the last server spoke protocol version 2 (rooms, epoch).
    @ivar unconfirmed: how many of our room lines wait for the server's copy.
    """

    def __init__(self, name: Optional[str] = None) -> None:
        self.name = name
        self.resume: Optional[str] = None
        self.epoch: Optional[str] = None
        self.welcomed = False
        self.v2 = False
        self.rooms = Rooms()
        self.unconfirmed: List[tuple] = []
        self.joining: Optional[str] = None
        self._handlers = {
            "welcome": self._on_welcome, "room": self._on_room, "history": self._on_history,
            "message": self._on_message, "private": self._on_private, "joined": self._on_joined,
            "parted": self._on_parted, "left": self._on_left, "renamed": self._on_renamed,
            "topic": self._on_topic, "users": self._on_users, "rooms": self._on_rooms,
            "notice": self._on_notice,
        }

    @property
    def last_seq(self) -> Optional[int]:
        """The last C{seq} seen in the active room (version 1: the only one)."""
        state = self.rooms.active_state
        return state.seq if state is not None else None

    def connect(self, encrypted: bool = False) -> ConnectionState:
        """Start a connection: its C{hello} carries name, resume, rooms, since, epoch."""
        hello: Message = {"type": "hello"}
        if self.name is not None:
            hello["name"] = self.name
        if self.resume is not None:
            hello["resume"] = self.resume
        since = {room_key(s.name): s.seq for s in self.rooms.states() if s.seq is not None}
        if self.welcomed and self.v2:
            hello["rooms"] = self.rooms.names()
            if since:
                hello["since"] = {s.name: s.seq for s in self.rooms.states() if s.seq is not None}
            if self.epoch is not None:
                hello["epoch"] = self.epoch
        elif self.last_seq is not None:
            hello["since"] = self.last_seq
        return ConnectionState(hello, since, self.epoch if self.v2 else None, encrypted,
                               self.welcomed)

    def receive(self, conn: ConnectionState, message: Message) -> Reaction:
        """Take in one server message (a decoded dict with a string C{type})."""
        kind = message["type"]
        if kind == "error":
            return self._error(conn, message)
        handler = self._handlers.get(kind)
        if handler is None or not conn.registered and kind != "welcome":
            return Reaction([])
        return handler(conn, message)

    # -- helpers -----------------------------------------------------------------

    def _room_of(self, message: Message) -> str:
        room = message.get("room")
        return room if isinstance(room, str) else DEFAULT_ROOM

    def tag(self, room: Optional[str]) -> Optional[str]:
        """The tag for a row of C{room}: C{None} when it is the active room."""
        if room is None or self.rooms.is_active(room):
            return None
        return display.sanitize(room)

    def _show(self, message: Message, kind: str = "presence", room: Optional[str] = None,
              **attributes: Any) -> List[Line]:
        texts = display.format_message(message, self.name, self.rooms.plaintext)
        return rows(texts, kind, ts=message.get("ts") if isinstance(message.get("ts"), str) else None,
                    room=self.tag(room), **attributes)

    def is_me(self, name: Any) -> bool:
        return isinstance(name, str) and self.name is not None and name_key(name) == name_key(self.name)

    def mentions_me(self, text: Any) -> bool:
        if not isinstance(text, str) or not self.name:
            return False
        folded, me = text.casefold(), self.name.casefold()
        start = folded.find(me)
        while start >= 0:
            before = folded[start - 1] if start else " "
            end = start + len(me)
            after = folded[end] if end < len(folded) else " "
            if not (before.isalnum() or before in "_-") and not (after.isalnum() or after in "_-"):
                return True
            start = folded.find(me, start + 1)
        return False

    # -- registration --------------------------------------------------------------

    def _on_welcome(self, conn: ConnectionState, message: Message) -> Reaction:
        # The motd is shown on the first welcome only, not on every return.
        motd = None if self.welcomed else message.get("motd")
        if conn.registered:
            return Reaction([])
        conn.registered = True
        self.welcomed = True
        if isinstance(message.get("name"), str):
            self.name = message["name"]
        resume = message.get("resume")
        self.resume = resume if isinstance(resume, str) else None
        rooms = message.get("rooms")
        epoch = message.get("epoch")
        self.v2 = isinstance(rooms, list) or isinstance(epoch, str)
        self.epoch = epoch if isinstance(epoch, str) and len(epoch) <= 256 else None
        if isinstance(rooms, list):
            names = [r for r in rooms if isinstance(r, str)]
            self.rooms.keep_only(names)
            for name in names:
                self.rooms.enter(name)
        else:
            self.rooms.keep_only([DEFAULT_ROOM])
            self.rooms.enter(DEFAULT_ROOM)
        users = message.get("users")
        self.rooms.plaintext.clear()
        self.rooms.mark_plaintext(message.get("plaintext") or [])
        if not isinstance(rooms, list) and isinstance(users, list):
            state = self.rooms.get(DEFAULT_ROOM)
            if state is not None:
                state.set_members(users, len(users))
        texts = display.format_welcome(self.name, conn.encrypted, motd)
        return Reaction(rows(texts[:1]) + rows(texts[1:]))

    def _on_room(self, conn: ConnectionState, message: Message) -> Reaction:
        name = message.get("room")
        if not isinstance(name, str):
            return Reaction([])
        whole = conn.parts.add(("room", room_key(name)), message.get("users"), message.get("more") is True)
        if whole is None:
            return Reaction([])
        new = name not in self.rooms
        state = self.rooms.enter(name)
        if state is None:
            return Reaction(rows([f"! {display.sanitize(name)} is not followed (too many rooms,"
                                  " or not a room name)"], "error"))
        state.set_members(whole.items, message.get("count"))
        plaintext = message.get("plaintext")
        self.rooms.mark_plaintext(plaintext if isinstance(plaintext, list) else [])
        topic = message.get("topic")
        state.topic = display.sanitize(topic) if isinstance(topic, str) else ""
        state.presence = message.get("presence") is not False
        lines: List[Line] = []
        if self.joining is not None and room_key(self.joining) == room_key(name):
            self.joining = None
            self.rooms.switch(name)
        if new or not conn.report_catch_up:
            lines += self._room_summary(state)
        return Reaction(lines)

    def _room_summary(self, state: Any) -> List[Line]:
        plain = self.rooms.plaintext_in(state)
        head = f"* in {display.sanitize(state.name)}: {state.count} member{'s' if state.count != 1 else ''}"
        if plain:
            head += f", {plain} plaintext ({display.PLAINTEXT_MARK}name)"
        lines = rows([head], room=self.tag(state.name))
        if state.topic:
            lines += rows([f"* topic: {state.topic}"], room=self.tag(state.name))
        return lines

    def _on_history(self, conn: ConnectionState, message: Message) -> Reaction:
        name = self._room_of(message)
        whole = conn.parts.add(("history", room_key(name)), message.get("messages"),
                               message.get("more") is True)
        if whole is None:
            return Reaction([])
        items = [m for m in whole.items if isinstance(m, dict)]
        complete = message.get("complete") is True and not whole.cut
        return Reaction(catch_up(self, conn, name, items, complete))

    # -- the chat ------------------------------------------------------------------

    def _on_message(self, conn: ConnectionState, message: Message) -> Reaction:
        return Reaction(*self.message_lines(message))

    def message_lines(self, message: Message, seen: bool = False) -> tuple:
        """The rows of a room C{message}, and whether it confirms a pending line."""
        room = self._room_of(message)
        state = self.rooms.get(room)
        seq = message.get("seq")
        if state is not None and _is_seq(seq):
            state.seq = seq
        sender = message.get("from")
        own = self.is_me(sender)
        confirmed = 0
        if own and self.unconfirmed and not seen:
            self.unconfirmed.pop(0)
            confirmed = 1
        action = message.get("action") is True
        kind = "action" if action else "own" if own else "message"
        tag = self.tag(room)
        if tag is not None and state is not None and not seen and not own:
            state.unread += 1
        lines = self._show(message, kind, room, nick=display.sanitize(sender) if isinstance(sender, str) else None,
                           mention=not own and self.mentions_me(message.get("text")),
                           plaintext=self.rooms.is_plaintext(sender))
        return lines, [], confirmed

    def _on_private(self, conn: ConnectionState, message: Message) -> Reaction:
        sender = message.get("from")
        other = message.get("to") if self.is_me(sender) else sender
        return Reaction(self._show(message, "private", None,
                                   nick=display.sanitize(other) if isinstance(other, str) else None,
                                   mention=not self.is_me(sender),
                                   plaintext=self.rooms.is_plaintext(sender)))

    def _on_joined(self, conn: ConnectionState, message: Message) -> Reaction:
        name, room = message.get("name"), self._room_of(message)
        state = self.rooms.get(room)
        if isinstance(name, str):
            if state is not None:
                state.add_member(name)
            self.rooms.mark_plaintext([name], message.get("plaintext") is True)
        return Reaction(self._show(message, "presence", room, plaintext=message.get("plaintext") is True))

    def _on_parted(self, conn: ConnectionState, message: Message) -> Reaction:
        name, room = message.get("name"), self._room_of(message)
        lines = self._show(message, "presence", room)
        if self.is_me(name):
            self.rooms.leave(room)
            lines = rows([f"* you left {display.sanitize(room)}"])
        elif isinstance(name, str):
            state = self.rooms.get(room)
            if state is not None:
                state.remove_member(name)
        return Reaction(lines)

    def _on_left(self, conn: ConnectionState, message: Message) -> Reaction:
        lines = self._show(message)
        if isinstance(message.get("name"), str):
            self.rooms.gone(message["name"])
        return Reaction(lines)

    def _on_renamed(self, conn: ConnectionState, message: Message) -> Reaction:
        old, new = message.get("old"), message.get("new")
        lines = self._show(message)
        if isinstance(old, str) and isinstance(new, str):
            if self.is_me(old):
                self.name = new
            self.rooms.renamed(old, new)
        return Reaction(lines)

    def _on_topic(self, conn: ConnectionState, message: Message) -> Reaction:
        room = self._room_of(message)
        state = self.rooms.get(room)
        text = message.get("text")
        if state is not None and isinstance(text, str):
            state.topic = display.sanitize(text)
        return Reaction(self._show(message, "presence", room))

    def _on_notice(self, conn: ConnectionState, message: Message) -> Reaction:
        room = message.get("room")
        return Reaction(self._show(message, "presence", room if isinstance(room, str) else None))

    def _on_users(self, conn: ConnectionState, message: Message) -> Reaction:
        room = message.get("room")
        whole = conn.parts.add(("users", room), message.get("users"), message.get("more") is True)
        plaintext = message.get("plaintext")
        self.rooms.mark_plaintext(plaintext if isinstance(plaintext, list) else [])
        if whole is None:
            return Reaction([])
        texts = display.format_users(whole.items, self.rooms.plaintext,
                                     room if isinstance(room, str) else None)
        if whole.cut:
            texts.append(f"! the list was cut: the client keeps at most {conn.parts.max_items} names")
        return Reaction(rows(texts))

    def _on_rooms(self, conn: ConnectionState, message: Message) -> Reaction:
        whole = conn.parts.add(("rooms",), message.get("rooms"), message.get("more") is True)
        if whole is None:
            return Reaction([])
        return Reaction(rows(display.format_rooms(whole.items)))

    # -- errors ----------------------------------------------------------------------

    def _error(self, conn: ConnectionState, message: Message) -> Reaction:
        code = message.get("code")
        room = message.get("room")
        lines = rows(display.format_message(message, self.name), "error",
                     room=self.tag(room) if isinstance(room, str) else None)
        if code in ("not-in-room", "bad-room", "too-many-rooms", "no-such-room") and self.joining:
            self.joining = None
        if message.get("fatal") is True:
            text = message.get("text")
            conn.fatal = RemoteProtocolError(
                code if isinstance(code, str) else "?",
                text if isinstance(text, str) else "",
            )
            conn.fatal_shown = conn.registered
            return Reaction(lines if conn.registered else [])
        if code == "bad-name" and not conn.registered:
            # Our name was refused (the server's rules may differ from ours):
            # register without one, as guest_N; /nick can fix it afterwards.
            self.name = None
            conn.hello = {k: v for k, v in conn.hello.items() if k != "name"}
            return Reaction(lines, [conn.hello])
        if code in ("bad-text", "too-long", "rate-limited", "not-in-room", "muted", "unavailable") \
                and self.unconfirmed:
            self.unconfirmed.pop(0)
            return Reaction(lines, confirmed=1)
        return Reaction(lines)
