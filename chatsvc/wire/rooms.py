# -*- test-case-name: tests.test_wire_rooms -*-
"""
Room names and the other request members of protocol version 2, checked
without I/O (PROTOCOL.md 4.1, 4.3, 4.4, 4.5)::

    >>> room_name("#Lobby")          # NFC, checked; RemoteProtocolError bad-room
    >>> room_key("#LOBBY") == room_key("#lobby")
    >>> action_flag({"type": "say", "text": "waves", "action": True})
    True
"""

from __future__ import annotations

import unicodedata
from typing import Any, Dict, List, Optional

from .errors import RemoteProtocolError
from .messages import text_error
from .names import InvalidName, name_key, normalize

MAX_TOPIC = 390
"""The longest topic, in UTF-8 bytes (PROTOCOL.md section 6)."""


def bad_room(text: str, room: Optional[str] = None) -> RemoteProtocolError:
    return RemoteProtocolError("bad-room", text, fatal=False, room=room)


def room_name(value: object) -> str:
    """
    C{value} in NFC form if it is a valid room name: C{#} and 1 to 32 code
    points of the characters of user names.

    @raise RemoteProtocolError: C{bad-room} (not fatal).
    """
    if not isinstance(value, str):
        raise bad_room("a room name is a string such as '#lobby'")
    value = unicodedata.normalize("NFC", value)
    if not value.startswith("#"):
        raise bad_room("a room name starts with '#'", value[:40])
    try:
        normalize(value[1:])
    except InvalidName as e:
        raise bad_room(f"bad room name: {str(e).replace('a name', 'its name')}", value[:40])
    return value


def room_key(name: str) -> str:
    """The key under which two room names are the same: C{NFC(casefold(NFC(name)))}."""
    return name_key(name)


def hello_rooms(value: object, default: str, limit: int) -> List[str]:
    """
    The rooms C{hello} asks for: absent (C{None}) means the default room.

    @raise RemoteProtocolError: C{bad-room} naming the first bad entry, or
        C{too-many-rooms} past C{limit}.
    """
    if value is None:
        return [default]
    if not isinstance(value, list):
        raise bad_room("'rooms' is a list of room names")
    names: List[str] = []
    seen = set()
    for entry in value:
        name = room_name(entry)
        key = room_key(name)
        if key not in seen:
            seen.add(key)
            names.append(name)
    if limit and len(names) > limit:
        raise RemoteProtocolError("too-many-rooms", f"a client is in at most {limit} rooms",
                                  fatal=False)
    return names


def action_flag(message: Dict[str, Any]) -> bool:
    """
    The C{action} member of a C{say} or C{msg}: absent is C{False}.

    @raise RemoteProtocolError: C{bad-json} if it is there and not a boolean.
    """
    action = message.get("action", False)
    if action is not True and action is not False:
        raise RemoteProtocolError("bad-json", "'action' is true or false", fatal=False)
    return action


def topic_error(text: object, max_bytes: int = MAX_TOPIC) -> Optional[RemoteProtocolError]:
    """
    The error for a topic (the text rules of 4.4, newline excluded, at most
    C{max_bytes}; C{""} clears the topic and is good), or C{None}.
    """
    if text == "":
        return None
    problem = text_error(text, max_bytes)
    if problem is None and "\n" in text:  # type: ignore[operator]
        problem = RemoteProtocolError("bad-text", "a topic is one line", fatal=False)
    return problem


def since_map(since: object, default_key: str) -> Dict[str, int]:
    """
    C{hello}'s C{since} as room key -> last C{seq} seen: an integer stands
    for the default room; entries that are not non-negative integers are
    left out.
    """
    if isinstance(since, int) and not isinstance(since, bool):
        return {default_key: since} if since >= 0 else {}
    if not isinstance(since, dict):
        return {}
    result: Dict[str, int] = {}
    for name, seq in since.items():
        if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0:
            try:
                result[room_key(room_name(name))] = seq
            except RemoteProtocolError:
                continue
    return result
