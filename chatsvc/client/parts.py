# -*- test-case-name: tests.test_client_rooms,tests.test_client_session -*-
"""
Lists a server splits over several messages (C{history}, C{room},
C{users}, C{rooms}, each part but the last with C{"more": true}), put back
together within fixed limits, so that a malicious server cannot grow the
client's memory without end (issue 12, finding 6)::

    parts = Parts()
    parts.add(("history", "#dev"), items, more=True)    # None: wait for more
    parts.add(("history", "#dev"), items, more=False)   # Gathered(items, cut)

The limits, per connection: at most L{MAX_PARTS} parts of one list (a
frame is at most 64 KiB, so about 2 MiB of JSON), at most L{MAX_ITEMS}
items kept of one list, and at most L{MAX_OPEN} lists gathered at once
(one starting past that closes the oldest, cut). Parts past a limit are
dropped and the list is reported as cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Hashable, List, Optional

MAX_PARTS = 32
"""Parts of one list kept; later parts are dropped (the list is cut)."""

MAX_ITEMS = 20_000
"""Items of one list kept (the server sends at most 10,000 users)."""

MAX_OPEN = 4
"""Lists being gathered at once on one connection."""


@dataclass
class Gathered:
    """A whole list: its items, and whether a limit cut it short."""

    items: List[Any]
    cut: bool = False
    parts: int = 1


@dataclass
class _Open:
    items: List[Any] = field(default_factory=list)
    parts: int = 0
    cut: bool = False


class Parts:
    """Gathers the lists of one connection (see the module's docstring)."""

    def __init__(self, max_parts: int = MAX_PARTS, max_items: int = MAX_ITEMS,
                 max_open: int = MAX_OPEN) -> None:
        self.max_parts = max_parts
        self.max_items = max_items
        self.max_open = max_open
        self._open: Dict[Hashable, _Open] = {}
        self.dropped: List[Gathered] = []

    @property
    def open_items(self) -> int:
        """How many items are held now (for tests and the benchmark)."""
        return sum(len(o.items) for o in self._open.values())

    def add(self, key: Hashable, items: Any, more: bool) -> Optional[Gathered]:
        """
        Take one part of the list C{key}; return the whole list once its
        last part (C{more} false) arrives, C{None} before.
        """
        current = self._open.get(key)
        if current is None:
            while len(self._open) >= self.max_open:
                oldest = next(iter(self._open))
                gone = self._open.pop(oldest)
                self.dropped.append(Gathered(gone.items, True, gone.parts))
                del self.dropped[:-self.max_open]
            current = self._open[key] = _Open()
        current.parts += 1
        if not isinstance(items, list):
            items = []
        if current.parts > self.max_parts:
            current.cut = True
        else:
            room = self.max_items - len(current.items)
            if len(items) > room:
                current.cut = True
                items = items[:max(room, 0)]
            current.items.extend(items)
        if more:
            return None
        del self._open[key]
        return Gathered(current.items, current.cut, current.parts)

    def clear(self) -> None:
        self._open.clear()
