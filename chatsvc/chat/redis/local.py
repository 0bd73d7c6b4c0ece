# -*- test-case-name: tests.test_redisroom -*-
"""
What one server knows of the chat (pure: no I/O): its own members and the
rooms they are in, and everyone's names as the chat's event stream told
them. L{chatsvc.chat.redis.events} keeps it up to date.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from ...wire.names import name_key


@dataclass
class LocalMember:
    """
    One registered member of this server.

    @ivar rooms: the keys of the rooms it is in, in the order it joined them.
    @ivar send: where its frames go: C{member.send_frame}, or a buffer while
        its C{hello} is answered.
    @ivar hello: the id its C{hello} was sent to Redis with (tells a resume
        on this server from the session it replaced).
    """

    member: Any
    session: str
    key: str
    token: str
    plaintext: bool
    hello: str
    send: Callable[[bytes], None]
    rooms: List[str] = field(default_factory=list)


class LocalRoom:
    """A room that at least one member of this server is in (or joining)."""

    def __init__(self, key: str, name: str) -> None:
        self.key = key
        self.name = name
        self.senders: Dict[Any, Callable[[bytes], None]] = {}
        self.seq = 0
        self.count = 0
        self.presence = True
        self.joining = 0  # joins sent, not yet in the stream


class Told:
    """
    Who was told an event that comes through several rooms (C{left},
    C{renamed}): each member gets it once. Bounded: the oldest are forgotten.
    """

    def __init__(self, most: int = 4096) -> None:
        self._most = most
        self._seen: "OrderedDict[str, set]" = OrderedDict()

    def first(self, event: str, member: Any) -> bool:
        """True the first time C{member} is told C{event}."""
        told = self._seen.get(event)
        if told is None:
            told = self._seen[event] = set()
            if len(self._seen) > self._most:
                self._seen.popitem(last=False)
        if member in told:
            return False
        told.add(member)
        return True


class ChatState:
    """This server's members and rooms, and everyone's names."""

    def __init__(self) -> None:
        self.members: Dict[Any, LocalMember] = {}
        self.sessions: Dict[str, Any] = {}
        self.rooms: Dict[str, LocalRoom] = {}
        self.names: Dict[str, Tuple[str, bool]] = {}  # name key -> (name, plaintext)
        self.told = Told()
        self.pseq = 0

    def add(self, info: LocalMember) -> None:
        self.members[info.member] = info
        self.sessions[info.session] = info.member

    def room(self, key: str, name: str) -> LocalRoom:
        """The local room C{key}, made if this server had none."""
        room = self.rooms.get(key)
        if room is None:
            room = self.rooms[key] = LocalRoom(key, name)
        return room

    def enter(self, info: LocalMember, room: LocalRoom) -> None:
        room.senders[info.member] = info.send
        if room.key not in info.rooms:
            info.rooms.append(room.key)

    def leave_room(self, info: LocalMember, key: str) -> Optional[LocalRoom]:
        """Take C{info} out of room C{key}; the room if no local member is left in it."""
        if key in info.rooms:
            info.rooms.remove(key)
        room = self.rooms.get(key)
        if room is None:
            return None
        room.senders.pop(info.member, None)
        if not room.senders and not room.joining:
            del self.rooms[key]
            return room
        return None

    def drop(self, member: Any) -> Tuple[Optional[LocalMember], List[LocalRoom]]:
        """Forget C{member}: its record, and the rooms no local member is left in."""
        info = self.members.pop(member, None)
        if info is None:
            return None, []
        if self.sessions.get(info.session) is member:
            del self.sessions[info.session]
        emptied = []
        for key in list(info.rooms):
            room = self.leave_room(info, key)
            if room is not None:
                emptied.append(room)
        info.rooms = list(info.rooms)
        return info, emptied

    def set_sender(self, info: LocalMember, send: Callable[[bytes], None]) -> None:
        info.send = send
        for key in info.rooms:
            room = self.rooms.get(key)
            if room is not None and info.member in room.senders:
                room.senders[info.member] = send

    def find(self, name: object) -> Optional[Any]:
        if not isinstance(name, str):
            return None
        key = name_key(name)
        for member, info in self.members.items():
            if info.key == key:
                return member
        return None

    def room_names(self, info: LocalMember) -> List[str]:
        return [self.rooms[k].name for k in info.rooms if k in self.rooms]
