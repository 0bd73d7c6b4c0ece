# -*- test-case-name: tests.test_client -*-
"""
The user's side of the controller: L{UserSide}, the part of
L{chatsvc.client.app.ChatClient} that takes what the user does (typed
lines, the name prompt, room switching keys, the end of input) and turns
it into something shown, something queued to send, or the end.
L{ChatClient} inherits it; it is apart only to keep each module readable.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from twisted.internet.interfaces import IPushProducer

from ..wire.names import InvalidName, normalize
from .commands import HELP, Action, Help, Hint, Me, Quit, Say, SwitchEncryption, parse_command
from .outbox import Outbox
from .outgoing import local, pending_rows
from .protocol import Link
from .session import ClientSession

PROMPT = "Enter your username: "


class UserSide:
    """
    Typed lines in (see the module's docstring). It relies on the
    controller's C{session}, view, outbox, current link and the methods
    stubbed below.
    """

    session: ClientSession
    _view: Any
    _outbox: Outbox
    _psk: Optional[bytes]
    _current: Optional[Link]
    _asking_name: bool
    _finished: bool

    def _begin(self) -> None:
        raise NotImplementedError

    def _print(self, texts: Sequence[str], kind: str = "info") -> None:
        raise NotImplementedError

    def _fail(self, text: str) -> None:
        raise NotImplementedError

    def _finish(self, code: int) -> None:
        raise NotImplementedError

    def update_status(self) -> None:
        raise NotImplementedError

    def attach_input(self, producer: IPushProducer) -> None:
        """Pause and resume C{producer} when too many lines wait to be sent."""
        self._outbox.attach_input(producer)

    def start(self) -> None:
        """Ask for a name if needed, then connect."""
        if self._asking_name:
            self._view.prompt(PROMPT)
        else:
            self._begin()
        self.update_status()

    def line_received(self, line: str) -> None:
        """One typed line, without its line end."""
        if self._finished:
            return
        if self._asking_name:
            self._name_received(line)
            return
        action = parse_command(line)
        if action is None:
            return
        shown = local(self.session, action)
        if shown is not None:
            self._view.show(shown)
            self.update_status()
        elif isinstance(action, Help):
            self._print(HELP)
        elif isinstance(action, Hint):
            self._print([action.line], "error")
        elif isinstance(action, SwitchEncryption) and action.on and self._psk is None:
            self._print(["! /encrypt on needs a key: start chat-client with --psk FILE"])
        elif isinstance(action, Quit) and self._disconnected():
            self._finish(0)
        else:
            if isinstance(action, (Say, Me)) and not (self._current and self._current.registered):
                self._pending(action)
            self._outbox.add(action)
            self.update_status()

    def switch_room(self, by: int) -> None:
        """Make the next (C{by=1}) or previous (C{-1}) room the active one."""
        names = self.session.rooms.names()
        if names:
            active = self.session.rooms.active_name
            self.switch_to(((names.index(active) if active in names else 0) + by) % len(names))

    def switch_to(self, index: int) -> None:
        """Make the C{index}th room (from 0) the active one."""
        names = self.session.rooms.names()
        if 0 <= index < len(names):
            self.line_received(f"/switch {names[index]}")

    def _pending(self, action: Action) -> None:
        # Typed while the connection is down (or not up yet): shown as
        # pending until the server's copy arrives.
        if not self.session.welcomed:
            return
        assert isinstance(action, (Say, Me))
        self.session.unconfirmed.append(action)
        del self.session.unconfirmed[:-Outbox.HIGH * 2]
        self._view.show(pending_rows(self.session, action))

    def line_too_long(self, limit: int) -> None:
        """A typed line over C{limit} bytes was dropped."""
        if not self._finished:
            self._print([f"! too-long: a line of over {limit} bytes was not sent"])

    def input_ended(self) -> None:
        """The end of input: leave once what was typed has been sent."""
        if self._finished:
            return
        if self._asking_name:
            self._fail("no username given (end of input)")
        elif self._disconnected():
            self._finish(0)
        else:
            self._outbox.add(Quit())

    def _disconnected(self) -> bool:
        # Reconnecting after having been connected: a quit cannot wait for a
        # server that may never come back. (Before the first welcome, lines,
        # quit included, wait: piped input arrives before the connection.)
        return self.session.welcomed and not (self._current and self._current.registered)

    def _name_received(self, line: str) -> None:
        text = line.strip()
        name = None
        if text:
            try:
                name = normalize(text)
            except InvalidName as e:
                self._print([f"! invalid name: {e}"], "error")
                self._view.prompt(PROMPT)
                return
        self._asking_name = False
        self.session.name = name
        self._begin()
