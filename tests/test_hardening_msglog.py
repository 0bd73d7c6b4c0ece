"""
Message log rotation (issue #3, part 5): a size-based rotation loses and
duplicates nothing, restore reads across the rotated files, and failures
(a rename that fails, a crash between two renames, a disk that fills up)
never cost a message that was delivered.
"""

from __future__ import annotations

import json
import os
from typing import List, Tuple
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.server.msglog import MessageLog
from chatsvc.chat.memory import Room
from chatsvc.tap import Options
from twisted.python import usage

from . import hypothesis_profile  # noqa: F401
from .helpers import LogCapture, make_factory, registered


def body(seq: int, kind: str = "message", text: str = "x") -> bytes:
    message = {"type": kind, "from": "a", "text": text, "ts": "t", "seq": seq}
    if kind == "private":
        message["to"] = "b"
    return json.dumps(message, separators=(",", ":")).encode()


def files_oldest_first(path: str) -> List[str]:
    rotated = sorted((int(name.rsplit(".", 1)[1]), name) for name in os.listdir(os.path.dirname(path))
                     if name.startswith(os.path.basename(path) + ".")
                     and name.rsplit(".", 1)[1].isdigit())
    return [os.path.join(os.path.dirname(path), name) for _, name in reversed(rotated)] + [path]


def all_seqs(path: str) -> List[int]:
    seqs = []
    for name in files_oldest_first(path):
        with open(name, "rb") as f:
            for line in f:
                if line.strip():
                    seqs.append(json.loads(line)["seq"])
    return seqs


class RotationTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "messages.jsonl")

    def test_rotates_at_the_size(self) -> None:
        log = MessageLog(self.path, rotate_bytes=1000, keep=50)
        for seq in range(1, 201):
            log.append(body(seq))
        log.close()
        names = files_oldest_first(self.path)
        self.assertGreater(len(names), 10)
        for name in names[:-1]:
            size = os.path.getsize(name)
            self.assertGreaterEqual(size, 1000)
            self.assertLess(size, 1000 + len(body(200)) + 1)
        self.assertEqual(all_seqs(self.path), list(range(1, 201)))

    def test_keeps_only_keep_files(self) -> None:
        log = MessageLog(self.path, rotate_bytes=500, keep=3)
        for seq in range(1, 201):
            log.append(body(seq))
        names = files_oldest_first(self.path)
        self.assertEqual([os.path.basename(n) for n in names],
                         ["messages.jsonl.3", "messages.jsonl.2", "messages.jsonl.1", "messages.jsonl"])
        seqs = all_seqs(self.path)
        self.assertEqual(seqs, list(range(seqs[0], 201)))  # a suffix, in order, once each
        # What was rotated away counts as dropped.
        last, recent, dropped = log.restore(500)
        self.assertEqual((last, [s for s, _ in recent], dropped), (200, seqs, seqs[0] - 1))

    def test_restore_reads_across_files(self) -> None:
        log = MessageLog(self.path, rotate_bytes=700, keep=100)
        kinds = ["message", "private", "message"]
        for seq in range(1, 301):
            log.append(body(seq, kinds[seq % 3]))
        log.close()
        reopened = MessageLog(self.path, rotate_bytes=700, keep=100)
        public = [s for s in range(1, 301) if kinds[s % 3] == "message"]
        for size in (0, 1, 5, 50, 150, 199, 200, 500):
            last, recent, dropped = reopened.restore(size)
            want = public[-size:] if size else []
            self.assertEqual(last, 300)
            self.assertEqual([s for s, _ in recent], want, size)
            older = public[: len(public) - size]
            self.assertEqual(dropped, older[-1] if older else 0, size)

    def test_room_continues_after_rotation(self) -> None:
        log = MessageLog(self.path, rotate_bytes=300, keep=10)
        for seq in range(1, 41):
            log.append(body(seq, text=f"m{seq}"))
        log.close()
        room = Room(Clock(), history_size=20, message_log=MessageLog(self.path, rotate_bytes=300, keep=10))
        self.assertEqual(room.seq, 40)
        self.assertEqual(len(room.history), 20)
        self.assertEqual(room.history.dropped_upto, 20)

    def test_a_failed_rename_loses_nothing(self) -> None:
        logs = LogCapture.install(self)
        log = MessageLog(self.path, rotate_bytes=400, keep=10)
        with mock.patch("chatsvc.server.msglog.os.replace", side_effect=OSError(30, "Read-only")):
            for seq in range(1, 31):
                log.append(body(seq))
        self.assertFalse(os.path.exists(self.path + ".1"))
        self.assertTrue(any("rotation failed" in str(e.get("log_format")) for e in logs.events))
        for seq in range(31, 61):
            log.append(body(seq))
        self.assertTrue(os.path.exists(self.path + ".1"))
        self.assertEqual(all_seqs(self.path), list(range(1, 61)))

    def _crashed_rotation(self, stage: str) -> None:
        log = MessageLog(self.path, rotate_bytes=300, keep=20)
        for seq in range(1, 41):
            log.append(body(seq))
        log.close()
        n = len(files_oldest_first(self.path)) - 1  # rotated files: FILE.1 .. FILE.n
        # rotate() shifts FILE.n -> FILE.n+1 ... FILE.1 -> FILE.2, then FILE -> FILE.1.
        for k in range(n, 1, -1):
            os.replace(f"{self.path}.{k}", f"{self.path}.{k + 1}")
        if stage in ("after-shift", "after-rename"):
            os.replace(f"{self.path}.1", f"{self.path}.2")
        if stage == "after-rename":
            os.replace(self.path, f"{self.path}.1")

    def test_a_crash_mid_rotation(self) -> None:
        """Whatever state a crash between two renames leaves is restored whole."""
        for stage in ("mid-shift", "after-shift", "after-rename"):
            directory = self.mktemp()
            os.makedirs(directory)
            self.path = os.path.join(directory, "messages.jsonl")
            self._crashed_rotation(stage)
            log = MessageLog(self.path, rotate_bytes=300, keep=20)
            last, recent, dropped = log.restore(100)
            self.assertEqual((last, [s for s, _ in recent], dropped), (40, list(range(1, 41)), 0),
                             stage)
            log.append(body(41))
            log.close()
            self.assertEqual(all_seqs(self.path), list(range(1, 42)), stage)

    def test_option(self) -> None:
        options = Options()
        options.parseOptions(["--log-messages", self.path, "--log-rotate-bytes", "1000",
                              "--log-keep", "3"])
        self.assertEqual((options["log-rotate-bytes"], options["log-keep"]), (1000, 3))
        self.assertRaises(usage.UsageError, Options().parseOptions,
                          ["--log-rotate-bytes", "1000", "--log-keep", "0"])
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--log-rotate-bytes", "-1"])

    @settings(max_examples=100, deadline=None)
    @given(
        sizes=st.lists(st.tuples(st.integers(0, 300), st.booleans()), min_size=1, max_size=120),
        rotate=st.integers(150, 5000),
        reopen_every=st.integers(5, 200),
    )
    def test_property_nothing_lost_or_duplicated(self, sizes: List[Tuple[int, bool]], rotate: int,
                                                 reopen_every: int) -> None:
        """
        Any message sizes, any rotation size, restarts in between: the files
        together hold every line once, in order, and restore agrees with a
        naive forward read.
        """
        with mock.patch("chatsvc.server.msglog.os.fsync"):  # ordering, not durability, here
            self._nothing_lost(sizes, rotate, reopen_every)

    def _nothing_lost(self, sizes: List[Tuple[int, bool]], rotate: int, reopen_every: int) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "log")
        log = MessageLog(path, rotate_bytes=rotate, keep=10_000)
        public = []
        for i, (size, is_public) in enumerate(sizes, start=1):
            if i % reopen_every == 0:
                log.close()
                log = MessageLog(path, rotate_bytes=rotate, keep=10_000)
                self.assertEqual(log.restore(1)[0], i - 1)
            log.append(body(i, "message" if is_public else "private", "y" * size))
            if is_public:
                public.append(i)
        log.close()
        self.assertEqual(all_seqs(path), list(range(1, len(sizes) + 1)))
        log = MessageLog(path, rotate_bytes=rotate, keep=10_000)
        for history in (0, 3, 50):
            last, recent, dropped = log.restore(history)
            want = public[-history:] if history else []
            self.assertEqual((last, [s for s, _ in recent]), (len(sizes), want))
            older = public[: len(public) - len(want)]
            self.assertEqual(dropped, older[-1] if older else 0)
        log.close()


