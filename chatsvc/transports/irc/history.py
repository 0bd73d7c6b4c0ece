# -*- test-case-name: tests.test_irc_session -*-
"""
IRCv3 C{draft/chathistory} over the chat's room history, without I/O.

The chat answers a C{join} of a room the client is already in with the
room's history again (PROTOCOL.md 4.7), and changes nothing else: that is
how the gateway fetches it. The chat keeps the latest messages of each room
(50 by default); C{CHATHISTORY} selects from those by time.

    request = parse_request(["BEFORE", "#lobby", "timestamp=2026-...", "20"])
    chosen = select(messages, request)      # message dicts, oldest first
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

MAX_LIMIT = 50
"""The most messages one request returns (C{CHATHISTORY=50})."""

_SUBCOMMANDS = {"LATEST": 1, "BEFORE": 1, "AFTER": 1, "AROUND": 1, "BETWEEN": 2}


class BadRequest(ValueError):
    """A request the gateway cannot answer; C{code} is the FAIL code."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass(frozen=True)
class Request:
    subcommand: str
    target: str
    refs: tuple  # timestamps (ISO strings), or None for LATEST's "*"
    limit: int


def _timestamp(ref: str, star: bool) -> Optional[str]:
    if star and ref == "*":
        return None
    kind, _, value = ref.partition("=")
    if kind == "timestamp" and value:
        return value
    if kind == "msgid":
        raise BadRequest("INVALID_MSGREFTYPE", "messages are referred to by timestamp= only")
    raise BadRequest("INVALID_PARAMS", f"bad message reference {ref[:40]!r}")


def parse_request(params: List[str]) -> Request:
    """
    A C{CHATHISTORY} request from its parameters.

    @raise BadRequest: an unknown subcommand or bad parameters.
    """
    if not params:
        raise BadRequest("NEED_MORE_PARAMS", "CHATHISTORY needs a subcommand")
    sub = params[0].upper()
    count = _SUBCOMMANDS.get(sub)
    if count is None:
        raise BadRequest("INVALID_PARAMS", f"unknown subcommand {sub[:20]!r}")
    if len(params) < 3 + count:
        raise BadRequest("NEED_MORE_PARAMS", f"CHATHISTORY {sub} needs more parameters")
    refs = tuple(_timestamp(r, sub == "LATEST") for r in params[2:2 + count])
    try:
        limit = int(params[2 + count])
    except ValueError:
        raise BadRequest("INVALID_PARAMS", "the limit must be a number")
    if limit < 0:
        raise BadRequest("INVALID_PARAMS", "the limit must not be negative")
    return Request(sub, params[1], refs, min(limit or MAX_LIMIT, MAX_LIMIT))


def select(messages: List[Dict[str, Any]], request: Request) -> List[Dict[str, Any]]:
    """The messages C{request} asks for, oldest first (timestamps compare as ISO strings)."""
    limit = request.limit
    sub = request.subcommand

    def ts(m: Dict[str, Any]) -> str:
        return str(m.get("ts", ""))

    if sub == "LATEST":
        after = request.refs[0]
        chosen = [m for m in messages if after is None or ts(m) > after]
        return chosen[-limit:]
    ref = request.refs[0]
    if sub == "BEFORE":
        return [m for m in messages if ts(m) < ref][-limit:]
    if sub == "AFTER":
        return [m for m in messages if ts(m) > ref][:limit]
    if sub == "AROUND":
        before = [m for m in messages if ts(m) < ref][-(limit // 2):] if limit > 1 else []
        return before + [m for m in messages if ts(m) >= ref][:limit - len(before)]
    low, high = sorted(request.refs)
    chosen = [m for m in messages if low < ts(m) < high]
    return chosen[:limit] if request.refs[0] <= request.refs[1] else chosen[-limit:]
