# -*- test-case-name: tests.test_wire_rooms -*-
"""Tests for L{chatsvc.wire.rooms}: room names and the v2 request members."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from chatsvc.wire.errors import RemoteProtocolError
from chatsvc.wire.rooms import action_flag, hello_rooms, room_key, room_name, since_map, topic_error


class RoomNameTests(SynchronousTestCase):
    def test_good(self) -> None:
        for name in ("#lobby", "#a", "#" + "x" * 32, "#caf\u00e9", "#d\u00e9v-2.0_x"):
            self.assertEqual(room_name(name), name)
        self.assertEqual(room_name("#cafe\u0301"), "#caf\u00e9", "NFC")

    def test_bad(self) -> None:
        # (The fillers of 4.3 come with the names' own rules, in wire.names.)
        for name in ("lobby", "#", "#" + "x" * 33, "#a b", "##", "#a\x00", 5, None, ["#a"]):
            e = self.assertRaises(RemoteProtocolError, room_name, name)
            self.assertEqual((e.code, e.fatal), ("bad-room", False), name)

    def test_key(self) -> None:
        self.assertEqual(room_key("#LOBBY"), room_key("#lobby"))
        self.assertEqual(room_key("#STRASSE"), room_key("#stra\u00dfe"))
        self.assertNotEqual(room_key("#a"), room_key("#b"))


class HelloRoomsTests(SynchronousTestCase):
    def test_absent_is_the_default(self) -> None:
        self.assertEqual(hello_rooms(None, "#lobby", 20), ["#lobby"])

    def test_duplicates_once(self) -> None:
        self.assertEqual(hello_rooms(["#a", "#A", "#b"], "#lobby", 2), ["#a", "#b"])

    def test_errors(self) -> None:
        self.assertEqual(self.assertRaises(RemoteProtocolError, hello_rooms, "#a", "#l", 5).code,
                         "bad-room")
        e = self.assertRaises(RemoteProtocolError, hello_rooms, ["#a", "b", 7], "#l", 5)
        self.assertEqual((e.code, e.room), ("bad-room", "b"))
        e = self.assertRaises(RemoteProtocolError, hello_rooms, ["#a", "#b", "#c"], "#l", 2)
        self.assertEqual(e.code, "too-many-rooms")


class MembersTests(SynchronousTestCase):
    def test_action(self) -> None:
        self.assertIs(action_flag({}), False)
        self.assertIs(action_flag({"action": True}), True)
        for bad in (1, 0, "yes", None):
            self.assertEqual(self.assertRaises(RemoteProtocolError, action_flag,
                                               {"action": bad}).code, "bad-json")

    def test_topic(self) -> None:
        self.assertIsNone(topic_error(""))
        self.assertIsNone(topic_error("x" * 390))
        self.assertEqual(topic_error("x" * 391).code, "too-long")
        self.assertEqual(topic_error("a\nb").code, "bad-text")
        self.assertEqual(topic_error("a\tb"), None)
        self.assertEqual(topic_error(None).code, "bad-text")

    def test_since(self) -> None:
        lobby = room_key("#lobby")
        self.assertEqual(since_map(5, lobby), {lobby: 5})
        self.assertEqual(since_map(-1, lobby), {})
        self.assertEqual(since_map(True, lobby), {})
        self.assertEqual(since_map({"#A": 3, "#b": -1, "#c": "x", "d": 1, "#e": 2.0, "#f": 0},
                                   lobby), {room_key("#a"): 3, room_key("#f"): 0})
        self.assertEqual(since_map("3", lobby), {})
