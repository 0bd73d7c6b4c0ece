# -*- test-case-name: tests.test_rooms -*-
"""
The rooms of the single-process chat: each room's members, C{seq}, history
and topic (L{ChatRoom}), and the directory that creates and forgets them
within the server's room limit (L{RoomDirectory}). No I/O.

A room exists while it has members. An empty room's history (and topic) is
kept so that a client coming back can catch up, until the room limit needs
its place: then the oldest empty room is forgotten, and its last C{seq} is
remembered, so that a room made again under that name continues its
numbering (PROTOCOL.md 4.5, 4.7).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ..wire.errors import RemoteProtocolError
from .common import History

MAX_REMEMBERED_SEQS = 100_000
"""How many forgotten rooms' last C{seq} are remembered one by one; past
that, the oldest are folded into one floor that every new room starts from
(its numbering then skips ahead, but never starts again)."""


class ChatRoom:
    """
    One room.

    @ivar name: its spelling, as its creator wrote it.
    @ivar key: its name's comparison key.
    @ivar members: member -> its C{send_frame}, in the order they joined.
    @ivar seq: the C{seq} of its latest message.
    @ivar topic: its topic (C{""}: none).
    """

    __slots__ = ("name", "key", "members", "seq", "history", "topic")

    def __init__(self, name: str, key: str, history_size: int, seq: int = 0) -> None:
        self.name = name
        self.key = key
        self.members: Dict[Any, Callable[[bytes], None]] = {}
        self.seq = seq
        self.history = History(history_size)
        self.topic = ""
        if seq:
            # Its earlier messages are not held here any more.
            self.history.dropped_upto = seq

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return f"<ChatRoom {self.name} {len(self.members)} members, seq {self.seq}>"


class RoomDirectory:
    """
    Every room the server holds, with members or with kept history.

    @param history_size: messages kept per room.
    @param limit: rooms held at most (0: no limit).
    @param pinned: the key of a room never forgotten (the default room).
    """

    def __init__(self, history_size: int, limit: int = 10_000, pinned: Optional[str] = None) -> None:
        self.history_size = history_size
        self.limit = limit
        self.pinned = pinned
        self._rooms: Dict[str, ChatRoom] = {}
        self._empty: "OrderedDict[str, None]" = OrderedDict()  # oldest first
        self._forgotten: "OrderedDict[str, int]" = OrderedDict()  # key -> last seq
        self._floor = 0

    def __len__(self) -> int:
        return len(self._rooms)

    def get(self, key: str) -> Optional[ChatRoom]:
        return self._rooms.get(key)

    def __iter__(self) -> Iterator[ChatRoom]:
        return iter(list(self._rooms.values()))

    def occupied(self) -> List[ChatRoom]:
        """The rooms that have members, largest first."""
        rooms = [room for room in self._rooms.values() if room.members]
        rooms.sort(key=lambda room: -len(room.members))
        return rooms

    def open(self, name: str, key: str) -> ChatRoom:
        """
        The room C{key}, made (as C{name}) if the server does not hold it.

        @raise RemoteProtocolError: C{too-many-rooms} if the server holds
            its limit of rooms and none of them is empty.
        """
        room = self._rooms.get(key)
        if room is not None:
            return room
        if self.limit and len(self._rooms) >= self.limit and not self._forget_oldest_empty():
            raise RemoteProtocolError(
                "too-many-rooms", f"the server holds its limit of {self.limit} rooms",
                fatal=False, room=name)
        seq = self._forgotten.pop(key, self._floor)
        room = self._rooms[key] = ChatRoom(name, key, self.history_size, seq)
        return room

    def restore(self, name: str, key: str, seq: int, recent: List[Tuple[int, bytes]],
                dropped_upto: int) -> ChatRoom:
        """
        Hold room C{key} as the message log left it: empty, its last C{seq},
        its C{recent} messages C{(seq, body)} oldest first, and the highest
        C{seq} no longer held.
        """
        room = self._rooms.get(key)
        if room is None:
            room = self._rooms[key] = ChatRoom(name, key, self.history_size)
        room.seq = max(room.seq, seq)
        for item_seq, body in recent:
            room.history.append(item_seq, body)
        room.history.dropped_upto = max(room.history.dropped_upto, dropped_upto)
        self.emptied(room)
        return room

    def entered(self, room: ChatRoom) -> None:
        """C{room} has members again."""
        self._empty.pop(room.key, None)

    def emptied(self, room: ChatRoom) -> None:
        """C{room}'s last member left: keep its history while there is room."""
        if room.members or room.key == self.pinned:
            return
        if not len(room.history) and not room.topic:
            self._forget(room.key)
            return
        self._empty[room.key] = None
        self._empty.move_to_end(room.key)
        if self.limit and len(self._rooms) > self.limit:
            self._forget_oldest_empty()

    def _forget_oldest_empty(self) -> bool:
        if not self._empty:
            return False
        key, _ = self._empty.popitem(last=False)
        self._forget(key)
        return True

    def _forget(self, key: str) -> None:
        room = self._rooms.pop(key, None)
        self._empty.pop(key, None)
        if room is None or not room.seq:
            return
        forgotten = self._forgotten
        forgotten[key] = room.seq
        forgotten.move_to_end(key)
        while len(forgotten) > MAX_REMEMBERED_SEQS:
            _, seq = forgotten.popitem(last=False)
            self._floor = max(self._floor, seq)
