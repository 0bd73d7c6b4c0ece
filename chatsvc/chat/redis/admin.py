# -*- test-case-name: tests.test_redisadmin -*-
"""
L{RedisRoomAdmin}: the operator's room controls (L{IChatAdmin}) for
L{RedisChat <chatsvc.chat.redis.room.RedisChat>}, mixed into it. They act
on the whole chat, whichever server's admin socket is asked: the rooms are
the chat's room index, and a topic or a cleared history is the room's in
Redis, which every server's members see.

Each answer comes from Redis, so each method returns a Deferred (L{IChatAdmin}
allows it): C{room_list} reads the index (one script) and then the length
of each room's history (one C{XLEN} per room, pipelined: every room in its
own slot); C{operator_topic} and C{clear_room} are one room script each.
While Redis is unreachable they raise (or fail with) L{StoreUnreachable}, a
C{ValueError} whose text the operator is shown.
"""

from __future__ import annotations

from typing import Any, Dict, List

from twisted.internet.defer import Deferred, gatherResults
from zope.interface import implementer

from ...wire.errors import RemoteProtocolError
from ..common import json_str
from ..interfaces import IChatAdmin
from ..operators import OPERATOR
from .entries import _str
from .keys import RoomKeys, parse_room
from .link import connection_errors
from .scripts import ROOM_EVENTS_KEPT


class StoreUnreachable(ValueError):
    """Redis cannot be asked right now (the operator is told so and may try again)."""

    def __init__(self) -> None:
        ValueError.__init__(self, "the chat store (Redis) is unreachable; try again shortly")


def _unreachable(failure: Any) -> None:
    failure.trap(*connection_errors())
    raise StoreUnreachable()


def _room_key(room: object) -> str:
    """The key of C{room}; C{KeyError} if it is not a room name (so there is no such room)."""
    try:
        return parse_room(room)[1]
    except RemoteProtocolError:
        raise KeyError(room)


def topic_parts(text: str, ts: str) -> List[bytes]:
    """An operator's C{topic} body, cut where the script puts the room's name."""
    return [b'{"type":"topic","room":',
            b',"text":' + json_str(text) + b',"by":' + json_str(OPERATOR) + b',"ts":'
            + json_str(ts) + b"}"]


@implementer(IChatAdmin)
class RedisRoomAdmin:
    """Mixed into L{RedisChat <chatsvc.chat.redis.room.RedisChat>}: it provides C{call}, ..."""

    keys: Any
    commands: Any
    history_size: int

    def member_rooms(self, member: Any) -> List[str]:
        return self.rooms_of(member)  # type: ignore[attr-defined]

    def _asked(self) -> None:
        if not self.commands.ready:
            raise StoreUnreachable()

    def room_list(self) -> Deferred:
        """
        A Deferred of every room with members in the chat (the room index):
        C{{room, count, topic, history}}, largest first; C{history} is what
        a newcomer would get (at most the history size).
        """
        self._asked()
        return Deferred.fromCoroutine(self._room_list()).addErrback(_unreachable)

    async def _room_list(self) -> List[Dict[str, Any]]:
        flat = await self.call("rooms", self.keys.all, [])  # type: ignore[attr-defined]
        rows = []
        for i in range(0, len(flat) - 1, 2):
            count, name, topic = _str(flat[i + 1]).split("|", 2)
            rows.append({"room": name, "count": int(count), "topic": topic,
                         "key": _str(flat[i])})
        lengths = await gatherResults([
            self.commands.command("XLEN", RoomKeys(self.keys.chat, row.pop("key")).history)
            for row in rows])
        for row, held in zip(rows, lengths):
            row["history"] = min(int(held), self.history_size)
        rows.sort(key=lambda row: (-row["count"], row["room"]))
        return rows

    def operator_topic(self, room: str, text: str) -> Deferred:
        """
        Set C{room}'s topic as the operator; its members on every server
        get C{topic} with C{"by": "(operator)"}. The Deferred fails with
        C{KeyError} if the room has no members.
        """
        key = _room_key(room)
        self._asked()
        head, tail = topic_parts(text, self.now())  # type: ignore[attr-defined]
        d = self.call("operator_topic", RoomKeys(self.keys.chat, key).all,  # type: ignore
                      [text, head, tail, ROOM_EVENTS_KEPT])

        def done(reply: list) -> None:
            if int(reply[0]) < 0:
                raise KeyError(room)
            self.update_index(key, int(reply[0]), int(reply[1]), text,  # type: ignore
                              name=_str(reply[2]))

        return d.addCallback(done).addErrback(_unreachable)

    def clear_room(self, room: str) -> Deferred:
        """
        Forget C{room}'s history on every server: its members stay, its
        C{seq} carries on, and a C{since} before the cut is answered
        C{complete: false}. A Deferred of how many messages were forgotten
        (as L{room_list} counts them); it fails with C{KeyError} if the
        room has no members.
        """
        key = _room_key(room)
        self._asked()
        d = self.call("clear", RoomKeys(self.keys.chat, key).all, [])  # type: ignore

        def done(held: Any) -> int:
            if int(held) < 0:
                raise KeyError(room)
            return min(int(held), self.history_size)

        return d.addCallback(done).addErrback(_unreachable)
