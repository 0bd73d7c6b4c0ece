# -*- test-case-name: tests.test_rooms -*-
"""
What members do in the single-process chat's rooms: join, part, leave,
say, private messages, rename, topics, and the lists they ask for, with
presence that scales (PROTOCOL.md 4.7). No I/O.

L{RoomActions} is the half of L{MemoryChat <chatsvc.chat.memory.MemoryChat>}
that acts once a member is registered; it uses the chat's state (members,
rooms, outbox, message log) and is not used on its own.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from twisted.logger import Logger

from ..wire.errors import RemoteProtocolError
from ..wire.framing import MAX_FRAME, encode_frame
from ..wire.messages import Message, encode
from ..wire.names import InvalidName, normalize
from ..wire.rooms import room_key, room_name
from .common import (
    MAX_PUBLIC_BODY,
    MAX_WELCOME_USERS,
    SILENT_REASONS,
    history_bodies,
    json_str,
    rooms_bodies,
    split_names,
    too_big,
)
from .rooms import ChatRoom

_log = Logger()


def _not_in_room(name: str) -> RemoteProtocolError:
    return RemoteProtocolError("not-in-room", f"you are not in {name}", fatal=False, room=name)


class RoomActions:
    """The requests of registered members (mixed into the memory chat)."""

    # -- presence and the answers to a join ----------------------------------

    def _presence(self, room: ChatRoom, size: int) -> bool:
        """Whether C{room} of C{size} members (the user concerned counted) sends presence."""
        limit = self.presence_limit
        return not limit or size <= limit

    def _enter(self, member: Any, room: ChatRoom, announce: bool) -> None:
        """Put C{member} in C{room}; tell the others if C{announce} and presence is on."""
        room.members[member] = member.send_frame
        mine = self._rooms_of[member]
        if room not in mine:  # (a resumed session is in its rooms already)
            self._rooms_of[member] = mine + (room,)
        self.rooms.entered(room)
        if announce and self._presence(room, len(room.members)):
            joined: Message = {"type": "joined", "room": room.name, "name": member.name,
                               "ts": self._now()}
            if not member.encrypted:
                joined["plaintext"] = True
            self._outbox.to_room(room, encode_frame(encode(joined)))
        self._outbox.joined(room, member)  # not its own joined, nor what came before

    def _answer_join(self, member: Any, room: ChatRoom, since: Optional[int], reset: bool) -> None:
        """Send C{member} the C{room} message(s) and the C{history} of C{room}."""
        self._send_bodies(member, self._room_bodies(room, member))
        if reset and since is not None:
            bodies, _ = room.history.since(None, room.seq)
            complete = False
        else:
            bodies, complete = room.history.since(since, room.seq)
        self._send_bodies(member, history_bodies(room.name, bodies, complete))

    def _room_bodies(self, room: ChatRoom, member: Any) -> List[bytes]:
        head = b'{"type":"room","room":%s,"topic":%s,"count":%d,"presence":%s,"users":[' % (
            json_str(room.name), json_str(room.topic), len(room.members),
            b"true" if self._presence(room, len(room.members)) else b"false")
        listed = self._listed
        names = [(listed[member], not member.encrypted)]
        for other in room.members:
            if len(names) >= MAX_WELCOME_USERS:
                break
            if other is not member:
                names.append((listed[other], not other.encrypted))
        return split_names(head, names)

    def _member_room(self, member: Any, name: object) -> ChatRoom:
        """The room C{name} (C{None}: the default room) that C{member} is in."""
        if name is None:
            name = self.default_room
        name = room_name(name)
        room = self.rooms.get(room_key(name))
        if room is None or member not in room.members:
            raise _not_in_room(name)
        return room

    # -- joining and leaving ----------------------------------------------------

    def join(self, member: Any, room: object) -> None:
        """C{member} joins C{room}, creating it; answers C{room} and C{history}."""
        name = room_name(room)
        key = room_key(name)
        mine = self._rooms_of[member]
        existing = self.rooms.get(key)
        if existing is not None and existing in mine:
            self.flush()  # its history must not repeat what is queued
            self._answer_join(member, existing, None, False)
            return
        limit = self.max_rooms_per_client
        if limit and len(mine) >= limit:
            raise RemoteProtocolError("too-many-rooms", f"a client is in at most {limit} rooms",
                                      fatal=False, room=name)
        opened = self.rooms.open(name, key)
        self._enter(member, opened, announce=True)
        self._answer_join(member, opened, None, False)

    def part(self, member: Any, room: object, reason: Optional[str] = None) -> None:
        """C{member} leaves C{room}: C{parted} to it and (with presence) to the others."""
        left = self._member_room(member, room)
        self.flush()  # what was said while it was there still reaches it
        presence = self._presence(left, len(left.members))
        parted: Message = {"type": "parted", "room": left.name, "name": member.name,
                           "ts": self._now(), "reason": "part"}
        if reason is not None:
            parted["text"] = reason
        frame = _fitting(parted)
        del left.members[member]
        self._rooms_of[member] = tuple(r for r in self._rooms_of[member] if r is not left)
        if presence:
            self._outbox.to_room(left, frame)
        member.send_frame(frame)
        self.rooms.emptied(left)

    def leave(self, member: Any, reason: str, text: Optional[str] = None) -> None:
        """
        Remove C{member} from the chat; unless C{reason} is C{shutdown} or
        C{replaced}, C{left} goes once to every member that shared a room
        with presence on with it. Leaving twice is harmless.
        """
        rooms = self._rooms_of.get(member)
        if rooms is None:
            return
        self.flush()  # what was accepted while it was here still reaches it
        del self._rooms_of[member]
        audience = [room for room in rooms if self._presence(room, len(room.members))]
        for room in rooms:
            del room.members[member]
        self._names.remove(member.name)
        del self._listed[member]
        token = self._token_of.pop(member, None)
        if token is not None:
            del self._tokens[token]
        if reason not in SILENT_REASONS and audience:
            left: Message = {"type": "left", "name": member.name, "reason": reason,
                             "ts": self._now()}
            if text is not None:
                left["text"] = text
            self._to_rooms(audience, _fitting(left))
        for room in rooms:
            self.rooms.emptied(room)

    def _to_rooms(self, rooms: Sequence[ChatRoom], frame: bytes, also: Any = None) -> None:
        """C{frame} once to every member of C{rooms} (and to C{also})."""
        if len(rooms) == 1 and (also is None or also in rooms[0].members):
            self._outbox.to_room(rooms[0], frame)
            return
        audience: Dict[Any, None] = {}
        if also is not None:
            audience[also] = None
        for room in rooms:
            audience.update(dict.fromkeys(room.members))
        self._outbox.to_members(tuple(audience), frame)

    # -- messages -----------------------------------------------------------

    def _append_log(self, body: bytes) -> None:
        if self._log_file is not None:
            try:
                self._log_file.append(body)
            except OSError as e:
                _log.error("message log write failed: {error}", error=e)
                raise RemoteProtocolError(
                    "unavailable", "the server cannot store messages right now; not delivered",
                    fatal=False)

    def say(self, member: Any, room: object, text: str, action: bool = False) -> int:
        """
        A public message from C{member} to C{room} (C{None}: the default
        room); text already checked.

        @return: its C{seq}.
        @raise RemoteProtocolError: C{bad-room}, C{not-in-room}, C{too-long}
            (the encoded message would not fit), C{unavailable} (the log failed).
        """
        target = self._member_room(member, room)
        seq = target.seq + 1
        body = self._logged({"type": "message", "room": target.name, "from": member.name,
                             "text": text, "ts": self._now(), "seq": seq}, action, MAX_PUBLIC_BODY)
        target.seq = seq
        target.history.append(seq, body)
        self._outbox.to_room(target, encode_frame(body))
        return seq

    def _logged(self, message: Message, action: bool, limit: int) -> bytes:
        """
        C{message} (a C{message} or C{private}; with C{action: true} if
        C{action}) encoded, no longer than C{limit}, and in the message log.
        """
        if action:
            message["action"] = True
        body = encode(message)
        if len(body) > limit:
            raise too_big()
        self._append_log(body)
        return body

    def private(self, member: Any, to: object, text: str, action: bool = False) -> int:
        """
        A private message to the member called C{to}, echoed to the sender,
        numbered by the chat's own private counter.

        @raise RemoteProtocolError: C{no-such-user}, C{too-long} or C{unavailable}.
        """
        target = self.find(to)
        if target is None:
            raise RemoteProtocolError("no-such-user", "no user of that name is online", fatal=False)
        seq = self.private_seq + 1
        body = self._logged({"type": "private", "from": member.name, "to": target.name,
                             "text": text, "ts": self._now(), "seq": seq}, action, MAX_FRAME)
        self.private_seq = seq
        self.flush()  # after what was broadcast before it
        frame = encode_frame(body)
        target.send_frame(frame)
        if target is not member:
            member.send_frame(frame)
        return seq

    def rename(self, member: Any, name: object) -> str:
        """
        Rename C{member}; it and everyone sharing a room with it get C{renamed}.

        @raise RemoteProtocolError: C{bad-name} or C{name-taken}.
        """
        try:
            new = normalize(name)
        except InvalidName as e:
            raise RemoteProtocolError("bad-name", str(e), fatal=False)
        old = member.name
        if not self._names.free(new, member):  # in use, or like a name in use (v2)
            raise RemoteProtocolError("name-taken", f"the name {new} is in use", fatal=False)
        if new == old:
            return new
        self._names.remove(old)
        self._names.add(new, member)
        member.name = new
        self._listed[member] = json_str(new)
        frame = encode_frame(encode({"type": "renamed", "old": old, "new": new,
                                     "ts": self._now()}))
        self._to_rooms(self._rooms_of[member], frame, also=member)
        return new

    def set_topic(self, member: Any, room: object, text: str) -> None:
        """Set (C{""}: clear) the topic of a room C{member} is in; text already checked."""
        target = self._member_room(member, room)
        target.topic = text
        self._outbox.to_room(target, encode_frame(encode(
            {"type": "topic", "room": target.name, "text": text, "by": member.name,
             "ts": self._now()})))

    # -- lists ----------------------------------------------------------------

    def rooms_frames(self) -> List[bytes]:
        """The C{rooms} answer: every room with members, largest first."""
        rooms = [(room.name, len(room.members), room.topic) for room in self.rooms.occupied()]
        return [encode_frame(body) for body in rooms_bodies(rooms)]

    def who_frames(self, room: object = None) -> List[bytes]:
        """The C{users} answer for C{room}, or for everyone online."""
        if room is None:
            members = self._names.members()
            head = b'{"type":"users","users":['
        else:
            name = room_name(room)
            found = self.rooms.get(room_key(name))
            if found is None or not found.members:
                raise RemoteProtocolError("no-such-room", f"there is no room {name}",
                                          fatal=False, room=name)
            members = found.members
            head = b'{"type":"users","room":%s,"users":[' % json_str(found.name)
        listed = self._listed
        return [encode_frame(body) for body in split_names(
            head, ((listed[m], not m.encrypted) for m in members))]


def _fitting(message: Message) -> bytes:
    """C{message} as a frame, its C{text} left out if it would not fit one."""
    body = encode(message)
    if len(body) > MAX_FRAME:  # only with a huge --max-message
        del message["text"]
        body = encode(message)
    return encode_frame(body)
