# -*- test-case-name: tests.test_client_rooms,tests.test_client_session -*-
"""
A room's catch-up, without I/O: L{catch_up} turns one room's whole
C{history} into rows, with its markers (issue 13)::

    -- history: 3 messages --
    ...the messages not seen before...
    -- end of history (complete) --
      or -- end of history: some messages before these were missed --
      or -- the server's history was reset --

The history was reset when the server's epoch differs from the one the
client sent, or (a version 1 server, which has no epoch) when it holds only
messages at or below the client's C{since}, with C{complete} false: its
numbering started again. Then every message is new, and the room's
C{seq} starts again from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Mapping

from . import display
from .lines import Line, rows
from .rooms import room_key

if TYPE_CHECKING:  # pragma: no cover
    from .session import ClientSession, ConnectionState


def _seq(item: Mapping) -> object:
    seq = item.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else None


def was_reset(session: "ClientSession", conn: "ConnectionState", room: str,
              items: List[dict], complete: bool) -> bool:
    """Whether the server's numbering of C{room} started again (see the module)."""
    since = conn.since.get(room_key(room))
    if since is None:
        return False
    if conn.epoch is not None and session.epoch is not None and conn.epoch != session.epoch:
        return True
    seqs = [s for s in map(_seq, items) if s is not None]
    return not complete and bool(seqs) and all(s <= since for s in seqs)


def catch_up(session: "ClientSession", conn: "ConnectionState", room: str,
             items: List[dict], complete: bool) -> List[Line]:
    """The rows for one room's whole C{history}, markers included."""
    state = session.rooms.get(room)
    reset = was_reset(session, conn, room, items, complete)
    if state is not None and reset:
        state.seq = None
    shown: List[Line] = []
    for item in items:
        seq = _seq(item)
        last = state.seq if state is not None else None
        if seq is not None and last is not None and seq <= last:
            continue  # seen already (on this or an earlier connection)
        item = dict(item)
        item.setdefault("room", room)
        if item.get("type") != "message":
            item["type"] = "message"
        lines, _, _ = session.message_lines(item, seen=True)
        shown.extend(lines)
    if not shown and not conn.report_catch_up:
        return []
    tag = session.tag(room)
    count = len([line for line in shown if line.kind != "continuation"])
    out = rows([display.history_head(count)], "marker", room=tag) if count else []
    out += shown
    if reset:
        end = display.HISTORY_RESET
    else:
        end = display.history_end(complete)
    return out + rows([end], "marker", room=tag)
