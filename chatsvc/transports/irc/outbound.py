# -*- test-case-name: tests.test_irc_outbound -*-
"""
Chat messages to IRC lines, without I/O: the fan-out half of the gateway.

The chat encodes a public message once and hands the same frame (the same
C{bytes} object, a whole turn's worth) to every member. L{TranslationCache}
keeps the translation of the last such object, so a message that reaches a
thousand IRC users is decoded and formatted once, not a thousand times; each
recipient then only picks the variant it asked for (with or without the
IRCv3 C{time} tag) and, where the message is its own, leaves it out.

Messages that are the same for everyone (C{message}, C{private},
C{joined}, C{parted}, C{left}, C{renamed}, C{topic}) are translated here;
the others (C{welcome}, C{room}, C{error}, ...) answer one client's request
and are marked I{personal}: the session translates them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

from ...chat.operators import OPERATOR
from ...wire.framing import HEADER, HEADER_SIZE
from .lines import MAX_LINE, format_line, split_text
from .names import irc_nick

USER = "chat"
HOST = "chatsvc"

RAW = b"\x00"
"""A frame body starting with this byte holds IRC bytes the gateway queued
itself (a reply it answers without the chat), passed through in order."""

SHARED = frozenset({"message", "private", "joined", "parted", "left", "renamed", "topic", "notice"})

_QUIT_REASONS = {
    "timeout": "Ping timeout",
    "slow": "SendQ exceeded",
    "flood": "Excess Flood",
    "kicked": "Kicked by an operator",
    "banned": "Banned",
    "disconnected": "Connection closed",
}


@dataclass(frozen=True)
class ServerInfo:
    """What the gateway says about itself, and what it needs to know of the chat."""

    name: str = "chatsvc"
    network: str = "chatsvc"
    version: str = "chatsvc-2"
    created: str = ""
    has_key: bool = False
    default_room: str = "#lobby"
    max_rooms: int = 20
    topic_len: int = 390


def mask(name: str) -> str:
    """The C{nick!user@host} prefix of the chat user C{name}."""
    return f"{irc_nick(name)}!{USER}@{HOST}"


def privmsg_lines(prefix: str, target: str, text: str, action: bool,
                  tags: Optional[Dict[str, str]] = None, command: str = "PRIVMSG") -> List[bytes]:
    """
    The lines that carry C{text} to C{target}: split at newlines and at the
    512-byte line limit, never truncated; an action as CTCP C{ACTION}.
    """
    budget = MAX_LINE - 2 - len(f":{prefix} {command} {target} :".encode("utf-8"))
    if action:
        budget -= len("\x01ACTION \x01")
    lines = []
    for piece in split_text(text, budget):
        if action:
            piece = f"\x01ACTION {piece}\x01"
        lines.append(format_line(command, [target, piece], prefix, tags))
    return lines


def quit_text(message: Dict[str, Any]) -> str:
    """The QUIT text of a chat C{left}."""
    reason = message.get("reason")
    text = message.get("text")
    if reason == "quit":
        return f"Quit: {text}" if isinstance(text, str) and text else "Quit"
    return _QUIT_REASONS.get(reason, str(reason))


def _room(message: Dict[str, Any], info: ServerInfo) -> str:
    room = message.get("room")
    return room if isinstance(room, str) else info.default_room


def shared_lines(message: Dict[str, Any], info: ServerInfo, tags: Optional[Dict[str, str]]) -> List[bytes]:
    """The IRC lines of one message that is the same for every recipient."""
    kind = message["type"]
    if kind == "message":
        return privmsg_lines(mask(message["from"]), _room(message, info), message["text"],
                             bool(message.get("action")), tags)
    if kind == "private":
        return privmsg_lines(mask(message["from"]), irc_nick(message["to"]), message["text"],
                             bool(message.get("action")), tags)
    if kind == "joined":
        room = _room(message, info)
        lines = [format_line("JOIN", [room], mask(message["name"]), tags)]
        if message.get("plaintext") and info.has_key:
            lines.append(format_line("NOTICE", [room, (
                f"*** {irc_nick(message['name'])} is connected without encryption: anyone on "
                "the network can read what it sends and receives")], info.name))
        return lines
    if kind == "parted":
        text = message.get("text")
        params = [_room(message, info)] + ([text] if isinstance(text, str) and text else [])
        return [format_line("PART", params, mask(message["name"]), tags)]
    if kind == "left":
        return [format_line("QUIT", [quit_text(message)], mask(message["name"]), tags)]
    if kind == "renamed":
        return [format_line("NICK", [irc_nick(message["new"])], mask(message["old"]), tags)]
    if kind == "topic":
        by = message.get("by")
        prefix = mask(by) if isinstance(by, str) and by != OPERATOR else info.name
        return [format_line("TOPIC", [_room(message, info), message.get("text") or ""], prefix, tags)]
    if kind == "notice":  # an operator's notice (docs/protocol.md 8): from the server
        room = message.get("room")
        target = room if isinstance(room, str) else "*"
        return privmsg_lines(info.name, target, message["text"], False, tags, command="NOTICE")
    raise KeyError(kind)


def time_tags(message: Dict[str, Any]) -> Optional[Dict[str, str]]:
    ts = message.get("ts")
    return {"time": ts} if isinstance(ts, str) else None


class Item:
    """One chat message of a translation: its lines, plain and tagged."""

    __slots__ = ("message", "plain", "tagged", "sender")

    def __init__(self, message: Dict[str, Any], plain: bytes, tagged: bytes,
                 sender: Optional[str]) -> None:
        self.message = message
        self.plain = plain
        self.tagged = tagged
        self.sender = sender


class Translation:
    """
    Everything a chunk of the chat's output (whole frames) says, in IRC.

    @ivar items: the messages, in order, each an L{Item} (C{plain} and
        C{tagged} are empty for a personal one).
    @ivar personal: whether an item needs the session (welcome, errors,
        answers), or the gateway's own raw bytes.
    @ivar events: whether an item changes a recipient's state (C{renamed},
        C{parted}, C{topic}).
    @ivar senders: the names whose own messages are here (left out for a
        recipient without C{echo-message}).
    @ivar plain: all lines without tags; C{tagged}: with C{time} tags.
    """

    __slots__ = ("items", "personal", "events", "senders", "plain", "tagged", "rest")

    def __init__(self, data: bytes, info: ServerInfo) -> None:
        items: List[Item] = []
        personal = events = False
        senders = set()
        offset, size = 0, len(data)
        while size - offset >= HEADER_SIZE:
            (length,) = HEADER.unpack_from(data, offset)
            end = offset + HEADER_SIZE + length
            if end > size:
                break
            body = data[offset + HEADER_SIZE:end]
            offset = end
            item = _translate(body, info)
            items.append(item)
            if item.plain or item.tagged:
                kind = item.message["type"]
                if item.sender is not None:
                    senders.add(item.sender)
                elif kind in ("renamed", "parted", "topic"):
                    events = True
            else:
                personal = True
        self.rest = data[offset:]  # a partial frame (never, from ChatProtocol)
        self.items = items
        self.personal = personal
        self.events = events
        self.senders: FrozenSet[str] = frozenset(senders)
        self.plain = b"".join(item.plain for item in items)
        self.tagged = b"".join(item.tagged for item in items)


def _translate(body: bytes, info: ServerInfo) -> Item:
    if body[:1] == RAW:
        # Its type is bytes, which no JSON message can have.
        return Item({"type": RAW, "data": body[1:]}, b"", b"", None)
    try:
        message = json.loads(body)
        kind = message["type"]
    except (ValueError, KeyError, TypeError):
        return Item({"type": "unreadable"}, b"", b"", None)
    if kind not in SHARED:
        return Item(message, b"", b"", None)
    try:
        plain = b"".join(shared_lines(message, info, None))
        tags = time_tags(message)
        tagged = b"".join(shared_lines(message, info, tags)) if tags else plain
    except (KeyError, TypeError, AttributeError):
        return Item({"type": "unreadable"}, b"", b"", None)
    sender = message.get("from") if kind in ("message", "private") else None
    return Item(message, plain, tagged, sender)


class TranslationCache:
    """
    The translation of the last chunk seen, by identity: the room hands one
    C{bytes} object to every member, so the gateway translates it once.
    """

    def __init__(self, info: ServerInfo) -> None:
        self.info = info
        self._data: Optional[bytes] = None
        self._translation: Optional[Translation] = None
        self.translated = 0  # how many chunks were translated (for tests)

    def translate(self, data: bytes) -> Translation:
        if data is self._data:
            return self._translation  # type: ignore[return-value]
        translation = Translation(data, self.info)
        self.translated += 1
        self._data = data
        self._translation = translation
        return translation

    def uncached(self, data: bytes) -> Translation:
        """Translate C{data} meant for one client only, leaving the cache alone."""
        return Translation(data, self.info)


def split_names(head: str, names: List[str], budget: int = MAX_LINE - 2) -> List[Tuple[str, ...]]:
    """Group C{names} so that C{head + " ".join(group)} fits C{budget} bytes."""
    groups: List[Tuple[str, ...]] = []
    group: List[str] = []
    size = len(head.encode("utf-8"))
    room = budget - size
    used = 0
    for name in names:
        cost = len(name.encode("utf-8")) + (1 if group else 0)
        if group and used + cost > room:
            groups.append(tuple(group))
            group, used, cost = [], 0, len(name.encode("utf-8"))
        group.append(name)
        used += cost
    if group:
        groups.append(tuple(group))
    return groups