class LogFailureTests(SynchronousTestCase):
    """A log that cannot write (disk full): the sender hears, nobody gets it."""

    def test_disk_full_then_space_again(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        log = MessageLog(os.path.join(directory, "log"))
        factory = make_factory(message_log=log)
        alice, bob = registered(factory, "alice", "bob")
        alice.send({"type": "say", "text": "one"})
        self.assertEqual([m["seq"] for m in bob.received()], [1])
        alice.received()
        with _replace_write(log, OSError(28, "No space left on device")):
            alice.send({"type": "say", "text": "lost"})
            alice.send({"type": "msg", "to": "bob", "text": "lost too"})
        errors = alice.received()
        self.assertEqual([(m["type"], m["code"], m["fatal"]) for m in errors],
                         [("error", "unavailable", False)] * 2)
        self.assertEqual(bob.received(), [])
        self.assertFalse(alice.closed)
        alice.send({"type": "say", "text": "two"})
        self.assertEqual([(m["seq"], m["text"]) for m in bob.received()], [(2, "two")])
        log.close()
        with open(os.path.join(directory, "log"), "rb") as f:
            self.assertEqual([json.loads(l)["text"] for l in f if l.strip()], ["one", "two"])

    def test_short_write(self) -> None:
        """A write cut short (the disk filled mid-line) is ended; no later line joins it."""
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "log")
        log = MessageLog(path)
        factory = make_factory(message_log=log)
        alice, bob = registered(factory, "alice", "bob")
        real = log._file

        class Short:
            def write(self, data: bytes) -> int:
                return real.write(data[:7])

            def __getattr__(self, name: str):
                return getattr(real, name)

        log._file = Short()
        alice.send({"type": "say", "text": "torn"})
        log._file = real
        self.assertEqual(alice.received()[0]["code"], "unavailable")
        alice.send({"type": "say", "text": "whole"})
        self.assertEqual([m["text"] for m in bob.received()], ["whole"])
        log.close()
        restored = MessageLog(path).restore(10)
        self.assertEqual([json.loads(b)["text"] for _, b in restored[1]], ["whole"])
        self.assertEqual(restored[0], 1)


class _replace_write:
    def __init__(self, log: MessageLog, error: OSError) -> None:
        self.log = log
        self.error = error

    def __enter__(self) -> None:
        real = self.log._file
        error = self.error

        class Full:
            def write(self, data: bytes) -> int:
                raise error

            def __getattr__(self, name: str):
                return getattr(real, name)

        self.real = real
        self.log._file = Full()

    def __exit__(self, *exc: object) -> None:
        self.log._file = self.real
