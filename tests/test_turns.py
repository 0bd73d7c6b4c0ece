"""
Tests for L{chatsvc.server.turns}: the end-of-turn pass shared by the room and the
encrypting wrapper.
"""

from __future__ import annotations

from typing import List

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.server.turns import EndOfTurn, end_of_turn


class EndOfTurnTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.turn = EndOfTurn(self.clock)

    def test_runs_in_order_at_the_end_of_the_turn(self) -> None:
        clock, turn = self.clock, self.turn
        calls: List[str] = []
        turn.schedule(lambda: calls.append("a"))
        turn.schedule(lambda: calls.append("b"))
        self.assertEqual(calls, [])
        self.assertEqual(len(clock.getDelayedCalls()), 1, "one delayed call for both")
        clock.advance(0)
        self.assertEqual(calls, ["a", "b"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_what_is_scheduled_while_running_runs_in_the_same_pass(self) -> None:
        clock, turn = self.clock, self.turn
        calls: List[str] = []

        def first() -> None:
            calls.append("first")
            turn.schedule(lambda: calls.append("second"))

        turn.schedule(first)
        clock.advance(0)
        self.assertEqual(calls, ["first", "second"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_running_is_true_only_during_the_pass(self) -> None:
        clock, turn = self.clock, self.turn
        seen: List[bool] = []
        turn.schedule(lambda: seen.append(turn.running))
        self.assertFalse(turn.running)
        clock.advance(0)
        self.assertEqual(seen, [True])
        self.assertFalse(turn.running)

    def test_cancel(self) -> None:
        clock, turn = self.clock, self.turn
        calls: List[str] = []

        def a() -> None:
            calls.append("a")

        def b() -> None:
            calls.append("b")

        turn.schedule(a)
        turn.schedule(b)
        turn.cancel(a)
        turn.cancel(a)  # not scheduled any more: nothing happens
        clock.advance(0)
        self.assertEqual(calls, ["b"])
        turn.schedule(a)
        turn.cancel(a)
        self.assertEqual(clock.getDelayedCalls(), [], "nothing left: no delayed call")

    def test_an_exception_does_not_lose_the_rest(self) -> None:
        clock, turn = self.clock, self.turn
        calls: List[str] = []

        def boom() -> None:
            raise ZeroDivisionError()

        turn.schedule(boom)
        turn.schedule(lambda: calls.append("after"))
        self.assertRaises(ZeroDivisionError, clock.advance, 0)
        self.assertFalse(turn.running)
        clock.advance(0)
        self.assertEqual(calls, ["after"])

    def test_one_per_clock(self) -> None:
        one, two = Clock(), Clock()
        self.assertIs(end_of_turn(one), end_of_turn(one))
        self.assertIsNot(end_of_turn(one), end_of_turn(two))
