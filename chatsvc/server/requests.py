# -*- test-case-name: tests.test_requests -*-
"""
What a connection does with each client message (PROTOCOL.md 4.1): check
its members, then ask the chat through L{IChat}. One function per message
type, taking the L{ChatProtocol <chatsvc.server.protocol.ChatProtocol>}
and the decoded message; L{HANDLERS} maps the types to them. A function
may raise L{RemoteProtocolError} (a non-fatal error for the client), or
return a L{Deferred} when the chat answers later (a Redis chat).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ..wire.errors import RemoteProtocolError
from ..wire.framing import MAX_FRAME, encode_frame
from ..wire.messages import Message, encode, ping_error, text_error
from ..wire.rooms import action_flag, topic_error

_log = Logger()


def _text(conn: Any, message: Message) -> str:
    text = message.get("text")
    problem = text_error(text, conn.config.max_text)
    if problem is not None:
        raise problem
    return text  # type: ignore[return-value]


def _optional_text(conn: Any, value: object) -> Optional[str]:
    """A C{quit} or C{part} reason: left out when it breaks the text rules."""
    return value if text_error(value, conn.config.max_text) is None else None  # type: ignore[return-value]


def _send_frames(conn: Any, frames: Any) -> Optional[Deferred]:
    def send(result: Iterable[bytes]) -> None:
        for frame in result:
            conn.send_direct(frame)

    if isinstance(frames, Deferred):
        return frames.addCallback(send)
    send(frames)
    return None


def hello(conn: Any, message: Message) -> Optional[Deferred]:
    if conn.name is not None:
        raise RemoteProtocolError("already-registered", "you said hello already", fatal=False)
    conn.prepare_registration()
    result = conn.room.register(
        conn,
        name=message.get("name"),
        rooms=message.get("rooms"),
        since=message.get("since"),
        epoch=message.get("epoch"),
        resume=message.get("resume"),
    )
    if isinstance(result, Deferred):
        return result.addCallback(conn.registered)
    conn.registered(result)
    return None


def say(conn: Any, message: Message) -> Any:
    action = action_flag(message)
    return conn.room.say(conn, message.get("room"), _text(conn, message), action)


def msg(conn: Any, message: Message) -> Any:
    action = action_flag(message)
    return conn.room.private(conn, message.get("to"), _text(conn, message), action)


def nick(conn: Any, message: Message) -> Optional[Deferred]:
    old = conn.name

    def renamed(new: str) -> None:
        if new != old:
            _log.info("{old} is now {new}", old=old, new=new)

    result = conn.room.rename(conn, message.get("name"))
    if isinstance(result, Deferred):
        return result.addCallback(renamed)
    renamed(result)
    return None


def join(conn: Any, message: Message) -> Any:
    return conn.room.join(conn, message.get("room"))


def part(conn: Any, message: Message) -> Any:
    reason = message.get("reason")
    return conn.room.part(conn, message.get("room"),
                          None if reason is None else _optional_text(conn, reason))


def topic(conn: Any, message: Message) -> Any:
    text = message.get("text")
    problem = topic_error(text, conn.config.max_topic)
    if problem is not None:
        raise problem
    return conn.room.set_topic(conn, message.get("room"), text)


def rooms(conn: Any, message: Message) -> Optional[Deferred]:
    return _send_frames(conn, conn.room.rooms_frames())


def who(conn: Any, message: Message) -> Optional[Deferred]:
    return _send_frames(conn, conn.room.who_frames(message.get("room")))


def ping(conn: Any, message: Message) -> None:
    problem = ping_error(message)  # after the ping bucket, which drops unanswered
    if problem is not None:
        raise problem
    answer: Message = {"type": "pong"}
    if "token" in message:
        answer["token"] = message["token"]
    conn.send_direct(encode_frame(encode(answer)))  # a 256-byte token always fits


def pong(conn: Any, message: Message) -> None:
    """Any frame counts as life; the connection already noted it."""


def quit(conn: Any, message: Message) -> None:
    _log.info("{name} quit", name=conn.name)
    conn.quit(_optional_text(conn, message.get("reason")))


HANDLERS: Dict[str, Callable[[Any, Message], Any]] = {
    "hello": hello, "say": say, "msg": msg, "nick": nick, "join": join, "part": part,
    "topic": topic, "rooms": rooms, "who": who, "ping": ping, "pong": pong, "quit": quit,
}
"""Message type -> its handler (PROTOCOL.md 4.1)."""

ROOM_REQUESTS = frozenset({"say", "join", "part", "topic", "who"})
"""The requests whose errors name the room they were about."""
