# -*- test-case-name: tests.test_room -*-
"""
The single-process chat: who is here, their names, the rooms they are in,
each room's message order (C{seq}) and history, and the fan-out. No I/O.

It provides L{IChat} and talks to its members only through L{IChatMember}
(as C{twisted.words}' groups call C{IChatClient.receive}); it never touches
a transport. A public message is encoded once and the same frame is handed
to every member of its room (L{Outbox})::

    chat = MemoryChat(clock, history_size=50, message_log=None)
    chat.register(member, name="alice", rooms=["#lobby", "#dev"])
    chat.say(member, "#dev", "hello")          # everyone in #dev gets it
    chat.leave(member, "quit", text="bye")
"""

from __future__ import annotations

import itertools
import os
import secrets
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from twisted.logger import Logger
from zope.interface import implementer

from ..wire.errors import RemoteProtocolError
from ..wire.framing import MAX_FRAME, encode_frame
from ..wire.messages import Message, encode, timestamp
from ..wire.names import InvalidName, normalize, with_suffix
from ..wire.rooms import hello_rooms, room_key, room_name, since_map
from .common import MAX_WELCOME_USERS, History, NameTable, json_str
from .fanout import Outbox
from .interfaces import IChat, IEndOfTurn
from .actions import RoomActions
from .operators import OperatorActions
from .rooms import ChatRoom, RoomDirectory

_log = Logger()


def new_epoch() -> str:
    """A fresh history epoch (PROTOCOL.md 4.5)."""
    return secrets.token_urlsafe(9)


@implementer(IEndOfTurn)
class NextTurn:
    """
    The end of turn of a chat made without the server's
    (L{chatsvc.server.turns.end_of_turn}): a C{callLater(0)} per scheduled
    callable, each scheduled at most once at a time (as the outbox does).
    Enough for tests and benchmarks; a server passes its own, so that a
    broadcast is encrypted in the same pass.
    """

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._pending: Dict[Callable[[], object], Any] = {}

    def schedule(self, f: Callable[[], object]) -> None:
        if f not in self._pending:
            self._pending[f] = self._clock.callLater(0, self._run, f)

    def cancel(self, f: Callable[[], object]) -> None:
        delayed = self._pending.pop(f, None)
        if delayed is not None:
            delayed.cancel()

    def _run(self, f: Callable[[], object]) -> None:
        del self._pending[f]
        f()


