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

On start the server restores every room's C{seq} and history, the private
counter and the history epoch from the log (L{MessageLog.restore_rooms});
a torn last line (a crash mid-write) is skipped. Each message names its
room (a line without one, from version 1, is the default room's). The
history epoch is kept beside the log, in C{FILE.epoch} (rotation leaves it
alone); a log that holds no message starts a new epoch.

The file is created readable by its owner only (0600): it holds every
message. An existing file that others may read is reported at start.

With C{rotate_bytes}, a file that has reached that size is renamed to
C{FILE.1} (C{FILE.1} to C{FILE.2}, and so on; C{FILE.KEEP} is deleted) and a
new C{FILE} is started, between two appends: every line is in exactly one
file. L{restore} reads on into the rotated files, newest first, when the
current one holds fewer public messages than the history asks for.
"""

from __future__ import annotations

import os
import stat
from typing import Any, List, Optional, Tuple

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..wire.rooms import room_name
from .logread import Restored, RestoredRoom, lines_backwards, restore_message

__all__ = ["MessageLog", "Restored", "RestoredRoom", "readable_by_others"]

_log = Logger()


def _private_opener(path: str, flags: int) -> int:
    """Open (create) C{path} readable and writable by its owner only."""
    return os.open(path, flags, 0o600)


def _open_log(path: str) -> Any:
    return open(path, "ab", buffering=0, opener=_private_opener)


def readable_by_others(path: str) -> bool:
    """Whether the file at C{path} may be read by others than its owner (POSIX)."""
    if os.name != "posix":
        return False  # Windows: ACLs, not mode bits
    try:
        return bool(os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False


class MessageLog:
    """
    An append-only file of JSON lines.

    @param path: the file; created if missing.
    @param clock: an L{IReactorTime} for the fsync timer, or C{None} for none.
    @param fsync_interval: seconds between fsyncs (when anything was written).
    @param rotate_bytes: rotate the file once it holds this many bytes (0: never).
    @param keep: how many rotated files to keep (C{FILE.1} ... C{FILE.keep}).
    """

    def __init__(self, path: str, clock: Any = None, fsync_interval: float = 1.0,
                 rotate_bytes: int = 0, keep: int = 5) -> None:
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.keep = keep if rotate_bytes else 0
        self.epoch: Optional[str] = None
        existed = os.path.exists(path)
        self._file = _open_log(path)
        if existed and readable_by_others(path):
            _log.warn("the message log {path} may be read by other users: "
                      "chmod 600 it", path=path)
        self._terminate_torn_line()
        self._size = self._file.seek(0, os.SEEK_END)
        self._next_rotation = rotate_bytes
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
        if self._file.closed:
            self._file = _open_log(self.path)  # OSError: not stored
        self._torn = True  # until this write is known to be whole
        written = self._file.write(line)
        self._dirty = True
        self._size += written or 0
        if written != len(line):
            raise OSError(f"short write to the message log ({written} of {len(line)} bytes)")
        self._torn = False
        if self._next_rotation and self._size >= self._next_rotation:
            self.rotate()

    def rotated_path(self, n: int) -> str:
        """The name of the C{n}th newest rotated file."""
        return f"{self.path}.{n}"

    def rotate(self) -> None:
        """
        Rename the file to C{FILE.1} (shifting older ones, deleting the one
        past C{keep}) and start a new one. On failure, log it and keep
        writing to the current file: rotation never costs a message.
        """
        try:
            os.fsync(self._file.fileno())
            for n in reversed(self._rotated()):
                if n >= self.keep:
                    os.remove(self.rotated_path(n))
                else:
                    os.replace(self.rotated_path(n), self.rotated_path(n + 1))
        except OSError as e:
            self._rotation_failed("message log rotation failed: {error}", e)
            return
        # Windows cannot rename a file that is open: close it first, and if
        # anything fails, go on appending to whichever name now holds it.
        self._file.close()
        try:
            os.replace(self.path, self.rotated_path(1))
        except OSError as e:
            self._reopen(self.path)
            self._rotation_failed("message log rotation failed: {error}", e)
            return
        try:
            self._file = _open_log(self.path)
        except OSError as e:
            self._reopen(self.rotated_path(1))
            self._rotation_failed("message log: cannot start a new file after rotating: {error}", e)
            return
        self._size = 0
        self._dirty = False
        self._next_rotation = self.rotate_bytes
        _sync_directory(self.path)
        _log.info("message log rotated to {path}", path=self.rotated_path(1))

    @property
    def epoch_path(self) -> str:
        """The file that keeps the history epoch beside the log."""
        return self.path + ".epoch"

    def set_epoch(self, epoch: str) -> None:
        """Record C{epoch} as the history's epoch, in L{epoch_path}."""
        self.epoch = epoch
        temporary = self.epoch_path + ".new"
        try:
            with open(temporary, "w", encoding="utf-8", opener=_private_opener) as f:
                f.write(epoch + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.epoch_path)
        except OSError as e:
            # The chat goes on; a restart will start yet another epoch.
            _log.error("message log: cannot store the epoch: {error}", error=e)

    def _stored_epoch(self) -> Optional[str]:
        try:
            with open(self.epoch_path, encoding="utf-8") as f:
                epoch = f.read().strip()
        except (OSError, UnicodeDecodeError):
            return None
        return epoch if 0 < len(epoch) <= 64 and epoch.isprintable() else None

    def _reopen(self, path: str) -> None:
        try:
            self._file = _open_log(path)
        except OSError as e:
            # Left closed: the next append tries again, and fails as a
            # write failure (the sender is told) until it works.
            _log.error("message log: cannot reopen {path}: {error}", path=path, error=e)

    def _rotation_failed(self, message: str, error: OSError) -> None:
        # Try again once as much again has been written.
        self._next_rotation = self._size + self.rotate_bytes
        _log.error(message, error=error)

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
        oldest = 0
        for seq, kind, body, _ in self._all_lines_backwards():
            if last_seq == 0:
                last_seq = seq
            oldest = seq
            if kind != "message":
                continue
            if len(recent) < history_size:
                recent.append((seq, body))
            else:
                dropped = seq
                break
        else:
            if self.keep and oldest > 1:
                # Rotated away: nothing older than the oldest line is held.
                dropped = oldest - 1
        recent.reverse()
        return last_seq, recent, dropped

    def restore_rooms(self, history_size: int, default_room: str) -> Restored:
        """
        Read the whole log (the rotated files too): every room's last
        C{seq}, its last C{history_size} messages (oldest first) and the
        highest C{seq} of one no longer held, the private counter and the
        epoch (L{epoch_path}; C{None} for a log that holds no message). A
        room whose first message in the log is not C{seq} 1 had older ones
        rotated away. Reads the whole log: rotation bounds the time this
        takes.
        """
        restored = Restored()
        rooms = restored.rooms
        default = room_name(default_room)
        for seq, kind, body, record in self._all_lines_backwards():
            if kind == "private":
                restored.private_seq = max(restored.private_seq, seq)
            elif kind == "message":
                restore_message(rooms, record.get("room", default), seq, body, history_size)
        for kept in rooms.values():
            kept.recent.reverse()
            if kept.oldest > 1:
                kept.dropped_upto = max(kept.dropped_upto, kept.oldest - 1)
        if rooms or restored.private_seq:
            restored.epoch = self.epoch = self._stored_epoch()
        return restored

    def _all_lines_backwards(self):
        """The lines of the current file, then of each rotated one, newest first."""
        yield from lines_backwards(self.path)
        for n in self._rotated():
            if n <= self.keep:
                yield from lines_backwards(self.rotated_path(n), current=False)

    def _rotated(self) -> List[int]:
        """
        The numbers of the rotated files there are, newest first. A crash
        mid-rotation leaves at most one gap (one rename at a time), so two
        missing numbers in a row are the end.
        """
        found: List[int] = []
        missing = 0
        n = 0
        while missing < 2:
            n += 1
            if os.path.exists(self.rotated_path(n)):
                found.append(n)
                missing = 0
            else:
                missing += 1
        return found


def _sync_directory(path: str) -> None:
    """fsync the directory of C{path}, so that renames survive a power cut."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except (OSError, AttributeError):
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not supported here (some filesystems, Windows)
    finally:
        os.close(fd)
