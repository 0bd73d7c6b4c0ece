# -*- test-case-name: tests.test_messages -*-
"""
Chat messages (PROTOCOL.md section 4): JSON objects in frame bodies, without I/O.

    body = encode({"type": "say", "text": "hi"})   # compact UTF-8 JSON
    message = decode(body)                           # dict, or RemoteProtocolError
    check_text(message.get("text"), max_bytes=4096) # the text rules of 4.4

L{decode} is total: for any bytes it returns a dict with a string C{type}
or raises L{RemoteProtocolError} (code C{bad-json}); no other exception
escapes it.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from typing import Any, Dict, Optional

from .errors import RemoteProtocolError

Message = Dict[str, Any]

CLIENT_TYPES = frozenset({"hello", "say", "msg", "nick", "join", "part", "topic", "rooms", "who",
                          "ping", "pong", "quit"})
"""Every message type a client may send (4.1)."""

DEFAULT_MAX_TEXT = 4096

# Cc except tab and newline, then the bidirectional overrides and isolates.
_FORBIDDEN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_encode = _encoder.encode


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


MAX_INT_DIGITS = 4300
"""The longest integer literal (CPython's C{int} limit since 3.11, made the
rule on every Python: converting a long digit string costs quadratic time)."""


def _bounded_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS + 1:  # one more for a minus sign
        raise ValueError("integer too long")
    return int(text)


_decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float,
                            parse_int=_bounded_int)
_decode = _decoder.decode


def encode(message: Message) -> bytes:
    """Return C{message} as a compact UTF-8 JSON body (non-ASCII unescaped)."""
    return _encode(message).encode("utf-8")


MAX_DEPTH = 100
"""The deepest nesting of objects and arrays in a message (the message
object itself is at depth 1). Deeper is C{bad-json}: whatever decodes must
also encode again (a C{pong} echoes its token) at any stack depth."""


def _value_problem(value: Any) -> Optional[str]:
    """
    Why C{value} cannot be a message member (a lone surrogate, nesting over
    L{MAX_DEPTH}), or C{None}. Iterative, so no input exhausts the stack.
    """
    stack = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "a string holds a lone surrogate"
        elif isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels"
            if isinstance(item, dict):
                for key, member in item.items():
                    push((key, depth))
                    push((member, depth + 1))
            else:
                for member in item:
                    push((member, depth + 1))
    return None


def decode(body: bytes) -> Message:
    """
    Parse a frame body into a message.

    @raise RemoteProtocolError: C{bad-json} (not fatal) unless C{body} is a
        UTF-8 JSON object with a string C{type}, no NaN or Infinity, no
        lone surrogate and no nesting deeper than L{MAX_DEPTH}.
    """
    try:
        text = body.decode("utf-8")
        message = _decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise RemoteProtocolError("bad-json", "not a UTF-8 JSON object", fatal=False)
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise RemoteProtocolError(
            "bad-json", "a message is a JSON object with a string 'type'", fatal=False
        )
    # A lone surrogate can only arrive as a \u escape: strict UTF-8 decoding
    # refuses encoded ones. Deep nesting needs more brackets than MAX_DEPTH.
    # Only walk the object when either is possible.
    if "\\u" in text or text.count("[") + text.count("{") > MAX_DEPTH:
        problem = _value_problem(message)
        if problem is not None:
            raise RemoteProtocolError("bad-json", problem, fatal=False)
    return message


def text_error(text: object, max_bytes: int = DEFAULT_MAX_TEXT) -> Optional[RemoteProtocolError]:
    """
    Return the error for C{text} under the rules of 4.4, or C{None} if it is
    good. (Returned, not raised, so that hot paths avoid exceptions.)
    """
    if not isinstance(text, str) or not text:
        return RemoteProtocolError("bad-text", "text must be a non-empty string", fatal=False)
    if len(text) * 4 > max_bytes and len(text.encode("utf-8")) > max_bytes:
        return RemoteProtocolError(
            "too-long", f"text is limited to {max_bytes} UTF-8 bytes", fatal=False
        )
    if _FORBIDDEN_TEXT.search(text) is not None:
        return RemoteProtocolError(
            "bad-text",
            "text must not hold control characters (but tab and newline) "
            "or bidirectional overrides",
            fatal=False,
        )
    return None


def check_text(text: object, max_bytes: int = DEFAULT_MAX_TEXT) -> str:
    """Return C{text} if it follows the rules of 4.4, else raise the error."""
    error = text_error(text, max_bytes)
    if error is not None:
        raise error
    return text  # type: ignore[return-value]


def timestamp(seconds: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. C{2026-11-22T02:50:00.123Z}."""
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def error(code: str, text: str, fatal: bool) -> Message:
    """An C{error} message."""
    return {"type": "error", "code": code, "text": text, "fatal": fatal}
