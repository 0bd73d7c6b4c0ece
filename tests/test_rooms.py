# -*- test-case-name: tests.test_rooms -*-
"""
Tests for L{chatsvc.chat.rooms} (the room directory and its limit) and for
the single-process chat's rooms restored from a real message log (the
epoch, per-room C{seq} and history, rotation).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from typing import Any, List

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.chat import rooms as rooms_module
from chatsvc.chat.memory import MemoryChat
from chatsvc.chat.rooms import RoomDirectory
from chatsvc.server.msglog import MessageLog
from chatsvc.wire.errors import RemoteProtocolError
from chatsvc.wire.rooms import room_key

from .helpers import LogCapture
from .test_room import FakeMember


def _open(directory: RoomDirectory, name: str):
    return directory.open(name, room_key(name))


class DirectoryTests(SynchronousTestCase):
    def test_empty_room_without_history_is_forgotten(self) -> None:
        directory = RoomDirectory(history_size=5, limit=10)
        room = _open(directory, "#a")
        directory.emptied(room)
        self.assertIsNone(directory.get(room_key("#a")))

    def test_pinned_room_is_never_forgotten(self) -> None:
        directory = RoomDirectory(history_size=5, limit=1, pinned=room_key("#lobby"))
        lobby = _open(directory, "#lobby")
        directory.emptied(lobby)
        self.assertIs(directory.get(room_key("#lobby")), lobby)
        self.assertRaises(RemoteProtocolError, _open, directory, "#b")

    def test_limit_forgets_oldest_empty_and_seq_continues(self) -> None:
        directory = RoomDirectory(history_size=5, limit=2)
        a, b = _open(directory, "#a"), _open(directory, "#b")
        for room, seq in ((a, 3), (b, 7)):
            room.seq = seq
            room.history.append(seq, b"m")
            directory.emptied(room)
        c = _open(directory, "#c")
        self.assertIsNone(directory.get(room_key("#a")))
        self.assertIsNotNone(directory.get(room_key("#b")))
        c.members[object()] = None
        again = _open(directory, "#A")
        self.assertEqual((again.name, again.seq, again.history.dropped_upto), ("#A", 3, 3))
        self.assertIsNone(directory.get(room_key("#b")))

    def test_full_of_occupied_rooms(self) -> None:
        directory = RoomDirectory(history_size=5, limit=1)
        _open(directory, "#a").members[object()] = None
        e = self.assertRaises(RemoteProtocolError, _open, directory, "#b")
        self.assertEqual((e.code, e.room), ("too-many-rooms", "#b"))

    def test_remembered_seqs_fold_into_a_floor(self) -> None:
        self.patch(rooms_module, "MAX_REMEMBERED_SEQS", 2)
        directory = RoomDirectory(history_size=0, limit=0)
        for i, name in enumerate(("#a", "#b", "#c")):
            room = _open(directory, name)
            room.seq = 10 - i
            directory.emptied(room)
        self.assertEqual(_open(directory, "#a").seq, 10, "folded into the floor")
        self.assertEqual(_open(directory, "#new").seq, 10, "new rooms start past the floor")
        self.assertEqual(_open(directory, "#c").seq, 8, "still remembered one by one")

    def test_occupied_largest_first(self) -> None:
        directory = RoomDirectory(history_size=5)
        a, b = _open(directory, "#a"), _open(directory, "#b")
        _open(directory, "#empty")
        a.members[object()] = None
        b.members.update({object(): None, object(): None})
        self.assertEqual([r.name for r in directory.occupied()], ["#b", "#a"])


class RestoreTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "log")
        self.clock = Clock()
        self.logs = LogCapture.install(self)

    def chat(self, **log_options: Any) -> MemoryChat:
        log = MessageLog(self.path, **log_options)
        self.addCleanup(log.close)
        return MemoryChat(self.clock, history_size=3, message_log=log)

    def test_rooms_seq_history_and_epoch_survive_a_restart(self) -> None:
        chat = self.chat()
        alice = FakeMember(chat, version=2)
        chat.register(alice, name="alice", rooms=["#a", "#b"])
        for i in range(5):
            chat.say(alice, "#a", f"a{i}")
        chat.say(alice, "#b", "b0", action=True)
        chat.private(alice, "alice", "note")
        epoch = chat.epoch
        chat.leave(alice, "quit")
        again = self.chat()
        self.assertEqual(again.epoch, epoch)
        self.assertEqual((again.room("#a").seq, again.room("#b").seq, again.private_seq), (5, 1, 1))
        self.assertEqual(again.room("#a").history.dropped_upto, 2)
        bob = FakeMember(again, version=2)
        again.register(bob, name="bob", rooms=["#a", "#b"], since={"#a": 3}, epoch=epoch)
        histories = [m for m in bob.messages() if m["type"] == "history"]
        self.assertEqual([[x["text"] for x in h["messages"]] for h in histories], [["a3", "a4"], ["b0"]])
        self.assertEqual([h["complete"] for h in histories], [True, True])
        self.assertIs(histories[1]["messages"][0]["action"], True)
        self.assertEqual(again.say(bob, "#a", "next"), 6)

    def test_without_the_log_a_new_epoch(self) -> None:
        epoch = self.chat().epoch
        self.assertNotEqual(MemoryChat(self.clock).epoch, epoch)

    def test_empty_log_starts_a_new_epoch(self) -> None:
        first = self.chat().epoch
        self.assertNotEqual(self.chat().epoch, first, "no message: nothing to keep")

    def test_version_1_log_is_the_default_room(self) -> None:
        with open(self.path, "wb") as f:
            for seq in (1, 2):
                f.write(json.dumps({"type": "message", "from": "a", "text": str(seq),
                                    "ts": "x", "seq": seq}).encode() + b"\n")
        chat = self.chat()
        self.assertEqual((chat.seq, len(chat.history)), (2, 2))

    def test_restore_across_rotation(self) -> None:
        chat = self.chat(rotate_bytes=400, keep=2)
        alice = FakeMember(chat, version=2)
        chat.register(alice, name="alice", rooms=["#a", "#b"])
        for i in range(12):
            chat.say(alice, "#a" if i % 3 else "#b", f"m{i}")
        again = self.chat(rotate_bytes=400, keep=2)
        self.assertEqual((again.room("#a").seq, again.room("#b").seq), (8, 4))
        self.assertEqual(again.epoch, chat.epoch)
        held = [json.loads(b)["seq"] for b in again.room("#a").history.since(None, 8)[0]]
        self.assertEqual(held, [6, 7, 8])

    def test_files_are_private(self) -> None:
        if os.name != "posix":
            raise self.skipTest("mode bits are POSIX")  # pragma: no cover
        chat = self.chat(rotate_bytes=200, keep=2)
        alice = FakeMember(chat)
        chat.register(alice, name="alice")
        for i in range(5):
            chat.say(alice, None, "x" * 50)
        for name in os.listdir(self.dir):
            mode = stat.S_IMODE(os.stat(os.path.join(self.dir, name)).st_mode)
            self.assertEqual(mode & 0o077, 0, f"{name} is {oct(mode)}")

    def test_warns_about_a_log_others_can_read(self) -> None:
        if os.name != "posix":
            raise self.skipTest("mode bits are POSIX")  # pragma: no cover
        with open(self.path, "wb"):
            pass
        os.chmod(self.path, 0o644)
        MessageLog(self.path).close()
        warnings: List[str] = [e.get("log_format", "") for e in self.logs.events]
        self.assertTrue(any("may be read by other users" in w for w in warnings), warnings)


class WelcomeSizeTests(SynchronousTestCase):
    def test_welcome_fits_a_frame_with_twenty_long_rooms(self) -> None:
        from chatsvc.wire.framing import MAX_FRAME

        chat = MemoryChat(Clock(), motd="\x01" * 2000)
        rooms = ["#" + "".join(chr(0x20000 + i * 32 + j) for j in range(32)) for i in range(20)]
        for i in range(900):
            name = "".join(chr(0x20000 + 640 + i * 32 + j) for j in range(32))
            chat.register(FakeMember(keep=False), name=name, rooms=[])
        member = FakeMember(chat, version=2)
        chat.register(member, name="me", rooms=rooms)
        self.assertLessEqual(len(member.frames[0]), 4 + MAX_FRAME)
        welcome = member.messages()[0]
        self.assertEqual((welcome["users"][0], welcome["rooms"]), ("me", rooms))
        self.assertGreater(len(welcome["users"]), 100)
        self.assertEqual(welcome["plaintext"], welcome["users"], "FakeMembers are plaintext")
