# -*- test-case-name: tests.test_room -*-
"""
The pieces both chat backends share (the single-process one in
L{chatsvc.chat.memory} and the Redis one): list splitting over frames, the
per-room history, the name table, the limits of C{welcome}, and the reasons
for which nobody is told that a member left. No I/O.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any, Deque, Dict, Iterable, List, Optional, Tuple

from ..wire.errors import RemoteProtocolError
from ..wire.framing import MAX_FRAME
from ..wire.names import name_key, name_keys

MAX_WELCOME_USERS = 1000
"""The most names a C{welcome} (or a C{room}) lists (PROTOCOL.md 4.2)."""

SILENT_REASONS = frozenset({"shutdown", "replaced"})
"""Reasons for which the others are not told that a member left."""

HISTORY_HEAD = b'{"type":"history","complete":%s,"messages":['
MORE_TAIL = b'],"more":true}'

MAX_ROOM_JSON = 3 + 33 * 6
"""The longest room name as a JSON string (32 code points after C{#}, each
escaped at worst as six bytes)."""

MAX_PUBLIC_BODY = (MAX_FRAME - len(HISTORY_HEAD % b"false") - len(b',"room":')
                   - MAX_ROOM_JSON - len(MORE_TAIL))
"""The largest encoded C{message}: it must fit a frame, and a C{history}
frame of its room on its own."""


def too_big() -> RemoteProtocolError:
    """The error for a message that would not fit a frame."""
    return RemoteProtocolError(
        "too-long", "the message would not fit a frame; nothing delivered", fatal=False
    )


def json_str(value: str) -> bytes:
    """C{value} as a JSON string, UTF-8 encoded (no C{\\u} escapes)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def split_list_frames(
    head: bytes, items: List[bytes], tail: bytes, more_tail: bytes
) -> List[bytes]:
    """
    Join pre-encoded JSON C{items} into as few message bodies as fit a frame:
    C{head + b",".join(part) + tail}, every body but the last ending with
    C{more_tail} instead.
    """
    room = MAX_FRAME - len(head) - max(len(tail), len(more_tail))
    bodies: List[bytes] = []
    part: List[bytes] = []
    size = 0
    for item in items:
        extra = len(item) + (1 if part else 0)
        if part and size + extra > room:
            bodies.append(head + b",".join(part) + more_tail)
            part, size, extra = [], 0, len(item)
        part.append(item)
        size += extra
    bodies.append(head + b",".join(part) + tail)
    return bodies


class NameTable:
    """
    Who holds which name (PROTOCOL.md 4.3): each member under its name's
    L{name_key <chatsvc.wire.names.name_key>} (two names are the same name)
    and its L{look_alike_key <chatsvc.wire.names.look_alike_key>} (two names
    look alike, v2). A name is free for a member when neither key is held by
    another member, so a look-alike of a name in use counts as in use, and a
    member may take a look-alike of its own name as it may change its case.

    Two dicts; when a name's two keys are equal (most names) the second
    shares the first's string, so it costs a dict slot per member.
    """

    def __init__(self) -> None:
        self._same: Dict[str, Any] = {}  # name key -> member, in order of arrival
        self._alike: Dict[str, Any] = {}  # look-alike key -> member

    def __len__(self) -> int:
        return len(self._same)

    def members(self) -> Iterable[Any]:
        """Every member, oldest first (a live view)."""
        return self._same.values()

    def find(self, name: str) -> Optional[Any]:
        """The member whose name is the same as C{name} (not a look-alike), or C{None}."""
        return self._same.get(name_key(name))

    def free(self, name: str, member: Any = None) -> bool:
        """Whether C{member} (C{None}: a newcomer) may take C{name}."""
        same, alike = name_keys(name)
        holder = self._same.get(same)
        if holder is not None and holder is not member:
            return False
        holder = self._alike.get(alike)
        return holder is None or holder is member

    def add(self, name: str, member: Any) -> None:
        """C{member} holds C{name} now (checked with L{free} first)."""
        same, alike = name_keys(name)
        self._same[same] = member
        self._alike[alike] = member

    def remove(self, name: str) -> None:
        """Nobody holds C{name} any more."""
        same, alike = name_keys(name)
        del self._same[same]
        del self._alike[alike]


class History:
    """
    The most recent public messages, as encoded bodies, and what was dropped.

    @ivar dropped_upto: the highest C{seq} of a public message no longer held
        (0 if none ever was dropped).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: Deque[Tuple[int, bytes]] = deque()
        self.dropped_upto = 0

    def append(self, seq: int, body: bytes) -> None:
        items = self._items
        items.append((seq, body))
        if len(items) > self.size:
            self.dropped_upto = items.popleft()[0]

    def since(self, since: Optional[int], newest_seq: int) -> Tuple[List[bytes], bool]:
        """
        The bodies a client that has seen up to C{since} should get, and
        whether that list is complete (PROTOCOL.md 4.5).
        """
        items = self._items
        if since is None:
            return [body for _, body in items], self.dropped_upto == 0
        if since > newest_seq:
            return [body for _, body in items], False
        return [body for seq, body in items if seq > since], self.dropped_upto <= since

    def __len__(self) -> int:
        return len(self._items)


def history_head(room: str, complete: bool) -> bytes:
    """The start of a C{history} message of C{room}, up to its C{messages} list."""
    return b'{"type":"history","room":%s,"complete":%s,"messages":[' % (
        json_str(room), b"true" if complete else b"false")


def history_bodies(room: str, bodies: List[bytes], complete: bool) -> List[bytes]:
    """C{room}'s C{history} message(s) holding the message C{bodies}."""
    return split_list_frames(history_head(room, complete), bodies, b"]}", MORE_TAIL)


def split_names(head: bytes, names: Iterable[Tuple[bytes, bool]]) -> List[bytes]:
    """
    Bodies listing C{names} as C{users}, each followed by C{plaintext} (the
    names of that body marked C{True}), split over frames with C{more}.

    @param head: the body up to and including C{"users":[}.
    @param names: C{(name as JSON, plaintext)} pairs (see L{json_str}).
    """
    room = MAX_FRAME - len(head) - 40
    bodies: List[bytes] = []
    users: List[bytes] = []
    plain: List[bytes] = []
    size = 0
    for item, plaintext in names:
        extra = (len(item) + 1) * (2 if plaintext else 1)
        if users and size + extra > room:
            bodies.append(_names_body(head, users, plain, True))
            users, plain, size = [], [], 0
        users.append(item)
        if plaintext:
            plain.append(item)
        size += extra
    bodies.append(_names_body(head, users, plain, False))
    return bodies


def _names_body(head: bytes, users: List[bytes], plain: List[bytes], more: bool) -> bytes:
    tail = b'],"more":true}' if more else b"]}"
    return head + b",".join(users) + b'],"plaintext":[' + b",".join(plain) + tail


def rooms_bodies(rooms: List[Tuple[str, int, str]]) -> List[bytes]:
    """The C{rooms} answer for C{(room, count, topic)} triples, largest first."""
    items = [
        b'{"room":%s,"count":%d,"topic":%s}' % (json_str(name), count, json_str(topic))
        for name, count, topic in rooms
    ]
    return split_list_frames(b'{"type":"rooms","rooms":[', items, b"]}", MORE_TAIL)
