# -*- test-case-name: tests.test_admin -*-
"""
What an operator and the metrics ask of the single-process chat
(L{IChatAdmin}, L{IChatStats}), mixed into
L{MemoryChat <chatsvc.chat.memory.MemoryChat>}.
"""

from __future__ import annotations

from typing import Any, Dict, List

from zope.interface import implementer

from ..metrics import NO_METRICS
from ..wire.framing import encode_frame
from ..wire.messages import encode
from ..wire.rooms import room_key
from .common import History
from .interfaces import IChatAdmin, IChatStats

OPERATOR = "(operator)"
"""The C{by} of a topic an operator set: not a valid user name (4.3)."""


@implementer(IChatAdmin, IChatStats)
class OperatorActions:
    """L{IChatAdmin} and L{IChatStats} over the memory chat's rooms."""

    @property
    def metrics(self) -> Any:
        """The chat's L{IServerMetrics <chatsvc.metrics.IServerMetrics>} (its fan-out's)."""
        return getattr(self._outbox, "metrics", NO_METRICS)

    @metrics.setter
    def metrics(self, metrics: Any) -> None:
        self._outbox.metrics = metrics

    def stats(self) -> Dict[str, int]:
        return {"users": len(self), "rooms": len(self.rooms.occupied()),
                "history": sum(len(room.history) for room in self.rooms)}

    def room_list(self) -> List[Dict[str, Any]]:
        return [{"room": room.name, "count": len(room.members), "topic": room.topic,
                 "history": len(room.history)} for room in self.rooms.occupied()]

    def member_rooms(self, member: Any) -> List[str]:
        return self.rooms_of(member)

    def _held(self, name: object) -> Any:
        room = self.rooms.get(room_key(name)) if isinstance(name, str) else None
        if room is None:
            raise KeyError(name)
        return room

    def operator_topic(self, room: str, text: str) -> None:
        target = self._held(room)
        if not target.members:
            raise KeyError(room)
        target.topic = text
        self._outbox.to_room(target, encode_frame(encode(
            {"type": "topic", "room": target.name, "text": text, "by": OPERATOR,
             "ts": self._now()})))

    def clear_room(self, room: str) -> int:
        target = self._held(room)
        forgotten = len(target.history)
        history = History(target.history.size)
        history.dropped_upto = target.seq
        target.history = history
        return forgotten
