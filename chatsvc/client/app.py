# -*- test-case-name: tests.test_client -*-
"""
The application, on Twisted: L{ChatClient} (the controller, which keeps a
connection up through C{ClientService}, reconnects and resumes, switches
between plaintext and encrypted mode, paces what it sends and decides when
to exit), L{LineInput} (stdin lines: C{StandardIO} + C{LineReceiver}),
L{TransportOutput} (stdout), and L{run} / L{main} (arguments, key,
stdio, C{react}).

The layers below it hold no Twisted application logic of their own:
L{chatsvc.client.args}, L{chatsvc.client.commands} and
L{chatsvc.client.session} are pure; L{chatsvc.client.endpoints} and
L{chatsvc.client.protocol} are the connection adapters.
"""

from __future__ import annotations

import sys
import traceback
from collections import deque
from typing import Any, Callable, Deque, NoReturn, Optional, Sequence

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IProtocolFactory,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from .. import display
from ..wire.errors import RemoteProtocolError
from ..wire.framing import MAX_FRAME
from ..wire.messages import Message
from ..wire.names import InvalidName, normalize
from .args import ClientArgs, UsageError, parse_args
from .commands import (
    HELP,
    Action,
    Help,
    Hint,
    Me,
    Nick,
    Private,
    Quit,
    Say,
    SwitchEncryption,
    Who,
    parse_command,
)
from .endpoints import CannotConnect, RoundRobinEndpoint, build_endpoint, describe_error
from .protocol import ChatClientFactory, ChatClientProtocol, Link
from .session import ClientSession, ConnectionState, TokenBucket

# The namespace the single chatsvc.client module logged under.
_log = Logger(namespace="chatsvc.client")

PROMPT = "Enter your username: "

# Fatal errors after which reconnecting cannot help: the client exits (1).
# Any other fatal error (shutdown, timeout, slow, flood, server-full, ...)
# is followed by a reconnection, unless --no-reconnect.
EXIT_ON = frozenset(
    {
        "replaced",
        "encryption-required",
        "encryption-not-enabled",
        "handshake-failed",
        "bad-frame",
        "frame-too-long",
    }
)


def _default_encrypting_factory(
    factory: IProtocolFactory, psk: bytes, clock: IReactorTime
) -> IProtocolFactory:
    from ..server.encryption import EncryptingFactory

    return EncryptingFactory(factory, psk, initiator=True, clock=clock)


# ---------------------------------------------------------------------------
# The controller


