# -*- test-case-name: tests.test_client_lines,tests.test_client_pty -*-
"""
Running the full screen on this process's terminal: L{run_screen} puts
the tty in raw mode (as C{twisted.conch.stdio} does for manhole), runs a
L{ChatScreen} under insults' C{ServerProtocol} over C{StandardIO},
redraws on C{SIGWINCH}, and puts the terminal back however the client
ends. POSIX only: L{chatsvc.client.stdio.use_screen} chooses line mode
where there is no C{termios} (Windows).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, List

from twisted.conch.insults.insults import ServerProtocol
from twisted.logger import Logger

from .screen import ChatScreen

_log = Logger()

RESTORE = b"\x1b[r\x1b[0m\x1b[?1049l"
"""No scroll region, no colour, back from the alternate screen."""


def terminal_size(fd: int) -> tuple:
    """(columns, rows) of the terminal on C{fd}, (80, 24) if unknown."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 80, 24
    return size.columns or 80, size.lines or 24


def colour_wanted(environ: Any = None) -> bool:
    """Colours unless C{NO_COLOR} is set (to anything) or C{TERM} is C{dumb}."""
    environ = os.environ if environ is None else environ
    return "NO_COLOR" not in environ and environ.get("TERM", "") != "dumb"


async def run_screen(reactor: Any, make_client: Callable[..., Any]) -> int:
    """
    Run a client full screen; return its exit status. C{make_client(view,
    errors)} makes the L{ChatClient}; what it reports through C{errors} is
    printed once the terminal is back to normal.
    """
    import signal
    import termios
    import tty

    from twisted.internet.stdio import StandardIO

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    errors: List[str] = []
    tty.setraw(fd)
    previous = None
    try:
        terminal = ServerProtocol(ChatScreen, reactor, colour_wanted())
        stdio = StandardIO(terminal, reactor=reactor)
        screen = terminal.terminalProtocol
        stdio.registerProducer(screen, True)
        client = make_client(screen, errors.append)
        screen.attach(client)

        def resize() -> None:
            screen.terminalSize(*terminal_size(sys.stdout.fileno()))

        resize()
        if hasattr(signal, "SIGWINCH"):
            previous = signal.signal(signal.SIGWINCH, lambda *_: reactor.callFromThread(resize))
        client.start()
        code = await client.done
        stdio.unregisterProducer()
        stdio.loseConnection()
    finally:
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)
        termios.tcsetattr(fd, termios.TCSANOW, saved)
        try:
            os.write(sys.stdout.fileno(), RESTORE)
        except OSError:
            pass  # the terminal is gone
    for line in errors:
        sys.stderr.write(line + "\n")
    return code
