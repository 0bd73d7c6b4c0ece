# -*- test-case-name: tests.test_client_commands -*-
"""
Typed lines to actions, without I/O: L{parse_command} reads one line the
user typed and returns what it asks for, as a frozen dataclass (L{Say},
L{Private}, L{Nick}, L{Quit}, ...), a L{Hint} to print, or C{None}::

    parse_command("/msg bob hi there")   # Private(to="bob", text="hi there")
    parse_command("//etc")               # Say(text="/etc")
    parse_command("/msg bob")            # Hint(line="! usage: /msg NAME TEXT")

L{HELP} is the list C{/help} prints. Carrying the actions out is the job
of L{chatsvc.client.app.ChatClient}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from . import display

HELP = [
    "* commands:",
    "*   /join #ROOM            join a room (and make it the active room)",
    "*   /part [#ROOM] [REASON] leave a room (the active one by default)",
    "*   /switch #ROOM          send plain lines to that room (full screen: Alt-1..9, Ctrl-N/Ctrl-P)",
    "*   /topic [TEXT]          show or set the active room's topic (/topic - clears it)",
    "*   /rooms                 list the rooms",
    "*   /who [#ROOM]           list the users online, or a room's members",
    "*   /msg NAME TEXT         send a private message to NAME",
    "*   /me TEXT               send an action, shown as '* NAME TEXT'",
    "*   /nick NAME             change your name",
    "*   /encrypt on|off        reconnect with or without encryption (on needs --psk)",
    "*   /quit [REASON]         leave (so does 'quit', or the end of input)",
    "*   /help                  this list",
    "*   //TEXT                 send a line that starts with '/'",
    "* any other line goes to the active room",
    "* ~NAME: NAME is connected without encryption: anyone on the network can read it",
]

COMMANDS = ("/encrypt", "/help", "/join", "/me", "/msg", "/nick", "/part", "/quit", "/rooms",
            "/switch", "/topic", "/who")
"""What Tab completes after a C{/}."""


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Me:
    """C{/me TEXT}: a C{say} with C{action: true} (version 1 servers: the text C{* NAME TEXT})."""

    text: str


@dataclass(frozen=True)
class Private:
    to: str
    text: str


@dataclass(frozen=True)
class Nick:
    name: str


@dataclass(frozen=True)
class Who:
    room: Optional[str] = None


@dataclass(frozen=True)
class Join:
    room: str


@dataclass(frozen=True)
class Part:
    room: Optional[str] = None
    reason: Optional[str] = None


@dataclass(frozen=True)
class Topic:
    """C{/topic}: show the topic (C{text} None) or set it."""

    text: Optional[str] = None


@dataclass(frozen=True)
class Rooms:
    pass


@dataclass(frozen=True)
class Switch:
    room: str


@dataclass(frozen=True)
class Quit:
    reason: Optional[str] = None


@dataclass(frozen=True)
class SwitchEncryption:
    on: bool


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Hint:
    """A line to print locally (a usage hint); nothing is sent."""

    line: str


Action = Union[Say, Me, Private, Nick, Who, Quit, SwitchEncryption, Help, Hint, Join, Part,
               Topic, Rooms, Switch]


def parse_command(line: str) -> Optional[Action]:
    """
    The action for one typed line (its line end already removed), or
    C{None} for a blank line, which is ignored.

    C{quit} alone, and every line starting with C{/}, is a command; C{//}
    escapes a leading slash; any other line is a C{say}, sent as typed.
    """
    if not line.strip():
        return None
    if line.strip() == "quit":
        return Quit()
    if line.startswith("//"):
        return Say(line[1:])
    if not line.startswith("/"):
        return Say(line)
    words = line[1:].split(None, 1)
    command = words[0].lower() if words else ""
    rest = words[1] if len(words) > 1 else ""
    if command == "quit":
        return Quit(rest.strip() or None)
    if command == "help":
        return Help()
    room_action = _room_command(command, rest)
    if room_action is not None:
        return room_action
    if command == "nick":
        args = rest.split()
        if len(args) != 1:
            return Hint("! usage: /nick NAME")
        return Nick(args[0])
    if command == "msg":
        args = rest.split(None, 1)
        if len(args) != 2 or not args[1].strip():
            return Hint("! usage: /msg NAME TEXT")
        return Private(args[0], args[1])
    if command == "me":
        if not rest.strip():
            return Hint("! usage: /me TEXT")
        return Me(rest)
    if command == "encrypt":
        mode = rest.strip().lower()
        if mode not in ("on", "off"):
            return Hint("! usage: /encrypt on|off")
        return SwitchEncryption(mode == "on")
    return Hint(f"! unknown command /{display.sanitize(command)}; type /help for the list")


def _room_command(command: str, rest: str) -> Optional[Action]:
    """The room commands (version 2): C{/who}, C{/join}, C{/switch}, C{/part}, C{/topic}, C{/rooms}."""
    args = rest.split()
    if command == "who":
        if len(args) > 1 or args and not args[0].startswith("#"):
            return Hint("! usage: /who [#ROOM]")
        return Who(args[0] if args else None)
    if command in ("join", "j"):
        return Join(_hash(args[0])) if len(args) == 1 else Hint("! usage: /join #ROOM")
    if command in ("switch", "s", "window"):
        return Switch(_hash(args[0])) if len(args) == 1 else Hint("! usage: /switch #ROOM")
    if command in ("part", "leave"):
        words = rest.split(None, 1)
        if words and words[0].startswith("#"):
            return Part(words[0], (words[1].strip() if len(words) > 1 else "") or None)
        return Part(None, rest.strip() or None)
    if command == "topic":
        return Topic(rest.strip() or None)
    if command in ("rooms", "list"):
        return Rooms()
    return None


def _hash(room: str) -> str:
    """C{dev} means C{#dev}: a room name always starts with C{#}."""
    return room if room.startswith("#") else "#" + room
