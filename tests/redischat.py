"""
What the tests of the Redis backend share: a fake member that decodes what
it is sent (the v2 messages of PROTOCOL.md 4.2), and a mixin that starts a
C{redis-server} per test and chats on it (several L{RedisChat} in this
process stand for several servers).
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Dict, List, Optional

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from zope.interface import implementer

from chatsvc.chat.interfaces import IChatMember
from chatsvc.chat.redis.room import RedisChat
from chatsvc.wire.framing import FrameDecoder

from .scaleout import LOOPBACK, RedisServer, wait_until

_chats = itertools.count(1)


@implementer(IChatMember)
class Member:
    """A client as the chat sees it: frames in, decoded."""

    name: Optional[str] = None
    session_id: Optional[str] = None

    def __init__(self, encrypted: bool = True) -> None:
        self.messages: List[Dict[str, Any]] = []
        self.encrypted = encrypted
        self.closing = False
        self.was_replaced = False
        self.fatal_error: Optional[str] = None
        self._decoder = FrameDecoder()

    def send(self, message: Dict[str, Any]) -> None:
        self.messages.append(json.loads(json.dumps(message)))

    def send_frame(self, frame: bytes) -> None:
        self._decoder.receive_data(frame)
        for body in self._decoder.frames():
            self.messages.append(json.loads(body))

    def replaced(self) -> None:
        self.was_replaced = True
        self.closing = True

    def fatal(self, code: str, text: str) -> None:
        self.fatal_error = code
        self.closing = True

    def of_type(self, *kinds: str) -> List[Dict[str, Any]]:
        return [m for m in self.messages if m["type"] in kinds]

    def texts(self, room: Optional[str] = None) -> List[str]:
        return [m["text"] for m in self.of_type("message") if room is None or m["room"] == room]

    def seen(self, room: str) -> List[tuple]:
        """C{(seq, text)} of every message of C{room}, from history and live, in order."""
        out = []
        for m in self.messages:
            if m["type"] == "history" and m["room"] == room:
                out.extend((h["seq"], h["text"]) for h in m["messages"])
            elif m["type"] == "message" and m["room"] == room:
                out.append((m["seq"], m["text"]))
        return out

    def history(self, room: str) -> Dict[str, Any]:
        [h] = [m for m in self.of_type("history") if m["room"] == room]
        return h


class RedisChatTestsMixin:
    redis: RedisServer

    def setUp(self) -> None:
        self.redis = RedisServer.start(self.mktemp())
        self.addCleanup(self.redis.stop)
        self.chat = f"t{next(_chats)}"

    async def server(self, lease: float = 10.0, history_size: int = 50, **kw: Any) -> RedisChat:
        """A started chat on this test's chat name, ready to take requests."""
        endpoint = TCP4ClientEndpoint(reactor, LOOPBACK, self.redis.port)
        chat = RedisChat(reactor, endpoint, chat=self.chat, history_size=history_size,
                         lease=lease, **kw)
        chat.start()
        self.addCleanup(chat.stop)
        await wait_until(lambda: chat.available and chat.synced, 10, "chat ready")
        return chat

    async def join(self, chat: RedisChat, name: Optional[str] = None, **kw: Any) -> Member:
        member = Member(encrypted=kw.pop("encrypted", True))
        await chat.register(member, name, **kw)
        return member

    def _ev(self, stream: str) -> int:
        reply = self.redis.command("HGET", stream.rsplit(":", 1)[0] + ":meta", "ev")
        return int(reply.split(b"\r\n")[1]) if reply.startswith(b"$") and not reply.startswith(b"$-1") else 0

    async def settle(self, chats: List[RedisChat]) -> None:
        """Wait until every chat has read every event of its streams written so far."""
        for chat in chats:  # its requests so far have run once this answers
            if chat.available:
                await chat.commands.command("PING")
        targets = {id(c): {s: self._ev(s) for s in c.reader.streams()} for c in chats}

        def caught_up() -> bool:
            return all((c.reader.position(s) or 0) >= n or c.reader.position(s) is None
                       for c in chats for s, n in targets[id(c)].items())

        await wait_until(caught_up, 10, "servers to catch up")
