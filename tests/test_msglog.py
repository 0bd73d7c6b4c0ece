"""
Tests for L{chatsvc.server.msglog}: appending, restoring from the end of the log
(torn lines, several 64 KiB blocks), the fsync timer, write failures.
"""

from __future__ import annotations

import errno
import json
import os
from typing import List, Optional, Tuple

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.server import msglog
from chatsvc.server.msglog import MessageLog
from chatsvc.chat.memory import Room
from chatsvc.wire.messages import encode

from .helpers import LogCapture


def message(seq: int, text: str = "hi", kind: str = "message") -> bytes:
    body = {"type": kind, "from": "alice", "text": text, "ts": "2026-11-22T02:50:00.123Z", "seq": seq}
    if kind == "private":
        body["to"] = "bob"
    return encode(body)


def naive_restore(path: str, history_size: int) -> Tuple[int, List[Tuple[int, bytes]], int]:
    """What restore() must find, computed by reading the whole file forwards."""
    records = []
    with open(path, "rb") as f:
        for line in f.read().split(b"\n"):
            line = line.strip()
            try:
                record = json.loads(line)
                records.append((record["seq"], record["type"], line))
            except (ValueError, KeyError, TypeError):
                continue
    last = records[-1][0] if records else 0
    public = [(seq, line) for seq, kind, line in records if kind == "message"]
    recent = public[-history_size:] if history_size else []
    older = public[: len(public) - len(recent)]
    return last, recent, older[-1][0] if older else 0


class ShortWriteFile:
    """A file whose next write stores only the first C{keep} bytes."""

    def __init__(self, real, keep: int) -> None:
        self._real = real
        self.keep: Optional[int] = keep
        self.closed = False

    def write(self, data: bytes) -> int:
        if self.keep is not None:
            data, self.keep = data[: self.keep], None
            return self._real.write(data)
        return self._real.write(data)

    def fileno(self) -> int:
        return self._real.fileno()

    def close(self) -> None:
        self.closed = True
        self._real.close()


class FailingFile(ShortWriteFile):
    """A file whose next write fails with ENOSPC, writing nothing."""

    def write(self, data: bytes) -> int:
        if self.keep is not None:
            self.keep = None
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._real.write(data)


class MessageLogTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()

    def open_log(self, **kwargs) -> MessageLog:
        log = MessageLog(self.path, **kwargs)
        self.addCleanup(log.close)
        return log

    def contents(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()

    def write_raw(self, data: bytes) -> None:
        with open(self.path, "ab") as f:
            f.write(data)


class AppendTests(MessageLogTestCase):
    def test_creates_and_appends_lines(self) -> None:
        log = self.open_log()
        log.append(message(1))
        log.append(message(2, kind="private"))
        self.assertEqual(self.contents(), message(1) + b"\n" + message(2, kind="private") + b"\n")

    def test_reaches_the_os_at_once(self) -> None:
        """Unbuffered: another reader sees a line as soon as append returns."""
        log = self.open_log()
        log.append(message(1, text="\u00e9"))
        self.assertEqual(self.contents(), message(1, text="\u00e9") + b"\n")

    def test_appends_to_existing(self) -> None:
        self.write_raw(message(1) + b"\n")
        log = self.open_log()
        log.append(message(2))
        self.assertEqual(self.contents().split(b"\n"), [message(1), message(2), b""])

    def test_close_twice(self) -> None:
        log = self.open_log()
        log.close()
        log.close()

    def test_bad_path(self) -> None:
        self.assertRaises(OSError, MessageLog, os.path.join(self.mktemp(), "missing", "log"))


class RestoreTests(MessageLogTestCase):
    def test_empty(self) -> None:
        self.assertEqual(self.open_log().restore(50), (0, [], 0))

    def test_recent(self) -> None:
        log = self.open_log()
        for seq in range(1, 6):
            log.append(message(seq))
        self.assertEqual(log.restore(50), (5, [(s, message(s)) for s in range(1, 6)], 0))

    def test_from_the_end_with_dropped(self) -> None:
        log = self.open_log()
        for seq in range(1, 11):
            log.append(message(seq))
        self.assertEqual(log.restore(3), (10, [(s, message(s)) for s in (8, 9, 10)], 7))

    def test_private_counts_for_seq_not_history(self) -> None:
        log = self.open_log()
        log.append(message(1))
        log.append(message(2, kind="private"))
        log.append(message(3))
        log.append(message(4, kind="private"))
        self.assertEqual(log.restore(50), (4, [(1, message(1)), (3, message(3))], 0))
        self.assertEqual(log.restore(1), (4, [(3, message(3))], 1))

    def test_history_zero(self) -> None:
        log = self.open_log()
        for seq in range(1, 4):
            log.append(message(seq))
        self.assertEqual(log.restore(0), (3, [], 3))

    def test_bad_lines_skipped(self) -> None:
        self.write_raw(message(1) + b"\n\n   \nnot json\n[1]\n\"x\"\n{\"seq\":\"2\",\"type\":\"message\"}\n"
                       b'{"seq":true,"type":"message"}\n{"type":"message"}\n\xff\xfe\n'
                       + message(2) + b"\r\n")
        logs = LogCapture.install(self)
        log = self.open_log()
        self.assertEqual(log.restore(50), (2, [(1, message(1)), (2, message(2))], 0))
        logs.assert_no_failures(self)

    def test_torn_last_line(self) -> None:
        """
        A crash mid-write leaves a last line without its newline: it is
        skipped, and ended, so the next append starts a line of its own.
        """
        self.write_raw(message(1) + b"\n" + message(2) + b"\n" + message(3)[:20])
        logs = LogCapture.install(self)
        log = self.open_log()
        self.assertEqual(log.restore(50), (2, [(1, message(1)), (2, message(2))], 0))
        self.assertTrue(any("torn" in e.get("log_format", "") for e in logs.events))
        logs.assert_no_failures(self)
        log.append(message(3))
        self.assertEqual(self.contents(), b"".join(
            [message(1), b"\n", message(2), b"\n", message(3)[:20], b"\n", message(3), b"\n"]))
        self.assertEqual(log.restore(50)[:2], (3, [(s, message(s)) for s in (1, 2, 3)]))

    def test_torn_only_line(self) -> None:
        self.write_raw(b'{"type":"mess')
        log = self.open_log()
        self.assertEqual(log.restore(5), (0, [], 0))
        log.append(message(1))
        self.assertEqual(log.restore(5), (1, [(1, message(1))], 0))

    def test_no_torn_line_no_newline_added(self) -> None:
        self.write_raw(message(1) + b"\n")
        self.open_log().close()
        self.assertEqual(self.contents(), message(1) + b"\n")

    def test_large_log_several_blocks(self) -> None:
        """Lines that straddle 64 KiB block boundaries are read whole."""
        lines = []
        for seq in range(1, 1201):
            kind = "private" if seq % 7 == 0 else "message"
            lines.append(message(seq, text="x" * (seq % 401) + "\u00e9", kind=kind))
        self.write_raw(b"\n".join(lines) + b"\n")
        self.assertGreater(len(self.contents()), 4 * (1 << 16))
        log = self.open_log()
        for size in (0, 1, 50, 500, 5000):
            self.assertEqual(log.restore(size), naive_restore(self.path, size), size)
        self.assertEqual(log.restore(50)[0], 1200)

    def test_line_longer_than_a_block(self) -> None:
        long = message(2, text="y" * 200000)
        self.write_raw(message(1) + b"\n" + long + b"\n" + message(3) + b"\n")
        log = self.open_log()
        self.assertEqual(log.restore(50), (3, [(1, message(1)), (2, long), (3, message(3))], 0))
        self.assertEqual(log.restore(2), (3, [(2, long), (3, message(3))], 1))

    def test_line_ends_at_block_boundary(self) -> None:
        """The newline is the last byte of a block, or the first of the next."""
        for shift in (-1, 0, 1):
            first = message(1)
            filler = b"z" * ((1 << 16) - len(first) - 1 + shift)
            second = message(2, text="a")
            # the file is: first \n <padding> \n second \n ; the tail block is 64 KiB
            data = first + b"\n" + filler + b"\n" + second + b"\n"
            with open(self.path, "wb") as f:
                f.write(data)
            log = MessageLog(self.path)
            try:
                self.assertEqual(log.restore(5), naive_restore(self.path, 5), shift)
                self.assertEqual(log.restore(5)[0], 2)
            finally:
                log.close()

    def test_room_restores(self) -> None:
        """A room on a restarted server continues seq and history."""
        clock = Clock()
        log = self.open_log()
        for seq in range(1, 6):
            log.append(message(seq, kind="private" if seq == 5 else "message"))
        room = Room(clock, history_size=2, message_log=log)
        self.assertEqual((room.seq, room.private_seq), (4, 5))
        self.assertEqual(room.history.dropped_upto, 2)
        self.assertEqual(room.history.since(None, room.seq), ([message(3), message(4)], False))


class FsyncTests(MessageLogTestCase):
    def setUp(self) -> None:
        MessageLogTestCase.setUp(self)
        self.synced: List[int] = []
        self.patch(msglog.os, "fsync", self.synced.append)

    def test_timer(self) -> None:
        clock = Clock()
        log = self.open_log(clock=clock, fsync_interval=1.0)
        log.append(message(1))
        log.append(message(2))
        self.assertEqual(self.synced, [])
        clock.advance(0.999)
        self.assertEqual(self.synced, [])
        clock.advance(0.001)
        self.assertEqual(self.synced, [log._file.fileno()])
        clock.advance(5)  # nothing new written: no more fsyncs
        self.assertEqual(len(self.synced), 1)
        log.append(message(3))
        clock.advance(1)
        self.assertEqual(len(self.synced), 2)

    def test_close_stops_timer_and_syncs(self) -> None:
        clock = Clock()
        log = MessageLog(self.path, clock=clock, fsync_interval=2.0)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        log.append(message(1))
        log.close()
        self.assertEqual(len(self.synced), 1)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_no_clock_no_timer(self) -> None:
        log = self.open_log()
        log.append(message(1))
        log.close()
        self.assertEqual(len(self.synced), 1)

    def test_interval_zero(self) -> None:
        clock = Clock()
        self.open_log(clock=clock, fsync_interval=0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_fsync_failure_logged(self) -> None:
        def fail(fd: int) -> None:
            raise OSError(errno.EIO, "I/O error")

        self.patch(msglog.os, "fsync", fail)
        logs = LogCapture.install(self)
        clock = Clock()
        log = self.open_log(clock=clock)
        log.append(message(1))
        clock.advance(1)
        errors = [e for e in logs.events if e.get("log_level") and e["log_level"].name == "error"]
        self.assertEqual(len(errors), 1)
        self.assertIn("fsync", errors[0]["log_format"])
        self.assertTrue(clock.getDelayedCalls())  # the timer goes on


class WriteFailureTests(MessageLogTestCase):
    def test_short_write_raises(self) -> None:
        log = self.open_log()
        log._file = ShortWriteFile(log._file, keep=10)
        e = self.assertRaises(OSError, log.append, message(1))
        self.assertIn("short write", str(e))

    def test_short_write_does_not_eat_the_next_line(self) -> None:
        """
        The part of a line that was written is a torn line; the next line
        starts on a line of its own and is restored.
        """
        log = self.open_log()
        log.append(message(1))
        log._file = ShortWriteFile(log._file, keep=10)
        self.assertRaises(OSError, log.append, message(2))
        log.append(message(3))
        self.assertEqual(log.restore(50), (3, [(1, message(1)), (3, message(3))], 0))
        log.close()
        reopened = self.open_log()
        self.assertEqual(reopened.restore(50)[0], 3)

    def test_write_error_raises(self) -> None:
        log = self.open_log()
        log.append(message(1))
        log._file = FailingFile(log._file, keep=0)
        e = self.assertRaises(OSError, log.append, message(2))
        self.assertEqual(e.errno, errno.ENOSPC)
        log.append(message(3))
        self.assertEqual(log.restore(50), (3, [(1, message(1)), (3, message(3))], 0))

    def test_room_refuses_when_the_log_fails(self) -> None:
        """Nothing is delivered that is not in the log."""
        from .test_room import FakeMember

        clock = Clock()
        log = self.open_log()
        room = Room(clock, message_log=log)
        alice, bob = FakeMember(room), FakeMember(room)
        room.register(alice, name="alice")
        room.register(bob, name="bob")
        bob.messages()
        log._file = FailingFile(log._file, keep=0)
        logs = LogCapture.install(self)
        from chatsvc.wire.errors import RemoteProtocolError

        e = self.assertRaises(RemoteProtocolError, room.say, alice, None, "lost")
        self.assertEqual(e.code, "unavailable")
        self.assertEqual(bob.messages(), [])
        logs.assert_no_failures(self)
        self.assertEqual(room.say(alice, None, "kept"), 1)
        self.assertEqual([m["text"] for m in bob.messages()], ["kept"])
        self.assertEqual(log.restore(5)[0], 1)


class PortableRotationTests(SynchronousTestCase):
    """Rotation works where an open file cannot be renamed (Windows)."""

    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp())
        self.log = MessageLog(self.path, rotate_bytes=200, keep=10)
        self.addCleanup(self.log.close)

    def body(self, seq: int) -> bytes:
        return encode({"type": "message", "from": "a", "text": "x" * 40,
                       "ts": "2026-01-01T00:00:00.000Z", "seq": seq})

    def test_the_file_is_closed_when_renamed(self) -> None:
        real_replace = os.replace
        renamed_while_open = []

        def replace(src: str, dst: str) -> None:
            if src == self.path and not self.log._file.closed:
                renamed_while_open.append(src)
                raise PermissionError(13, "the file is open (as on Windows)")
            real_replace(src, dst)

        self.patch(msglog.os, "replace", replace)
        for seq in range(1, 11):
            self.log.append(self.body(seq))
        self.assertEqual(renamed_while_open, [])
        self.assertTrue(os.path.exists(self.path + ".1"))
        self.assertEqual(self.log.restore(100)[0], 10)
        self.assertEqual([seq for seq, _ in self.log.restore(100)[1]], list(range(1, 11)))

    def test_a_file_that_cannot_be_reopened_is_a_write_failure(self) -> None:
        """If even reopening fails, the next append fails as a write: no crash."""
        calls = []

        def failing_open(path, *args, **kwargs):
            calls.append(path)
            raise OSError(errno.EMFILE, "Too many open files")

        for seq in range(1, 4):
            self.log.append(self.body(seq))
        msglog.open = failing_open  # shadows the builtin in that module only
        try:
            with self.assertRaises(OSError):
                for seq in range(4, 10):
                    self.log.append(self.body(seq))
        finally:
            del msglog.open
        self.assertTrue(calls)
        self.log.append(self.body(20))  # works again once the file can be opened
        self.assertEqual(self.log.restore(100)[0], 20)
