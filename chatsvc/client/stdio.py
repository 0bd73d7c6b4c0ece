# -*- test-case-name: tests.test_client_lines,tests.test_client -*-
"""
Standard input and output: L{LineInput} (typed or piped lines, over
C{StandardIO} + C{LineReceiver}), L{TransportOutput} (stdout, bounded:
L{chatsvc.client.view.BoundedOutput}), and L{run} / L{main} (arguments,
key, line mode or the full screen, C{react}).

The full screen (L{chatsvc.client.screen}) is used when standard input and
output are both a terminal, C{TERM} is not C{dumb}, the platform has a
raw tty (not Windows), and C{--line-mode} was not given.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, Callable, NoReturn, Optional, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import connectionDone
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from ..wire.framing import MAX_FRAME
from . import display
from .app import ChatClient
from .args import ClientArgs, UsageError, parse_args
from .endpoints import build_endpoint
from .lines import LineFormatter
from .view import BoundedOutput, LineView

@implementer(IHalfCloseableProtocol)
class LineInput(LineReceiver):
    """
    Typed (or piped) lines from C{StandardIO}, given to a L{ChatClient}.

    Lines end with C{\\n}; a trailing C{\\r} is removed; bytes that are not
    UTF-8 become U+FFFD. A last line without its C{\\n} still counts. The end
    of input is reported once every line before it has been handed over.

    @ivar closed: fires when stdio is closed in both directions.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_FRAME

    ERASE_ECHO = b"\x1b[1A\x1b[2K\r"
    """Cursor up one line, erase it: the terminal's echo of a typed line."""

    def __init__(self, client: Optional[ChatClient] = None, erase_echo: bool = False) -> None:
        self.client = client
        self.erase_echo = erase_echo
        self.closed: Deferred[None] = Deferred()
        self.output_open = True
        self._eof = False
        self._ended = False
        self._discarding = False

    def attach(self, client: ChatClient) -> None:
        self.client = client
        client.attach_input(self)

    def lineReceived(self, line: bytes) -> None:
        if self._discarding:
            self._discarding = False  # the tail of a line that was too long
            return
        if line.endswith(b"\r"):
            line = line[:-1]
        assert self.client is not None, "attach() a client before data arrives"
        if self.erase_echo and self.transport is not None:
            # The server's copy will show it, once (issue 13).
            self.transport.write(self.ERASE_ECHO)
        self.client.line_received(line.decode("utf-8", "replace"))

    def lineLengthExceeded(self, line: bytes) -> None:
        # LineReceiver has dropped its buffer (this line and anything after
        # it); keep what follows the long line, and skip the rest of a line
        # whose end has not arrived yet.
        if not self._discarding and self.client is not None:
            self.client.line_too_long(self.MAX_LENGTH)
        _, found, rest = line.partition(self.delimiter)
        if found:
            self._discarding = False
            self._buffer = rest + self._buffer
        else:
            self._discarding = True

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        # Lines kept after lineLengthExceeded wait in the buffer: go on.
        while self.delimiter in self._buffer and not self.paused and not self._busyReceiving:
            before = self._buffer
            super().dataReceived(b"")
            if self._buffer == before:
                break

    def readConnectionLost(self) -> None:
        self._eof = True
        self._end_if_drained()

    def writeConnectionLost(self) -> None:
        # Nobody can see our output any more: leave.
        self.output_open = False
        if self.client is not None:
            self.client.input_ended()

    def resumeProducing(self) -> None:
        super().resumeProducing()
        self._end_if_drained()

    def _end_if_drained(self) -> None:
        if not self._eof or self._ended or self.paused:
            return
        if self.delimiter in self._buffer:
            self.dataReceived(b"")
            if self.paused:
                return
        rest = self.clearLineBuffer()
        self._ended = True
        if rest and not self._discarding:
            self.lineReceived(rest)
        if self.client is not None:
            self.client.input_ended()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.output_open = False
        if not self.closed.called:
            self.closed.callback(None)


class TransportOutput(BoundedOutput):
    """C{write(text)} to a transport (stdout), UTF-8 encoded, bounded."""


def use_screen(args: ClientArgs, stdin: Any = None, stdout: Any = None,
               environ: Optional[dict] = None) -> bool:
    """Whether to run full screen (see the module's docstring)."""
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    environ = os.environ if environ is None else environ
    if args.line_mode or environ.get("TERM", "") in ("", "dumb"):
        return False
    try:
        import termios  # noqa: F401  (POSIX only: Windows has no raw tty for StandardIO)
    except ImportError:
        return False
    try:
        return bool(stdin.isatty() and stdout.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def erase_echo(environ: Optional[dict] = None) -> bool:
    """
    Whether line mode should erase the terminal's echo of each typed line
    (so that the line shows once, as the server's copy): on a terminal that
    understands cursor movement.
    """
    environ = os.environ if environ is None else environ
    if environ.get("TERM", "") in ("", "dumb"):
        return False
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError, OSError):
        return False


# ---------------------------------------------------------------------------
# main


def _stderr_line(text: str) -> None:
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # stderr closed or not writable: nothing better to do


async def run(
    reactor: Any,
    args: ClientArgs,
    errors: Callable[[str], None] = _stderr_line,
) -> int:
    """Run a client on stdin/stdout with a parsed command line; return the exit status."""
    psk = None
    if args.psk:
        from ..keys import KeyFileError, load_key

        try:
            psk = load_key(args.psk, warn=lambda text: errors(f"chat-client: warning: {display.sanitize(text)}"))
        except KeyFileError as e:
            errors(f"chat-client: {display.sanitize(str(e))}")
            return 2
    try:
        endpoint = build_endpoint(reactor, args)
    except ValueError as e:
        errors(f"chat-client: bad --connect endpoint {e}")
        return 2

    def make_client(view: Any, report: Callable[[str], None] = errors) -> ChatClient:
        return ChatClient(reactor, endpoint, view, name=args.name, psk=psk,
                          encrypted=args.encrypted, reconnect=args.reconnect, errors=report)

    if use_screen(args):
        from .terminal import run_screen

        return await run_screen(reactor, make_client)

    from twisted.internet.stdio import StandardIO

    lines = LineInput(erase_echo=erase_echo())
    stdio = StandardIO(lines, reactor=reactor)
    output = TransportOutput(stdio)
    client = make_client(LineView(output, formatter=LineFormatter(timestamps=args.timestamps)))
    lines.attach(client)
    client.start()
    code = await client.done
    # Flush what is still queued for stdout before the reactor stops.
    if lines.output_open:
        output.resumeProducing()
        stdio.unregisterProducer()
        stdio.loseConnection()
        lines.closed.addTimeout(2, reactor)
        try:
            await lines.closed
        except DeferredTimeoutError:
            pass  # a stuck stdout: exit anyway
    return code


async def _main(reactor: Any, args: ClientArgs) -> None:
    try:
        code = await run(reactor, args)
    except Exception:
        # A bug: show it, which react's logging would not (nothing observes it).
        traceback.print_exc()
        code = 1
    if code:
        raise SystemExit(code)


def main(argv: Optional[Sequence[str]] = None) -> NoReturn:
    """The C{chat-client} console script; C{argv} excludes the program name."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        _stderr_line(f"chat-client: {e} (see chat-client --help)")
        raise SystemExit(2)
    if args.debug:
        from twisted.logger import globalLogBeginner, textFileLogObserver

        globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)])

    from twisted.internet.task import react

    react(_main, (args,))
