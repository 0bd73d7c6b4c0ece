# -*- test-case-name: tests.test_redisroom -*-
"""
L{Upkeep}: keeping Redis in step with this server, and this server with Redis.

  - After every (re)connection: C{reconcile} (the chat's slot: this
    server's names, sessions and lease, and counters that never go back),
    then C{rejoin} in each room it has members in (each room's slot), then
    the names to release that waited for Redis, then the requests whose
    replies were lost (L{RequestLedger.resend}).
  - A heartbeat renews the lease; the C{beat} script reaps the servers whose
    lease ran out (their names go at once, in the chat's slot) and lists
    their sessions, whose rooms any server then tells with C{left} (each
    room's slot) before forgetting them: if that server dies half way, the
    next heartbeat of any server finishes the job (the room scripts do
    nothing twice).
  - Releasing a member: C{part} in each of its rooms (with C{left}), then
    C{leave} in the chat's slot; kept for later while Redis is unreachable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List

from twisted.internet.defer import Deferred, DeferredList, FirstError, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from ...wire.names import look_alike_key
from .entries import _str, parse_gone
from .keys import RoomKeys
from .link import RedisLink, connection_errors
from .scripts import EVENTS_KEPT, ROOM_EVENTS_KEPT

_log = Logger()

_BACKLOG_MAX = 100_000
GONE_BATCH = 200
"""Sessions of reaped servers a heartbeat tells the rooms of (the C{beat} script's C{HSCAN})."""


@dataclass
class Release:
    """A member to let go of: its rooms (with C{left}), then its name."""

    key: str
    session: str
    token: str
    rooms: List[str]
    body: bytes  # the left message, or b"" (silent)
    name: str
    plaintext: bool


class Upkeep:
    """Reconciliation, heartbeats, reaping and releases of a L{RedisChat}."""

    def __init__(self, chat: Any) -> None:
        self._chat = chat
        self.backlog: List[Release] = []

    # -- connection -----------------------------------------------------------

    async def commands_ready(self, link: RedisLink) -> None:
        await self.reconcile(early=True)
        await self.rejoin(early=True)
        backlog, self.backlog = self.backlog, []
        for release in backlog:
            await self.release(release, early=True)
        await self._chat.ledger.resend()

    async def reconcile(self, early: bool = False) -> None:
        chat = self._chat
        position = chat.reader.position(chat.keys.events) or 0
        args: list = [chat.server_id, int(chat.lease * 1000), EVENTS_KEPT, os.urandom(8).hex(),
                      position, chat.state.pseq]
        for member, info in chat.state.members.items():
            args.extend([info.key, info.session, info.token, "1" if info.plaintext else "0",
                         member.name, ",".join(info.rooms), look_alike_key(member.name)])
        for release in self.backlog:  # still held: released right after, with left
            args.extend([release.key, release.session, release.token,
                         "1" if release.plaintext else "0", release.name,
                         ",".join(release.rooms), look_alike_key(release.name)])
        reply = await chat.call("reconcile", chat.keys.all, args, early=early)
        for session in reply[1]:
            member = chat.state.sessions.get(_str(session))
            if member is None:
                continue
            chat.drop_local(member)
            _log.warn("{name}: the name was taken while this server was cut off", name=member.name)
            member.fatal("unavailable", "your name was given to someone else while this server "
                                        "was cut off from the chat; reconnect")

    async def rejoin(self, early: bool = False) -> None:
        chat = self._chat
        calls = []
        for key, room in list(chat.state.rooms.items()):
            keys = RoomKeys(chat.keys.chat, key)
            args: list = [chat.server_id, ROOM_EVENTS_KEPT, chat.now(), chat.presence_limit,
                          chat.reader.position(keys.events) or 0, room.seq]
            for member in room.senders:
                info = chat.state.members.get(member)
                if info is not None:
                    args.extend([info.session, "1" if info.plaintext else "0", member.name])
            for release in self.backlog:  # still in the room: parted with left right after
                if key in release.rooms:
                    args.extend([release.session, "1" if release.plaintext else "0",
                                 release.name])
            calls.append(chat.call("rejoin", keys.all, args, early=early))
        if calls:
            await DeferredList(calls, fireOnOneErrback=True, consumeErrors=True)

    # -- heartbeat and reaping ----------------------------------------------------

    def heartbeat(self) -> None:
        chat = self._chat
        if not chat.commands.ready:
            return
        d = chat.call("beat", chat.keys.all, [chat.server_id, int(chat.lease * 1000), EVENTS_KEPT])
        d.addCallback(lambda reply: Deferred.fromCoroutine(self._beaten(reply)))
        d.addErrback(lambda f: f.trap(*connection_errors()))
        d.addErrback(lambda f: _log.failure("heartbeat failed", f))

    async def _beaten(self, reply: list) -> None:
        chat = self._chat
        if int(reply[1]):
            _log.info("released {n} names of servers that stopped", n=int(reply[1]))
        if not int(reply[0]):
            _log.warn("this server's lease had run out; restoring its names")
            await self.reconcile()
            await self.rejoin()
        buried = parse_gone(reply[2])
        for session, server, rooms, name in buried:
            body = chat.left_body(name, "disconnected")
            parts = [self._part(server, session, room, body) for room in rooms]
            results = await DeferredList(parts, consumeErrors=True)
            if not all(ok for ok, _ in results):
                return  # the next heartbeat tries again (parting twice does nothing)
            await chat.commands.command("HDEL", chat.keys.all[6], session)
        if len(buried) >= GONE_BATCH:  # more to tell: go on at once
            self._chat.clock.callLater(0, self.heartbeat)

    def _part(self, server: str, session: str, room: str, body: bytes,
              early: bool = False) -> Deferred:
        chat = self._chat
        why = "l" if body else "s"
        d = chat.call("part", RoomKeys(chat.keys.chat, room).all, [
            server, session, body, ROOM_EVENTS_KEPT, chat.presence_limit, why, session],
            early=early)
        d.addCallback(lambda reply: chat.update_index(room, int(reply[1]), int(reply[2]),
                                                      name=_str(reply[3]))
                      if int(reply[0]) else None)
        return d

    # -- releases -------------------------------------------------------------------

    def release(self, release: Release, early: bool = False) -> Deferred:
        """Let go of a member (rooms, then name); later if Redis is unreachable."""
        chat = self._chat
        if not (chat.commands.ready or early):
            self._keep(release)
            return succeed(None)
        parts = [self._part(chat.server_id, release.session, room, release.body, early)
                 for room in release.rooms]
        d = chat.call("leave", chat.keys.all, [chat.server_id, release.session, release.key,
                                                EVENTS_KEPT, release.token,
                                                look_alike_key(release.name)], early=early)
        done = DeferredList(parts + [d], fireOnOneErrback=True, consumeErrors=True)

        def failed(failure: Failure) -> None:
            if failure.check(FirstError):
                failure = failure.value.subFailure
            if failure.check(*connection_errors()):
                self._keep(release)
            else:
                _log.failure("releasing a name failed", failure)

        return done.addErrback(failed)

    def _keep(self, release: Release) -> None:
        if len(self.backlog) < _BACKLOG_MAX:
            self.backlog.append(release)
