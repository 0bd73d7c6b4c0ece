# -*- test-case-name: tests.test_display -*-
"""
What the terminal client prints, without I/O: sanitising and formatting.

Everything that came from the network passes through L{sanitize} before it
reaches a terminal, so that no other user's text can drive it::

    >>> sanitize("hi \\x1b[2J")
    'hi \\\\x1b[2J'
    >>> format_message({"type": "message", "from": "bob", "text": "a\\nb"}, me="alice")
    ['bob: a', '    b']

Each function returns whole lines, without their line ends. A message whose
text holds newlines is rendered as one line and indented continuation lines
(L{CONTINUATION}), so that a user cannot fake a line of its own such as
C{alice: ...} or C{* bob joined}: every line that does not start with white
space was laid out by the client, and begins with a server-checked name or
one of the client's own markers (C{*}, C{!}, C{[private]}).
"""

from __future__ import annotations

import json
import unicodedata
from typing import AbstractSet, Any, Iterable, List, Mapping, Optional

from ..wire.names import name_key

__all__ = [
    "CONTINUATION",
    "sanitize",
    "text_lines",
    "format_message",
    "format_welcome",
    "format_users",
    "format_rooms",
    "shown_name",
    "history_head",
    "history_end",
    "HISTORY_RESET",
    "PLAINTEXT_MARK",
]

CONTINUATION = "    "
"""The indentation of the second and later lines of a multi-line text."""

# Format characters (Unicode category Cf) that reorder text (bidirectional
# marks, embeddings, overrides and isolates), hide it (zero-width spaces and
# joiners other than ZWNJ/ZWJ, invisible operators, the byte order mark) or
# are deprecated controls. ZWNJ and ZWJ are left alone: several scripts and
# emoji sequences need them, as emoji flags need the tag characters
# U+E0020..U+E007F. Prepended concatenation marks (Arabic number signs, ...)
# are visible and stay as well.
_FORMAT_ESCAPED = frozenset(
    [0x061C, 0x180E, 0x200B, 0x200E, 0x200F, 0xFEFF, 0xE0001]
    + list(range(0x202A, 0x202F))  # LRE RLE PDF LRO RLO
    + list(range(0x2060, 0x2065))  # word joiner, invisible operators
    + list(range(0x2066, 0x2070))  # LRI RLI FSI PDI + deprecated controls
    + list(range(0xFFF9, 0xFFFC))  # interlinear annotation controls
)

# Categories escaped wholesale: control characters (C0, DEL, C1 including
# NEL and CSI), surrogates, and the line and paragraph separators, which
# some terminals and toolkits treat as line breaks.
_CATEGORIES_ESCAPED = frozenset({"Cc", "Cs", "Zl", "Zp"})


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _needs_escape(ch: str) -> bool:
    if ch == "\t":
        return False
    if ord(ch) in _FORMAT_ESCAPED:
        return True
    return unicodedata.category(ch) in _CATEGORIES_ESCAPED


def sanitize(text: str) -> str:
    """
    Return C{text} with every character that could drive a terminal or
    reorder the line replaced by a visible Python-style escape: C{\\x1b},
    C{\\u202e}, C{\\U000e0001}. Tab is kept; newline is escaped too (use
    L{text_lines} for texts whose newlines should be shown as lines).

    Printable text, including letters of every script and emoji, is
    returned unchanged, and the result never holds a character that
    L{sanitize} would escape.
    """
    if text.isprintable():  # fast path: no Cc, Cf, Cs, Zl, Zp and no tab
        return text
    return "".join(_escape(ch) if _needs_escape(ch) else ch for ch in text)


def _render(value: Any) -> str:
    """A member of a server message as sanitised text; C{?} when missing."""
    if isinstance(value, str):
        return value
    if value is None:
        return "?"
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return "?"


def _field(message: Mapping[str, Any], key: str) -> str:
    return sanitize(_render(message.get(key)))


def text_lines(prefix: str, text: Any, suffix: str = "") -> List[str]:
    """
    Lay out C{prefix + text + suffix}, each newline of C{text} starting an
    indented continuation line. C{prefix} and C{suffix} are the client's own
    and are not sanitised; C{text} is. A lone CR is escaped like every other
    control character: it cannot return the cursor to the start of a line.
    """
    parts = _render(text).split("\n")
    lines = [prefix + sanitize(parts[0])]
    lines.extend(CONTINUATION + sanitize(part) for part in parts[1:])
    lines[-1] += suffix
    return lines


def _is_me(name: Any, me: Optional[str]) -> bool:
    return isinstance(name, str) and me is not None and name_key(name) == name_key(me)


PLAINTEXT_MARK = "~"
"""Put before the name of a member connected without encryption (4.8). It
is not a name character, so no peer can fake it."""


def shown_name(name: Any, plaintext: AbstractSet[str] = frozenset()) -> str:
    """A name as shown: sanitised, with L{PLAINTEXT_MARK} for plaintext members."""
    text = sanitize(_render(name))
    if isinstance(name, str) and name_key(name) in plaintext:
        return PLAINTEXT_MARK + text
    return text


