# -*- test-case-name: tests.test_redisroom -*-
"""
L{EventApplier}: what each stream entry means for this server's members.

A room's message is framed once and the same frame goes to every local
member of the room. Presence (C{joined}, C{parted}, C{left}) goes out only
where the entry says the room was small enough (the script decided, so
every server decides alike); C{left} and C{renamed} come through each room
the member was in, and each local member gets them once.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ...wire.framing import encode_frame
from .entries import Entry
from .joins import Joins
from .local import ChatState, LocalRoom

_log = Logger()


class EventApplier:
    """
    @param room_of_stream: maps a room's event stream key to its room key.
    @param unfollow: called with a room key no local member is in any more.
    """

    def __init__(self, state: ChatState, server_id: str, joins: Joins,
                 room_of_stream: Dict[str, str], unfollow: Callable[[str], None]) -> None:
        self._state = state
        self._me = server_id
        self._joins = joins
        self._room_of = room_of_stream
        self._unfollow = unfollow
        self._chat_handlers = {"p": self._private, "j": self._registered, "l": self._gone,
                               "n": self._renamed, "r": self._resumed}
        self._room_handlers = {"m": self._message, "j": self._joined, "x": self._parted,
                               "t": self._topic, "n": self._room_renamed, "a": self._again,
                               "r": self._again}

    def room_entry(self, stream: str, entry: Entry) -> Optional[Deferred]:
        key = self._room_of.get(stream)
        room = self._state.rooms.get(key) if key is not None else None
        if room is None:
            return None
        handler = self._room_handlers.get(entry.kind)
        if handler is None:
            _log.warn("unknown room event kind (event {n})", n=entry.n)
            return None
        return handler(room, entry)

    def chat_entry(self, entry: Entry) -> Optional[Deferred]:
        handler = self._chat_handlers.get(entry.kind)
        if handler is None:
            _log.warn("unknown chat event kind (event {n})", n=entry.n)
            return None
        handler(entry)
        return None

    # -- rooms ----------------------------------------------------------------

    def _message(self, room: LocalRoom, entry: Entry) -> None:
        room.seq = entry.seq
        frame = encode_frame(entry.body)
        for send in room.senders.values():
            send(frame)

    def _joined(self, room: LocalRoom, entry: Entry) -> Optional[Deferred]:
        room.count = int(entry.get(b"c") or room.count)
        room.presence = entry.presence
        session = entry.get(b"i") or ""
        if entry.presence and entry.body:
            frame = encode_frame(entry.body)
            for member, send in room.senders.items():
                if member.session_id != session:
                    send(frame)
        if entry.get(b"v") == self._me:
            return self._joins.reached(room.key, session)
        return None

    def _again(self, room: LocalRoom, entry: Entry) -> Optional[Deferred]:
        if entry.get(b"v") == self._me:
            return self._joins.reached(room.key, entry.get(b"i") or "")
        return None

    def _parted(self, room: LocalRoom, entry: Entry) -> None:
        room.count = int(entry.get(b"c") or 0)
        why = entry.get(b"w")
        session = entry.get(b"i") or ""
        leaver = self._state.sessions.get(session) if entry.get(b"v") == self._me else None
        if why == "p":
            frame = encode_frame(entry.body)
            if entry.presence:
                for send in room.senders.values():
                    send(frame)
            if leaver is not None and leaver in room.senders:
                if not entry.presence:
                    room.senders[leaver](frame)
                info = self._state.members.get(leaver)
                if info is not None and self._state.leave_room(info, room.key) is not None:
                    self._unfollow(room.key)
        elif why == "l" and entry.presence:
            frame = encode_frame(entry.body)
            event = entry.get(b"d") or session
            told = self._state.told
            for member, send in room.senders.items():
                if told.first(event, member):
                    send(frame)

    def _topic(self, room: LocalRoom, entry: Entry) -> None:
        frame = encode_frame(entry.body)
        for send in room.senders.values():
            send(frame)

    def _room_renamed(self, room: LocalRoom, entry: Entry) -> None:
        frame = encode_frame(entry.body)
        event = entry.get(b"d") or ""
        told = self._state.told
        for member, send in room.senders.items():
            if told.first(event, member):
                send(frame)

    # -- the chat ---------------------------------------------------------------

    def _private(self, entry: Entry) -> None:
        self._state.pseq = max(self._state.pseq, entry.seq)
        sessions = self._state.sessions
        target = sessions.get(entry.get(b"i")) if entry.get(b"v") == self._me else None
        sender = sessions.get(entry.get(b"fi")) if entry.get(b"fv") == self._me else None
        if target is None and sender is None:
            return
        frame = encode_frame(entry.body)
        for member in (target, sender) if sender is not target else (target,):
            info = self._state.members.get(member)
            if info is not None:
                info.send(frame)

    def _registered(self, entry: Entry) -> None:
        self._state.names[entry.get(b"key") or ""] = (entry.get(b"name") or "",
                                                      entry.get(b"p") == "1")

    def _gone(self, entry: Entry) -> None:
        self._state.names.pop(entry.get(b"key") or "", None)

    def _renamed(self, entry: Entry) -> None:
        names = self._state.names
        _, plaintext = names.pop(entry.get(b"ok") or "", ("", False))
        key, name = entry.get(b"key") or "", entry.get(b"name") or ""
        names[key] = (name, plaintext)
        if entry.get(b"v") != self._me:
            return
        member = self._state.sessions.get(entry.get(b"i"))
        info = self._state.members.get(member)
        if info is None:
            return
        member.name = name
        info.key = key
        if self._state.told.first(entry.get(b"d") or "", member):
            info.send(encode_frame(entry.body))

    def _resumed(self, entry: Entry) -> None:
        self._state.names[entry.get(b"key") or ""] = (entry.get(b"name") or "",
                                                      entry.get(b"p") == "1")
        if entry.get(b"ov") != self._me:
            return
        old = self._state.sessions.get(entry.get(b"oi"))
        info = self._state.members.get(old)
        if info is None or info.hello == entry.get(b"pi"):
            return  # resumed on this server: the old one is gone already
        _, emptied = self._state.drop(old)
        for room in emptied:
            self._unfollow(room.key)
        old.replaced()
