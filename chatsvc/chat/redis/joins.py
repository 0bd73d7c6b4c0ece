# -*- test-case-name: tests.test_redisroom -*-
"""
L{Joins}: a member entering a room, without gap or duplicate.

The C{join} script adds the member to the room and appends an entry to the
room's stream; its reply carries the room (topic, count, members) and its
history as of that entry. The member gets C{room} and C{history} when this
server's reader reaches the entry, and every later event of the room from
there on: whatever is in its history it does not get again live, and
nothing falls between.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ...wire.framing import MAX_FRAME, encode_frame
from .entries import (
    _str,
    history_answer,
    history_bodies,
    history_items,
    history_head_size,
    parse_member,
    room_bodies,
)
from .keys import RoomKeys
from .local import ChatState, LocalMember, LocalRoom
from .scripts import ROOM_EVENTS_KEPT

MAX_ROOM_USERS = 1000


@dataclass
class PendingJoin:
    """A join between its script and its place in the room's stream."""

    info: LocalMember
    room: LocalRoom
    since: Optional[int]
    reset: bool
    deliver: Callable[[List[bytes]], None]
    done: Deferred = field(default_factory=Deferred)
    reply: Optional[list] = None
    waiter: Optional[Deferred] = None


class Joins:
    """
    The joins of this server's members under way.

    @param call: runs a script: C{call(name, keys, args)} -> Deferred.
    @param follow: C{follow(room key, after)}: read the room's stream from there.
    @param position: the last entry of a room's stream the reader has seen.
    """

    def __init__(self, state: ChatState, chat: str, server_id: str, history_size: int,
                 presence_limit: int, call: Callable[..., Deferred],
                 follow: Callable[[str, int], None], now: Callable[[], str],
                 position: Callable[[str], Optional[int]]) -> None:
        self._state = state
        self._chat = chat
        self._server = server_id
        self._size = history_size
        self._limit = presence_limit
        self._call = call
        self._follow = follow
        self._now = now
        self._position = position
        self.pending: Dict[Tuple[str, str], PendingJoin] = {}

    def start(self, info: LocalMember, key: str, spelling: str, since: Optional[int],
              reset: bool, deliver: Callable[[List[bytes]], None]) -> Deferred:
        """
        Send C{info} into room C{key}. C{deliver} gets the C{room} and
        C{history} frames when the reader reaches the join; the result fires
        (with the room's event number and count) after that.
        """
        room = self._state.room(key, spelling)
        room.joining += 1
        p = PendingJoin(info, room, since, reset, deliver)
        self.pending[(key, info.session)] = p
        if reset:  # another epoch's numbers: the newest messages, incomplete
            since = None
        since_arg = "" if since is None else min(since, 1 << 62)
        since_next = "" if since is None else since_arg + 1
        d = self._call("join", RoomKeys(self._chat, key).all, [
            self._server, info.session, info.member.name, "1" if info.plaintext else "0",
            spelling, since_arg, since_next, self._size, ROOM_EVENTS_KEPT, self._limit,
            self._now(), MAX_ROOM_USERS])
        d.addCallbacks(self._answered, self._failed, callbackArgs=(p,), errbackArgs=(p,))
        return p.done

    def _answered(self, reply: list, p: PendingJoin) -> None:
        p.reply = reply
        n = int(reply[1])
        self._follow(p.room.key, n - 1)
        if p.waiter is not None:
            p.waiter.callback(None)
        elif (self._position(p.room.key) or 0) >= n:
            self._complete(p)  # the reader skipped its entry (the stream moved on)

    def passed(self, key: str, n: int) -> None:
        """The reader skipped room C{key}'s entries up to C{n}: complete the joins among them."""
        for (room, _), p in list(self.pending.items()):
            if room == key and p.reply is not None and int(p.reply[1]) <= n:
                self._complete(p)

    def _failed(self, failure: Failure, p: PendingJoin) -> None:
        key = (p.room.key, p.info.session)
        if self.pending.get(key) is p:
            del self.pending[key]
        p.room.joining -= 1
        if not p.room.senders and not p.room.joining:
            self._state.rooms.pop(p.room.key, None)
        if p.waiter is not None:
            p.waiter.errback(failure)
        p.done.errback(failure)

    def reached(self, key: str, session: str) -> Optional[Deferred]:
        """The reader reached the join of C{session} to room C{key} (if it is ours)."""
        p = self.pending.get((key, session))
        if p is None:
            return None
        if p.reply is not None:
            self._complete(p)
            return None
        p.waiter = Deferred()

        def then(_: Any) -> None:
            self._complete(p)

        return p.waiter.addCallbacks(then, lambda f: None)

    def _complete(self, p: PendingJoin) -> None:
        key = (p.room.key, p.info.session)
        if self.pending.get(key) is p:
            del self.pending[key]
        room, reply = p.room, p.reply
        assert reply is not None
        room.joining -= 1
        room.name = _str(reply[2])
        room.count = int(reply[4])
        room.presence = room.count <= self._limit
        room.seq = max(room.seq, int(reply[5]))
        if p.info.member not in self._state.members:
            # It left while joining: it is not in the room here.
            if not room.senders and not room.joining:
                self._state.rooms.pop(room.key, None)
            p.done.callback((int(reply[1]), room.count, _str(reply[3])))
            return
        p.deliver(self._frames(p, reply))
        self._state.enter(p.info, room)
        p.done.callback((int(reply[1]), room.count, _str(reply[3])))

    def _frames(self, p: PendingJoin, reply: list) -> List[bytes]:
        me = (p.info.member.name, p.info.plaintext)
        users = [me] + [u for u in (parse_member(v) for v in reply[8]) if u[0] != me[0]]
        room = p.room
        bodies = room_bodies(room.name, _str(reply[3]), room.count, users, room.presence)
        items = history_items(reply[7])
        limit = MAX_FRAME - history_head_size(room.name)
        items = [(s, b) for s, b in items if len(b) <= limit]
        messages, complete = history_answer(items, p.since, int(reply[5]), int(reply[6]),
                                            self._size, p.reset)
        bodies += history_bodies(room.name, messages, complete)
        return [encode_frame(b) for b in bodies]
