# -*- test-case-name: tests.test_redisroom -*-
"""
L{RoomRequests}: the requests of a registered member (C{say}, C{msg},
C{nick}, C{join}, C{part}, C{topic}, C{who}, C{rooms}) for
L{chatsvc.chat.redis.room.RedisChat}. Each is one script in one slot (a
rename or a part adds scripts in the other slots, sent at once, not waited
for); the answers and echoes come from the streams.
"""

from __future__ import annotations

import itertools
from typing import Any, List, Optional

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ...wire.errors import RemoteProtocolError
from ...wire.framing import MAX_FRAME, encode_frame
from ...wire.messages import Message, encode
from ...wire.names import InvalidName, name_key, name_keys, normalize
from ..common import MAX_PUBLIC_BODY
from .entries import (
    MAX_NAME_BYTES,
    MAX_SEQ_DIGITS,
    _str,
    message_head,
    parse_member,
    private_parts,
    rooms_bodies,
    split_rooms,
    users_bodies,
)
from .keys import RoomKeys, parse_room
from .ledger import unavailable
from .link import connection_errors
from .scripts import EVENTS_KEPT, ROOM_EVENTS_KEPT

_renames = itertools.count(1)


def _error(code: str, text: str) -> RemoteProtocolError:
    return RemoteProtocolError(code, text, fatal=False)


def _too_big() -> RemoteProtocolError:
    return _error("too-long", "the message would not fit a frame; nothing delivered")


def _not_in(room: str) -> RemoteProtocolError:
    return _error("not-in-room", f"you are not in {room}")


def _as_unavailable(failure: Failure) -> None:
    failure.trap(*connection_errors())
    raise unavailable("the chat store did not answer; try again")