def format_message(
    message: Mapping[str, Any],
    me: Optional[str] = None,
    plaintext: AbstractSet[str] = frozenset(),
) -> List[str]:
    """
    The lines for one server message of a type that is simply shown
    (C{message}, C{private}, C{joined}, C{parted}, C{left}, C{renamed},
    C{topic}, C{notice}, C{error}); an empty list for any other type.

    @param me: the client's current name, to tell the echo of its own
        private message (C{[private] -> bob: text}) from one received.
    @param plaintext: the name keys (L{name_key}) of members connected
        without encryption, marked with L{PLAINTEXT_MARK}.
    """
    kind = message.get("type")
    who = shown_name(message.get("from"), plaintext)
    action = message.get("action") is True
    if kind == "message" and not action and _v1_action(message):
        # A version 1 client's /me: the text "* NAME rest" from NAME itself.
        return text_lines(f"* {who} ", message["text"][len(message["from"]) + 3:])
    if kind == "message":
        if action:
            return text_lines(f"* {who} ", message.get("text"))
        return text_lines(f"{who}: ", message.get("text"))
    if kind == "private":
        if _is_me(message.get("from"), me):
            head = f"[private] -> {shown_name(message.get('to'), plaintext)}"
        else:
            head = f"[private] {who}"
        if action:
            return text_lines(f"{head}: * {sanitize(_render(message.get('from')))} ", message.get("text"))
        return text_lines(f"{head}: ", message.get("text"))
    if kind == "joined":
        name = _field(message, "name")
        if message.get("plaintext") is True:
            return [f"* {name} joined (plaintext: anyone on the network can read {name})"]
        return [f"* {shown_name(message.get('name'), plaintext)} joined"]
    if kind in ("left", "parted"):
        verb = "left" if kind == "left" else f"left {_field(message, 'room')}"
        head = f"* {_field(message, 'name')} {verb} ({_field(message, 'reason')}"
        text = message.get("text")
        if isinstance(text, str) and text:
            return text_lines(head + ": ", text, ")")
        return [head + ")"]
    if kind == "renamed":
        return [f"* {_field(message, 'old')} is now {_field(message, 'new')}"]
    if kind == "topic":
        text = message.get("text")
        if isinstance(text, str) and text:
            return text_lines(f"* {_field(message, 'by')} set the topic of {_field(message, 'room')}: ", text)
        return [f"* {_field(message, 'by')} cleared the topic of {_field(message, 'room')}"]
    if kind == "notice":  # from the server's operator (docs/protocol.md 8)
        room = message.get("room")
        where = f" to {_field(message, 'room')}" if isinstance(room, str) else ""
        return text_lines(f"! notice from the operator{where}: ", message.get("text"))
    if kind == "error":
        return text_lines(f"! {_field(message, 'code')}: ", message.get("text"))
    return []


def _v1_action(message: Mapping[str, Any]) -> bool:
    sender, text = message.get("from"), message.get("text")
    return (isinstance(sender, str) and isinstance(text, str)
            and text.startswith(f"* {sender} ") and len(text) > len(sender) + 3)


def format_welcome(name: Any, encrypted: bool, motd: Any = None) -> List[str]:
    """C{* connected as NAME}, with C{(encrypted)} or C{(plaintext)} and the message of the day."""
    mode = " (encrypted)" if encrypted else ""
    lines = [f"* connected as {sanitize(_render(name))}{mode}"]
    if isinstance(motd, str) and motd:
        lines.extend(text_lines("* motd: ", motd))
    return lines


def format_users(
    names: Iterable[Any], plaintext: AbstractSet[str] = frozenset(), room: Optional[str] = None
) -> List[str]:
    """C{* users: a, b, ~c} (C{* users in #dev: ...} for a room)."""
    where = f" in {sanitize(room)}" if room else ""
    return [f"* users{where}: " + ", ".join(shown_name(name, plaintext) for name in names)]


def format_rooms(rooms: Iterable[Any]) -> List[str]:
    """The answer to C{/rooms}: one line per room, largest first as sent."""
    lines = ["* rooms:"]
    for item in rooms:
        if not isinstance(item, dict):
            continue
        head = f"*   {_field(item, 'room')} ({_field(item, 'count')})"
        topic = item.get("topic")
        if isinstance(topic, str) and topic:
            lines.extend(text_lines(head + " ", topic))
        else:
            lines.append(head)
    return lines


HISTORY_RESET = "-- the server's history was reset --"


def history_head(count: int) -> str:
    """The marker before a room's catch-up."""
    return f"-- history: {count} message{'s' if count != 1 else ''} --"


def history_end(complete: bool) -> str:
    """The marker after a room's catch-up."""
    if complete:
        return "-- end of history (complete) --"
    return "-- end of history: some messages before these were missed --"
