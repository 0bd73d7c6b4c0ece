# -*- test-case-name: tests.test_irc_names -*-
"""
Chat names as IRC nicks and back (docs/irc.md, "Names").

A chat name (PROTOCOL.md 4.3) holds letters, digits, C{_}, C{-} and C{.},
and may start with any of them. An IRC nick cannot start with a digit or
C{-} and cannot hold C{.}. Two characters that no chat name holds carry the
difference, so the mapping is exact both ways:

  - every C{.} is written C{^};
  - a name that starts with a digit or C{-} is written with a C{`} before it.

    >>> irc_nick("j.doe"), irc_nick("1337"), irc_nick("-x-")
    ('j^doe', '`1337', '`-x-')
    >>> chat_name("j^doe"), chat_name("`1337")
    ('j.doe', '1337')

Letters are any Unicode letters (the gateway is C{UTF8ONLY}), compared as
the chat compares names (case folded, NFC).
"""

from __future__ import annotations

import unicodedata
from typing import Optional

from ...wire.names import InvalidName, MAX_NAME, normalize

NICKLEN = MAX_NAME + 1
"""The longest IRC nick: a chat name and, at most, the C{`} before it."""

CHANNELLEN = MAX_NAME + 1
"""The longest channel name: C{#} and a room name."""

_DOT = "^"
_LEAD = "`"


def _needs_lead(first: str) -> bool:
    return first == "-" or unicodedata.category(first) == "Nd"


def irc_nick(name: str) -> str:
    """The IRC nick of the chat name C{name} (a valid chat name)."""
    nick = name.replace(".", _DOT)
    if nick and _needs_lead(nick[0]):
        nick = _LEAD + nick
    return nick


def chat_name(nick: str) -> Optional[str]:
    """
    The chat name an IRC nick stands for, or C{None} if it stands for none
    (then the nick is erroneous: C{432}). Nicks that IRC itself forbids
    (starting with a digit or C{-}) stand for none either.
    """
    if not nick:
        return None
    if nick[0] == _LEAD:
        nick = nick[1:]
        if not nick or not _needs_lead(nick[0]):
            return None
    elif _needs_lead(nick[0]):
        return None
    if "." in nick:
        return None
    try:
        return normalize(nick.replace(_DOT, "."))
    except InvalidName:
        return None


def is_channel(target: str) -> bool:
    """Whether an IRC target names a channel (C{CHANTYPES=#})."""
    return target.startswith("#")