@implementer(IChat)
class MemoryChat(RoomActions, OperatorActions):
    """
    One chat in one process.

    @param clock: an L{IReactorTime} for timestamps and the end of the turn.
    @param history_size: public messages kept per room for C{history}.
    @param message_log: an optional L{chatsvc.server.msglog.MessageLog};
        every message is appended to it before anyone is sent it, and the
        rooms, their C{seq} and history, and the epoch are restored from it.
    @param motd: an optional message of the day for C{welcome}.
    @param default_room: the room of version 1 clients.
    @param presence_limit: rooms larger than this send no presence (4.7).
    @param max_rooms: rooms the server holds at most (0: no limit).
    @param max_rooms_per_client: rooms a client is in at most (0: no limit).
    @param end_of_turn: the L{IEndOfTurn} whose pass hands out each turn's
        broadcasts: the server's (L{chatsvc.server.turns.end_of_turn}), or
        by default a L{NextTurn} on C{clock}.
    """

    available = True

    def __init__(self, clock: Any, history_size: int = 50, message_log: Any = None,
                 motd: Optional[str] = None, default_room: str = "#lobby",
                 presence_limit: int = 1000, max_rooms: int = 10_000,
                 max_rooms_per_client: int = 20, end_of_turn: Any = None) -> None:
        self._clock = clock
        self._log_file = message_log
        self.motd = motd
        self.default_room = room_name(default_room)
        self._default_key = room_key(self.default_room)
        self.presence_limit = presence_limit
        self.max_rooms_per_client = max_rooms_per_client
        self._names = NameTable()  # who holds which name (and its look-alikes)
        self._listed: Dict[Any, bytes] = {}  # member -> its name as JSON
        # member -> its rooms, in the order it joined them (a list: a few at most)
        # member -> the rooms it is in, in the order it joined them (a tuple:
        # 48 bytes for the one room most members are in, a list 88)
        self._rooms_of: Dict[Any, Tuple[ChatRoom, ...]] = {}
        self._tokens: Dict[str, Any] = {}  # resume token -> member
        self._token_of: Dict[Any, str] = {}
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(3).hex() + "-"
        self._guests = itertools.count(1)
        self.private_seq = 0
        self.rooms = RoomDirectory(history_size, max_rooms, pinned=self._default_key)
        self._outbox = Outbox(end_of_turn if end_of_turn is not None else NextTurn(clock))
        self.epoch = new_epoch()
        if message_log is not None:
            self._restore(message_log, history_size)
        self._lobby = self.rooms.open(self.default_room, self._default_key)

    def _restore(self, log: Any, history_size: int) -> None:
        restored = log.restore_rooms(history_size, self.default_room)
        if restored.epoch is not None:
            self.epoch = restored.epoch
        else:
            log.set_epoch(self.epoch)
        self.private_seq = restored.private_seq
        for key, kept in restored.rooms.items():
            self.rooms.restore(kept.name, key, kept.seq, kept.recent, kept.dropped_upto)
        lobby = restored.rooms.get(self._default_key)
        _log.info("message log: {n} rooms restored ({room} at seq {seq}), epoch {kept}",
                  n=len(restored.rooms), room=self.default_room,
                  seq=lobby.seq if lobby else 0,
                  kept="kept" if restored.epoch is not None else "new")

    # -- life and queries -------------------------------------------------

    def start(self) -> None:
        """Nothing to connect to: the history was restored when made."""

    def stop(self) -> None:
        """Hand out what is queued; the service closes the message log."""
        self.flush()

    @property
    def outbox_size(self) -> int:
        return self._outbox.load

    @property
    def seq(self) -> int:
        """The default room's C{seq} (version 1's one counter)."""
        return self._lobby.seq

    @property
    def history(self) -> History:
        """The default room's history."""
        return self._lobby.history

    def room(self, name: Optional[str] = None) -> Optional[ChatRoom]:
        """The room called C{name} (default: the default room), if held."""
        return self.rooms.get(room_key(name or self.default_room))

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, member: Any) -> bool:
        return member in self._rooms_of

    def names(self) -> List[str]:
        return [m.name for m in self._names.members()]

    def members(self) -> Iterable[Any]:
        return list(self._names.members())

    def find(self, name: object) -> Optional[Any]:
        """
        The member called C{name} by the same-name rule of 4.3, or C{None}:
        not a look-alike (C{msg} to C{\u0430lice} does not reach C{alice}).
        """
        if not isinstance(name, str):
            return None
        return self._names.find(name)

    def rooms_of(self, member: Any) -> List[str]:
        return [room.name for room in self._rooms_of.get(member, ())]

    def flush(self) -> None:
        """Hand out this turn's broadcasts now (before a direct send, too)."""
        self._outbox.flush()

    def _now(self) -> str:
        return timestamp(self._clock.seconds())

    def _send_bodies(self, member: Any, bodies: Iterable[bytes]) -> None:
        for body in bodies:
            member.send_frame(encode_frame(body))

    # -- registration -------------------------------------------------

    def _free_name(self, wanted: Optional[str]) -> str:
        """C{wanted}, or the first of its suffixed forms neither in use nor like one."""
        free = self._names.free
        if wanted is None:
            while True:
                name = f"guest_{next(self._guests)}"
                if free(name):
                    return name
        if free(wanted):
            return wanted
        for n in itertools.count(2):
            name = with_suffix(wanted, n)
            if free(name):
                return name
        raise AssertionError("unreachable")  # pragma: no cover

    def _new_name(self, name: object) -> str:
        if name is None:
            return self._free_name(None)
        try:
            return self._free_name(normalize(name))
        except InvalidName as e:
            raise RemoteProtocolError("bad-name", str(e), fatal=False)

    def register(self, member: Any, name: object = None, rooms: object = None,
                 since: object = None, epoch: object = None, resume: object = None) -> str:
        """
        Add C{member}: C{welcome}, then C{room} and C{history} for each of
        its rooms, and C{joined} to the rooms' other members.

        @raise RemoteProtocolError: C{bad-name}, C{bad-room} or
            C{too-many-rooms} (not fatal); the member stays unregistered.
        @return: the assigned name.
        """
        old = self._tokens.get(resume) if isinstance(resume, str) else None
        if old is member:
            old = None
        wanted = hello_rooms(rooms, self.default_room, 0)
        if old is None:
            assigned = self._new_name(name)
            kept: List[ChatRoom] = []
        else:
            assigned, kept = old.name, list(self._rooms_of.get(old, ()))
            if rooms is None:
                wanted = []
        new_rooms = self._rooms_to_join(kept, wanted)
        if old is not None:
            session_id = old.session_id
            self._replace(old, member)
            _log.info("{name} resumed session {id}", name=assigned, id=session_id)
        else:
            session_id = self._id_prefix + str(next(self._ids))
        member.name = assigned
        member.session_id = session_id
        self._names.add(assigned, member)
        self._listed[member] = json_str(assigned)
        self._rooms_of.setdefault(member, ())
        token = secrets.token_urlsafe(18)
        self._tokens[token] = member
        self._token_of[member] = token
        all_rooms = kept + [room for room in new_rooms if room not in kept]
        member.send_frame(encode_frame(self._welcome(member, token, all_rooms)))
        catch_up = since_map(since, self._default_key)
        reset = epoch is not None and epoch != self.epoch
        for room in all_rooms:
            self._enter(member, room, announce=room not in kept)
            self._answer_join(member, room, catch_up.get(room.key), reset)
        return assigned

    def _rooms_to_join(self, kept: List[ChatRoom], wanted: List[str]) -> List[ChatRoom]:
        """The rooms of C{wanted} not in C{kept}, opened; checked before any is."""
        keys = {room.key for room in kept}
        fresh = [(name, room_key(name)) for name in wanted]
        fresh = [(name, key) for name, key in fresh if key not in keys]
        limit = self.max_rooms_per_client
        if limit and len(kept) + len(fresh) > limit:
            raise RemoteProtocolError("too-many-rooms", f"a client is in at most {limit} rooms",
                                      fatal=False)
        opened: List[ChatRoom] = []
        try:
            for name, key in fresh:
                opened.append(self.rooms.open(name, key))
        except RemoteProtocolError:
            for room in opened:
                self.rooms.emptied(room)  # made for nothing: forget it again
            raise
        return opened

    def _replace(self, old: Any, new: Any) -> None:
        """C{new} takes C{old}'s place silently (4.5 resume)."""
        rooms = self._rooms_of.pop(old, ())
        for room in rooms:
            del room.members[old]
        self._names.remove(old.name)
        del self._listed[old]
        token = self._token_of.pop(old, None)
        if token is not None:
            del self._tokens[token]
        old.replaced()
        self._rooms_of[new] = rooms
        for room in rooms:
            room.members[new] = new.send_frame
            self._outbox.joined(room, new)

    def _welcome(self, member: Any, token: str, rooms: List[ChatRoom]) -> bytes:
        welcome: Message = {
            "type": "welcome", "name": member.name, "id": member.session_id,
            "encrypted": bool(member.encrypted), "resume": token, "epoch": self.epoch,
            "rooms": [room.name for room in rooms],
        }
        if self.motd:
            welcome["motd"] = self.motd
        body = encode(welcome)
        users, plaintext = self._welcome_users(member, len(body) + 40)
        return b"%s,\"users\":[%s],\"plaintext\":[%s]}" % (
            body[:-1], b",".join(users), b",".join(plaintext))

    def _welcome_users(self, member: Any, base: int) -> Tuple[List[bytes], List[bytes]]:
        """As many names (as JSON) as fit one frame beside C{base} bytes, at most 1,000."""
        listed = self._listed
        users: List[bytes] = []
        plaintext: List[bytes] = []
        size = base
        for other in itertools.chain((member,), self._names.members()):
            if other is member and users:
                continue
            if len(users) >= MAX_WELCOME_USERS:
                break
            item, plain = listed[other], not other.encrypted
            size += (len(item) + 1) * (2 if plain else 1)
            if size > MAX_FRAME:
                break
            users.append(item)
            if plain:
                plaintext.append(item)
        return users, plaintext

Room = MemoryChat
"""Version 1's name for the single-process chat."""
