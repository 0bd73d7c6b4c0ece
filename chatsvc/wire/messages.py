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


def _one_encoder() -> Any:
    """
    C{json}'s C encoder for compact, non-ASCII-unescaped JSON, made once:
    C{JSONEncoder.encode} makes a new one for every call, a third of the
    cost of encoding a chat message. (No circular check: the server only
    encodes the messages it builds.) C{None} without the C speedups.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    basestring = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or basestring is None:
        return None
    return make(None, _encoder.default, basestring, None, ":", ",", False, False, False)


_iterencode = _one_encoder()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


MAX_INT_DIGITS = 100
"""The longest integer literal, in digits. Converting a decimal string to an
C{int} costs quadratic time: fifteen 4,299-digit integers (each within
CPython 3.11's own limit) took 1.75 ms, over the 1 ms a frame may cost. No
message needs more than 19 digits (a C{seq})."""


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError("integer too long")
    return int(text)


# The fast decoder converts numbers in C (no Python call per number: a
# 64 KiB body holds 30,000 of them). A body with a run of more than
# MAX_INT_DIGITS digits (an integer that may be too long, or a float that
# may be too large, with the exponent check below) goes to the checked
# decoder instead. See _may_overflow.
_fast_decode = json.JSONDecoder(parse_constant=_refuse_constant).decode
_decode = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float,
                           parse_int=_bounded_int).decode

# Digits to "0", "e" and "E" to "e", everything else to " " ("+" is deleted).
_NUMBER_SHAPE = bytes(
    ord("0") if chr(b).isdigit() and b < 128 else ord("e") if b in b"eE" else ord(" ")
    for b in range(256)
)
_LONG_RUN = b"0" * (MAX_INT_DIGITS + 1)


def _may_overflow(body: bytes) -> bool:
    """
    Whether a number in C{body} might be too long an integer or too large a
    float: one with an exponent of three digits or more, or with more than
    L{MAX_INT_DIGITS} digits (so a float with a two-digit exponent, which
    adds at most 99, cannot pass 1e308 unnoticed). Two searches at C speed;
    a false alarm only costs the checked decoder.
    """
    shape = body.translate(_NUMBER_SHAPE, b"+")
    return b"e000" in shape or _LONG_RUN in shape


def encode(message: Message) -> bytes:
    """Return C{message} as a compact UTF-8 JSON body (non-ASCII unescaped)."""
    if _iterencode is None:
        return _encode(message).encode("utf-8")
    return "".join(_iterencode(message, 0)).encode("utf-8")


MAX_CONTAINERS = 64
"""The most JSON arrays and objects a message may hold in all, the message
object included, nested or side by side (PROTOCOL.md 4.6, v2). More is
C{bad-json}, found before the body is parsed: a 64 KiB body of C{[],[],...}
costs a scan, not a parse and a walk. It also bounds the nesting, so that
whatever decodes also encodes again (a C{pong} echoes its token) at any
stack depth."""

MAX_DEPTH = MAX_CONTAINERS
"""The deepest nesting (the message object is depth 1): at most
L{MAX_CONTAINERS}, since every level is a container."""

MAX_PING_TOKEN = 256
"""The longest C{ping} token, in bytes of compact UTF-8 JSON (4.6, v2)."""

# The escape of a UTF-16 surrogate: the only way a lone one can arrive, since
# strict UTF-8 decoding refuses encoded ones.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def count_containers(text: str) -> int:
    """
    Return how many JSON arrays and objects C{text} holds, if it is JSON:
    the brackets and braces outside strings (past L{MAX_CONTAINERS}, it may
    stop counting and return any larger number).

    Cheap: one C{count} when the text has few brackets at all. Else escaped
    backslashes, then escaped quotes, are taken out (left to right, as a
    JSON parser pairs them), so that the quotes left delimit the strings;
    then, whichever is fewer, each bracket is looked at (outside a string if
    an even number of quotes comes before it), or the text is cut at every
    quote and the pieces between strings searched. No parse, and no Python
    work per string or per bracket beyond the fewer of the two.
    """
    count = text.count("[") + text.count("{")
    if count <= MAX_CONTAINERS:
        return count
    plain = text.replace("\\\\", "").replace('\\"', "")
    if count * 32 < plain.count('"'):
        return _count_brackets_outside(plain)
    bare = "".join(plain.split('"')[::2])
    return bare.count("[") + bare.count("{")


def _count_brackets_outside(plain: str) -> int:
    """The few-brackets case of L{count_containers}, stopping past the limit."""
    positions = []
    for bracket in "[{":
        position = plain.find(bracket)
        while position >= 0:
            positions.append(position)
            position = plain.find(bracket, position + 1)
    positions.sort()
    outside = quotes = last = 0
    for position in positions:
        quotes += plain.count('"', last, position)
        last = position
        if not quotes % 2:
            outside += 1
            if outside > MAX_CONTAINERS:
                break
    return outside


MAX_ITEMS = 1024
"""The most elements and members a message's arrays and objects may hold in
all, the message object's own members included (docs/protocol.md 4.6 and
8.1, this project's choice over the shared version 2 text). More is
C{bad-json}, found before the body is parsed: a 64 KiB body of 32,000
one-digit integers costs CPython's C decoder about 1.5 ms, over the 1 ms a
frame may cost; no client message needs more than a few dozen (C{hello}'s
C{rooms} and C{since} hold at most the 20 rooms of a client)."""

_FEW_COMMAS = MAX_ITEMS - MAX_CONTAINERS
"""With at most this many commas in all, a message of at most
L{MAX_CONTAINERS} containers cannot hold more than L{MAX_ITEMS} items."""


_MANY_QUOTES = 4 * MAX_ITEMS
"""With more unescaped quotes than this, JSON holds more than L{MAX_ITEMS}
items: every string is an element, a member's key or a member's value, so
there are at most two strings per item and two quotes per string."""


def count_items(text: str) -> int:
    """
    Return how many elements and members the arrays and objects of C{text}
    hold in all, if it is JSON: the commas outside strings, plus the
    containers that are not empty.

    The strings are cut out as L{count_containers} does (each replaced by
    one character, so that C{["x"]} does not look empty), the white space
    dropped, and C{,}, C{[}, C{{}, C{[]} and C{{}} counted: a few passes at
    C speed, no parse.
    """
    plain = text.replace("\\\\", "").replace('\\"', "")
    bare = "".join("s".join(plain.split('"')[::2]).split())
    containers = bare.count("[") + bare.count("{")
    empty = bare.count("[]") + bare.count("{}")
    return bare.count(",") + containers - empty


def too_many_items(text: str) -> bool:
    """
    Whether C{text}, JSON of at most L{MAX_CONTAINERS} containers, holds
    more than L{MAX_ITEMS} items (L{count_items}). One C{count} when the
    text has few commas at all: the items are at most the commas plus the
    containers. With many strings, their quotes alone decide, without
    cutting the text into thousands of pieces. (For text that is not JSON
    the answer may be anything: it is C{bad-json} either way.)
    """
    if text.count(",") <= _FEW_COMMAS:
        return False
    if text.count('"') > _MANY_QUOTES and (
            text.replace("\\\\", "").replace('\\"', "").count('"') > _MANY_QUOTES):
        return True
    return count_items(text) > MAX_ITEMS


def _bad_json(text: str) -> RemoteProtocolError:
    return RemoteProtocolError("bad-json", text, fatal=False)


def decode(body: bytes) -> Message:
    """
    Parse the body of a frame a client sent to the server.

    @raise RemoteProtocolError: C{bad-json} (not fatal) unless C{body} is a
        UTF-8 JSON object with a string C{type}, no NaN or Infinity, no
        lone surrogate, at most L{MAX_CONTAINERS} arrays and objects and at
        most L{MAX_ITEMS} elements and members in them.
    """
    return _decode_body(body, bounded=True)


def decode_from_server(body: bytes) -> Message:
    """
    Parse the body of a frame the server sent to a client: the same rules
    as L{decode} but the bounds on containers and items, which hold only for
    what clients send (PROTOCOL.md 4.6). A server's answers are lists:
    C{welcome} and C{users} name up to thousands of users, C{history} holds
    whole messages, C{rooms} one object per room. A hostile server is
    bounded by the frame size and by the client's own limits on split
    lists; deep nesting is still C{bad-json}.
    """
    return _decode_body(body, bounded=False)


def _decode_body(body: bytes, bounded: bool) -> Message:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad_json("not a UTF-8 JSON object") from None
    if bounded:
        if count_containers(text) > MAX_CONTAINERS:
            raise _bad_json(f"more than {MAX_CONTAINERS} JSON arrays and objects")
        if too_many_items(text):
            raise _bad_json(f"more than {MAX_ITEMS} elements and members in JSON arrays and objects")
    try:
        message = _decode(text) if _may_overflow(body) else _fast_decode(text)
    except (ValueError, RecursionError):
        raise _bad_json("not a UTF-8 JSON object") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise _bad_json("a message is a JSON object with a string 'type'")
    if ("\\ud" in text or "\\uD" in text) and _SURROGATE_ESCAPE.search(text) is not None:
        # An escaped pair is fine, a lone half is not: the C encoder finds
        # out at C speed (no walk over the message in Python).
        try:
            _encode(message).encode("utf-8")
        except (UnicodeEncodeError, RecursionError):
            raise _bad_json("a string holds a lone surrogate") from None
    return message


def ping_error(message: Message) -> Optional[RemoteProtocolError]:
    """
    Return C{bad-json} if C{message} (a C{ping}) carries a token over
    L{MAX_PING_TOKEN} bytes as compact UTF-8 JSON, else C{None}.

    Cheap whatever the token: it stops as soon as the size is known to be
    over. Not done by L{decode}: a C{ping} is first counted in its own
    bucket (PROTOCOL.md section 6), and only one that is not dropped is
    answered.
    """
    if "token" not in message or _json_size(message["token"], MAX_PING_TOKEN) <= MAX_PING_TOKEN:
        return None
    return _bad_json(f"a ping token is limited to {MAX_PING_TOKEN} bytes of JSON")


def _json_size(value: Any, limit: int) -> int:
    """
    The size of C{value} as compact UTF-8 JSON, or some size over C{limit}
    as soon as it is known to be over (at most about C{limit} values are
    looked at; a non-finite float counts as over).
    """
    size = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, dict)):
            n = len(item)
            size += 2 + max(n - 1, 0) + (n if isinstance(item, dict) else 0)  # commas, colons
            if size > limit or 2 * n > limit:
                return limit + 1
            if isinstance(item, dict):
                for key, member in item.items():
                    stack.append(key)
                    stack.append(member)
            else:
                stack.extend(item)
        elif isinstance(item, str) and len(item) + 2 > limit:
            return limit + 1
        else:
            try:
                size += len(_encode(item).encode("utf-8"))
            except ValueError:  # inf or nan: not JSON
                return limit + 1
        if size > limit:
            return size
    return size


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


class _Timestamps:
    """
    L{timestamp}: the string is made once per millisecond and reused, since
    a busy chat stamps many messages within each one (formatting was a
    tenth of the server's time with many small rooms).
    """

    __slots__ = ("_ms", "_text")

    def __init__(self) -> None:
        self._ms = -1
        self._text = ""

    def __call__(self, seconds: float) -> str:
        """ISO 8601 UTC with milliseconds, e.g. C{2026-11-22T02:50:00.123Z}."""
        # Rounded to the microsecond as datetime does it (half to even, on
        # the fraction alone), then cut to the millisecond.
        fraction, whole = math.modf(seconds)
        ms = int(whole) * 1000 + round(fraction * 1e6) // 1000
        if ms != self._ms:
            whole, fraction = divmod(ms, 1000)
            stamp = datetime.fromtimestamp(whole, tz=timezone.utc)
            self._text = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{fraction:03d}Z"
            self._ms = ms
        return self._text


timestamp = _Timestamps()
"""C{timestamp(seconds)}: ISO 8601 UTC with milliseconds, e.g. C{2026-11-22T02:50:00.123Z}."""


def error(code: str, text: str, fatal: bool) -> Message:
    """An C{error} message."""
    return {"type": "error", "code": code, "text": text, "fatal": fatal}
