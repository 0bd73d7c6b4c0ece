# -*- test-case-name: tests.test_irc_lines -*-
"""
IRC lines without I/O: splitting a byte stream into lines, parsing one line
(IRCv3 C{@tags} included), formatting one, and the text rules between IRC
and the chat.

    buffer = LineBuffer()
    for line in buffer.feed(data):          # bytes, CR LF or LF stripped
        message = parse(line)               # IRCMessage, or raises BadLine
    format_line("PRIVMSG", ["#lobby", "hi"], prefix="a!chat@chatsvc",
                tags={"time": "2026-11-22T02:50:00.123Z"})

Twisted's L{twisted.words.protocols.irc.IRC} decodes each network chunk as
UTF-8 (a character split across two reads breaks) and does not parse
incoming tags; here the stream is split into lines as bytes first and each
whole line is decoded on its own. (Twisted's C{parsemsg} splits the middle
parameters on any white space, tabs and U+3000 included; IRC splits on
spaces only, so the split is done here.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional

MAX_LINE = 512
"""The longest IRC line, CR LF included, tags excluded (RFC 1459, IRCv3)."""

MAX_TAGS = 8191
"""The longest tag section a client may send, C{@} and the space included."""


class BadLine(ValueError):
    """A line that is not an IRC message; C{str()} says why (safe to send)."""


class LineTooLong(BadLine):
    """A line over L{MAX_LINE} bytes (tags apart): C{417 ERR_INPUTTOOLONG}."""


@dataclass
class IRCMessage:
    """One parsed IRC line."""

    command: str
    params: List[str]
    prefix: str = ""
    tags: Dict[str, str] = field(default_factory=dict)


class LineBuffer:
    """
    Split a byte stream into lines at LF (a CR before it is dropped).

    A line longer than C{limit} bytes is not kept: L{feed} yields
    L{LineTooLong} in its place (once), and the rest of it up to the next
    LF is skipped, so an unterminated line never grows the buffer.
    """

    def __init__(self, limit: int = MAX_LINE + MAX_TAGS) -> None:
        self._limit = limit
        self._buffer = b""
        self._skipping = False

    def feed(self, data: bytes) -> Iterator[object]:
        """Yield every complete line (bytes) or L{LineTooLong} in C{data}."""
        buffer = self._buffer + data if self._buffer else data
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = buffer[start:end]
            start = end + 1
            if self._skipping:
                self._skipping = False
                continue
            if len(line) > self._limit:
                yield LineTooLong("input line was too long")
                continue
            yield line[:-1] if line.endswith(b"\r") else line
        rest = buffer[start:]
        if len(rest) > self._limit:
            if not self._skipping:
                self._skipping = True
                yield LineTooLong("input line was too long")
            rest = b""
        self._buffer = rest


_TAG_UNESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}


def unescape_tag_value(value: str) -> str:
    """The IRCv3 message-tags unescaping (an unknown escape is the character)."""
    if "\\" not in value:
        return value
    out = []
    chars = iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append(_TAG_UNESCAPES.get(nxt, nxt))
        else:
            out.append(ch)
    return "".join(out)


def escape_tag_value(value: str) -> str:
    """The IRCv3 message-tags escaping."""
    return (value.replace("\\", "\\\\").replace(";", "\\:").replace(" ", "\\s")
            .replace("\r", "\\r").replace("\n", "\\n"))


def _parse_tags(text: str) -> Dict[str, str]:
    tags: Dict[str, str] = {}
    for item in text.split(";"):
        if not item:
            continue
        key, _, value = item.partition("=")
        tags[key] = unescape_tag_value(value)
    return tags


def parse(line: bytes) -> Optional[IRCMessage]:
    """
    Parse one line (without its CR LF). Returns C{None} for an empty line
    (ignored, as every server does).

    @raise BadLine: not UTF-8, a NUL or CR inside, or no command.
    @raise LineTooLong: over 512 bytes after the tags.
    """
    tags: Dict[str, str] = {}
    if line.startswith(b"@"):
        head, _, line = line.partition(b" ")
        if len(head) + 1 > MAX_TAGS:
            raise LineTooLong("the tags are too long")
        tags = _parse_tags(head[1:].decode("utf-8", "replace"))
        line = line.lstrip(b" ")
    if len(line) + 2 > MAX_LINE:
        raise LineTooLong("input line was too long")
    if not line.strip(b" "):
        return None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise BadLine("the line is not UTF-8 (this server is UTF8ONLY)")
    if "\0" in text or "\r" in text:
        raise BadLine("the line holds a NUL or a CR")
    prefix = ""
    if text.startswith(":"):
        prefix, _, text = text[1:].partition(" ")
    middle, sep, trailing = text.partition(" :")
    if middle.startswith(":"):  # a trailing parameter right after the command
        middle, sep, trailing = "", ":", middle[1:]
    words = [w for w in middle.split(" ") if w]
    if not words:
        raise BadLine("no command")
    command = words[0]
    params = words[1:] + ([trailing] if sep else [])
    return IRCMessage(command.upper(), params, prefix, tags)


_TEXT_COMMANDS = frozenset({"PRIVMSG", "NOTICE", "PART", "QUIT", "TOPIC", "ERROR", "PONG", "PING"})


def format_line(command: str, params: List[str], prefix: Optional[str] = None,
                tags: Optional[Dict[str, str]] = None, colon: Optional[bool] = None) -> bytes:
    """
    One IRC line with CR LF. The last parameter gets a C{:} when it must
    (empty, holds a space, or starts with C{:}), or when C{colon} says so
    (by default: for the text of C{PRIVMSG}, C{NOTICE} and the like, as
    servers write it); the others must not need one.
    """
    if colon is None:
        colon = command in _TEXT_COMMANDS and len(params) > 1 or command == "ERROR"
    parts = [command]
    if params:
        parts.extend(params[:-1])
        last = params[-1]
        if colon or not last or " " in last or last.startswith(":"):
            last = ":" + last
        parts.append(last)
    line = " ".join(parts)
    if prefix:
        line = f":{prefix} {line}"
    if tags:
        rendered = ";".join(f"{k}={escape_tag_value(v)}" if v else k for k, v in tags.items())
        line = f"@{rendered} {line}"
    return (line + "\r\n").encode("utf-8")


# -- text between IRC and the chat ------------------------------------------

_FORMATTING = re.compile(
    "\x03(?:[0-9]{1,2}(?:,[0-9]{1,2})?)?"
    "|\x04(?:[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)?"
    "|[\x02\x0f\x11\x16\x1d\x1e\x1f]"
)
"""mIRC formatting: colour (with its digits), hex colour, bold, reset,
monospace, reverse, italic, strike-through, underline. (Twisted's
C{stripFormatting} knows only colour, bold, reverse, underline and reset.)"""


def strip_formatting(text: str) -> str:
    """C{text} without IRC formatting codes; other control characters stay."""
    if not any(ch < " " for ch in text):
        return text
    return _FORMATTING.sub("", text)


CTCP = "\x01"


def split_ctcp(text: str) -> Optional[tuple]:
    """
    C{(command, argument)} if C{text} is a CTCP request (C{\\x01CMD arg\\x01},
    the closing delimiter optional), else C{None}.
    """
    if not text.startswith(CTCP):
        return None
    body = text[1:]
    if body.endswith(CTCP):
        body = body[:-1]
    command, _, argument = body.partition(" ")
    return command.upper(), argument


def split_text(text: str, budget: int) -> List[str]:
    """
    Split a chat message's C{text} into pieces of at most C{budget} UTF-8
    bytes each, at newlines first (IRC cannot carry them), then at the last
    space that fits, else at a character boundary; never losing a
    character. Empty lines are left out (IRC cannot send them).
    """
    budget = max(budget, 4)
    pieces: List[str] = []
    for line in text.split("\n"):
        data = line.encode("utf-8")
        while len(data) > budget:
            cut = budget
            while cut > 0 and (data[cut] & 0xC0) == 0x80:
                cut -= 1  # back to the start of a character
            space = data.rfind(b" ", 0, cut)
            if space > budget // 2:
                cut = space + 1  # the space ends this piece
            pieces.append(data[:cut].decode("utf-8"))
            data = data[cut:]
        if data:
            pieces.append(data.decode("utf-8"))
    return pieces