class RoomRequests:
    """Mixed into L{RedisChat}: it provides C{state}, C{call}, C{ledger}, ..."""

    state: Any
    keys: Any
    server_id: str
    commands: Any
    ledger: Any
    joins: Any
    presence_limit: int
    max_rooms_per_client: int
    max_rooms: int
    history_size: int
    default_room: str

    def _room_of(self, member: Any, room: object) -> Any:
        """The local room C{room} (C{None}: the default) that C{member} is in."""
        spelling, key = parse_room(self.default_room if room is None else room)
        info = self.state.members.get(member)
        local = self.state.rooms.get(key)
        if info is None or key not in info.rooms or local is None:
            raise _not_in(spelling)
        return info, local

    def _parse(self, room: object) -> Any:
        return parse_room(room)

    def say(self, member: Any, room: object, text: str, action: bool = False) -> Deferred:
        """
        Append a message to C{room}; every member of it on every server (the
        sender included) gets it from the room's stream.

        @raise RemoteProtocolError: C{bad-room}, C{not-in-room}, C{too-long},
            C{unavailable}.
        @return: a Deferred that fires with its C{seq} once Redis has it (0
            if it was a re-sent request that Redis had applied already).
        """
        if room is not None:
            self._parse(room)
        info, local = self._room_of(member, room)
        head = message_head(local.name, member.name, text, self.now(), action)
        if len(head) + MAX_SEQ_DIGITS + 1 > MAX_PUBLIC_BODY:  # as the single-process chat
            raise _too_big()
        d = self.ledger.send("say", RoomKeys(self.keys.chat, local.key).all, [
            self.server_id, 0, info.session, head, self.history_size, ROOM_EVENTS_KEPT])

        def said(reply: list) -> int:
            if int(reply[0]) == -2:
                raise _not_in(local.name)
            return int(reply[0])

        return d.addCallback(said)

    def private(self, member: Any, to: object, text: str, action: bool = False) -> Deferred:
        """
        Send a private message to whoever holds C{to}, on any server; the
        sender gets the echo from the chat's stream.

        @raise RemoteProtocolError: C{no-such-user}, C{too-long}, C{unavailable}.
        """
        nobody = _error("no-such-user", "no user of that name is online")
        info = self.state.members.get(member)
        if not isinstance(to, str) or info is None or name_key(to) not in self.state.names:
            raise nobody
        part1, part2 = private_parts(member.name, text, self.now(), action)
        if len(part1) + len(part2) + MAX_NAME_BYTES + 2 + MAX_SEQ_DIGITS + 1 > MAX_FRAME:
            raise _too_big()

        def sent(reply: list) -> int:
            if int(reply[0]) < 0:
                raise nobody
            return int(reply[0])

        d = self.ledger.send("private", self.keys.all, [
            self.server_id, 0, info.session, name_key(to), part1, part2, EVENTS_KEPT])
        return d.addCallback(sent)

    def rename(self, member: Any, name: object) -> Any:
        """
        Rename C{member}: the chat's C{rename} first (the name is unique
        there), then C{rename_in} in each of its rooms.

        @raise RemoteProtocolError: C{bad-name}, C{name-taken}, C{unavailable}.
        @return: the new name, or a Deferred that fires with it.
        """
        try:
            new = normalize(name)
        except InvalidName as e:
            raise _error("bad-name", str(e))
        info = self.state.members[member]
        new_key, new_alike = name_keys(new)
        if new_key != info.key and new_key in self.state.names:
            raise _error("name-taken", f"the name {new} is in use")
        if new == member.name:
            return new
        if not self.commands.ready:
            raise unavailable()
        body = encode({"type": "renamed", "old": member.name, "new": new, "ts": self.now()})
        event = f"{info.session}/n{next(_renames)}"

        def answered(reply: list) -> str:
            status = _str(reply[0])
            if status == "taken":
                raise _error("name-taken", f"the name {new} is in use")
            if status == "gone":
                raise unavailable("the chat store does not know you right now; try again")
            if status == "ok":
                if member in self.state.members:
                    member.name = new
                    info.key = new_key
                for room in split_rooms(reply[1]):
                    self.call("rename_in", RoomKeys(self.keys.chat, room).all, [
                        info.session, new, body, event, ROOM_EVENTS_KEPT]).addErrback(
                            lambda f: None)
            return new

        d = self.call("rename", self.keys.all, [
            self.server_id, info.session, info.key, new_key, new, EVENTS_KEPT, info.token,
            body, event, new_alike, name_keys(member.name)[1]])
        return d.addCallbacks(answered, _as_unavailable)

    def join(self, member: Any, room: object) -> Deferred:
        """
        C{member} joins C{room} (created if need be): C{claim} in the chat's
        slot (the limits, and the session's list for a resume elsewhere),
        then C{join} in the room's; C{room} and C{history} come with the
        room's stream.

        @raise RemoteProtocolError: C{bad-room}, C{too-many-rooms}, C{unavailable}.
        """
        spelling, key = self._parse(room)
        info = self.state.members[member]
        again = key in info.rooms
        if not again and len(info.rooms) >= self.max_rooms_per_client:
            raise _error("too-many-rooms", f"at most {self.max_rooms_per_client} rooms per client")
        if not self.commands.ready:
            raise unavailable()
        return Deferred.fromCoroutine(self._join(info, spelling, key, again))

    async def _join(self, info: Any, spelling: str, key: str, again: bool) -> None:
        try:
            if not again:
                claim = _str(await self.call("claim", self.keys.all, [
                    info.session, key, self.max_rooms_per_client, self.max_rooms]))
                if claim == "full":
                    raise _error("too-many-rooms", "a client is in at most "
                                 f"{self.max_rooms_per_client} rooms")
                if claim == "chat-full":
                    raise _error("too-many-rooms", f"the chat holds its limit of "
                                 f"{self.max_rooms} rooms")
                if claim != "ok":
                    raise unavailable("the chat store does not know you right now; try again")

            def deliver(frames: List[bytes]) -> None:
                for frame in frames:
                    info.member.send_frame(frame)

            n, count, topic = await self.joins.start(info, key, spelling, None, False, deliver)
        except connection_errors():
            raise unavailable("the chat store did not answer; try again")
        self.update_index(key, n, count, topic)

    def part(self, member: Any, room: object, reason: Optional[str] = None) -> Deferred:
        """
        C{member} leaves C{room}: C{part} in the room's slot (everyone there,
        the parter included, gets C{parted} from the stream), then
        C{unclaim} in the chat's, sent at once.

        @raise RemoteProtocolError: C{bad-room}, C{not-in-room}, C{unavailable}.
        """
        self._parse(room)
        info, local = self._room_of(member, room)
        if not self.commands.ready:
            raise unavailable()
        message: Message = {"type": "parted", "room": local.name, "name": member.name,
                            "ts": self.now(), "reason": "part"}
        if reason is not None:
            message["text"] = reason
        d = self.call("part", RoomKeys(self.keys.chat, local.key).all, [
            self.server_id, info.session, encode(message), ROOM_EVENTS_KEPT,
            self.presence_limit, "p", info.session])
        self.call("unclaim", self.keys.all, [info.session, local.key]).addErrback(lambda f: None)

        def parted(reply: list) -> None:
            if int(reply[0]):
                self.update_index(local.key, int(reply[1]), int(reply[2]))

        return d.addCallbacks(parted, _as_unavailable)

    def set_topic(self, member: Any, room: object, text: str) -> Deferred:
        """
        Set C{room}'s topic; its members get C{topic} from the stream.

        @raise RemoteProtocolError: C{bad-room}, C{not-in-room}, C{unavailable}.
        """
        self._parse(room)
        info, local = self._room_of(member, room)
        if not self.commands.ready:
            raise unavailable()
        body = encode({"type": "topic", "room": local.name, "text": text, "by": member.name,
                       "ts": self.now()})
        d = self.call("topic", RoomKeys(self.keys.chat, local.key).all, [
            info.session, text, body, ROOM_EVENTS_KEPT])

        def done(reply: list) -> None:
            if int(reply[0]) == -2:
                raise _not_in(local.name)
            self.update_index(local.key, int(reply[0]), int(reply[1]), text)

        return d.addCallbacks(done, _as_unavailable)

    def who_frames(self, room: object = None) -> Any:
        """
        The C{users} answer: everyone online (known here, frames), or the
        members of C{room} (asked of Redis: a Deferred of frames).

        @raise RemoteProtocolError: C{bad-room}, C{no-such-room}, C{unavailable}.
        """
        if room is None:
            users = list(self.state.names.values())
            return [encode_frame(b) for b in users_bodies(None, users)]
        spelling, key = self._parse(room)
        if not self.commands.ready:
            raise unavailable()

        def answered(reply: list) -> List[bytes]:
            members = [parse_member(v) for v in reply[3]]
            if not members:
                raise _error("no-such-room", f"there is no room {spelling}")
            name = _str(reply[0]) or spelling
            return [encode_frame(b) for b in users_bodies(name, members)]

        d = self.call("who", RoomKeys(self.keys.chat, key).all, [])
        return d.addCallbacks(answered, _as_unavailable)

    def rooms_frames(self) -> Deferred:
        """The C{rooms} answer (a Deferred of frames): every room with members, largest first."""
        if not self.commands.ready:
            raise unavailable()
        d = self.call("rooms", self.keys.all, [])
        return d.addCallbacks(lambda flat: [encode_frame(b) for b in rooms_bodies(flat)],
                              _as_unavailable)
