# -*- test-case-name: tests.test_fanout -*-
"""Tests for L{chatsvc.chat.fanout}: the chat's ordered outbox."""

from __future__ import annotations

from typing import Any, Dict

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.chat.fanout import TURN_AUDIENCES, Outbox
from chatsvc.server.turns import EndOfTurn

from .support.fakes import FakeMember


class Room:
    def __init__(self, *members: FakeMember) -> None:
        self.members: Dict[Any, Any] = {m: m.send_frame for m in members}


class OutboxTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.outbox = Outbox(EndOfTurn(self.clock))

    def test_one_write_per_run_at_the_end_of_the_turn(self) -> None:
        a, b = FakeMember(), FakeMember()
        room = Room(a, b)
        for frame in (b"1", b"2", b"3"):
            self.outbox.to_room(room, frame)
        self.assertEqual((a.frames, self.outbox.size), ([], 3))
        self.clock.advance(0)
        self.assertEqual((a.frames, b.frames, self.outbox.size), ([b"123"], [b"123"], 0))

    def test_audience_size_counts_the_latest_audience_this_turn(self) -> None:
        """The turn budget's measure: what the latest broadcast's own audience has queued."""
        a, b = FakeMember(), FakeMember()
        one, two = Room(a), Room(b)
        self.outbox.to_room(one, b"1234")
        self.outbox.to_room(two, b"12")
        self.assertEqual((self.outbox.audience_size, self.outbox.size), (2, 6))
        self.outbox.to_room(one, b"5")
        self.assertEqual((self.outbox.audience_size, self.outbox.size), (5, 7))
        self.outbox.to_members((a, b), b"xyz")
        self.outbox.to_members((a, b), b"xyz")  # another tuple: another audience
        self.assertEqual(self.outbox.audience_size, 3)
        self.clock.advance(0)
        self.assertEqual((self.outbox.audience_size, self.outbox.size), (0, 0))
        self.outbox.to_room(one, b"6")
        self.assertEqual(self.outbox.audience_size, 1)

    def test_load_is_the_room_or_a_share_of_the_turn(self) -> None:
        rooms = [Room(FakeMember()) for _ in range(2 * TURN_AUDIENCES)]
        self.outbox.to_room(rooms[0], b"x" * 100)
        self.assertEqual(self.outbox.load, 100)
        for room in rooms[1:]:
            self.outbox.to_room(room, b"y" * 100)
        total = 2 * TURN_AUDIENCES * 100
        self.assertEqual((self.outbox.audience_size, self.outbox.size), (100, total))
        self.assertEqual(self.outbox.load, 200)
        self.outbox.flush()
        self.assertEqual(self.outbox.load, 0)

    def test_order_across_audiences(self) -> None:
        """A member in two rooms gets everything in the order it was queued."""
        a, b, c = FakeMember(), FakeMember(), FakeMember()
        one, two = Room(a, b), Room(a, c)
        self.outbox.to_room(one, b"1")
        self.outbox.to_room(two, b"2")
        self.outbox.to_members((a, c), b"3")
        self.outbox.to_room(one, b"4")
        self.outbox.flush()
        self.assertEqual(a.frames, [b"1", b"2", b"3", b"4"])
        self.assertEqual(b.frames, [b"1", b"4"])
        self.assertEqual(c.frames, [b"2", b"3"])

    def test_late_joiner_gets_only_what_came_after(self) -> None:
        a, late = FakeMember(), FakeMember()
        room = Room(a)
        self.outbox.to_room(room, b"before")
        room.members[late] = late.send_frame
        self.outbox.joined(room, late)
        self.outbox.to_room(room, b"after")
        self.outbox.flush()
        self.assertEqual(a.frames, [b"beforeafter"])
        self.assertEqual(late.frames, [b"after"])

    def test_late_joiner_with_nothing_after(self) -> None:
        a, late = FakeMember(), FakeMember()
        room = Room(a)
        self.outbox.to_room(room, b"before")
        room.members[late] = late.send_frame
        self.outbox.joined(room, late)
        self.outbox.flush()
        self.assertEqual(late.frames, [])

    def test_flush_twice_and_nothing_scheduled_after(self) -> None:
        a = FakeMember()
        self.outbox.to_room(Room(a), b"x")
        self.outbox.flush()
        self.outbox.flush()
        self.clock.advance(0)
        self.assertEqual(a.frames, [b"x"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_empty_audience_is_nothing(self) -> None:
        self.outbox.to_members((), b"x")
        self.assertEqual(len(self.outbox), 0)
