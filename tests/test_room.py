"""
Tests for L{chatsvc.chat.memory}: registration and names, C{seq}, history, fan-out,
resume, and list splitting, with small fake members.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from chatsvc.chat.common import MAX_PUBLIC_BODY, MAX_ROOM_JSON, MAX_WELCOME_USERS, History, split_list_frames
from chatsvc.chat.interfaces import IChatMember
from chatsvc.chat.memory import Room
from chatsvc.wire.errors import RemoteProtocolError
from chatsvc.wire.framing import MAX_FRAME, encode_frame
from chatsvc.wire.messages import encode

from chatsvc.server.msglog import Restored, RestoredRoom

from .helpers import decode_frames, v1_view

T0 = 1795315800.123  # 2026-11-22T02:50:00.123Z


@implementer(IChatMember)
class FakeMember:
    """Records the frames the room hands it."""

    name: Optional[str] = None
    session_id: Optional[str] = None
    encrypted = False
    closing = False

    def __init__(self, room: Optional[Room] = None, keep: bool = True, version: int = 1) -> None:
        self.version = version
        self.room = room
        self.keep = keep
        self.frames: List[bytes] = []
        self.replaced_count = 0
        self.fatal_codes: List[str] = []

    def send(self, message: Dict[str, Any]) -> None:
        self.send_frame(encode_frame(encode(message)))

    def send_frame(self, frame: bytes) -> None:
        if self.keep:
            self.frames.append(frame)

    def fatal(self, code: str, text: str) -> None:
        self.fatal_codes.append(code)
        if self.room is not None:
            self.room.leave(self, code)

    def replaced(self) -> None:
        self.replaced_count += 1
        if self.room is not None:
            self.room.leave(self, "replaced")  # as ChatProtocol does; harmless

    def messages(self) -> List[Dict[str, Any]]:
        """Every message received since the last call (the room's batch
        of this turn included)."""
        if self.room is not None:
            self.room.flush()
        data = b"".join(self.frames)
        self.frames = []
        messages = decode_frames(data)
        return v1_view(messages) if self.version == 1 else messages


class NullLog:
    """A message log that takes everything, or fails with C{OSError}."""

    def __init__(self, seq: int = 0, restored=(), dropped: int = 0) -> None:
        self.lines: List[bytes] = []
        self.fail = False
        self._restore = (seq, list(restored), dropped)
        self.restored_with: Optional[int] = None

    def restore_rooms(self, history_size: int, default_room: str) -> Restored:
        self.restored_with = history_size
        seq, recent, dropped = self._restore
        rooms = {"#lobby": RestoredRoom("#lobby", seq, recent, dropped)} if seq else {}
        return Restored("an-epoch", 0, rooms)

    def append(self, body: bytes) -> None:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.lines.append(body)


class RoomTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.room = Room(self.clock, history_size=50)

    def join(self, name: Any = None, room: Optional[Room] = None, **kwargs: Any) -> FakeMember:
        room = self.room if room is None else room
        member = FakeMember(room, version=kwargs.pop("version", 1))
        member.encrypted = kwargs.pop("encrypted", False)
        room.register(member, name=name, **kwargs)
        return member

    def joined(self, *names: str) -> List[FakeMember]:
        members = [self.join(name) for name in names]
        for m in members:
            m.messages()
        return members


class InterfaceTests(SynchronousTestCase):
    def test_fake_member(self) -> None:
        self.assertTrue(verifyObject(IChatMember, FakeMember()))


class RegisterTests(RoomTestCase):
    def test_welcome(self) -> None:
        self.room.motd = "be nice \u263a"
        [alice] = self.joined("alice")
        bob = self.join("bob", encrypted=True)
        welcome, history = bob.messages()
        self.assertEqual(welcome["type"], "welcome")
        self.assertEqual(welcome["name"], "bob")
        self.assertEqual(welcome["users"], ["bob", "alice"])
        self.assertIs(welcome["encrypted"], True)
        self.assertEqual(welcome["motd"], "be nice \u263a")
        self.assertIsInstance(welcome["resume"], str)
        self.assertGreaterEqual(len(welcome["resume"]), 16)
        self.assertEqual(welcome["id"], bob.session_id)
        self.assertNotEqual(alice.session_id, bob.session_id)
        self.assertEqual(history, {"type": "history", "complete": True, "messages": []})
        self.assertEqual(set(welcome), {"type", "name", "id", "users", "encrypted", "resume", "motd"})

    def test_no_motd(self) -> None:
        member = self.join("alice")
        welcome = member.messages()[0]
        self.assertNotIn("motd", welcome)
        self.assertIs(welcome["encrypted"], False)

    def test_return_and_attributes(self) -> None:
        member = FakeMember()
        self.assertEqual(self.room.register(member, name="Alice"), "Alice")
        self.assertEqual(member.name, "Alice")
        self.assertIn(member, self.room)
        self.assertEqual(len(self.room), 1)
        self.assertIs(self.room.find("ALICE"), member)

    def test_ids_unique(self) -> None:
        members = [self.join() for _ in range(50)]
        self.assertEqual(len({m.session_id for m in members}), 50)
        other = Room(self.clock)
        stranger = FakeMember()
        other.register(stranger)
        self.assertNotIn(stranger.session_id, {m.session_id for m in members})

    def test_joined_to_others(self) -> None:
        alice, bob = self.joined("alice", "bob")
        self.clock.advance(1)
        carol = self.join("carol")
        expected = {"type": "joined", "name": "carol", "ts": "2026-11-22T02:50:01.123Z"}
        self.assertEqual(alice.messages(), [expected])
        self.assertEqual(bob.messages(), [expected])
        self.assertEqual([m["type"] for m in carol.messages()], ["welcome", "history"])

    def test_guest_names(self) -> None:
        names = [self.join().name for _ in range(3)]
        self.assertEqual(names, ["guest_1", "guest_2", "guest_3"])

    def test_guest_skips_taken(self) -> None:
        self.join("GUEST_1")
        self.assertEqual(self.join().name, "guest_2")

    def test_suffix(self) -> None:
        self.joined("alice")
        self.assertEqual(self.join("alice").name, "alice_2")
        self.assertEqual(self.join("ALICE").name, "ALICE_3")

    def test_suffix_is_smallest_free(self) -> None:
        a, a2, a3 = self.joined("alice", "alice", "alice")
        self.assertEqual(a3.name, "alice_3")
        self.room.leave(a2, "quit")
        self.assertEqual(self.join("alice").name, "alice_2")

    def test_suffix_shortens(self) -> None:
        long = "x" * 32
        self.joined(long)
        self.assertEqual(self.join(long).name, "x" * 30 + "_2")
        for n in range(3, 10):
            self.assertEqual(self.join(long).name, "x" * 30 + f"_{n}")
        self.assertEqual(self.join(long).name, "x" * 29 + "_10")

    def test_case_insensitive_and_nfc(self) -> None:
        self.joined("\u00c9mile")
        self.assertEqual(self.join("e\u0301MILE").name, "\u00e9MILE_2")

    def test_keeps_spelling(self) -> None:
        member = self.join("AlIcE")
        self.assertEqual(member.name, "AlIcE")
        self.assertEqual(self.room.names(), ["AlIcE"])

    def test_bad_name(self) -> None:
        for name in ("", "a b", "x" * 33, 5, ["a"], True, "\u202e"):
            member = FakeMember()
            e = self.assertRaises(RemoteProtocolError, self.room.register, member, name=name)
            self.assertEqual((e.code, e.fatal), ("bad-name", False))
            self.assertNotIn(member, self.room)
            self.assertEqual(member.frames, [])
        self.assertEqual(len(self.room), 0)

    def test_bad_name_then_good(self) -> None:
        member = FakeMember()
        self.assertRaises(RemoteProtocolError, self.room.register, member, name="")
        self.assertEqual(self.room.register(member, name="ok"), "ok")


class HistoryOnRegisterTests(RoomTestCase):
    def say_n(self, sender: FakeMember, n: int) -> None:
        for i in range(n):
            self.room.say(sender, None, f"m{i + 1}")

    def history_of(self, member: FakeMember) -> List[Dict[str, Any]]:
        messages = member.messages()
        self.assertEqual(messages[0]["type"], "welcome")
        return messages[1:]

    def test_recent(self) -> None:
        [alice] = self.joined("alice")
        self.say_n(alice, 3)
        [history] = self.history_of(self.join("bob"))
        self.assertTrue(history["complete"])
        self.assertNotIn("more", history)
        self.assertEqual([m["seq"] for m in history["messages"]], [1, 2, 3])
        self.assertEqual(history["messages"][0],
                         {"type": "message", "from": "alice", "text": "m1",
                          "ts": "2026-11-22T02:50:00.123Z", "seq": 1})

    def test_since(self) -> None:
        [alice] = self.joined("alice")
        self.say_n(alice, 5)
        [history] = self.history_of(self.join("bob", since=3))
        self.assertEqual([m["seq"] for m in history["messages"]], [4, 5])
        self.assertTrue(history["complete"])

    def test_since_newest(self) -> None:
        [alice] = self.joined("alice")
        self.say_n(alice, 5)
        [history] = self.history_of(self.join("bob", since=5))
        self.assertEqual(history, {"type": "history", "complete": True, "messages": []})

    def test_since_zero(self) -> None:
        [alice] = self.joined("alice")
        self.say_n(alice, 2)
        [history] = self.history_of(self.join("bob", since=0))
        self.assertEqual([m["seq"] for m in history["messages"]], [1, 2])
        self.assertTrue(history["complete"])

    def test_since_beyond_newest(self) -> None:
        """A restarted server without its log: recent messages, incomplete."""
        [alice] = self.joined("alice")
        self.say_n(alice, 2)
        [history] = self.history_of(self.join("bob", since=1000))
        self.assertEqual([m["seq"] for m in history["messages"]], [1, 2])
        self.assertFalse(history["complete"])

    def test_since_beyond_newest_empty_room(self) -> None:
        [history] = self.history_of(self.join("bob", since=1))
        self.assertEqual(history, {"type": "history", "complete": False, "messages": []})

    def test_since_ignored_unless_non_negative_integer(self) -> None:
        room = Room(self.clock, history_size=3)
        sender = self.join("alice", room=room)
        for i in range(5):
            room.say(sender, None, str(i))
        for since in (True, False, -1, "2", 2.0, None, [2], {"a": 2}):
            [history] = self.history_of(self.join(room=room, since=since))
            self.assertEqual([m["seq"] for m in history["messages"]], [3, 4, 5], since)
            self.assertFalse(history["complete"], since)

    def test_dropped(self) -> None:
        room = Room(self.clock, history_size=3)
        alice = self.join("alice", room=room)
        for i in range(5):
            room.say(alice, None, str(i))
        [history] = self.history_of(self.join(room=room))
        self.assertEqual([m["seq"] for m in history["messages"]], [3, 4, 5])
        self.assertFalse(history["complete"])
        [history] = self.history_of(self.join(room=room, since=2))
        self.assertEqual([m["seq"] for m in history["messages"]], [3, 4, 5])
        self.assertTrue(history["complete"])
        [history] = self.history_of(self.join(room=room, since=1))
        self.assertFalse(history["complete"])

    def test_private_messages_not_in_history(self) -> None:
        alice, bob = self.joined("alice", "bob")
        self.room.say(alice, None, "public")
        self.room.private(alice, "bob", "secret")
        [history] = self.history_of(self.join("carol"))
        self.assertEqual([m["text"] for m in history["messages"]], ["public"])
        [history] = self.history_of(self.join("dave", since=1))
        self.assertEqual(history["messages"], [])
        self.assertTrue(history["complete"])

    def test_history_off(self) -> None:
        room = Room(self.clock, history_size=0)
        member = self.join("alice", room=room)
        [history] = self.history_of(member)
        self.assertEqual(history, {"type": "history", "complete": True, "messages": []})
        room.say(member, None, "hi")
        [history] = self.history_of(self.join(room=room))
        self.assertEqual(history["messages"], [])
        self.assertFalse(history["complete"])
        [history] = self.history_of(self.join(room=room, since=1))
        self.assertEqual(history["messages"], [])
        self.assertTrue(history["complete"])

    def test_split(self) -> None:
        """History over 64 KiB is split; every part has complete; all but last more."""
        room = Room(self.clock, history_size=50)
        alice = self.join("alice", room=room)
        for i in range(50):
            room.say(alice, None, f"{i:04d}" + "\u00e9" * 2046)  # 4096 bytes of text
        bob = FakeMember()
        room.register(bob, name="bob", since=3)
        self.assertTrue(all(len(f) <= 4 + MAX_FRAME for f in bob.frames))
        parts = bob.messages()[1:]
        self.assertGreater(len(parts), 2)
        for part in parts[:-1]:
            self.assertEqual(part["type"], "history")
            self.assertIs(part["more"], True)
            self.assertIs(part["complete"], True)
        self.assertNotIn("more", parts[-1])
        self.assertIs(parts[-1]["complete"], True)
        seqs = [m["seq"] for part in parts for m in part["messages"]]
        self.assertEqual(seqs, list(range(4, 51)))

    def test_largest_message_fits_history(self) -> None:
        """The largest message that can be said fits a history frame alone."""
        room = Room(self.clock)
        alice = self.join("alice", room=room)
        text = "x" * 10
        overhead = len(encode({"type": "message", "room": "#lobby", "from": "alice", "text": text,
                               "ts": "2026-11-22T02:50:00.123Z", "seq": 1})) - len(text)
        room.say(alice, None, "y" * (MAX_PUBLIC_BODY - overhead))
        self.assertRaises(RemoteProtocolError, room.say, alice, None, "y" * (MAX_PUBLIC_BODY - overhead + 1))
        bob = FakeMember()
        room.register(bob, name="bob", since=0)
        self.assertLessEqual(max(len(f) for f in bob.frames), 4 + MAX_FRAME)
        # (v2) Less the room's name in the history head, at its longest.
        self.assertGreater(max(len(f) for f in bob.frames), MAX_FRAME - 20 - MAX_ROOM_JSON)
        [history] = bob.messages()[1:]
        self.assertEqual(len(history["messages"]), 1)
        self.assertNotIn("more", history)


class SayTests(RoomTestCase):
    def test_everyone_gets_the_same_frame(self) -> None:
        alice, bob, carol = self.joined("alice", "bob", "carol")
        self.assertEqual(self.room.say(bob, None, "hi \u00e9"), 1)
        self.assertEqual(alice.frames, [], "broadcasts go out at the end of the turn")
        self.clock.advance(0)
        [frame] = alice.frames
        self.assertIs(bob.frames[0], frame)
        self.assertIs(carol.frames[0], frame)
        self.assertIn("hi \u00e9".encode("utf-8"), frame)
        self.assertEqual(alice.messages(), [{"type": "message", "from": "bob", "text": "hi \u00e9",
                                             "ts": "2026-11-22T02:50:00.123Z", "seq": 1}])

    def test_seq_order(self) -> None:
        alice, bob = self.joined("alice", "bob")
        for i in range(10):
            self.room.say(alice if i % 2 else bob, None, str(i))
        self.assertEqual([m["seq"] for m in alice.messages()], list(range(1, 11)))
        self.assertEqual(self.room.seq, 10)

    def test_too_big_after_escaping(self) -> None:
        """A text of quotes doubles when escaped: too-long, nothing sent."""
        alice, bob = self.joined("alice", "bob")
        e = self.assertRaises(RemoteProtocolError, self.room.say, alice, None, '"' * 40000)
        self.assertEqual((e.code, e.fatal), ("too-long", False))
        self.assertEqual(bob.frames, [])
        self.assertEqual(self.room.seq, 0)
        self.assertEqual(len(self.room.history), 0)


class PrivateTests(RoomTestCase):
    def test_to_recipient_and_echo(self) -> None:
        alice, bob, carol = self.joined("alice", "Bob", "carol")
        self.assertEqual(self.room.private(alice, "BOB", "psst"), 1)
        expected = [{"type": "private", "from": "alice", "to": "Bob", "text": "psst",
                     "ts": "2026-11-22T02:50:00.123Z", "seq": 1}]
        self.assertEqual(bob.messages(), expected)
        self.assertEqual(alice.messages(), expected)
        self.assertEqual(carol.frames, [])

    def test_to_self_once(self) -> None:
        [alice] = self.joined("alice")
        self.room.private(alice, "alice", "note")
        self.assertEqual(len(alice.messages()), 1)

    def test_nfc_to(self) -> None:
        alice, emile = self.joined("alice", "\u00e9mile")
        self.room.private(alice, "E\u0301MILE", "salut")
        self.assertEqual(emile.messages()[0]["to"], "\u00e9mile")

    def test_no_such_user(self) -> None:
        [alice] = self.joined("alice")
        for to in ("bob", None, 5, ["alice"], ""):
            e = self.assertRaises(RemoteProtocolError, self.room.private, alice, to, "x")
            self.assertEqual((e.code, e.fatal), ("no-such-user", False))
        self.assertEqual(alice.frames, [])
        self.assertEqual(self.room.seq, 0)

    def test_seq_apart(self) -> None:
        """(v2) Private messages have a counter of their own."""
        alice, bob = self.joined("alice", "bob")
        self.room.say(alice, None, "1")
        self.room.private(alice, "bob", "2")
        self.room.say(bob, None, "3")
        self.assertEqual([m["seq"] for m in bob.messages()], [1, 1, 2])
        self.assertEqual([m["seq"] for m in alice.messages()], [1, 1, 2])
        self.assertEqual((self.room.seq, self.room.private_seq), (2, 1))


class RenameTests(RoomTestCase):
    def test_renamed_to_everyone(self) -> None:
        alice, bob = self.joined("alice", "bob")
        self.assertEqual(self.room.rename(alice, "alicia"), "alicia")
        expected = [{"type": "renamed", "old": "alice", "new": "alicia",
                     "ts": "2026-11-22T02:50:00.123Z"}]
        self.assertEqual(alice.messages(), expected)
        self.assertEqual(bob.messages(), expected)
        self.assertIs(self.room.find("alicia"), alice)
        self.assertIsNone(self.room.find("alice"))
        self.assertEqual(self.join("alice").name, "alice")

    def test_name_taken(self) -> None:
        alice, bob = self.joined("alice", "bob")
        e = self.assertRaises(RemoteProtocolError, self.room.rename, alice, "BOB")
        self.assertEqual((e.code, e.fatal), ("name-taken", False))
        self.assertEqual(alice.name, "alice")
        self.assertEqual(bob.frames, [])

    def test_case_change(self) -> None:
        alice, bob = self.joined("alice", "bob")
        self.assertEqual(self.room.rename(alice, "ALICE"), "ALICE")
        self.assertEqual(bob.messages()[0]["new"], "ALICE")
        self.assertIs(self.room.find("alice"), alice)
        self.assertEqual(sorted(self.room.names()), ["ALICE", "bob"])

    def test_same_name(self) -> None:
        alice, bob = self.joined("alice", "bob")
        self.assertEqual(self.room.rename(alice, "alice"), "alice")
        self.assertEqual(self.room.rename(alice, "alic\u0065"), "alice")
        self.assertEqual(bob.frames, [])

    def test_bad_name(self) -> None:
        [alice] = self.joined("alice")
        for name in ("", None, "a b", 3):
            e = self.assertRaises(RemoteProtocolError, self.room.rename, alice, name)
            self.assertEqual(e.code, "bad-name")
        self.assertEqual(alice.name, "alice")

    def test_nfc(self) -> None:
        [alice] = self.joined("alice")
        self.assertEqual(self.room.rename(alice, "e\u0301"), "\u00e9")


class LeaveTests(RoomTestCase):
    def test_left(self) -> None:
        alice, bob = self.joined("alice", "bob")
        self.room.leave(alice, "quit", text="bye")
        self.assertEqual(bob.messages(), [{"type": "left", "name": "alice", "reason": "quit",
                                           "ts": "2026-11-22T02:50:00.123Z", "text": "bye"}])
        self.assertEqual(alice.frames, [])
        self.assertNotIn(alice, self.room)
        self.assertEqual(self.room.names(), ["bob"])

    def test_no_text(self) -> None:
        alice, bob = self.joined("alice", "bob")
        self.room.leave(alice, "timeout")
        self.assertNotIn("text", bob.messages()[0])

    def test_text_left_out_if_too_big(self) -> None:
        """A quit reason that would not fit a frame is left out, not a crash."""
        alice, bob = self.joined("alice", "bob")
        self.room.leave(alice, "quit", text='"' * 40000)
        [left] = bob.messages()
        self.assertEqual((left["name"], left["reason"]), ("alice", "quit"))
        self.assertNotIn("text", left)

    def test_silent(self) -> None:
        for reason in ("shutdown", "replaced"):
            alice, bob = self.joined("alice", "bob")
            self.room.leave(alice, reason)
            self.assertEqual(bob.frames, [])
            self.assertNotIn(alice, self.room)
            self.room.leave(bob, reason)

    def test_twice(self) -> None:
        alice, bob = self.joined("alice", "bob")
        self.room.leave(alice, "quit")
        self.room.leave(alice, "disconnected")
        self.assertEqual(len(bob.messages()), 1)

    def test_unregistered(self) -> None:
        [bob] = self.joined("bob")
        self.room.leave(FakeMember(), "disconnected")
        self.assertEqual(bob.frames, [])

    def test_name_free_again(self) -> None:
        [alice] = self.joined("alice")
        self.room.leave(alice, "quit")
        self.assertEqual(self.join("ALICE").name, "ALICE")


class ResumeTests(RoomTestCase):
    def token_of(self, member: FakeMember) -> str:
        return [m for m in member.messages() if m["type"] == "welcome"][0]["resume"]

    def test_resume(self) -> None:
        alice = self.join("alice")
        token = self.token_of(alice)
        bob = self.join("bob")
        self.room.rename(alice, "alicia")
        alice.messages()
        bob.messages()
        new = self.join("whatever", resume=token)
        self.assertEqual(alice.replaced_count, 1)
        self.assertNotIn(alice, self.room)
        self.assertIn(new, self.room)
        self.assertEqual(new.name, "alicia")
        self.assertEqual(new.session_id, alice.session_id)
        welcome = new.messages()[0]
        self.assertEqual(welcome["name"], "alicia")
        self.assertNotEqual(welcome["resume"], token)
        self.assertEqual(sorted(welcome["users"]), ["alicia", "bob"])
        self.assertEqual(bob.frames, [])  # no left, no joined
        self.assertIs(self.room.find("alicia"), new)

    def test_single_use(self) -> None:
        alice = self.join("alice")
        token = self.token_of(alice)
        second = self.join(resume=token)
        third = self.join("alice", resume=token)
        self.assertEqual(second.name, "alice")
        self.assertEqual(third.name, "alice_2")
        self.assertEqual(second.replaced_count, 0)

    def test_chain(self) -> None:
        """The new token works in turn."""
        alice = self.join("alice")
        second = self.join(resume=self.token_of(alice))
        third = self.join(resume=self.token_of(second))
        self.assertEqual(third.name, "alice")
        self.assertEqual(second.replaced_count, 1)

    def test_token_of_ended_session(self) -> None:
        alice, bob = self.join("alice"), self.join("bob")
        token = self.token_of(alice)
        self.room.leave(alice, "disconnected")
        bob.messages()
        new = self.join("alice", resume=token)
        self.assertEqual(new.name, "alice")
        self.assertNotEqual(new.session_id, alice.session_id)
        self.assertEqual(alice.replaced_count, 0)
        self.assertEqual([m["type"] for m in bob.messages()], ["joined"])

    def test_wrong_tokens(self) -> None:
        alice = self.join("alice")
        for token in ("nope", 5, None, ["x"], ""):
            member = self.join("alice", resume=token)
            self.assertTrue(member.name.startswith("alice_"))
        self.assertEqual(alice.replaced_count, 0)

    def test_resume_ignores_bad_name(self) -> None:
        alice = self.join("alice")
        new = self.join("", resume=self.token_of(alice))
        self.assertEqual(new.name, "alice")


class ListTests(RoomTestCase):
    def test_who(self) -> None:
        self.joined("alice", "\u00e9mile")
        [frame] = self.room.who_frames()
        self.assertIn("\u00e9mile".encode("utf-8"), frame)
        self.assertEqual(v1_view(decode_frames(frame)), [{"type": "users", "users": ["alice", "\u00e9mile"]}])

    def test_who_split(self) -> None:
        # 32 four-byte letters: 130 bytes a name in JSON.
        names = ["".join(chr(0x20000 + i * 32 + j) for j in range(32)) for i in range(700)]
        for name in names:
            self.room.register(FakeMember(keep=False), name=name)
        frames = self.room.who_frames()
        self.assertGreater(len(frames), 1)
        self.assertTrue(all(len(f) <= 4 + MAX_FRAME for f in frames))
        messages = decode_frames(b"".join(frames))
        self.assertEqual([m.get("more") for m in messages], [True] * (len(frames) - 1) + [None])
        self.assertEqual([n for m in messages for n in m["users"]], names)

    def test_welcome_at_most_1000_users(self) -> None:
        for i in range(1005):
            self.room.register(FakeMember(keep=False), name=f"u{i}")
        member = self.join("me")
        welcome = member.messages()[0]
        self.assertEqual(len(welcome["users"]), MAX_WELCOME_USERS)
        self.assertEqual(welcome["users"][0], "me")

    def test_welcome_fits_a_frame(self) -> None:
        self.room.motd = "\x01" * 2000  # escaped as \u0001: 12000 bytes
        for i in range(900):
            name = "".join(chr(0x20000 + i * 32 + j) for j in range(32))
            self.room.register(FakeMember(keep=False), name=name)
        member = FakeMember()
        self.room.register(member, name="me")
        self.assertLessEqual(len(member.frames[0]), 4 + MAX_FRAME)
        welcome = member.messages()[0]
        self.assertEqual(welcome["users"][0], "me")
        self.assertGreater(len(welcome["users"]), 100)
        self.assertLess(len(welcome["users"]), 901)


class SplitListFramesTests(SynchronousTestCase):
    HEAD, TAIL, MORE = b'{"type":"users","users":[', b"]}", b'],"more":true}'

    def split(self, items: List[bytes]) -> List[bytes]:
        return split_list_frames(self.HEAD, items, self.TAIL, self.MORE)

    def test_empty(self) -> None:
        self.assertEqual(self.split([]), [b'{"type":"users","users":[]}'])

    def test_one_body(self) -> None:
        self.assertEqual(self.split([b'"a"', b'"b"']), [b'{"type":"users","users":["a","b"]}'])

    def test_split_exactly(self) -> None:
        room = MAX_FRAME - len(self.HEAD) - len(self.MORE)
        item = b'"' + b"x" * 998 + b'"'  # 1000 bytes; 1001 with a comma
        per_body = (room + 1) // 1001
        items = [item] * (per_body * 3 + 1)
        bodies = self.split(items)
        self.assertEqual(len(bodies), 4)
        for body in bodies:
            self.assertLessEqual(len(body), MAX_FRAME)
        parsed = [json.loads(b) for b in bodies]
        self.assertEqual([len(p["users"]) for p in parsed], [per_body] * 3 + [1])
        self.assertEqual([p.get("more") for p in parsed], [True, True, True, None])

    def test_fills_to_the_byte(self) -> None:
        room = MAX_FRAME - len(self.HEAD) - len(self.MORE)
        first = b'"' + b"a" * (room - 2 - 4) + b'"'  # leaves 4 bytes: ',"b"' fits
        bodies = self.split([first, b'"b"', b'"c"'])
        self.assertEqual(len(bodies), 2)
        self.assertEqual(len(bodies[0]), MAX_FRAME)
        self.assertEqual(json.loads(bodies[1])["users"], ["c"])


class HistoryTests(SynchronousTestCase):
    def test_since(self) -> None:
        h = History(3)
        for seq in (1, 2, 4, 5):  # 3 was private
            h.append(seq, b"m%d" % seq)
        self.assertEqual(len(h), 3)
        self.assertEqual(h.dropped_upto, 1)
        self.assertEqual(h.since(None, 5), ([b"m2", b"m4", b"m5"], False))
        self.assertEqual(h.since(1, 5), ([b"m2", b"m4", b"m5"], True))
        self.assertEqual(h.since(0, 5), ([b"m2", b"m4", b"m5"], False))
        self.assertEqual(h.since(3, 5), ([b"m4", b"m5"], True))
        self.assertEqual(h.since(5, 5), ([], True))
        self.assertEqual(h.since(6, 5), ([b"m2", b"m4", b"m5"], False))

    def test_nothing_dropped(self) -> None:
        h = History(3)
        h.append(1, b"m1")
        self.assertEqual(h.since(None, 1), ([b"m1"], True))
        self.assertEqual(h.dropped_upto, 0)


class MessageLogTests(RoomTestCase):
    def test_restore(self) -> None:
        log = NullLog(seq=12, restored=[(10, b'{"a":10}'), (11, b'{"a":11}')], dropped=9)
        room = Room(self.clock, history_size=7, message_log=log)
        self.assertEqual(log.restored_with, 7)
        self.assertEqual(room.seq, 12)
        member = FakeMember()
        room.register(member)
        history = member.messages()[1]
        self.assertEqual(history["messages"], [{"a": 10}, {"a": 11}])
        self.assertFalse(history["complete"])
        room.register(FakeMember(), since=9)
        alice = FakeMember()
        room.register(alice, name="alice", since=9)
        self.assertTrue(alice.messages()[1]["complete"])
        self.assertEqual(room.say(alice, None, "next"), 13)

    def test_logged_before_fan_out(self) -> None:
        log = NullLog()
        room = Room(self.clock, message_log=log)
        alice, bob = FakeMember(), FakeMember()
        room.register(alice, name="alice")
        room.register(bob, name="bob")
        room.say(alice, None, "hi")
        room.private(alice, "bob", "psst")
        self.assertEqual([json.loads(line)["seq"] for line in log.lines], [1, 1])
        self.assertEqual(log.lines[0], bob.frames[-2][4:])
        self.assertEqual(log.lines[1], bob.frames[-1][4:])

    def test_write_failure(self) -> None:
        log = NullLog()
        room = Room(self.clock, message_log=log)
        alice, bob = FakeMember(), FakeMember()
        room.register(alice, name="alice")
        room.register(bob, name="bob")
        alice.messages()
        bob.messages()
        log.fail = True
        for call in (lambda: room.say(alice, None, "hi"), lambda: room.private(alice, "bob", "x")):
            e = self.assertRaises(RemoteProtocolError, call)
            self.assertEqual((e.code, e.fatal), ("unavailable", False))
        self.assertEqual(alice.frames + bob.frames, [])
        self.assertEqual(room.seq, 0)
        self.assertEqual(len(room.history), 0)
        log.fail = False
        self.assertEqual(room.say(alice, None, "hi"), 1)


class BatchTests(RoomTestCase):
    """Broadcasts of one reactor turn go out together, once per member."""

    def test_one_write_per_member_per_turn(self) -> None:
        alice, bob = self.joined("alice", "bob")
        for i in range(5):
            self.room.say(alice, None, f"m{i}")
        self.assertEqual(bob.frames, [])
        self.clock.advance(0)
        self.assertEqual(len(bob.frames), 1)
        self.assertEqual([m["text"] for m in bob.messages()], [f"m{i}" for i in range(5)])

    def test_members_registering_mid_turn(self) -> None:
        """
        Who registers during a turn gets, live, only what came after it: the
        earlier broadcasts are in its history, and never its own joined.
        """
        [alice] = self.joined("alice")
        self.room.say(alice, None, "m1")
        bob = FakeMember(self.room)
        self.room.register(bob, name="bob")
        self.room.say(alice, None, "m2")
        carol = FakeMember(self.room)
        self.room.register(carol, name="carol")
        self.clock.advance(0)

        def seen(member: FakeMember) -> List[Any]:
            out = []
            for m in member.messages():
                if m["type"] == "history":
                    out += [("history", h["text"]) for h in m["messages"]]
                elif m["type"] in ("message", "joined"):
                    out.append((m["type"], m.get("text", m.get("name"))))
            return out

        self.assertEqual(seen(alice), [("message", "m1"), ("joined", "bob"),
                                       ("message", "m2"), ("joined", "carol")])
        self.assertEqual(seen(bob), [("history", "m1"), ("message", "m2"), ("joined", "carol")])
        self.assertEqual(seen(carol), [("history", "m1"), ("history", "m2")])

    def test_leaving_mid_turn_still_gets_what_was_accepted(self) -> None:
        alice, bob = self.joined("alice", "bob")
        self.room.say(alice, None, "before bob left")
        self.room.leave(bob, "quit")
        self.assertEqual([m["text"] for m in bob.messages()], ["before bob left"])
