# -*- test-case-name: tests.test_redisroom -*-
"""
L{RedisChat}: one chat, with rooms, served by several chatsvc servers
through Redis; the L{IChat} of the Redis backend::

    chat = RedisChat(reactor, clientFromString(reactor, "tcp:127.0.0.1:6379"),
                     chat="team", history_size=50)
    chat.start()                        # connects, reconnects with backoff
    ...
    yield chat.stop()

Its parts: L{keys} and the scripts (pure), L{link} (a connection),
L{ledger} (requests re-sent after a lost reply), L{reader} (the streams),
L{events} (what each entry means here), L{joins} and L{hello} (entering
rooms without gap or duplicate), L{upkeep} (reconciliation, leases,
releases). docs/scaling.md tells the design.
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from zope.interface import implementer

from ...wire.errors import RemoteProtocolError
from ...wire.framing import MAX_FRAME, encode_frame
from ...wire.messages import Message, encode, timestamp
from ...wire.names import InvalidName, normalize
from ..common import SILENT_REASONS
from ...metrics import IRedisBacked
from ..interfaces import IChat
from .admin import RedisRoomAdmin
from .entries import _str, history_items, names_from_hash
from .events import EventApplier
from .hello import HelloFlow
from .joins import Joins
from ...wire.rooms import hello_rooms, room_key, since_map
from .keys import ChatKeys, RoomKeys, check_chat_name, parse_room
from .ledger import RequestLedger, unavailable
from .link import NotReady, RedisLink
from .local import ChatState
from .reader import StreamReader
from .requests import RoomRequests
from .upkeep import Release, Upkeep

_log = Logger()

MAX_RESUME_TOKEN = 128
NO_LIMIT = 1 << 30


def _error(code: str, text: str) -> RemoteProtocolError:
    return RemoteProtocolError(code, text, fatal=False)


@implementer(IChat, IRedisBacked)
class RedisChat(RoomRequests, RedisRoomAdmin):
    """
    One chat shared through Redis by every server started with the same
    Redis and chat name.

    @param clock: the reactor.
    @param endpoint: an C{IStreamClientEndpoint} for Redis.
    @param chat: the chat's name (L{check_chat_name}).
    @param history_size: messages kept per room (the same on every server).
    @param lease: seconds after which the names of a server that stopped
        renewing its lease (it died, or lost Redis) are released.
    @param default_room: the room of clients that name none (version 1).
    @param presence_limit: rooms larger than this send no presence (4.7).
    @param max_rooms_per_client: rooms a client is in at most.
    @param max_rooms: rooms with members the chat holds at most.
        (For the three limits, 0 means none.)
    """

    outbox_size = 0  # the fan-out is written as the stream is read

    def __init__(self, clock: Any, endpoint: Any, chat: str = "chat", history_size: int = 50,
                 motd: Optional[str] = None, lease: float = 10.0,
                 server_id: Optional[str] = None, default_room: str = "#lobby",
                 presence_limit: int = 1000, max_rooms_per_client: int = 20,
                 max_rooms: int = 10_000) -> None:
        self._clock = self.clock = clock
        self.keys = ChatKeys(check_chat_name(chat))
        self.history_size = history_size
        self.motd = motd
        self.lease = lease
        self.server_id = server_id or os.urandom(4).hex()
        self.default_room, self._default_key = parse_room(default_room)
        # 0: no limit (the server options say so)
        self.presence_limit = presence_limit or NO_LIMIT
        self.max_rooms_per_client = max_rooms_per_client or NO_LIMIT
        self.max_rooms = max_rooms or NO_LIMIT
        self._ids = itertools.count(1)
        self._epoch: Optional[str] = None
        self.synced = False
        self._chat_gap = False
        self._running = False
        self._reading: Optional[Deferred] = None
        self.state = ChatState()
        self.commands = RedisLink(endpoint, clock, "commands", on_ready=self._commands_ready,
                                  on_lost=self._commands_lost)
        self.events = RedisLink(endpoint, clock, "events", on_ready=self._events_ready)
        self.ledger = RequestLedger(self.commands, clock)
        self.upkeep = Upkeep(self)
        self._room_of_stream: Dict[str, str] = {}
        self.reader = StreamReader(self.events, clock, self._on_entry, self._on_gap,
                                   self._prepare, self._wake)
        self.joins = Joins(self.state, chat, self.server_id, history_size, self.presence_limit,
                           self.call, self._follow_room, self.now, self._room_position)
        self.applier = EventApplier(self.state, self.server_id, self.joins,
                                    self._room_of_stream, self._unfollow_room)
        self.hellos = HelloFlow(self)
        self._beat = LoopingCall(self.upkeep.heartbeat)
        self._beat.clock = clock

    # -- life ------------------------------------------------------------------

    def start(self) -> None:
        """Connect (and keep reconnecting) to Redis; start reading the chat."""
        if self._running:
            return
        self._running = True
        self.reader.running = True
        self.commands.start()
        self.events.start()
        self._reading = Deferred.fromCoroutine(self.reader.run())
        self._reading.addErrback(lambda f: _log.failure("event reader stopped", f))
        self._beat.start(max(0.1, self.lease / 4), now=False)

    def stop(self) -> Deferred:
        """
        Stop: wait a little for requests in flight, then close both
        connections. Names still held are released when the lease runs out,
        unless their clients resume them on another server first.
        """
        if not self._running:
            return succeed(None)
        self._running = self.reader.running = False
        if self._beat.running:
            self._beat.stop()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        waiting = self.ledger.results() if self.commands.ready else []
        if waiting:
            settled = DeferredList(waiting, consumeErrors=True)
            timer = self._clock.callLater(2.0, settled.cancel)
            try:
                await settled
            except Exception:
                pass
            if timer.active():
                timer.cancel()
        self.reader.cancel_watchdog()
        await DeferredList([self.commands.stop(), self.events.stop()])
        if self._reading is not None:
            await self._reading

    @property
    def available(self) -> bool:
        """Whether requests can go to Redis now."""
        return self.commands.ready

    def call(self, script: str, keys: List[str], args: list, early: bool = False) -> Deferred:
        return self.commands.call(script, keys, args, early=early)

    def now(self) -> str:
        return timestamp(self._clock.seconds())

    # -- queries -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.state.members)

    def __contains__(self, member: Any) -> bool:
        return member in self.state.members

    def members(self) -> List[Any]:
        return list(self.state.members)

    def names(self) -> List[str]:
        """Everyone's names, on every server (as the chat's stream told)."""
        return [name for name, _ in self.state.names.values()]

    def find(self, name: object) -> Optional[Any]:
        """This server's member called C{name}, or C{None}."""
        return self.state.find(name)

    def rooms_of(self, member: Any) -> List[str]:
        info = self.state.members.get(member)
        return [] if info is None else self.state.room_names(info)

    def flush(self) -> None:
        """Nothing waits for the end of the turn here: the reader writes as it reads."""

    # -- registration --------------------------------------------------------------

    def register(self, member: Any, name: object = None, rooms: object = None,
                 since: object = None, epoch: object = None, resume: object = None) -> Deferred:
        """
        Claim a name, then enter the rooms; C{member} gets C{welcome}, then
        C{room} and C{history} for each room, in the rooms' stream order.

        @raise RemoteProtocolError: C{bad-name}, C{bad-room},
            C{too-many-rooms}, or C{unavailable}.
        @return: a Deferred that fires with the assigned name.
        """
        wanted = None
        if name is not None:
            try:
                wanted = normalize(name)
            except InvalidName as e:
                raise _error("bad-name", str(e))
        wanted_rooms = self._hello_rooms(rooms)
        if not self.commands.ready:
            raise unavailable("the chat store is unreachable; try again shortly")
        if not isinstance(resume, str) or len(resume) > MAX_RESUME_TOKEN:
            resume = ""
        hello_id = f"{self.server_id}-{next(self._ids)}"
        return Deferred.fromCoroutine(self.hellos.run(
            member, hello_id, wanted, wanted_rooms, rooms is not None, since_map(since, self._default_key),
            epoch if isinstance(epoch, str) else None, resume))

    def _hello_rooms(self, rooms: object) -> List[Tuple[str, str]]:
        names = hello_rooms(rooms, self.default_room, self.max_rooms_per_client)
        return [(name, room_key(name)) for name in names]

    # -- leaving ----------------------------------------------------------------------

    def left_body(self, name: str, reason: str, text: Optional[str] = None) -> bytes:
        message: Message = {"type": "left", "name": name, "reason": reason, "ts": self.now()}
        if text is not None:
            message["text"] = text
        body = encode(message)
        if len(body) > MAX_FRAME and text is not None:
            del message["text"]
            body = encode(message)
        return body

    def leave(self, member: Any, reason: str, text: Optional[str] = None) -> None:
        """
        Remove C{member}. Those who share a room with it get C{left} unless
        C{reason} is C{replaced} or C{shutdown} (then the name is kept until
        the lease runs out, so that the client can resume it elsewhere).
        Leaving twice is harmless.
        """
        info = self.state.members.get(member)
        if info is None:
            return
        rooms = list(info.rooms) + [k for (k, s) in self.joins.pending if s == info.session]
        self.drop_local(member)
        if reason in SILENT_REASONS:
            return
        self.upkeep.release(Release(info.key, info.session, info.token, rooms,
                                    self.left_body(member.name, reason, text),
                                    member.name, info.plaintext))

    def release_info(self, info: Any, rooms: List[str], reason: str,
                     name: Optional[str] = None) -> None:
        """Release a session this server got but will not keep (its client went)."""
        name = name or info.member.name or ""
        self.upkeep.release(Release(info.key, info.session, info.token, rooms,
                                    self.left_body(name, reason), name, info.plaintext))

    def drop_local(self, member: Any) -> None:
        _, emptied = self.state.drop(member)
        for room in emptied:
            self._unfollow_room(room.key)

    # -- streams -------------------------------------------------------------------------

    def _follow_room(self, key: str, after: int) -> None:
        stream = RoomKeys(self.keys.chat, key).events
        self._room_of_stream[stream] = key
        self.reader.follow(stream, after)

    def _room_position(self, key: str) -> Optional[int]:
        return self.reader.position(RoomKeys(self.keys.chat, key).events)

    def _unfollow_room(self, key: str) -> None:
        stream = RoomKeys(self.keys.chat, key).events
        self._room_of_stream.pop(stream, None)
        self.reader.unfollow(stream)

    def _wake(self) -> None:
        if self.commands.ready and self.events.client_id is not None:
            d = self.commands.command("CLIENT", "UNBLOCK", self.events.client_id)
            d.addErrback(lambda f: None)

    def _on_entry(self, stream: str, entry: Any) -> Optional[Deferred]:
        if stream == self.keys.events:
            return self.applier.chat_entry(entry)
        return self.applier.room_entry(stream, entry)

    def _on_gap(self, stream: str, last: int, next_n: int) -> Optional[Deferred]:
        if stream == self.keys.events:
            self._chat_gap = self.reader.needs_prepare = True  # a new snapshot of the names
            return None
        key = self._room_of_stream.get(stream)
        room = self.state.rooms.get(key) if key is not None else None
        if room is None:
            return None
        return Deferred.fromCoroutine(self._catch_up_room(stream, room))

    async def _catch_up_room(self, stream: str, room: Any) -> None:
        reply = await self.events.call("catch_up", RoomKeys(self.keys.chat, room.key).all,
                                       [room.seq + 1])
        missed = [body for seq, body in history_items(reply[2]) if seq > room.seq]
        _log.warn("caught up with room {room}: {n} messages replayed", room=room.name,
                  n=len(missed))
        for body in missed:
            frame = encode_frame(body)
            for send in room.senders.values():
                send(frame)
        room.seq = max(room.seq, int(reply[1]))
        self.reader.set_position(stream, int(reply[0]))
        self.joins.passed(room.key, int(reply[0]))

    def _events_ready(self, link: RedisLink) -> None:
        self.reader.needs_prepare = True

    async def _prepare(self) -> None:
        """
        On the first connection, take the chat's names and position. Later,
        go on from where the reader was, unless Redis lost its data or
        trimmed past this server: then take a new snapshot of the names.
        """
        sent = self._clock.seconds()
        reply = await self.events.call("sync", self.keys.all, [])
        self.reader.measure_offset(sent, reply[4], self._clock.seconds())
        ev, epoch = int(reply[0]), reply[1]
        if epoch is None and self.synced:
            # Redis came back empty and no server has restored it yet
            # (reconcile): wait for that rather than take an empty snapshot.
            await deferLater(self._clock, 0.1, lambda: None)
            raise NotReady("waiting for the chat store to be restored")
        position = self.reader.position(self.keys.events)
        same = epoch is None or self._epoch is None or _str(epoch) == self._epoch
        if self.synced and same and position is not None and ev >= position and not self._chat_gap:
            return
        self._chat_gap = False
        self.state.names = names_from_hash(reply[2])
        self.state.pseq = max(self.state.pseq, int(reply[3]))
        self._epoch = None if epoch is None else _str(epoch)
        self.reader.set_position(self.keys.events, ev)
        self.synced = True

    def _commands_ready(self, link: RedisLink) -> Deferred:
        return Deferred.fromCoroutine(self.upkeep.commands_ready(link))

    def _commands_lost(self) -> None:
        self.ledger.lost()

    def update_index(self, key: str, n: int, count: int, topic: Optional[str] = None,
                     name: Optional[str] = None) -> None:
        """Tell the chat's room index what a room script answered (fire and forget)."""
        if not self.commands.ready:
            return
        if not name:
            room = self.state.rooms.get(key)
            name = room.name if room is not None else key
        d = self.call("index", self.keys.all, [key, n, count, name, topic or "",
                                               "0" if topic is None else "1"])
        d.addErrback(lambda f: None)
