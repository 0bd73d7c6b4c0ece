# -*- test-case-name: tests.test_redisroom -*-
"""
A C{hello} through Redis, in two round trips and no script over two slots:

 1. the chat's C{register} script claims the name (or the resumed session),
    decides the rooms (the old session's, plus those the C{hello} named,
    within the limits) and records them as the session's;
 2. one C{join} script per room, all sent at once (pipelined), each in its
    room's slot (L{chatsvc.chat.redis.joins}).

Meanwhile the member's frames wait in a buffer: it gets C{welcome}, then
C{room} and C{history} for each room in order, then what came live since.
"""

from __future__ import annotations

import secrets
from typing import Any, Dict, List, Optional, Tuple

from twisted.internet.defer import DeferredList
from twisted.logger import Logger

from ...wire.errors import RemoteProtocolError
from ...wire.framing import MAX_FRAME
from ...wire.messages import Message
from ..common import MAX_WELCOME_USERS
from .entries import GUEST_DIGITS, _str, name_candidates
from .ledger import unavailable
from .link import connection_errors
from .local import LocalMember
from .scripts import EVENTS_KEPT

_log = Logger()


class Greeting:
    """The frames of a member whose C{hello} is being answered."""

    def __init__(self) -> None:
        self.live: List[bytes] = []
        self.answers: Dict[str, List[bytes]] = {}

    def buffer(self, frame: bytes) -> None:
        self.live.append(frame)

    def answered(self, key: str) -> Any:
        return lambda frames: self.answers.__setitem__(key, frames)


class HelloFlow:
    """Registers members for L{chatsvc.chat.redis.room.RedisChat}."""

    def __init__(self, chat: Any) -> None:
        self._chat = chat

    async def run(self, member: Any, hello_id: str, wanted: Optional[str],
                  rooms: List[Tuple[str, str]], named: bool, since: Dict[str, int],
                  epoch: Optional[str], resume: str) -> str:
        chat = self._chat
        token = secrets.token_urlsafe(18)
        plaintext = not member.encrypted
        try:
            reply = await self._register(hello_id, token, plaintext, wanted, rooms, named, resume)
        except connection_errors():
            raise unavailable("the chat store is unreachable; try again shortly")
        if _str(reply[0]) == "too-many-rooms":
            if _str(reply[2]) == "client":  # about the list: no room (docs/protocol.md 8.1)
                raise RemoteProtocolError("too-many-rooms", "a client is in at most "
                                          f"{chat.max_rooms_per_client} rooms", fatal=False)
            room = dict((k, s) for s, k in rooms).get(_str(reply[1]), _str(reply[1]))
            raise RemoteProtocolError("too-many-rooms", f"the chat holds its limit of "
                                      f"{chat.max_rooms} rooms", fatal=False, room=room)
        kind, name, key = _str(reply[0]), _str(reply[1]), _str(reply[2])
        session, chat_epoch = _str(reply[4]), _str(reply[5])
        final = [_str(k) for k in reply[6]]
        info = LocalMember(member, session, key, token, plaintext, hello_id, send=lambda f: None)
        if member.closing:
            chat.release_info(info, final, "disconnected", name)
            raise unavailable("closed")
        if kind == "r":
            old = chat.state.sessions.get(session)
            if old is not None and old is not member:
                chat.drop_local(old)
                old.replaced()
                _log.info("{name} resumed session {id}", name=name, id=session)
        greeting = Greeting()
        info.send = greeting.buffer
        member.name, member.session_id = name, session
        chat.state.add(info)
        reset = isinstance(epoch, str) and epoch != chat_epoch
        spelling = dict((k, s) for s, k in rooms)
        joins = [chat.joins.start(info, k, spelling.get(k, k), since.get(k), reset and k in since,
                                  greeting.answered(k)) for k in final]
        results = await DeferredList(joins, consumeErrors=True)
        if member not in chat.state.members:
            raise unavailable("closed")
        joined = [k for k, (ok, _) in zip(final, results) if ok]
        if member.closing or len(joined) < len(final):
            # It went while its rooms were joined, or Redis went: all or nothing.
            chat.leave(member, "disconnected")
            raise unavailable("the chat store did not answer; try again")
        info.rooms[:] = [k for k in joined if k in info.rooms] + [
            k for k in info.rooms if k not in joined]
        self._welcome(info, name, session, chat_epoch, joined)
        for k in joined:
            for frame in greeting.answers.get(k, []):
                member.send_frame(frame)
        for frame in greeting.live:
            member.send_frame(frame)
        chat.state.set_sender(info, member.send_frame)
        for k, (ok, result) in zip(final, results):
            if ok:
                chat.update_index(k, *result)
        return name

    async def _register(self, hello_id: str, token: str, plaintext: bool,
                        wanted: Optional[str], rooms: List[Tuple[str, str]], named: bool,
                        resume: str) -> list:
        chat = self._chat
        start, batch = 1, 8
        while True:
            args: list = [
                chat.server_id, hello_id, token, resume, "1" if plaintext else "0",
                EVENTS_KEPT, "1" if wanted is None else "0", chat.max_rooms_per_client,
                chat.max_rooms, "1" if named else "0", secrets.token_hex(8), len(rooms),
                GUEST_DIGITS,
            ]
            args.extend(k for _, k in rooms)
            if wanted is not None:
                for candidate in name_candidates(wanted, start, batch):
                    args.extend(candidate)
            reply = await chat.call("register", chat.keys.all, args)
            if _str(reply[0]) != "more":
                return reply
            start, batch, resume = start + batch, batch * 4, ""

    def _welcome(self, info: LocalMember, name: str, session: str, epoch: str,
                 joined: List[str]) -> None:
        chat = self._chat
        users = [(name, info.plaintext)]
        room_names = [chat.state.rooms[k].name for k in joined if k in chat.state.rooms]
        # What welcome holds besides users, counted first so that it always fits a frame.
        size = (400 + len(name.encode()) * 3 + len(chat.motd or "") * 6 + len(epoch)
                + len(info.token) + sum(len(r.encode()) + 3 for r in room_names))
        for other_key, (other, plaintext) in chat.state.names.items():
            if len(users) >= MAX_WELCOME_USERS:
                break
            if other_key == info.key:
                continue
            size += (len(other.encode("utf-8")) + 3) * (2 if plaintext else 1)
            if size > MAX_FRAME:
                break
            users.append((other, plaintext))
        welcome: Message = {
            "type": "welcome",
            "name": name,
            "id": session,
            "users": [u for u, _ in users],
            "plaintext": [u for u, p in users if p],
            "encrypted": not info.plaintext,
            "resume": info.token,
            "epoch": epoch,
            "rooms": room_names,
        }
        if chat.motd:
            welcome["motd"] = chat.motd
        info.member.send(welcome)

