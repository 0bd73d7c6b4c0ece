# -*- test-case-name: tests.test_irc_session -*-
"""
The IRC commands a client sends, as chat requests or local answers (a mixin
of L{chatsvc.transports.irc.session.IRCSession}; no I/O).

Every handler is C{irc_<COMMAND>(params)}, as in Twisted's
L{twisted.words.protocols.irc.IRC}. A command the chat answers becomes a
request with a context (C{(command, target, ...)}); its answer comes back
through the session's C{answer_users}, C{answer_rooms} or C{answer_error}.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

from ...wire.names import name_key
from . import replies
from .history import BadRequest, parse_request
from .lines import IRCMessage, format_line, split_ctcp, strip_formatting
from .names import chat_name, is_channel

BEFORE_REGISTRATION = frozenset({"CAP", "PASS", "NICK", "USER", "PING", "PONG", "QUIT"})

TO_CHAT = frozenset({"PRIVMSG", "NOTICE", "JOIN", "PART", "NAMES", "WHO", "WHOIS", "LIST",
                     "PING", "PONG", "QUIT", "ISON", "USERHOST", "CHATHISTORY", "LUSERS"})
"""Commands the chat answers (and rate-limits); the others are charged by the gateway."""

MAX_TARGETS = 4


def key_matches(password: str, psk: bytes) -> bool:
    """Whether C{password} is the key's base64 line (PROTOCOL.md section 5)."""
    try:
        candidate = base64.urlsafe_b64decode(password.strip().encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False
    return len(candidate) == len(psk) and hmac.compare_digest(candidate, psk)


class Commands:
    """IRC commands to chat requests (mixed into the session)."""

    info: Any
    host: Any
    invisible = False
    caps: set
    context: Any

    # -- dispatch ------------------------------------------------------------

    def line_received(self, message: IRCMessage) -> None:
        """Handle one IRC line from the client."""
        command = message.command
        if not self.registered and command not in BEFORE_REGISTRATION:
            if self.host.charge():
                self.send(replies.numeric(self.info, "451", self.me, "You have not registered"))
            return
        if command not in TO_CHAT and not self.host.charge():
            return
        handler = getattr(self, "irc_" + command, None)
        if handler is None:
            self.send(replies.numeric(self.info, "421", self.me, command[:32], "Unknown command"))
            return
        handler(message.params)

    def need(self, command: str, params: List[str], count: int) -> bool:
        """Whether C{params} has C{count} parameters; if not, 461 is sent."""
        if len(params) >= count and all(params[:count]):
            return True
        self.send(replies.numeric(self.info, "461", self.me, command, "Not enough parameters"))
        return False

    def numeric(self, code: str, *params: str) -> None:
        self.send(replies.numeric(self.info, code, self.me, *params))

    # -- registration ----------------------------------------------------------

    def irc_CAP(self, params: List[str]) -> None:
        sub = params[0].upper() if params else ""
        if sub == "LS":
            self.negotiating = not self.registered
            self.send(format_line("CAP", [self.me, "LS", " ".join(replies.CAPS)], self.info.name))
        elif sub == "LIST":
            self.send(format_line("CAP", [self.me, "LIST", " ".join(sorted(self.caps))],
                                          self.info.name))
        elif sub == "REQ" and len(params) > 1:
            self.negotiating = not self.registered
            wanted = params[1].split()
            known = all(c.lstrip("-") in replies.CAPS for c in wanted)
            if known:
                for cap in wanted:
                    (self.caps.discard if cap.startswith("-") else self.caps.add)(cap.lstrip("-"))
            self.send(format_line("CAP", [self.me, "ACK" if known else "NAK", params[1]],
                                          self.info.name))
        elif sub == "END":
            self.negotiating = False
            self.try_register()
        else:
            self.numeric("410", sub or "*", "Invalid CAP command")

    def irc_PASS(self, params: List[str]) -> None:
        if self.registered or self.hello_sent:
            self.numeric("462", "You may not reregister")
        elif self.need("PASS", params, 1):
            self.password = params[0]

    def irc_USER(self, params: List[str]) -> None:
        if self.registered or self.hello_sent:
            self.numeric("462", "You may not reregister")
        elif self.need("USER", params, 4):
            self.user = params[0]
            self.try_register()

    def irc_NICK(self, params: List[str]) -> None:
        if not params or not params[0]:
            self.numeric("431", "No nickname given")
            return
        nick = params[0]
        name = chat_name(nick)
        if name is None:
            self.numeric("432", nick, "Erroneous nickname")
        elif not self.registered:
            if not self.hello_sent:
                self.wanted = nick
                self.try_register()
        elif nick != self.nick:
            self.host.request({"type": "nick", "name": name}, ("NICK", nick))

    def try_register(self) -> None:
        """Say C{hello} once NICK and USER are in and capabilities are settled."""
        if (self.registered or self.hello_sent or self.negotiating or self.wanted is None
                or self.user is None):
            return
        refusal = self._key_refusal()
        if refusal is not None:
            self.numeric("464", "Password incorrect")
            self.host.fatal(*refusal)
            return
        self.hello_sent = True
        self.host.request({"type": "hello", "name": chat_name(self.wanted)}, ("NICK", self.wanted))

    def _key_refusal(self) -> Optional[Tuple[str, str]]:
        """
        PROTOCOL.md 7.2: with a key, the key is the server password and
        travels only over TLS; the member then counts as encrypted.
        """
        psk, password = self.psk, self.password
        if psk is None:
            return None
        if password is not None:
            if not self.host.tls:
                return ("encryption-required", "the key (PASS) may only be sent over TLS")
            if not key_matches(password, psk):
                return ("handshake-failed", "the server password is not this chat's key")
            self.encrypted = True
            return None
        if self.require_encryption:
            return ("encryption-required", "give the chat's key as the server password (PASS), over TLS")
        return None

    def irc_PING(self, params: List[str]) -> None:
        if not params or not params[0]:
            self.numeric("409", "No origin specified")
            return
        self.host.request({"type": "ping", "token": params[0]}, ("PING", None))

    def irc_PONG(self, params: List[str]) -> None:
        if self.registered:
            self.host.request({"type": "pong", "token": params[-1] if params else ""}, ("PONG", None))

    def irc_QUIT(self, params: List[str]) -> None:
        reason = params[0] if params else ""
        self.quitting = f"Quit: {reason}" if reason else "Quit"
        if not self.registered:
            self.host.fatal("quit", reason or "Client Quit")
            return
        message: Dict[str, Any] = {"type": "quit"}
        if reason:
            message["reason"] = strip_formatting(reason)
        self.host.request(message, ("QUIT", None))

    # -- talking ---------------------------------------------------------------

    def irc_PRIVMSG(self, params: List[str], command: str = "PRIVMSG") -> None:
        if not params or not params[0]:
            self.numeric("411", f"No recipient given ({command})")
            return
        if len(params) < 2 or not params[1]:
            self.numeric("412", "No text to send")
            return
        text, action = strip_formatting(params[1]), False
        ctcp = split_ctcp(text)
        if ctcp is not None:
            if ctcp[0] != "ACTION":
                self.refuse(command, f"CTCP {ctcp[0][:32]} is not carried to the chat")
                return
            text, action = ctcp[1], True
        if not text:
            self.numeric("412", "No text to send")
            return
        for target in params[0].split(",")[:MAX_TARGETS]:
            self._send_text(command, target, text, action)

    def irc_NOTICE(self, params: List[str]) -> None:
        self.irc_PRIVMSG(params, "NOTICE")

    def _send_text(self, command: str, target: str, text: str, action: bool) -> None:
        message: Dict[str, Any]
        if is_channel(target):
            message = {"type": "say", "room": target, "text": text}
        else:
            name = chat_name(target)
            if name is None:
                self.numeric("401", target, "No such nick/channel")
                return
            message = {"type": "msg", "to": name, "text": text}
        if action:
            message["action"] = True
        self.host.request(message, (command, target))

    def refuse(self, command: str, text: str) -> None:
        """A FAIL (C{standard-replies}) or a NOTICE saying what was not done."""
        self.send(*replies.error_lines(self.info, self.me, "refused", text, command, None,
                                       "standard-replies" in self.caps))

    # -- channels --------------------------------------------------------------

    def irc_JOIN(self, params: List[str]) -> None:
        if not self.need("JOIN", params, 1):
            return
        if params[0] == "0":
            for channel in list(self.channels.values()):
                self.host.request({"type": "part", "room": channel.name}, ("PART", channel.name))
            return
        for room in params[0].split(","):
            if not is_channel(room):
                self.numeric("403", room, "No such channel")
            elif self.channel(room) is None:
                self.host.request({"type": "join", "room": room}, ("JOIN", room))

    def irc_PART(self, params: List[str]) -> None:
        if not self.need("PART", params, 1):
            return
        reason = strip_formatting(params[1]) if len(params) > 1 and params[1] else None
        for room in params[0].split(","):
            message: Dict[str, Any] = {"type": "part", "room": room}
            if reason:
                message["reason"] = reason
            self.host.request(message, ("PART", room))

    def irc_TOPIC(self, params: List[str]) -> None:
        if not self.need("TOPIC", params, 1):
            return
        room = params[0]
        if len(params) > 1:
            self.host.request({"type": "topic", "room": room, "text": strip_formatting(params[1])},
                              ("TOPIC", room))
            return
        channel = self.channel(room)
        if channel is None:
            # Not in it: the chat's room list says whether it exists and its topic.
            self.host.request({"type": "rooms"}, ("TOPIC?", room))
        elif channel.topic:
            self.numeric("332", channel.name, channel.topic)
        else:
            self.numeric("331", channel.name, "No topic is set")

    def irc_NAMES(self, params: List[str]) -> None:
        if not params or not params[0]:
            self.numeric("366", "*", "End of NAMES list")
            return
        room = params[0].split(",")[0]
        self.host.request({"type": "who", "room": room}, ("NAMES", room))

    def irc_LIST(self, params: List[str]) -> None:
        wanted = {r.casefold() for r in params[0].split(",")} if params and params[0] else None
        self.host.request({"type": "rooms"}, ("LIST", wanted))

    def irc_CHATHISTORY(self, params: List[str]) -> None:
        """C{draft/chathistory}: the room's history, fetched with a join again."""
        try:
            request = parse_request(params)
        except BadRequest as e:
            self.send(format_line("FAIL", ["CHATHISTORY", e.code, *params[:1], e.text], self.info.name))
            return
        channel = self.channel(request.target) if is_channel(request.target) else None
        if channel is not None:
            self.host.request({"type": "join", "room": channel.name}, ("CHATHISTORY", request))
        elif is_channel(request.target):
            self.send(format_line("FAIL", ["CHATHISTORY", "INVALID_TARGET", params[0], request.target,
                                           "you are not in that channel"], self.info.name))
        else:  # the chat keeps no history of private messages
            self.send(format_line("BATCH", ["+p", "chathistory", request.target], self.info.name),
                      format_line("BATCH", ["-p"], self.info.name))

    # -- who is who -------------------------------------------------------------

    def irc_WHO(self, params: List[str]) -> None:
        mask = params[0] if params and params[0] not in ("", "0", "*") else None
        if mask is None:
            self.numeric("315", "*", "End of WHO list")
        elif is_channel(mask):
            self.host.request({"type": "who", "room": mask}, ("WHO", mask))
        else:
            self.host.request({"type": "who"}, ("WHO", mask))

    def irc_WHOIS(self, params: List[str]) -> None:
        if not params or not params[-1]:
            self.numeric("431", "No nickname given")
            return
        self.host.request({"type": "who"}, ("WHOIS", params[-1].split(",")[0]))

    def irc_LUSERS(self, params: List[str]) -> None:
        self.host.request({"type": "who"}, ("LUSERS", None))

    def irc_ISON(self, params: List[str]) -> None:
        if self.need("ISON", params, 1):
            self.host.request({"type": "who"}, ("ISON", " ".join(params).split()))

    def irc_USERHOST(self, params: List[str]) -> None:
        if self.need("USERHOST", params, 1):
            self.host.request({"type": "who"}, ("USERHOST", params[:5]))

    # -- answered without the chat ----------------------------------------------

    def irc_MODE(self, params: List[str]) -> None:
        if not self.need("MODE", params, 1):
            return
        target = params[0]
        if is_channel(target):
            if len(params) == 1:
                self.numeric("324", target, "+n")
            elif params[1].lstrip("+") == "b":
                self.numeric("368", target, "End of channel ban list")
            else:
                self.numeric("482", target, "You're not channel operator (channels have no modes here)")
        elif self._is_me(target):
            self._user_mode(params[1] if len(params) > 1 else "")
        else:
            self.numeric("502", "Can't change mode for other users")

    def _is_me(self, nick: str) -> bool:
        name = chat_name(nick)
        return name is not None and self.name is not None and name_key(name) == name_key(self.name)

    def _user_mode(self, change: str) -> None:
        """
        The one user mode is C{i} (invisible), which every chat user is not
        and may say it is: clients set it at sign-in (irssi's default).
        """
        if not change:
            self.numeric("221", "+i" if self.invisible else "+")
        elif change.strip("+-") and not change.strip("+-i"):
            self.invisible = change.rstrip("i").endswith("+")
            self.send(format_line("MODE", [self.me, change], self.me, colon=True))
        else:
            self.numeric("501", "Unknown MODE flag (the only user mode is i)")

    def irc_AWAY(self, params: List[str]) -> None:
        if params and params[0]:
            self.numeric("306", "You have been marked as being away")
        else:
            self.numeric("305", "You are no longer marked as being away")

    def irc_TAGMSG(self, params: List[str]) -> None:
        """
        Only client tags (C{+typing} and the like), which the chat cannot
        carry: accepted and not relayed, as the message-tags spec lets a
        server drop client tags. Answering each with an error would flood
        clients that send typing notifications.
        """

    def irc_MOTD(self, params: List[str]) -> None:
        self.send(*replies.motd_lines(self.info, self.me, self.motd))

    def irc_VERSION(self, params: List[str]) -> None:
        self.numeric("351", self.info.version, self.info.name, "chatsvc IRC gateway")

    def irc_TIME(self, params: List[str]) -> None:
        now = datetime.now(timezone.utc).strftime("%A %B %d %Y -- %H:%M:%S UTC")
        self.numeric("391", self.info.name, now)

    def irc_KICK(self, params: List[str]) -> None:
        if self.need("KICK", params, 2):
            self.numeric("482", params[0], "You're not channel operator (the chat has none)")

    def irc_INVITE(self, params: List[str]) -> None:
        if self.need("INVITE", params, 2):
            self.numeric("482", params[1], "You're not channel operator (channels are open: just JOIN)")

    def irc_OPER(self, params: List[str]) -> None:
        self.numeric("491", "No O-lines for your host (the chat has no IRC operators)")
