# -*- test-case-name: tests.test_msglog -*-
"""
Reading the message log (L{chatsvc.server.msglog}) from its end: its lines
newest first, a torn last line skipped, and what each room's messages
restore. No writing here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

from twisted.logger import Logger

from ..wire.errors import RemoteProtocolError
from ..wire.rooms import room_key, room_name

_log = Logger()

_BLOCK = 1 << 16


@dataclass
class RestoredRoom:
    """What the log holds of one room: see L{MessageLog.restore_rooms}."""

    name: str
    seq: int = 0
    recent: List[Tuple[int, bytes]] = field(default_factory=list)
    dropped_upto: int = 0
    oldest: int = 0


@dataclass
class Restored:
    """
    Everything a chat restores from its log.

    @ivar epoch: the history epoch the log holds, or C{None} (a new log, or
        one from version 1).
    @ivar private_seq: the highest C{seq} of a private message.
    @ivar rooms: room key -> L{RestoredRoom}.
    """

    epoch: Optional[str] = None
    private_seq: int = 0
    rooms: Dict[str, RestoredRoom] = field(default_factory=dict)

def lines_backwards(path: str, current: bool = True) -> Iterator[Tuple[int, str, bytes, Dict[str, Any]]]:
    """Yield C{(seq, type, body, record)} for each good line of C{path}, newest first."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        position = f.tell()
        tail = b""
        first = True
        while position > 0:
            step = min(_BLOCK, position)
            position -= step
            f.seek(position)
            chunk = f.read(step) + tail
            lines = chunk.split(b"\n")
            tail = lines.pop(0)  # may be incomplete: keep for the next block
            for line in reversed(lines):
                if not line.strip():
                    continue
                parsed = _parse_line(line, last=first and current)
                first = False
                if parsed is not None:
                    yield parsed
        if tail:
            parsed = _parse_line(tail, last=first and current)
            if parsed is not None:
                yield parsed


def restore_message(rooms: Dict[str, RestoredRoom], name: object, seq: int, body: bytes,
                     history_size: int) -> None:
    """Count one message line (read newest first) for its room."""
    try:
        name = room_name(name)
    except RemoteProtocolError:
        _log.warn("message log: skipping a message with a bad room name")
        return
    key = room_key(name)
    kept = rooms.get(key)
    if kept is None:
        kept = rooms[key] = RestoredRoom(name)
    kept.seq = max(kept.seq, seq)
    kept.oldest = seq
    if len(kept.recent) < history_size:
        kept.recent.append((seq, body))
    else:
        kept.dropped_upto = max(kept.dropped_upto, seq)


def _parse_line(line: bytes, last: bool) -> Optional[Tuple[int, str, bytes, Dict[str, Any]]]:
    line = line.strip()
    if not line:
        return None
    try:
        record = json.loads(line)
        seq = record["seq"]
        kind = record["type"]
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(kind, str):
            raise ValueError("bad seq or type")
    except (ValueError, KeyError, TypeError, RecursionError):
        if last:
            _log.warn("message log: skipping a torn last line")
        else:
            _log.warn("message log: skipping a line that is not a message record")
        return None
    return seq, kind, line, record
