# -*- test-case-name: tests.test_client -*-
"""
The application, on Twisted: L{ChatClient}, the controller, which keeps a
connection up (L{chatsvc.client.links}), reconnects and resumes, switches
between plaintext and encrypted mode, sends through an
L{chatsvc.client.outbox.Outbox}, shows rows through an L{IView} (plain
lines, or the full screen) and decides when to exit. What the user does
(typed lines, the name prompt, room keys, the end of input) is its
L{chatsvc.client.userside.UserSide}. Standard input and output, C{run} and
C{main} are in L{chatsvc.client.stdio}.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProtocolFactory, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..wire.errors import RemoteProtocolError
from ..wire.framing import MAX_FRAME
from ..wire.messages import Message
from . import display
from .commands import Action, Quit, SwitchEncryption
from .endpoints import CannotConnect, RoundRobinEndpoint, describe_error
from .lines import Line
from .outbox import Outbox, TokenBucket
from .outgoing import to_message
from .links import LinkMaker
from .protocol import ChatClientProtocol, Link
from .session import ClientSession, ConnectionState
from .userside import UserSide
from .view import IView, LineView, Status, status_of

# The namespace the single chatsvc.client module logged under.
_log = Logger(namespace="chatsvc.client")

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


# ---------------------------------------------------------------------------
# The controller


class ChatClient(UserSide):
    """
    The client: turns typed lines into messages and server messages into
    printed lines, keeps a connection up and decides when to exit.

    @param reactor: an C{IReactorTime} (timers, reconnection backoff).
    @param endpoint: where to connect; L{RoundRobinEndpoint} (for its
        C{current} and C{stay}).
    @param output: an L{IView}, or anything with C{write(text)}, which
        then gets every row as a plain line (a L{LineView}).
    @param name: the user name, or C{None} to ask for one on the first
        input line (an empty answer lets the server choose C{guest_N}).
    @param psk: the pre-shared key, needed for encrypted mode.
    @param encrypted: start in encrypted mode.
    @param reconnect: C{False} to exit (1) when the connection is lost.
    @param errors: called with the one line that explains a failure to
        start (C{chat-client: cannot connect to ...}); defaults to C{output}.
    @param retry_policy: C{ClientService}'s retry policy.
    @param encrypting_factory: C{(factory, psk, clock) -> factory}, wraps a
        protocol factory for encrypted mode (see L{LinkMaker}).

    @ivar done: fires with the exit status (0 after C{quit} or the end of
        input, 1 after a failure, 2 never: that is for usage errors).
    """

    QUIT_TIMEOUT = 3.0
    """How long to wait for the server to close after C{quit}."""

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
        self._view: Any = output if IView.providedBy(output) else LineView(output)
        self._psk = psk
        self._encrypted = encrypted
        self._reconnect = reconnect
        self._errors = errors if errors is not None else (lambda line: self._print([line]))
        self._links = LinkMaker(reactor, endpoint, self, psk, encrypting_factory, retry_policy,
                                on_retry=self.update_status)
        self._outbox = Outbox(reactor, bucket or TokenBucket(now=reactor.seconds()),
                              self._ready, self._perform)
        self.session = ClientSession(name)
        self.done: Deferred[int] = Deferred()
        self._asking_name = name is None
        self._current: Optional[Link] = None
        self._switch: Optional[Link] = None
        self._quitting = False
        self._quit_call: Any = None
        self._outage = False
        self._finished = False
        self._status: Optional[Status] = None

    @property
    def view(self) -> Any:
        """The L{IView} the client shows its rows on."""
        return self._view

    @property
    def encrypted(self) -> bool:
        """Whether the client is (or will connect) in encrypted mode."""
        return self._encrypted

    # -- connections ---------------------------------------------------------

    def _begin(self) -> None:
        self._current = self._links.new(self._encrypted)
        self.update_status()
        self._links.start(self._current, self._first_attempt_lost)

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
        if link.conn.unauthenticated:
            # The handshake completed after all: an error sent before it was
            # someone else's, and must not end this connection later.
            link.conn.fatal, link.conn.unauthenticated = None, False
        reaction = self.session.receive(link.conn, message)
        self._view.show(reaction.lines)
        if reaction.confirmed:
            self._view.confirm(reaction.confirmed)
        for answer in reaction.send:
            if link.protocol is not None:
                link.protocol.send(answer)
        if message["type"] == "welcome" and link.conn.registered:
            self._registered(link)
        self.update_status()

    def unauthenticated_error(self, link: Link, code: str, text: str) -> None:
        """
        An error that came before the handshake completed (issue 12, finding
        7): anyone on the path could have sent it, so it is only ever the
        reason a connection attempt failed, marked unauthenticated.
        """
        if link.conn is not None and link.conn.fatal is None:
            link.conn.fatal = RemoteProtocolError(
                code, f"{text} [unauthenticated: sent before the handshake]"
            )
            link.conn.unauthenticated = True

    def _registered(self, link: Link) -> None:
        if link is self._switch:
            old, self._current, self._switch = self._current, link, None
            self._encrypted = link.encrypted
            if old is not None:
                old.stop()
        self._outage = False
        self._outbox.restart(used=1)  # the hello

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
                self._print(display.text_lines(f"! {display.sanitize(error.code)}: ", error.text),
                            "error")
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
        self.update_status()

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
        self._switch = self._links.new(on)
        self._links.start(self._switch, self._first_attempt_lost)

    def _switch_failed(self, link: Link, reason: str) -> None:
        self._switch = None
        link.stop()
        self._print([f"! cannot switch to {link.mode} mode: {reason}"], "error")
        if self._current is None:
            # The old connection is gone too: reconnect in the old mode.
            if self._quitting:
                self._finish(0)
                return
            self._current = self._links.new(self._encrypted)
            self._links.start(self._current)
            self._outage = True
            self._print(["* connection lost; reconnecting..."])
        self._outbox.pump()

    # -- sending -------------------------------------------------------------

    def _ready(self) -> bool:
        link = self._current
        return (link is not None and link.registered and self._switch is None
                and not self._quitting and not self._finished)

    def _perform(self, action: Action) -> None:
        link = self._current
        assert link is not None and link.protocol is not None  # checked by _ready
        if isinstance(action, SwitchEncryption):
            self._start_switch(action.on)
            return
        message = to_message(self.session, action)
        if isinstance(message, list):
            self._view.show(message)
            return
        if isinstance(action, Quit):
            self._quitting = True
            self._quit_call = self._reactor.callLater(self.QUIT_TIMEOUT, self._finish, 0)
        if not link.protocol.send(message):
            self._print([f"! too-long: not sent, a message must fit in {MAX_FRAME} bytes"], "error")

    # -- output and the end --------------------------------------------------

    def _print(self, texts: Sequence[str], kind: str = "info") -> None:
        self._view.show([Line(text, kind) for text in texts])

    def status(self) -> Status:
        """What a status line shows now."""
        link = self._current
        if self._finished:
            state = "offline"
        elif link is not None and link.registered:
            state = "connected"
        else:
            state = "reconnecting" if self.session.welcomed else "connecting"
        return status_of(self.session, state, self._encrypted, self._endpoint.current,
                         self._links.retry_at, self._outbox.waiting())

    def update_status(self) -> None:
        """Tell the view the status, if it changed."""
        status = self.status()
        if status != self._status:
            self._status = status
            self._view.update(status)

    def _fail(self, text: str) -> None:
        self._errors(f"chat-client: {text}")
        self._finish(1)

    def _finish(self, code: int) -> None:
        if self._finished:
            return
        self._finished = True
        if self._quit_call is not None and self._quit_call.active():
            self._quit_call.cancel()
        self._outbox.close()
        for link in (self._current, self._switch):
            if link is not None:
                link.stop()
        self.update_status()
        self.done.callback(code)


