# -*- test-case-name: tests.test_layers -*-
"""
Imports point down: the server uses the chat, the chat uses the wire, and
never the other way (the chat gets the server's end of turn as an
L{IEndOfTurn} instead of importing it).
"""

from __future__ import annotations

import ast
import os
from typing import Callable, Iterator, List, Tuple

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import chatsvc
from chatsvc.chat.interfaces import IEndOfTurn
from chatsvc.chat.memory import MemoryChat, NextTurn
from chatsvc.server.turns import EndOfTurn

from .test_room import FakeMember

_ROOT = os.path.dirname(os.path.abspath(chatsvc.__file__))

# package -> the packages of chatsvc it must not import
_ABOVE = {
    "wire": ("chat", "server", "transports", "web", "client", "admin", "tap"),
    "chat": ("server", "transports", "web", "client", "admin", "tap"),
}


def _imported(source: str, module: str) -> List[str]:
    """
    The chatsvc modules (dotted, without C{chatsvc.}) that C{source}, the
    text of the module C{module} (dotted, without C{chatsvc.}), imports.
    """
    parts = module.split(".")
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level]
                found.append(".".join(base + ([node.module] if node.module else [])))
            elif node.module and node.module.startswith("chatsvc."):
                found.append(node.module[len("chatsvc."):])
        elif isinstance(node, ast.Import):
            found.extend(a.name[len("chatsvc."):] for a in node.names
                         if a.name.startswith("chatsvc."))
    return found


def _modules(package: str) -> Iterator[Tuple[str, str]]:
    """C{(dotted name, source)} of every module of C{package}."""
    for folder, _, files in os.walk(os.path.join(_ROOT, package)):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, _ROOT)[:-3].replace(os.sep, ".")
                with open(path, encoding="utf-8") as f:
                    yield dotted, f.read()


class LayerTests(SynchronousTestCase):
    def test_imports_point_down(self) -> None:
        wrong = []
        for package, above in _ABOVE.items():
            for module, source in _modules(package):
                for imported in _imported(source, module):
                    if imported.split(".")[0] in above:
                        wrong.append(f"{module} imports {imported}")
        self.assertEqual(wrong, [])

    def test_sees_a_wrong_import(self) -> None:
        """The check itself sees the relative import that the chat had."""
        source = "from ..server.turns import end_of_turn\nfrom .common import History\n"
        self.assertEqual(_imported(source, "chat.memory"), ["server.turns", "chat.common"])
        self.assertEqual(_imported("import chatsvc.server.factory\n", "chat.x"),
                         ["server.factory"])
        self.assertTrue(any(module == "chat.memory" for module, _ in _modules("chat")))


class EndOfTurnTests(SynchronousTestCase):
    def test_interface(self) -> None:
        self.assertTrue(verifyObject(IEndOfTurn, EndOfTurn(Clock())))
        self.assertTrue(verifyObject(IEndOfTurn, NextTurn(Clock())))

    def test_chat_uses_the_given_pass(self) -> None:
        """The chat hands out a turn's broadcasts in the pass it was given."""
        scheduled: List[Callable[[], object]] = []

        class Recording:
            def schedule(self, f: Callable[[], object]) -> None:
                scheduled.append(f)

            def cancel(self, f: Callable[[], object]) -> None:
                if f in scheduled:
                    scheduled.remove(f)

        clock = Clock()
        chat = MemoryChat(clock, end_of_turn=Recording())
        alice = FakeMember()
        chat.register(alice, name="alice")
        alice.frames.clear()
        chat.say(alice, None, "hi")
        self.assertEqual(len(scheduled), 1)
        self.assertEqual(alice.frames, [])
        self.assertEqual(clock.getDelayedCalls(), [], "no call of its own")
        scheduled.pop()()
        self.assertEqual(len(alice.frames), 1)

    def test_next_turn(self) -> None:
        clock = Clock()
        turn = NextTurn(clock)
        calls: List[str] = []
        turn.schedule(lambda: calls.append("a"))
        f = lambda: calls.append("b")  # noqa: E731
        turn.schedule(f)
        turn.schedule(f)  # once at a time
        turn.cancel(lambda: None)  # not scheduled: nothing
        clock.advance(0)
        self.assertEqual(calls, ["a", "b"])
        turn.schedule(f)
        turn.cancel(f)
        clock.advance(0)
        self.assertEqual(calls, ["a", "b"])
        self.assertEqual(clock.getDelayedCalls(), [])