class ChatClient:
    """
    The client: turns typed lines into messages and server messages into
    printed lines, keeps a connection up and decides when to exit.

    @param reactor: an C{IReactorTime} (timers, reconnection backoff).
    @param endpoint: where to connect; L{RoundRobinEndpoint} (for its
        C{current} and C{stay}).
    @param output: has C{write(text)}; gets every line for the user.
    @param name: the user name, or C{None} to ask for one on the first
        input line (an empty answer lets the server choose C{guest_N}).
    @param psk: the pre-shared key, needed for encrypted mode.
    @param encrypted: start in encrypted mode.
    @param reconnect: C{False} to exit (1) when the connection is lost.
    @param errors: called with the one line that explains a failure to
        start (C{chat-client: cannot connect to ...}); defaults to C{output}.
    @param retry_policy: C{ClientService}'s retry policy.
    @param encrypting_factory: C{(factory, psk, clock) -> factory}, wraps a
        protocol factory for encrypted mode; defaults to
        L{chatsvc.server.encryption.EncryptingFactory} with C{initiator=True}.

    @ivar done: fires with the exit status (0 after C{quit} or the end of
        input, 1 after a failure, 2 never: that is for usage errors).
    """

    QUIT_TIMEOUT = 3.0
    """How long to wait for the server to close after C{quit}."""

    QUEUE_HIGH = 100
    QUEUE_LOW = 20
    """Stop reading input while more lines than this wait to be sent; read
    again once they are down to L{QUEUE_LOW}."""

    def __init__(
        self,
        reactor: IReactorTime,
        endpoint: RoundRobinEndpoint,
        output: Any,
        *,
        name: Optional[str] = None,
        psk: Optional[bytes] = None,
        encrypted: bool = False,
        reconnect: bool = True,
        errors: Optional[Callable[[str], None]] = None,
        retry_policy: Optional[Callable[[int], float]] = None,
        encrypting_factory: Optional[Callable[..., IProtocolFactory]] = None,
        bucket: Optional[TokenBucket] = None,
    ) -> None:
        if encrypted and psk is None:
            raise ValueError("encrypted mode needs a key")
        self._reactor = reactor
        self._endpoint = endpoint
        self._output = output
        self._psk = psk
        self._encrypted = encrypted
        self._reconnect = reconnect
        self._errors = errors if errors is not None else (lambda line: self._print([line]))
        self._retry_policy = retry_policy or backoffPolicy(initialDelay=1.0, maxDelay=30.0)
        self._encrypting_factory = encrypting_factory or _default_encrypting_factory
        self._bucket = bucket or TokenBucket(now=reactor.seconds())
        self.session = ClientSession(name)
        self.done: Deferred[int] = Deferred()
        self._asking_name = name is None
        self._current: Optional[Link] = None
        self._switch: Optional[Link] = None
        self._outbox: Deque[Action] = deque()
        self._input: Optional[IPushProducer] = None
        self._input_paused = False
        self._pump_call: Any = None
        self._pumping = False
        self._pump_again = False
        self._quitting = False
        self._quit_call: Any = None
        self._outage = False
        self._finished = False

    # -- the user's side ---------------------------------------------------

    @property
    def encrypted(self) -> bool:
        """Whether the client is (or will connect) in encrypted mode."""
        return self._encrypted

    def attach_input(self, producer: IPushProducer) -> None:
        """Pause and resume C{producer} when too many lines wait to be sent."""
        self._input = producer

    def start(self) -> None:
        """Ask for a name if needed, then connect."""
        if self._asking_name:
            self._output.write(PROMPT)
        else:
            self._begin()

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
        if isinstance(action, Help):
            self._print(HELP)
        elif isinstance(action, Hint):
            self._print([action.line])
        elif isinstance(action, SwitchEncryption) and action.on and self._psk is None:
            self._print(["! /encrypt on needs a key: start chat-client with --psk FILE"])
        elif isinstance(action, Quit) and self._disconnected():
            self._finish(0)
        else:
            self._outbox.append(action)
            self._pump()

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
            self._outbox.append(Quit())
            self._pump()

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
                self._print([f"! invalid name: {e}"])
                self._output.write(PROMPT)
                return
        self._asking_name = False
        self.session.name = name
        self._begin()

    # -- connections ---------------------------------------------------------

    def _begin(self) -> None:
        self._current = self._new_link(self._encrypted)
        self._start_link(self._current, first=True)

    def _new_link(self, encrypted: bool) -> Link:
        link = Link(encrypted)
        factory: IProtocolFactory = ChatClientFactory(self, link, self._reactor)
        if encrypted:
            factory = self._encrypting_factory(factory, self._psk, self._reactor)
        link.service = ClientService(
            self._endpoint, factory, retryPolicy=self._retry_policy, clock=self._reactor
        )
        return link

    def _start_link(self, link: Link, first: bool = False) -> None:
        # Only once the link is current (or the switch target): an endpoint
        # may connect before startService returns.
        assert link.service is not None
        if first:
            # Asked before starting, so that an endpoint failing at once
            # still counts as the first failure.
            link.service.whenConnected(failAfterFailures=1).addErrback(
                self._first_attempt_failed, link
            )
        link.service.startService()

    def _first_attempt_failed(self, failure: Failure, link: Link) -> None:
        if failure.check(CancelledError):
            return
        # We are inside ClientService's state machine, which must not be
        # re-entered (by stopping the service): act on the next turn.
        self._reactor.callLater(0, self._first_attempt_lost, failure, link)

    def _first_attempt_lost(self, failure: Failure, link: Link) -> None:
        if self._finished:
            return
        reason = describe_error(failure.value)
        if link is self._switch:
            self._switch_failed(link, reason)
        elif link is self._current and not self.session.welcomed:
            if failure.check(CannotConnect):
                self._fail(f"cannot connect to {reason}")
            else:
                self._fail(f"cannot connect to {self._endpoint.current}: {reason}")

    def connection_made(self, link: Link, protocol: ChatClientProtocol) -> None:
        """A L{ChatClientProtocol} of C{link} is connected: say hello."""
        if self._finished or link not in (self._current, self._switch):
            protocol.transport.loseConnection()
            return
        link.protocol = protocol
        link.conn = self.session.connect(link.encrypted)
        protocol.send(link.conn.hello)

    def message_received(self, link: Link, message: Message) -> None:
        """A message (other than ping and pong) arrived on C{link}."""
        if self._finished or link.conn is None or link not in (self._current, self._switch):
            return
        if link is self._current and self._switch is not None and (
            message["type"] == "error" and message.get("code") == "replaced"
        ):
            return  # expected: the switch link resumed our session
        reaction = self.session.receive(link.conn, message)
        self._print(reaction.lines)
        for answer in reaction.send:
            if link.protocol is not None:
                link.protocol.send(answer)
        if message["type"] == "welcome":
            self._registered(link)

    def _registered(self, link: Link) -> None:
        if link is self._switch:
            old, self._current, self._switch = self._current, link, None
            self._encrypted = link.encrypted
            if old is not None:
                old.stop()
        self._outage = False
        if self._pump_call is not None and self._pump_call.active():
            self._pump_call.cancel()
        self._bucket.reset(self._reactor.seconds(), used=1)  # the hello
        self._pump()

    def connection_lost(self, link: Link, reason: Failure) -> None:
        """A L{ChatClientProtocol} of C{link} is gone."""
        conn, link.protocol, link.conn = link.conn, None, None
        if self._finished:
            return
        if link is self._switch:
            self._switch_failed(link, self._loss_reason(conn, reason))
            return
        if link is not self._current:
            return  # a link we retired
        if self._switch is not None:
            # The old connection ended while we switch: normally because the
            # server gave our session to the new one ("replaced").
            link.stop()
            self._current = None
            return
        if self._quitting:
            self._finish(0)
            return
        if not self.session.welcomed:
            link.stop()
            self._fail(f"cannot connect to {self._endpoint.current}: {self._loss_reason(conn, reason)}")
            return
        error = conn.fatal if conn is not None else None
        if error is None and reason.check(RemoteProtocolError):
            error = reason.value
        if error is not None and error.code in EXIT_ON:
            if conn is None or not conn.fatal_shown:
                self._print(display.text_lines(f"! {display.sanitize(error.code)}: ", error.text))
            self._finish(1)
            return
        if conn is not None and not conn.registered:
            # A reconnection attempt that failed: ClientService retries.
            _log.info("reconnection failed: {reason}", reason=self._loss_reason(conn, reason))
            return
        if not self._reconnect:
            self._print(["* connection lost"])
            self._finish(1)
            return
        if not self._outage:
            self._outage = True
            self._print(["* connection lost; reconnecting..."])

    def _loss_reason(self, conn: Optional[ConnectionState], reason: Failure) -> str:
        if conn is not None and conn.fatal is not None:
            return describe_error(conn.fatal)
        return describe_error(reason.value)

    def _start_switch(self, on: bool) -> None:
        if on == self._encrypted:
            self._print(["* already encrypted" if on else "* already in plaintext mode"])
            return
        self._endpoint.stay()
        self._print([f"* switching to {'encrypted' if on else 'plaintext'} mode..."])
        self._switch = self._new_link(on)
        self._start_link(self._switch, first=True)

    def _switch_failed(self, link: Link, reason: str) -> None:
        self._switch = None
        link.stop()
        self._print([f"! cannot switch to {link.mode} mode: {reason}"])
        if self._current is None:
            # The old connection is gone too: reconnect in the old mode.
            if self._quitting:
                self._finish(0)
                return
            self._current = self._new_link(self._encrypted)
            self._start_link(self._current)
            self._outage = True
            self._print(["* connection lost; reconnecting..."])
        self._pump()

    # -- sending -------------------------------------------------------------

    def _pump(self) -> None:
        if self._pumping:
            self._pump_again = True
            return
        self._pumping = True
        try:
            again = True
            while again:
                self._pump_again = False
                self._send_ready()
                self._throttle_input()
                again = self._pump_again
        finally:
            self._pumping = False

    def _send_ready(self) -> None:
        while self._outbox and not self._finished:
            link = self._current
            if (
                link is None
                or not link.registered
                or self._switch is not None
                or self._quitting
                or (self._pump_call is not None and self._pump_call.active())
            ):
                return
            action = self._outbox[0]
            if not isinstance(action, (Quit, SwitchEncryption)):
                wait = self._bucket.take(self._reactor.seconds())
                if wait > 0:
                    self._pump_call = self._reactor.callLater(wait, self._pump)
                    return
            self._outbox.popleft()
            self._perform(action, link)

    def _perform(self, action: Action, link: Link) -> None:
        assert link.protocol is not None  # checked by _send_ready
        message: Message
        if isinstance(action, Say):
            message = {"type": "say", "text": action.text}
        elif isinstance(action, Me):
            message = {"type": "say", "text": f"* {self.session.name} {action.text}"}
        elif isinstance(action, Private):
            message = {"type": "msg", "to": action.to, "text": action.text}
        elif isinstance(action, Nick):
            message = {"type": "nick", "name": action.name}
        elif isinstance(action, Who):
            message = {"type": "who"}
        elif isinstance(action, Quit):
            message = {"type": "quit"}
            if action.reason is not None:
                message["reason"] = action.reason
            self._quitting = True
            self._quit_call = self._reactor.callLater(self.QUIT_TIMEOUT, self._finish, 0)
        elif isinstance(action, SwitchEncryption):
            self._start_switch(action.on)
            return
        else:  # Help and Hint never reach the outbox
            return
        if not link.protocol.send(message):
            self._print([f"! too-long: not sent, a message must fit in {MAX_FRAME} bytes"])

    def _throttle_input(self) -> None:
        if self._input is None:
            return
        if not self._input_paused and len(self._outbox) >= self.QUEUE_HIGH:
            self._input_paused = True
            self._input.pauseProducing()
        elif self._input_paused and len(self._outbox) <= self.QUEUE_LOW:
            self._input_paused = False
            self._input.resumeProducing()

    # -- output and the end --------------------------------------------------

    def _print(self, lines: Sequence[str]) -> None:
        for line in lines:
            self._output.write(line + "\n")

    def _fail(self, text: str) -> None:
        self._errors(f"chat-client: {text}")
        self._finish(1)

    def _finish(self, code: int) -> None:
        if self._finished:
            return
        self._finished = True
        for call in (self._pump_call, self._quit_call):
            if call is not None and call.active():
                call.cancel()
        for link in (self._current, self._switch):
            if link is not None:
                link.stop()
        if self._input is not None and self._input_paused:
            self._input_paused = False
            self._input.resumeProducing()
        self.done.callback(code)


# ---------------------------------------------------------------------------
# stdio


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

    def __init__(self, client: Optional[ChatClient] = None) -> None:
        self.client = client
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


class TransportOutput:
    """C{write(text)} to a transport (stdout), UTF-8 encoded."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def write(self, text: str) -> None:
        self.transport.write(text.encode("utf-8", "replace"))


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

    from twisted.internet.stdio import StandardIO

    lines = LineInput()
    stdio = StandardIO(lines, reactor=reactor)
    client = ChatClient(
        reactor,
        endpoint,
        TransportOutput(stdio),
        name=args.name,
        psk=psk,
        encrypted=args.encrypted,
        reconnect=args.reconnect,
        errors=errors,
    )
    lines.attach(client)
    client.start()
    code = await client.done
    # Flush what is still queued for stdout before the reactor stops.
    if lines.output_open:
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
