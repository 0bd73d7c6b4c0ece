# -*- test-case-name: tests.test_redisscripts -*-
"""
The Redis keys of a chat and of its rooms, and room names (pure: no I/O).

A chat's own keys share the hash tag C{{C}}; each room's keys share the
hash tag C{{C#room}} (the room's key: its name, NFC-casefolded). So a Redis
Cluster keeps a chat's names on one slot and spreads its rooms over every
slot, and no Lua script ever needs keys of two slots::

    chat = ChatKeys("team")
    chat.all                      # KEYS of the chat scripts
    RoomKeys("team", "#lobby").all  # KEYS of the room scripts
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Tuple

from ...wire.rooms import room_key, room_name

_CHAT_NAME = re.compile(r"\A[A-Za-z0-9_.-]{1,64}\Z")


def check_chat_name(chat: str) -> str:
    """
    Return C{chat} if it can name a chat in Redis keys.

    @raise ValueError: unless it is 1 to 64 ASCII letters, digits, C{_}, C{-}, C{.}.
    """
    if not _CHAT_NAME.match(chat):
        raise ValueError("a chat name is 1 to 64 ASCII letters, digits, '_', '-' or '.'")
    return chat


def parse_room(room: object) -> Tuple[str, str]:
    """
    C{(spelling, key)} of a room name (PROTOCOL.md 4.3, by
    L{chatsvc.wire.rooms}): C{#} and 1 to 32 name characters, NFC; the key
    is its NFC-casefolded form.

    @raise RemoteProtocolError: C{bad-room} (not fatal), naming the room.
    """
    name = room_name(room)
    return name, room_key(name)


@dataclass(frozen=True)
class ChatKeys:
    """
    The keys of one chat, all under the hash tag C{{chat}}:

      - C{meta} (hash): C{ev} (event counter), C{pseq} (private C{seq}),
        C{guest}, C{epoch}, C{applied:SERVER}.
      - C{names} (hash): name key -> holder C{server|session|token|p|name}.
      - C{tokens} (hash): resume token -> name key.
      - C{servers} (sorted set): server id -> lease end (ms).
      - C{events} (stream): registrations, departures, renames, resumes,
        private messages; entry C{n} has the id C{n-0}.
      - C{sessions} (hash): session id -> the room keys it is in (C{,}-joined).
      - C{gone} (hash): sessions of reaped servers whose rooms are still to
        be told: session -> C{server|rooms|name}.
      - C{rooms} (hash): room key -> C{count|name|topic}, the rooms with
        members (the answer to C{rooms}, and the server's room limit).
      - C{roomsev} (hash): room key -> the room event that last updated
        C{rooms} (so that an older word never overwrites a newer one).
      - C{alike} (hash): look-alike key -> the name key that holds it
        (L{chatsvc.wire.names.name_keys}): a name whose look-alike key is
        held by another name counts as taken (PROTOCOL.md 4.3, v2).
    """

    chat: str

    def _key(self, part: str) -> str:
        return f"chatsvc:{{{self.chat}}}:{part}"

    @property
    def meta(self) -> str:
        return self._key("meta")

    @property
    def events(self) -> str:
        return self._key("events")

    @property
    def rooms(self) -> str:
        return self._key("rooms")

    @property
    def all(self) -> List[str]:
        """The C{KEYS} of every chat script, in this order."""
        return [self._key(part) for part in
                ("meta", "names", "tokens", "servers", "events", "sessions", "gone", "rooms",
                 "roomsev", "alike")]


@dataclass(frozen=True)
class RoomKeys:
    """
    The keys of one room of a chat, all under the hash tag C{{chat#room}}:

      - C{meta} (hash): C{seq}, C{ev}, C{pub} (public messages so far),
        C{dropped}, C{name} (its spelling), C{topic}, C{applied:SERVER}.
      - C{members} (hash): session id -> C{server|p|name}.
      - C{events} (stream): the room's messages, joins, parts, topics,
        renames; entry C{n} has the id C{n-0}.
      - C{history} (stream): the recent messages, id C{seq-0}.
    """

    chat: str
    room: str  # the room's key (parse_room)

    def _key(self, part: str) -> str:
        return f"chatsvc:{{{self.chat}{self.room}}}:{part}"

    @property
    def events(self) -> str:
        return self._key("events")

    @property
    def history(self) -> str:
        return self._key("history")

    @property
    def all(self) -> List[str]:
        """The C{KEYS} of every room script, in this order."""
        return [self._key(part) for part in ("meta", "members", "events", "history")]


def hash_slot(key: str) -> int:
    """
    The Redis Cluster slot of C{key} (CRC16-XMODEM of its hash tag, mod
    16384), as C{CLUSTER KEYSLOT} computes it.
    """
    data = key.encode("utf-8")
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1:end]
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc % 16384
