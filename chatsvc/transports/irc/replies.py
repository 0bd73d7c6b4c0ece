# -*- test-case-name: tests.test_irc_session -*-
"""
The numeric replies the gateway sends, built without I/O.

Each function returns the lines (bytes, CR LF included) for one answer; the
session decides when. Numerics and their parameters follow RFC 2812 and
the modern IRC client protocol (modern.ircdocs.horse); where ngIRCd answers
differently, docs/irc.md says which and why.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from .lines import format_line
from .names import CHANNELLEN, NICKLEN
from .outbound import HOST, USER, ServerInfo, split_names

CAPS = ("batch", "draft/chathistory", "echo-message", "message-tags", "multi-prefix",
        "server-time", "standard-replies")
"""The IRCv3 capabilities the gateway offers (C{CAP LS})."""


_NO_TEXT = frozenset({"004", "005", "221", "324", "329"})
"""Numerics whose last parameter is not text (no C{:} unless it must)."""


def numeric(info: ServerInfo, code: str, target: str, *params: str) -> bytes:
    """C{:server CODE target params...} (the last with C{:} when it is text)."""
    return format_line(code, [target, *params], info.name, colon=code not in _NO_TEXT and bool(params))


def notice(info: ServerInfo, target: str, text: str) -> bytes:
    return format_line("NOTICE", [target, text], info.name)


def isupport_tokens(info: ServerInfo) -> List[str]:
    return [
        "CASEMAPPING=rfc7613",
        f"CHANLIMIT=#:{info.max_rooms or ''}",
        "CHANMODES=,,,n",
        f"CHANNELLEN={CHANNELLEN}",
        "CHANTYPES=#",
        "CHATHISTORY=50",
        "ELIST=",
        f"NETWORK={info.network}",
        f"NICKLEN={NICKLEN}",
        "PREFIX=",
        "SAFELIST",
        "TARGMAX=JOIN:,PART:,PRIVMSG:4,NOTICE:4,NAMES:1,WHOIS:1",
        f"TOPICLEN={info.topic_len}",
        "UTF8ONLY",
    ]


def welcome(info: ServerInfo, nick: str, motd: Optional[str]) -> List[bytes]:
    """001 to 005, then the MOTD (or 422): what a client waits for at sign-in."""
    lines = [
        numeric(info, "001", nick, f"Welcome to the {info.network} IRC gateway, {nick}"),
        numeric(info, "002", nick, f"Your host is {info.name}, running version {info.version}"),
        numeric(info, "003", nick, f"This server was created {info.created}"),
        numeric(info, "004", nick, info.name, info.version, "i", "n"),
    ]
    tokens = isupport_tokens(info)
    for start in range(0, len(tokens), 12):
        lines.append(numeric(info, "005", nick, *tokens[start:start + 12],
                             "are supported by this server"))
    return lines + motd_lines(info, nick, motd)


def motd_lines(info: ServerInfo, nick: str, motd: Optional[str]) -> List[bytes]:
    if not motd:
        return [numeric(info, "422", nick, "MOTD File is missing")]
    lines = [numeric(info, "375", nick, f"- {info.name} Message of the day - ")]
    for text in motd.split("\n"):
        lines.append(numeric(info, "372", nick, f"- {text}"))
    lines.append(numeric(info, "376", nick, "End of MOTD command"))
    return lines


def names_lines(info: ServerInfo, nick: str, channel: str, names: Sequence[str],
                end: bool = True) -> List[bytes]:
    """353 (as many lines as the names need) and, if C{end}, 366."""
    head = f":{info.name} 353 {nick} = {channel} :"
    lines = [numeric(info, "353", nick, "=", channel, " ".join(group))
             for group in split_names(head, list(names))]
    if end:
        lines.append(numeric(info, "366", nick, channel, "End of NAMES list"))
    return lines


def who_line(info: ServerInfo, nick: str, channel: str, who: str, plaintext: bool) -> bytes:
    realname = "plaintext" if plaintext and info.has_key else "chat"
    return numeric(info, "352", nick, channel, USER, HOST, info.name, who, "H",
                   f"0 {realname}")


def whois_lines(info: ServerInfo, nick: str, who: str, plaintext: Optional[bool]) -> List[bytes]:
    """311, 312, the encryption line, 318; or 401 and 318 if C{plaintext} is None (offline)."""
    if plaintext is None:
        return [numeric(info, "401", nick, who, "No such nick/channel"),
                numeric(info, "318", nick, who, "End of WHOIS list")]
    lines = [numeric(info, "311", nick, who, USER, HOST, "*", "chat user"),
             numeric(info, "312", nick, who, info.name, f"{info.network} chat")]
    if plaintext and info.has_key:
        lines.append(numeric(info, "320", nick, who,
                             "is connected without encryption (anyone on the network can read it)"))
    elif info.has_key:
        lines.append(numeric(info, "671", nick, who, "is using an encrypted connection"))
    lines.append(numeric(info, "318", nick, who, "End of WHOIS list"))
    return lines


def list_lines(info: ServerInfo, nick: str, rooms: List[Dict]) -> List[bytes]:
    lines = [numeric(info, "321", nick, "Channel", "Users  Name")]
    for room in rooms:
        lines.append(numeric(info, "322", nick, room["room"], str(room.get("count", 0)),
                             room.get("topic") or ""))
    lines.append(numeric(info, "323", nick, "End of LIST"))
    return lines


# What the chat's non-fatal errors become, by the IRC command that caused
# them: (numeric, text, whether the chat's own text is added: it is where it
# says why). Other codes: a NOTICE (or FAIL with standard-replies) carrying
# the chat's own text.
_ERRORS = {
    "bad-name": ("432", "Erroneous nickname", True),
    "name-taken": ("433", "Nickname is already in use", False),
    "no-such-user": ("401", "No such nick/channel", False),
    "bad-room": ("403", "No such channel", True),
    "too-many-rooms": ("405", "You have joined too many channels", False),
}


def error_lines(info: ServerInfo, nick: str, code: str, text: str, command: str,
                target: Optional[str], fail: bool) -> List[bytes]:
    """
    The IRC answer to the chat's non-fatal error C{code} for C{command}
    (about C{target}): a numeric where IRC has one, else FAIL (for clients
    that asked for C{standard-replies}) or a NOTICE, never nothing.
    """
    known = _ERRORS.get(code)
    if code == "not-in-room" and target is not None:
        if command in ("PRIVMSG", "NOTICE"):
            return [numeric(info, "404", nick, target, "Cannot send to channel (you are not in it)")]
        return [numeric(info, "442", nick, target, "You're not on that channel")]
    if known is not None and target is not None:
        return [numeric(info, known[0], nick, target, f"{known[1]} ({text})" if known[2] else known[1])]
    if fail:
        return [format_line("FAIL", [command or "*", code.upper().replace("-", "_"), text],
                            info.name)]
    return [notice(info, nick, f"*** {command or 'Request'} refused ({code}): {text}")]


def closing(code: str, text: str) -> bytes:
    """The last line of a connection the chat ends (a fatal error, or QUIT)."""
    return format_line("ERROR", [f"Closing link ({code}: {text})" if text else f"Closing link ({code})"])
