# -*- test-case-name: tests.test_irc_session -*-
"""
One IRC client's session, without I/O: registration, capabilities, and the
chat's answers to this client translated to IRC.

The session talks to its host (the Twisted adapter,
L{chatsvc.transports.irc.gateway.IRCGatewayProtocol}) only through
L{ISessionHost}: it hands the chat requests with the context needed to
translate their answers, and hands the client IRC lines. The IRC commands
themselves are in L{chatsvc.transports.irc.commands}.

Requests are handed to the chat one at a time, each only once the previous
one has been handled (the host waits while the chat holds its input), so an
error or an answer from the chat always belongs to the last request handed
over: its context is L{IRCSession.context}.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from zope.interface import Attribute, Interface

from . import replies
from .commands import Commands
from .history import select
from .lines import format_line
from ...wire.names import name_key
from .names import chat_name, irc_nick, is_channel
from .outbound import RAW, ServerInfo, Translation, mask, privmsg_lines


class ISessionHost(Interface):
    """What an IRC session needs of the connection that carries it."""

    tls = Attribute("Whether the client connected over TLS.")

    def request(message, context):
        """Hand the chat one request (a message dict); C{context} is given back with its answer."""

    def reply(data):
        """Send the client IRC bytes, in order with what the chat sends it."""

    def charge():
        """Count a command answered without the chat against the rate limit; False if refused."""

    def fatal(code, text):
        """End the connection with a fatal chat error (the client sees C{ERROR})."""


class Channel:
    """What the session remembers of a channel it is in."""

    __slots__ = ("name", "topic")

    def __init__(self, name: str, topic: str = "") -> None:
        self.name = name
        self.topic = topic


class IRCSession(Commands):
    """
    @ivar name: the chat name (C{None} before C{welcome}); C{nick} its IRC form.
    @ivar caps: the IRCv3 capabilities the client asked for and got.
    @ivar context: the context of the last request handed to the chat.
    """

    name: Optional[str] = None
    nick: Optional[str] = None
    wanted: Optional[str] = None  # the nick asked for before registration
    user: Optional[str] = None
    password: Optional[str] = None
    negotiating = False
    hello_sent = False
    registered = False
    encrypted = False
    quitting: Optional[str] = None
    closed = False  # the client was sent its last line (ERROR)
    context: Any = None

    def __init__(self, info: ServerInfo, host: Any, psk: Optional[bytes] = None,
                 require_encryption: bool = False) -> None:
        self.info = info
        self.host = host
        self.psk = psk
        self.require_encryption = require_encryption
        self.caps: set = set()
        self.channels: Dict[str, Channel] = {}
        self.motd: Optional[str] = None
        self._collected: List[Any] = []
        self._batches = 0

    @property
    def me(self) -> str:
        """The target of numerics: the nick, or C{*} before registration."""
        return self.nick or "*"

    @property
    def tags(self) -> bool:
        return "server-time" in self.caps

    def send(self, *lines: bytes) -> None:
        self.host.reply(b"".join(lines))

    def channel(self, room: str) -> Optional[Channel]:
        return self.channels.get(room.casefold())

    # -- the chat's output for this client ---------------------------------

    def deliver(self, translation: Translation) -> bytes:
        """
        The bytes this client gets for a chunk of the chat's output: the
        shared lines it wants (its own messages left out without
        C{echo-message}), and the personal ones translated here. State
        changes (its renames and parts, topics) are applied on the way.
        """
        out: List[bytes] = []
        tags = self.tags
        echo = "echo-message" in self.caps
        for item in translation.items:
            message = item.message
            if item.plain:
                if item.sender is not None and item.sender == self.name and not echo \
                        and message.get("to") != self.name:  # a message to oneself arrives
                    continue
                if translation.events:
                    self._follow(message)
                out.append(item.tagged if tags else item.plain)
            else:
                out.extend(self.personal(message))
        return b"".join(out)

    def _follow(self, message: Dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "renamed" and message["old"] == self.name:
            self.name = message["new"]
            self.nick = irc_nick(self.name)
        elif kind == "parted" and message["name"] == self.name:
            self.channels.pop(str(message.get("room", self.info.default_room)).casefold(), None)
        elif kind == "topic":
            channel = self.channel(str(message.get("room", self.info.default_room)))
            if channel is not None:
                channel.topic = message.get("text") or ""

    def personal(self, message: Dict[str, Any]) -> List[bytes]:
        """The lines for a message meant for this client alone."""
        kind = message.get("type")
        if kind is RAW:
            return [message["data"]]  # the gateway's own reply, queued in order
        handler = getattr(self, "chat_" + str(kind), None)
        if handler is None:
            return []  # a message type this gateway does not know: ignored (4)
        return handler(message)

    def chat_welcome(self, message: Dict[str, Any]) -> List[bytes]:
        self.registered = True
        self.name = message["name"]
        self.nick = irc_nick(self.name)
        self.motd = message.get("motd")
        lines = replies.welcome(self.info, self.nick, self.motd)
        if self.info.has_key and not self.encrypted:
            lines.append(replies.notice(self.info, self.nick, (
                "*** You are connected without encryption: anyone on the network can read "
                "what you send and receive (give the key as the server password, over TLS)")))
        if "rooms" not in message:
            # A version 1 chat: the client is in the default room, and this
            # welcome is all it says about it.
            lines += self._joined_room(self.info.default_room, "", message.get("users", []), True)
        return lines

    def chat_room(self, message: Dict[str, Any]) -> List[bytes]:
        room = message["room"]
        if self.context and self.context[0] == "CHATHISTORY" and self.channel(room) is not None:
            return []  # a join again, to fetch the history: nothing changed
        lines = self._joined_room(room, message.get("topic") or "", message.get("users", []),
                                  not message.get("more"))
        plaintext = [irc_nick(n) for n in message.get("plaintext") or () if isinstance(n, str)]
        if plaintext and self.info.has_key:
            lines.append(replies.notice(self.info, room, "*** Connected without encryption "
                                        "(anyone on the network can read them): " + " ".join(plaintext)))
        return lines

    def _joined_room(self, room: str, topic: str, users: List[str], last: bool) -> List[bytes]:
        """JOIN (the first time), the topic, and the names of C{room}."""
        lines: List[bytes] = []
        channel = self.channel(room)
        if channel is None:
            self.channels[room.casefold()] = Channel(room, topic)
            lines.append(format_line("JOIN", [room], mask(self.name or "")))
            if topic:
                lines.append(replies.numeric(self.info, "332", self.me, room, topic))
        return lines + replies.names_lines(self.info, self.me, room,
                                           [irc_nick(u) for u in users], last)

    def chat_history(self, message: Dict[str, Any]) -> List[bytes]:
        room = message.get("room") or self.info.default_room
        messages = [m for m in message.get("messages", []) if isinstance(m, dict)]
        context = self.context
        if context and context[0] == "CHATHISTORY":
            # The answer to CHATHISTORY: always a batch, empty or not.
            return self._replay(room, select(messages, context[1]), True, True)
        if not messages:
            return []
        tagged = self.tags
        return self._replay(room, messages, tagged, tagged and "batch" in self.caps)

    def _replay(self, room: str, messages: List[Dict[str, Any]], tagged: bool,
                batch: bool) -> List[bytes]:
        """Old messages as PRIVMSG, with their time (a tag, or a stamp in the text)."""
        lines: List[bytes] = []
        tag: Dict[str, str] = {}
        if batch:
            self._batches += 1
            ref = f"h{self._batches}"
            tag["batch"] = ref
            lines.append(format_line("BATCH", [f"+{ref}", "chathistory", room], self.info.name))
        for m in messages:
            text, sender = m.get("text"), m.get("from")
            if not isinstance(text, str) or not isinstance(sender, str):
                continue
            ts = m.get("ts") if isinstance(m.get("ts"), str) else ""
            if tagged:
                lines += privmsg_lines(mask(sender), room, text, bool(m.get("action")),
                                       dict(tag, time=ts))
            else:
                stamp = f"[{ts[:10]} {ts[11:19]}] " if ts else ""
                lines += privmsg_lines(mask(sender), room, stamp + text, bool(m.get("action")))
        if batch:
            lines.append(format_line("BATCH", [f"-{ref}"], self.info.name))
        return lines

    def chat_ping(self, message: Dict[str, Any]) -> List[bytes]:
        return [format_line("PING", [str(message.get("token", self.info.name))])]

    def chat_pong(self, message: Dict[str, Any]) -> List[bytes]:
        token = message.get("token")
        token = token if isinstance(token, str) else self.info.name
        return [format_line("PONG", [self.info.name, token], self.info.name)]

    def chat_users(self, message: Dict[str, Any]) -> List[bytes]:
        self._collected.append(message)
        if message.get("more"):
            return []
        parts, self._collected = self._collected, []
        users = [u for part in parts for u in part.get("users", [])]
        plaintext = {p for part in parts for p in part.get("plaintext", [])}
        return self.answer_users(users, plaintext)

    def chat_rooms(self, message: Dict[str, Any]) -> List[bytes]:
        self._collected.append(message)
        if message.get("more"):
            return []
        parts, self._collected = self._collected, []
        rooms = [r for part in parts for r in part.get("rooms", []) if isinstance(r, dict)]
        return self.answer_rooms(rooms)

    def chat_error(self, message: Dict[str, Any]) -> List[bytes]:
        code = str(message.get("code"))
        text = str(message.get("text", ""))
        if message.get("fatal"):
            self.closed = True
            return [replies.closing(code, text)]
        return self.answer_error(code, text)

    # -- answers to requests, by their context --------------------------------

    def answer_users(self, users: List[str], plaintext: set) -> List[bytes]:
        command, target = self.context if self.context else (None, None)
        info, me = self.info, self.me
        if command == "NAMES":
            return replies.names_lines(info, me, target, [irc_nick(u) for u in users])
        if command == "WHO" and is_channel(target):
            return [replies.who_line(info, me, target, irc_nick(u), u in plaintext)
                    for u in users] + [replies.numeric(info, "315", me, target, "End of WHO list")]
        if command == "LUSERS":
            count = len(users)
            return [replies.numeric(info, "251", me, f"There are {count} users and 0 invisible on 1 servers"),
                    replies.numeric(info, "255", me, f"I have {count} clients and 1 servers")]
        online = {name_key(u): u for u in users}
        if command in ("WHO", "WHOIS"):
            name = chat_name(target)
            found = online.get(name_key(name)) if name is not None else None
            if command == "WHOIS":
                return replies.whois_lines(info, me, target, None if found is None else found in plaintext)
            lines = [replies.who_line(info, me, "*", irc_nick(found), found in plaintext)] if found else []
            return lines + [replies.numeric(info, "315", me, target, "End of WHO list")]
        if command in ("ISON", "USERHOST"):
            present = [n for n in target if chat_name(n) is not None
                       and name_key(chat_name(n)) in online]
            if command == "ISON":
                return [replies.numeric(info, "303", me, " ".join(present))]
            return [replies.numeric(info, "302", me, " ".join(
                f"{n}=+{replies.USER}@{replies.HOST}" for n in present))]
        return []

    def answer_rooms(self, rooms: List[Dict]) -> List[bytes]:
        if self.context and self.context[0] == "TOPIC?":
            return self._topic_of(self.context[1], rooms)
        wanted = self.context[1] if self.context and self.context[0] == "LIST" else None
        if wanted is not None:
            rooms = [r for r in rooms if str(r.get("room", "")).casefold() in wanted]
        return replies.list_lines(self.info, self.me, rooms)

    def _topic_of(self, room: str, rooms: List[Dict]) -> List[bytes]:
        for entry in rooms:
            if str(entry.get("room", "")).casefold() == room.casefold():
                if entry.get("topic"):
                    return [replies.numeric(self.info, "332", self.me, entry["room"], entry["topic"])]
                return [replies.numeric(self.info, "331", self.me, entry["room"], "No topic is set")]
        return [replies.numeric(self.info, "403", self.me, room, "No such channel")]

    def answer_error(self, code: str, text: str) -> List[bytes]:
        command, target = self.context if self.context else ("", None)
        if not self.registered and command == "NICK":
            # hello refused (bad-name): the client may choose another nick.
            self.hello_sent = False
            self.wanted = None
        if code == "no-such-room" and command in ("NAMES", "WHO"):
            end = ("366", "End of NAMES list") if command == "NAMES" else ("315", "End of WHO list")
            return [replies.numeric(self.info, end[0], self.me, target, end[1])]
        if command in ("PING", "PONG", "QUIT", "LIST", "WHOIS", "ISON", "USERHOST", "TOPIC?", "LUSERS"):
            target = None
        return replies.error_lines(self.info, self.me, code, text, command, target,
                                   "standard-replies" in self.caps)
