# -*- test-case-name: tests.test_msglog -*-
"""
The server-side message log: one JSON line per public and private message.

Each line is the message object exactly as clients received it (C{type},
C{seq}, C{ts}, C{from}, C{to} for private messages, C{text}), written with one
C{write()} before the message is fanned out, so whatever a client saw is in
the log. The file is unbuffered (every line reaches the OS at once) and
fsynced on a timer, not per message::

    log = MessageLog("messages.jsonl", clock=reactor)
    seq, recent, dropped_upto = log.restore(history_size=50)
    log.append(b'{"type":"message",...}')
    log.close()

On start the server restores its C{seq} counter and its history from the
end of the file; a torn last line (a crash mid-write) is skipped.
"""

from __future__ import annotations

import json
import os
from typing import Any, List, Optional, Tuple

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

_log = Logger()

_BLOCK = 1 << 16


class MessageLog:
    """
    An append-only file of JSON lines.

    @param path: the file; created if missing.
    @param clock: an L{IReactorTime} for the fsync timer, or C{None} for none.
    @param fsync_interval: seconds between fsyncs (when anything was written).
    """

    def __init__(self, path: str, clock: Any = None, fsync_interval: float = 1.0) -> None:
        self.path = path
        self._file = open(path, "ab", buffering=0)
        self._terminate_torn_line()
        self._torn = False
        self._dirty = False
        self._timer: Optional[LoopingCall] = None
        if clock is not None and fsync_interval > 0:
            self._timer = LoopingCall(self.sync)
            self._timer.clock = clock
            self._timer.start(fsync_interval, now=False)

    def _terminate_torn_line(self) -> None:
        # A crash mid-write leaves a last line without its newline; end it,
        # so that the next record starts on a line of its own.
        size = self._file.seek(0, os.SEEK_END)
        if size:
            with open(self.path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    self._file.write(b"\n")

    def append(self, body: bytes) -> None:
        """
        Append one message (its encoded JSON body) as a line.

        @raise OSError: if the line could not be written whole; what was
            written of it is a torn line that L{restore} skips, and the next
            append first ends it.
        """
        line = body + b"\n"
        if self._torn:
            # End the part written of the failed line, or the next record
            # would join it and be lost too.
            line = b"\n" + line
        self._torn = True  # until this write is known to be whole
        written = self._file.write(line)
        self._dirty = True
        if written != len(line):
            raise OSError(f"short write to the message log ({written} of {len(line)} bytes)")
        self._torn = False

    def sync(self) -> None:
        """fsync the file if anything was written since the last sync."""
        if self._dirty and not self._file.closed:
            self._dirty = False
            try:
                os.fsync(self._file.fileno())
            except OSError as e:
                _log.error("message log fsync failed: {error}", error=e)

    def close(self) -> None:
        """Stop the timer, fsync, close."""
        if self._timer is not None and self._timer.running:
            self._timer.stop()
        if not self._file.closed:
            self.sync()
            self._file.close()

    def restore(self, history_size: int) -> Tuple[int, List[Tuple[int, bytes]], int]:
        """
        Read the end of the log.

        @return: C{(last_seq, recent, dropped_upto)}: the highest C{seq} in the
            log, the last C{history_size} public messages as C{(seq, body)}
            oldest first, and the highest C{seq} of an older public message
            (0 if there is none).
        """
        last_seq = 0
        recent: List[Tuple[int, bytes]] = []
        dropped = 0
        for seq, kind, body in self._lines_backwards():
            if last_seq == 0:
                last_seq = seq
            if kind != "message":
                continue
            if len(recent) < history_size:
                recent.append((seq, body))
            else:
                dropped = seq
                break
        recent.reverse()
        return last_seq, recent, dropped

    def _lines_backwards(self):
        """Yield C{(seq, type, body)} for each good line, newest first."""
        with open(self.path, "rb") as f:
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
                    parsed = _parse_line(line, last=first)
                    first = False
                    if parsed is not None:
                        yield parsed
            if tail:
                parsed = _parse_line(tail, last=first)
                if parsed is not None:
                    yield parsed


def _parse_line(line: bytes, last: bool) -> Optional[Tuple[int, str, bytes]]:
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
    return seq, kind, line
