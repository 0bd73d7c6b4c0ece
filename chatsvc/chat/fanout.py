# -*- test-case-name: tests.test_fanout -*-
"""
The chat's outbox: what a reactor turn broadcast, handed out in one pass.

Each broadcast names its audience: a room (whoever is in it when the turn
ends, less those who joined after the broadcast) or a fixed tuple of
members (a C{left} or C{renamed} that goes to everyone sharing a room with
someone). At the end of the turn, consecutive broadcasts to the same
audience are joined into one write, so a busy room costs one write per
member per turn however many messages it carried, and every member gets
everything in the order it was broadcast. L{Outbox.load} is what the
server's turn budget is held against: what the latest broadcast's audience
has queued this turn, so that a turn with many busy rooms still gathers a
good batch for each, or a L{TURN_AUDIENCES}th of all that is queued, so that
the turn as a whole stays bounded::

    outbox = Outbox(end_of_turn)       # the server's IEndOfTurn
    outbox.to_room(room, frame)
    outbox.joined(room, member)        # gets only what comes after this
    outbox.flush()                     # at the end of the turn (scheduled)

Members leave a room only after a L{Outbox.flush}: what was broadcast while
they were in it still reaches them.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from ..metrics import NO_METRICS

TURN_AUDIENCES = 64
"""How many audiences' budgets one turn may gather in all (L{Outbox.load}):
4 MiB with the default budget. (16 cost 100 rooms of 10 at saturation 8%
plaintext and 16% encrypted: once the turn is full, every further sender
handles one message before it is held, and its room's members get a write
for that one.)"""


class Outbox:
    """
    @param end_of_turn: an L{EndOfTurn <chatsvc.server.turns.EndOfTurn>}
        (anything with C{schedule} and C{cancel}).
    @ivar size: bytes queued and not yet handed out.
    @ivar audience_size: bytes queued this turn for the audience of the
        latest broadcast (one room, or one fixed set of members).
    @ivar metrics: told how many frames each flush handed out (C{--metrics}).
    """

    metrics: Any = NO_METRICS

    def __init__(self, end_of_turn: Any) -> None:
        self._end_of_turn = end_of_turn
        self._audiences: List[Any] = []
        self._frames: List[bytes] = []
        self._late: Dict[Tuple[Any, Any], int] = {}  # (room, member) -> first index
        self._sizes: Dict[int, int] = {}  # id(audience) -> bytes queued this turn
        self._scheduled = False
        self.size = 0
        self.audience_size = 0

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def load(self) -> int:
        """
        The larger of L{audience_size} and a L{TURN_AUDIENCES}th of L{size}:
        past a turn budget of I{B} bytes, one room has I{B} queued this turn,
        or all of them together 64 I{B}.
        """
        return max(self.audience_size, self.size // TURN_AUDIENCES)

    def to_room(self, room: Any, frame: bytes) -> None:
        """Queue C{frame} for the members of C{room} (its C{members}: member -> send)."""
        self._queue(room, frame)

    def to_members(self, members: Tuple[Any, ...], frame: bytes) -> None:
        """Queue C{frame} for exactly C{members} (their C{send_frame})."""
        if members:
            self._queue(members, frame)

    def joined(self, room: Any, member: Any) -> None:
        """C{member} joined C{room} now: it gets that room's broadcasts from here on."""
        if self._frames:
            self._late[(room, member)] = len(self._frames)

    def _queue(self, audience: Any, frame: bytes) -> None:
        self._audiences.append(audience)
        self._frames.append(frame)
        size = len(frame)
        self.size += size
        sizes = self._sizes
        key = id(audience)  # a tuple's own hash would cost a pass over its members
        size = sizes[key] = sizes.get(key, 0) + size
        self.audience_size = size
        if not self._scheduled:
            self._scheduled = True
            self._end_of_turn.schedule(self.flush)

    def flush(self) -> None:
        """Hand out everything queued, in order."""
        if self._scheduled:
            self._scheduled = False
            self._end_of_turn.cancel(self.flush)
        frames = self._frames
        if not frames:
            self._late.clear()
            return
        audiences, late = self._audiences, self._late
        self._frames, self._audiences, self._late = [], [], {}
        self._sizes = {}
        self.size = self.audience_size = 0
        i, n = 0, len(frames)
        delivered = 0
        while i < n:
            audience = audiences[i]
            j = i + 1
            while j < n and audiences[j] is audience:
                j += 1
            blob = frames[i] if j == i + 1 else b"".join(frames[i:j])
            if type(audience) is tuple:
                for member in audience:
                    member.send_frame(blob)
                delivered += len(audience) * (j - i)
            elif late:
                delivered += _to_room_late(audience, frames, i, j, blob, late)
            else:
                for send in list(audience.members.values()):
                    send(blob)
                delivered += len(audience.members) * (j - i)
            i = j
        self.metrics.delivered(delivered)


def _to_room_late(room: Any, frames: List[bytes], i: int, j: int, blob: bytes,
                  late: Dict[Tuple[Any, Any], int]) -> int:
    """
    Frames C{i:j} to C{room}'s members, less what came before a member
    joined; returns how many frames were handed out.
    """
    delivered = 0
    for member, send in list(room.members.items()):
        start = late.get((room, member))
        if start is None or start <= i:
            send(blob)
            delivered += j - i
        elif start < j:
            send(b"".join(frames[start:j]))
            delivered += j - start
    return delivered
