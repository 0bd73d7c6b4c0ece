# -*- test-case-name: tests.test_fanout -*-
"""Tests for L{chatsvc.chat.fanout}: the chat's ordered outbox."""

from __future__ import annotations

from typing import Any, Dict, List

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.chat.fanout import Outbox
from chatsvc.server.turns import EndOfTurn


class Member:
    def __init__(self) -> None:
        self.writes: List[bytes] = []

    def send_frame(self, data: bytes) -> None:
        self.writes.append(data)


class Room:
    def __init__(self, *members: Member) -> None:
        self.members: Dict[Any, Any] = {m: m.send_frame for m in members}


class OutboxTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.outbox = Outbox(EndOfTurn(self.clock))

    def test_one_write_per_run_at_the_end_of_the_turn(self) -> None:
        a, b = Member(), Member()
        room = Room(a, b)
        for frame in (b"1", b"2", b"3"):
            self.outbox.to_room(room, frame)
        self.assertEqual((a.writes, self.outbox.size), ([], 3))
        self.clock.advance(0)
        self.assertEqual((a.writes, b.writes, self.outbox.size), ([b"123"], [b"123"], 0))

    def test_order_across_audiences(self) -> None:
        """A member in two rooms gets everything in the order it was queued."""
        a, b, c = Member(), Member(), Member()
        one, two = Room(a, b), Room(a, c)
        self.outbox.to_room(one, b"1")
        self.outbox.to_room(two, b"2")
        self.outbox.to_members((a, c), b"3")
        self.outbox.to_room(one, b"4")
        self.outbox.flush()
        self.assertEqual(a.writes, [b"1", b"2", b"3", b"4"])
        self.assertEqual(b.writes, [b"1", b"4"])
        self.assertEqual(c.writes, [b"2", b"3"])

    def test_late_joiner_gets_only_what_came_after(self) -> None:
        a, late = Member(), Member()
        room = Room(a)
        self.outbox.to_room(room, b"before")
        room.members[late] = late.send_frame
        self.outbox.joined(room, late)
        self.outbox.to_room(room, b"after")
        self.outbox.flush()
        self.assertEqual(a.writes, [b"beforeafter"])
        self.assertEqual(late.writes, [b"after"])

    def test_late_joiner_with_nothing_after(self) -> None:
        a, late = Member(), Member()
        room = Room(a)
        self.outbox.to_room(room, b"before")
        room.members[late] = late.send_frame
        self.outbox.joined(room, late)
        self.outbox.flush()
        self.assertEqual(late.writes, [])

    def test_flush_twice_and_nothing_scheduled_after(self) -> None:
        a = Member()
        self.outbox.to_room(Room(a), b"x")
        self.outbox.flush()
        self.outbox.flush()
        self.clock.advance(0)
        self.assertEqual(a.writes, [b"x"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_empty_audience_is_nothing(self) -> None:
        self.outbox.to_members((), b"x")
        self.assertEqual(len(self.outbox), 0)
