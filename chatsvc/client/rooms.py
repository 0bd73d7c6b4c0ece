# -*- test-case-name: tests.test_client_rooms,tests.test_client_session -*-
"""
The rooms the client is in, without I/O: L{Rooms} keeps, for each room,
the last C{seq} seen, the topic, the members (as far as the server told
them), the unread count; which room is active (where plain lines go);
and who is connected without encryption (PROTOCOL.md 4.8)::

    rooms = Rooms()
    rooms.enter("#dev")          # a RoomState
    rooms.switch("#dev")         # True: the active room
    rooms.key("#DEV")            # the key rooms are compared by

Every collection is bounded, whatever a server sends (L{MAX_ROOMS},
L{MAX_MEMBERS}, L{MAX_PLAINTEXT}).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Set

from ..wire.names import name_key

DEFAULT_ROOM = "#lobby"
"""The room of a version 1 server, which names none."""

MAX_ROOMS = 64
"""Rooms tracked at once (a server allows 20 per client by default)."""

MAX_MEMBERS = 1000
"""Members remembered per room (a C{room} message lists at most 1,000)."""

MAX_PLAINTEXT = 20_000
"""Names remembered as connected without encryption."""

MAX_SEEN = 256
"""Rooms whose last C{seq} is remembered after leaving them."""


def room_key(name: str) -> str:
    """Rooms are compared as names are: C{NFC(casefold(NFC(name)))}."""
    return name_key(name)


def is_room_name(text: str) -> bool:
    """A room name as the client checks it before sending: C{#} and 1 to 32 name characters."""
    if not isinstance(text, str):
        return False
    body = text[1:]
    if not text.startswith("#") or not 0 < len(body) <= 32:
        return False
    return all(ch in "_-." or unicodedata.category(ch)[0] == "L" or unicodedata.category(ch) == "Nd"
               for ch in body)


@dataclass
class RoomState:
    """What the client knows of one room it is in."""

    name: str
    seq: Optional[int] = None
    topic: str = ""
    count: int = 0
    members: Dict[str, str] = field(default_factory=dict)
    unread: int = 0
    presence: bool = True

    def add_member(self, name: str) -> None:
        key = name_key(name)
        if key not in self.members:
            self.count += 1
            if len(self.members) < MAX_MEMBERS:
                self.members[key] = name

    def remove_member(self, name: str) -> bool:
        key = name_key(name)
        if key in self.members:
            del self.members[key]
            self.count = max(self.count - 1, len(self.members))
            return True
        return False

    def set_members(self, names: Iterable[Any], count: Any) -> None:
        self.members = {}
        for name in names:
            if isinstance(name, str) and len(self.members) < MAX_MEMBERS:
                self.members[name_key(name)] = name
        valid = isinstance(count, int) and not isinstance(count, bool) and count >= 0
        self.count = count if valid else len(self.members)


class Rooms:
    """The rooms the client is in, the active one, and the plaintext members."""

    def __init__(self) -> None:
        self._rooms: Dict[str, RoomState] = {}
        self.active: Optional[str] = None
        self.plaintext: Set[str] = set()
        self._seen: Dict[str, int] = {}

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and room_key(name) in self._rooms

    def __len__(self) -> int:
        return len(self._rooms)

    def get(self, name: Optional[str]) -> Optional[RoomState]:
        return self._rooms.get(room_key(name)) if isinstance(name, str) else None

    def names(self) -> List[str]:
        return [state.name for state in self._rooms.values()]

    def states(self) -> List[RoomState]:
        return list(self._rooms.values())

    @property
    def active_state(self) -> Optional[RoomState]:
        return self._rooms.get(self.active) if self.active is not None else None

    @property
    def active_name(self) -> Optional[str]:
        state = self.active_state
        return state.name if state is not None else None

    def enter(self, name: str) -> Optional[RoomState]:
        """Track C{name} (if not yet); C{None} past L{MAX_ROOMS}, or for a
        name that is not a room name (nothing a server sends can put a
        control character into the status line)."""
        if not is_room_name(name):
            return None
        key = room_key(name)
        state = self._rooms.get(key)
        if state is None:
            if len(self._rooms) >= MAX_ROOMS:
                return None
            state = self._rooms[key] = RoomState(name, seq=self._seen.get(key))
        if self.active is None:
            self.active = key
        return state

    def leave(self, name: str) -> None:
        key = room_key(name)
        state = self._rooms.pop(key, None)
        if state is not None and state.seq is not None:
            self._seen[key] = state.seq
            while len(self._seen) > MAX_SEEN:
                del self._seen[next(iter(self._seen))]
        if self.active == key:
            self.active = next(iter(self._rooms), None)

    def keep_only(self, names: Iterable[str]) -> None:
        """After a C{welcome}: the client is in these rooms, and no others."""
        wanted = {room_key(name) for name in names}
        for state in self.states():
            if room_key(state.name) not in wanted:
                self.leave(state.name)

    def switch(self, name: str) -> bool:
        """Make C{name} the active room; C{False} if the client is not in it."""
        key = room_key(name)
        if key not in self._rooms:
            return False
        self.active = key
        self._rooms[key].unread = 0
        return True

    def is_active(self, name: Optional[str]) -> bool:
        return name is None or room_key(name) == self.active or len(self._rooms) <= 1

    # -- members ---------------------------------------------------------------

    def mark_plaintext(self, names: Iterable[Any], flag: bool = True) -> None:
        for name in names:
            if not isinstance(name, str):
                continue
            if not flag:
                self.plaintext.discard(name_key(name))
            elif len(self.plaintext) < MAX_PLAINTEXT:
                self.plaintext.add(name_key(name))

    def is_plaintext(self, name: Any) -> bool:
        return isinstance(name, str) and name_key(name) in self.plaintext

    def gone(self, name: str) -> None:
        """C{name} left the server: out of every room."""
        for state in self._rooms.values():
            state.remove_member(name)
        self.plaintext.discard(name_key(name))

    def renamed(self, old: str, new: str) -> None:
        for state in self._rooms.values():
            if state.remove_member(old):
                state.add_member(new)
        if name_key(old) in self.plaintext:
            self.plaintext.discard(name_key(old))
            self.plaintext.add(name_key(new))

    def plaintext_in(self, state: RoomState) -> int:
        """How many of the room's known members are plaintext."""
        return sum(1 for key in state.members if key in self.plaintext)
