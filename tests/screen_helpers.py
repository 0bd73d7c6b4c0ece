"""
The full-screen client as a screen, for tests: a L{ChatScreen} under
insults' C{ServerProtocol} on a C{StringTransport}, its bytes rendered by
C{pyte} (a VT100 emulator), keys typed as bytes, the client on a fake
endpoint and a C{Clock} (tests.client_helpers)::

    s = ScreenHarness()
    server = s.connect()
    s.type("hello")
    s.rows()        # ['', ..., ' #lobby | alice | ...', '> hello']
"""

from __future__ import annotations

from datetime import timezone
from typing import Any, List

try:
    import pyte
except ImportError:  # pragma: no cover
    raise ImportError("the screen tests need pyte: pip install -e '.[test]'")

from twisted.conch.insults.insults import ServerProtocol
from twisted.internet.testing import StringTransport
from zope.interface import implementer

from chatsvc.client.lines import Clock as LocalClock
from chatsvc.client.screen import PAINT_DELAY, ChatScreen
from chatsvc.client.view import IView

from .client_helpers import Harness

NOW = 1_796_565_720.0  # 2026-12-06T14:02:00Z


class ScreenHarness:
    def __init__(self, width: int = 60, height: int = 12, colour: bool = True, **kwargs: Any) -> None:
        self.width, self.height = width, height
        self.vt = pyte.Screen(width, height)
        self.stream = pyte.ByteStream(self.vt)
        self.transport = StringTransport()
        self.raw = b""
        kwargs.setdefault("name", "alice")
        self.h = Harness(view=_Late(), **kwargs)
        clock = self.h.clock
        clock.advance(NOW)
        self.terminal = ServerProtocol(ChatScreen, clock, colour,
                                       LocalClock(tz=timezone.utc, now=clock.seconds))
        self.terminal.makeConnection(self.transport)
        self.screen: ChatScreen = self.terminal.terminalProtocol
        self.screen.terminalSize(width, height)
        self.h.view.target = self.screen
        self.screen.attach(self.h.client)

    @property
    def client(self) -> Any:
        return self.h.client

    def connect(self, **welcome_extra: Any) -> Any:
        server = self.h.connect(**welcome_extra)
        self.settle()
        return server

    def settle(self) -> None:
        """Let batched paints happen."""
        self.h.clock.advance(PAINT_DELAY)

    def type(self, text: str) -> None:
        """Keys, as the terminal sends them: UTF-8, one byte at a time."""
        for byte in text.encode("utf-8"):
            self.terminal.dataReceived(bytes([byte]))

    def key(self, data: bytes) -> None:
        self.terminal.dataReceived(data)

    def resize(self, width: int, height: int) -> None:
        self.rows()
        self.width, self.height = width, height
        self.vt.resize(height, width)
        self.screen.terminalSize(width, height)

    def rows(self) -> List[str]:
        """What the terminal shows, row by row (trailing spaces removed)."""
        data = self.transport.value()
        self.transport.clear()
        self.raw += data
        self.stream.feed(data)
        return [row.rstrip() for row in self.vt.display]

    def chat(self) -> List[str]:
        return [row for row in self.rows()[:-2] if row]

    def status(self) -> str:
        return self.rows()[-2]

    def input(self) -> str:
        return self.rows()[-1]

    def cursor(self) -> tuple:
        self.rows()
        return self.vt.cursor.x, self.vt.cursor.y


@implementer(IView)
class _Late:
    """Stands in for the view until the screen exists (Harness builds the client first)."""

    target: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)
