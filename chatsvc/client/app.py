# -*- test-case-name: tests.test_client -*-
"""
The terminal client: C{chat-client [HOST] [PORT] [--connect ENDPOINT]...}.

Layers, from the bottom up (each testable on its own):

  - pure, no I/O: L{parse_args} (the command line), L{parse_command} (a typed
    line to an action), L{ClientSession} (name, resume token, last C{seq},
    history de-duplication; server messages in, lines to print out),
    L{TokenBucket} (keeps our sending under the server's rate limit);
  - L{RoundRobinEndpoint}: an C{IStreamClientEndpoint} over several servers;
  - L{ChatClientProtocol}: one connection (C{Int32StringReceiver} frames,
    ping/pong, keepalive), reporting to L{ChatClient};
  - L{ChatClient}: the controller, which keeps a connection up through
    C{ClientService}, reconnects and resumes, switches between plaintext and
    encrypted mode, and decides when to exit;
  - L{LineInput}: stdin lines (C{StandardIO} + C{LineReceiver});
  - L{main}: arguments, key, stdio, C{react}.

Driving a client without a terminal (what L{main} does, less stdio)::

    endpoint = RoundRobinEndpoint([("local", HostnameEndpoint(reactor, "127.0.0.1", 8000))])
    client = ChatClient(reactor, endpoint, output, name="alice")
    client.start()
    client.line_received("hello, world")     # a typed line
    exit_code = await client.done

User output goes to C{output.write(text)}; C{twisted.logger} is used only for
debugging (C{chat-client --debug} shows it on stderr).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections import deque
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Deque,
    List,
    NoReturn,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    DNSLookupError,
)
from twisted.internet.error import TimeoutError as ConnectTimeoutError
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IProtocolFactory,
    IPushProducer,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver, LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from . import display
from .wire.errors import ChatsvcError, RemoteProtocolError
from .wire.framing import MAX_FRAME
from .wire.messages import Message, decode, encode
from .wire.names import InvalidName, name_key, normalize

__all__ = [
    "main",
    "parse_args",
    "ClientArgs",
    "UsageError",
    "parse_command",
    "ClientSession",
    "ConnectionState",
    "Reaction",
    "TokenBucket",
    "RoundRobinEndpoint",
    "CannotConnect",
    "ChatClientProtocol",
    "ChatClientFactory",
    "ChatClient",
    "LineInput",
    "TransportOutput",
    "build_endpoint",
    "describe_error",
]

_log = Logger()

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

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

HELP = [
    "* commands:",
    "*   /msg NAME TEXT    send a private message to NAME",
    "*   /me TEXT          send an action, shown as 'NAME: * NAME TEXT'",
    "*   /nick NAME        change your name",
    "*   /who              list the users online",
    "*   /encrypt on|off   reconnect with or without encryption (on needs --psk)",
    "*   /quit [REASON]    leave (so does 'quit', or the end of input)",
    "*   /help             this list",
    "*   //TEXT            send a line that starts with '/'",
    "* any other line is sent to everyone",
]


# ---------------------------------------------------------------------------
# The command line


class UsageError(ValueError):
    """A bad command line; the message is one line, safe to print."""


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="chat-client",
        description="Terminal client for the chatsvc chat server. Type /help once connected.",
    )
    parser.add_argument("host", nargs="?", metavar="HOST",
                        help=f"server host name or address (default {DEFAULT_HOST})")
    parser.add_argument("port", nargs="?", metavar="PORT",
                        help=f"server port (default {DEFAULT_PORT})")
    parser.add_argument("--connect", action="append", default=[], metavar="ENDPOINT",
                        help="a Twisted client endpoint, e.g. tcp:host=127.0.0.1:port=8000;"
                             " repeatable: when a server goes away the client moves on to"
                             " the next one (instead of HOST PORT)")
    parser.add_argument("--name", "-n", metavar="NAME",
                        help="your user name (asked on stdin when not given)")
    parser.add_argument("--encrypted", "-e", action="store_true",
                        help="connect in encrypted mode (needs --psk)")
    parser.add_argument("--psk", metavar="FILE",
                        help="the pre-shared key file (for --encrypted and /encrypt on)")
    parser.add_argument("--no-reconnect", action="store_true",
                        help="exit (status 1) when the connection is lost")
    parser.add_argument("--debug", action="store_true",
                        help="write debugging logs to stderr")
    return parser


@dataclass(frozen=True)
class ClientArgs:
    """
    A parsed command line (see L{parse_args}).

    @ivar endpoints: (description, endpoint string) pairs; the string is
        C{None} for HOST:PORT, which L{build_endpoint} turns into a
        C{HostnameEndpoint} (IPv6 literals need no escaping that way).
    """

    endpoints: Tuple[Tuple[str, Optional[str]], ...]
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    name: Optional[str] = None
    psk: Optional[str] = None
    encrypted: bool = False
    reconnect: bool = True
    debug: bool = False


def parse_args(argv: Sequence[str]) -> ClientArgs:
    """
    Parse C{chat-client}'s arguments (without the program name).

    @raise UsageError: for a bad command line.
    @raise SystemExit: for C{--help}, after printing it.
    """
    ns = _parser().parse_args(list(argv))
    if ns.connect and ns.host is not None:
        raise UsageError("give either HOST [PORT] or --connect, not both")
    host = DEFAULT_HOST if ns.host is None else ns.host
    if not host:
        raise UsageError("HOST must not be empty")
    port = DEFAULT_PORT
    if ns.port is not None:
        port = int(ns.port, 10) if ns.port.isascii() and ns.port.isdigit() else 0
        if not 0 < port < 65536:
            raise UsageError(
                f"PORT must be a number from 1 to 65535, not {display.sanitize(ns.port)!r}"
            )
    endpoints: Tuple[Tuple[str, Optional[str]], ...]
    if ns.connect:
        endpoints = tuple((display.sanitize(spec), spec) for spec in ns.connect)
    else:
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        endpoints = ((display.sanitize(shown), None),)
    if ns.encrypted and not ns.psk:
        raise UsageError("--encrypted needs --psk FILE")
    name = ns.name
    if name is not None:
        try:
            name = normalize(name)
        except InvalidName as e:
            raise UsageError(f"invalid --name: {e}")
    return ClientArgs(
        endpoints=endpoints,
        host=host,
        port=port,
        name=name,
        psk=ns.psk,
        encrypted=ns.encrypted,
        reconnect=not ns.no_reconnect,
        debug=ns.debug,
    )


# ---------------------------------------------------------------------------
# Typed lines -> actions


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Me:
    """C{/me TEXT}: sent as C{say} with the text C{* NAME TEXT}."""

    text: str


@dataclass(frozen=True)
class Private:
    to: str
    text: str


@dataclass(frozen=True)
class Nick:
    name: str


@dataclass(frozen=True)
class Who:
    pass


@dataclass(frozen=True)
class Quit:
    reason: Optional[str] = None


@dataclass(frozen=True)
class SwitchEncryption:
    on: bool


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Hint:
    """A line to print locally (a usage hint); nothing is sent."""

    line: str


Action = Union[Say, Me, Private, Nick, Who, Quit, SwitchEncryption, Help, Hint]


def parse_command(line: str) -> Optional[Action]:
    """
    The action for one typed line (its line end already removed), or
    C{None} for a blank line, which is ignored.

    C{quit} alone, and every line starting with C{/}, is a command; C{//}
    escapes a leading slash; any other line is a C{say}, sent as typed.
    """
    if not line.strip():
        return None
    if line.strip() == "quit":
        return Quit()
    if line.startswith("//"):
        return Say(line[1:])
    if not line.startswith("/"):
        return Say(line)
    words = line[1:].split(None, 1)
    command = words[0].lower() if words else ""
    rest = words[1] if len(words) > 1 else ""
    if command == "quit":
        return Quit(rest.strip() or None)
    if command == "help":
        return Help()
    if command == "who":
        return Who()
    if command == "nick":
        args = rest.split()
        if len(args) != 1:
            return Hint("! usage: /nick NAME")
        return Nick(args[0])
    if command == "msg":
        args = rest.split(None, 1)
        if len(args) != 2 or not args[1].strip():
            return Hint("! usage: /msg NAME TEXT")
        return Private(args[0], args[1])
    if command == "me":
        if not rest.strip():
            return Hint("! usage: /me TEXT")
        return Me(rest)
    if command == "encrypt":
        mode = rest.strip().lower()
        if mode not in ("on", "off"):
            return Hint("! usage: /encrypt on|off")
        return SwitchEncryption(mode == "on")
    return Hint(f"! unknown command /{display.sanitize(command)}; type /help for the list")


# ---------------------------------------------------------------------------
# The session: what the client knows, without I/O


def _is_seq(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass
class Reaction:
    """What to do about one server message: lines to print, messages to send."""

    lines: List[str]
    send: List[Message]


class ConnectionState:
    """
    What one connection has been told so far (made by L{ClientSession.connect}).

    @ivar hello: the C{hello} to send first.
    @ivar since: the C{since} that C{hello} carries, or C{None}.
    @ivar encrypted: whether this connection is in encrypted mode.
    @ivar report_catch_up: whether to say how complete the history was
        (on every connection after the first welcome).
    @ivar registered: C{True} once C{welcome} arrived.
    @ivar fatal: the fatal C{error} the server sent, if any.
    @ivar fatal_shown: whether that error was printed already (it is only
        printed at once on a registered connection; before C{welcome}, the
        caller reports it as the reason the connection failed).
    """

    def __init__(
        self, hello: Message, since: Optional[int], encrypted: bool, report_catch_up: bool
    ) -> None:
        self.hello = hello
        self.since = since
        self.encrypted = encrypted
        self.report_catch_up = report_catch_up
        self.registered = False
        self.fatal: Optional[RemoteProtocolError] = None
        self.fatal_shown = False
        self._history: List[dict] = []
        self._users: List[Any] = []


class ClientSession:
    """
    The client's memory across connections: its current name, the resume
    token of the last C{welcome}, the C{seq} of the last message seen.

        conn = session.connect(encrypted=False)   # conn.hello is the hello to send
        reaction = session.receive(conn, message) # lines to print, messages to send

    C{last_seq} is the C{seq} of the latest C{message}/C{private} received,
    which within one server's lifetime is the highest seen. History items
    with C{seq <= last_seq} are not shown again, except after a server
    restart (PROTOCOL.md 4.5: a C{since} beyond the server's newest C{seq}
    gets the most recent messages and C{complete: false}; those are all at
    or below C{since}, and are new to us).
    """

    def __init__(self, name: Optional[str] = None) -> None:
        self.name = name
        self.resume: Optional[str] = None
        self.last_seq: Optional[int] = None
        self.welcomed = False

    def connect(self, encrypted: bool = False) -> ConnectionState:
        """Start a connection: its C{hello} carries C{name}, C{resume}, C{since}."""
        hello: Message = {"type": "hello"}
        if self.name is not None:
            hello["name"] = self.name
        if self.resume is not None:
            hello["resume"] = self.resume
        if self.last_seq is not None:
            hello["since"] = self.last_seq
        return ConnectionState(hello, self.last_seq, encrypted, self.welcomed)

    def receive(self, conn: ConnectionState, message: Message) -> Reaction:
        """Take in one server message (a decoded dict with a string C{type})."""
        kind = message["type"]
        if kind == "welcome":
            return Reaction(self._welcome(conn, message), [])
        if kind == "history":
            return Reaction(self._history(conn, message), [])
        if kind == "users":
            names = message.get("users")
            if isinstance(names, list):
                conn._users.extend(names)
            if message.get("more") is True:
                return Reaction([], [])
            names, conn._users = conn._users, []
            return Reaction(display.format_users(names), [])
        if kind in ("message", "private"):
            if _is_seq(message.get("seq")):
                self.last_seq = message["seq"]
            return Reaction(display.format_message(message, self.name), [])
        if kind == "renamed":
            old, new = message.get("old"), message.get("new")
            lines = display.format_message(message, self.name)
            if (
                conn.registered
                and isinstance(old, str)
                and isinstance(new, str)
                and self.name is not None
                and name_key(old) == name_key(self.name)
            ):
                self.name = new
            return Reaction(lines, [])
        if kind == "error":
            return self._error(conn, message)
        return Reaction(display.format_message(message, self.name), [])

    def _welcome(self, conn: ConnectionState, message: Message) -> List[str]:
        # The motd is shown on the first welcome only, not on every return.
        motd = None if self.welcomed else message.get("motd")
        conn.registered = True
        self.welcomed = True
        if isinstance(message.get("name"), str):
            self.name = message["name"]
        resume = message.get("resume")
        self.resume = resume if isinstance(resume, str) else None
        return display.format_welcome(self.name, conn.encrypted, motd)

    def _history(self, conn: ConnectionState, message: Message) -> List[str]:
        items = message.get("messages")
        if isinstance(items, list):
            conn._history.extend(m for m in items if isinstance(m, dict))
        if message.get("more") is True:
            return []
        history, conn._history = conn._history, []
        complete = message.get("complete") is True
        seqs = [m["seq"] for m in history if _is_seq(m.get("seq"))]
        restarted = (
            conn.since is not None
            and not complete
            and bool(seqs)
            and all(seq <= conn.since for seq in seqs)
        )
        lines: List[str] = []
        for item in history:
            seq = item.get("seq")
            if _is_seq(seq):
                if not restarted and self.last_seq is not None and seq <= self.last_seq:
                    continue  # seen already (on this or an earlier connection)
                if restarted or self.last_seq is None or seq > self.last_seq:
                    self.last_seq = seq
            lines.extend(display.format_message(item, self.name))
        if conn.report_catch_up:
            lines.extend(display.format_catch_up(complete))
        return lines

    def _error(self, conn: ConnectionState, message: Message) -> Reaction:
        code = message.get("code")
        lines = display.format_message(message, self.name)
        if message.get("fatal") is True:
            text = message.get("text")
            conn.fatal = RemoteProtocolError(
                code if isinstance(code, str) else "?",
                text if isinstance(text, str) else "",
            )
            conn.fatal_shown = conn.registered
            return Reaction(lines if conn.registered else [], [])
        if code == "bad-name" and not conn.registered:
            # Our name was refused (the server's rules may differ from ours):
            # register without one, as guest_N; /nick can fix it afterwards.
            self.name = None
            conn.hello = {k: v for k, v in conn.hello.items() if k != "name"}
            return Reaction(lines, [conn.hello])
        return Reaction(lines, [])


class TokenBucket:
    """
    Paces our frames so as to stay under the server's rate limit
    (PROTOCOL.md section 6: a burst of 20, refilled at 2 per second).
    """

    def __init__(self, capacity: float = 20, rate: float = 2.0, now: float = 0.0) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = float(capacity)
        self._at = now

    def reset(self, now: float, used: float = 0.0) -> None:
        """A new connection: a full bucket, less C{used} frames already sent."""
        self.tokens = self.capacity - used
        self._at = now

    def take(self, now: float) -> float:
        """Take a token and return 0, or return how long to wait for one."""
        self.tokens = min(self.capacity, self.tokens + (now - self._at) * self.rate)
        self._at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


# ---------------------------------------------------------------------------
# Endpoints


class CannotConnect(ChatsvcError):
    """
    No endpoint of a L{RoundRobinEndpoint} would connect.

    @ivar failures: (description, exception) for each endpoint tried.
    """

    def __init__(self, failures: Sequence[Tuple[str, BaseException]]) -> None:
        super().__init__(failures)
        self.failures = list(failures)

    def __str__(self) -> str:
        return "; ".join(f"{where}: {describe_error(e)}" for where, e in self.failures)


def describe_error(error: BaseException) -> str:
    """A short, sanitised, one-line reason for a failed or lost connection."""
    if isinstance(error, CannotConnect):
        return str(error)
    if isinstance(error, RemoteProtocolError):
        return display.sanitize(f"{error.code}: {error.text}")
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, DNSLookupError):
        return "host not found"
    if isinstance(error, ConnectTimeoutError):
        return "timed out"
    if isinstance(error, ConnectionDone):
        return "the server closed the connection"
    if isinstance(error, ConnectionLost):
        return "the connection was lost"
    return display.sanitize(str(error) or type(error).__name__)


@implementer(IStreamClientEndpoint)
class RoundRobinEndpoint:
    """
    Connect to the first of several endpoints that accepts, starting after
    the one used last: when a server goes away, the next connection goes to
    the next server. An attempt fails (L{CannotConnect}) only when every
    endpoint has failed once, so with C{ClientService} each retry is one
    round, and a first attempt that fails means no server is reachable.

    @ivar current: the description of the endpoint connected to last (or
        the first one, before any connection).
    """

    def __init__(self, endpoints: Sequence[Tuple[str, IStreamClientEndpoint]]) -> None:
        if not endpoints:
            raise ValueError("RoundRobinEndpoint needs at least one endpoint")
        self._endpoints = list(endpoints)
        self._current = 0
        self._next = 0

    @property
    def current(self) -> str:
        return self._endpoints[self._current][0]

    def stay(self) -> None:
        """Make the next connection go to the current endpoint again."""
        self._next = self._current

    def connect(self, protocolFactory: IProtocolFactory) -> "Deferred[Any]":
        return Deferred.fromCoroutine(self._connect(protocolFactory))

    async def _connect(self, factory: IProtocolFactory) -> Any:
        failures: List[Tuple[str, BaseException]] = []
        start = self._next
        for step in range(len(self._endpoints)):
            index = (start + step) % len(self._endpoints)
            description, endpoint = self._endpoints[index]
            try:
                protocol = await endpoint.connect(factory)
            except CancelledError:
                raise
            except Exception as e:  # endpoint plug-ins fail in many ways
                _log.debug("cannot connect to {where}: {error}", where=description, error=e)
                failures.append((description, e))
                continue
            self._current = index
            self._next = (index + 1) % len(self._endpoints)
            return protocol
        raise CannotConnect(failures)


def build_endpoint(reactor: Any, args: ClientArgs) -> RoundRobinEndpoint:
    """
    The endpoint for a parsed command line.

    @raise ValueError: for a C{--connect} string Twisted cannot parse.
    """
    from twisted.internet.endpoints import HostnameEndpoint, clientFromString

    endpoints = []
    for description, spec in args.endpoints:
        if spec is None:
            endpoint = HostnameEndpoint(reactor, args.host, args.port, timeout=10)
        else:
            try:
                endpoint = clientFromString(reactor, spec)
            except (ValueError, TypeError, KeyError) as e:
                raise ValueError(f"{description}: {display.sanitize(str(e))}") from None
        endpoints.append((description, endpoint))
    return RoundRobinEndpoint(endpoints)


# ---------------------------------------------------------------------------
# One connection


class ChatClientProtocol(Int32StringReceiver):
    """
    One connection to a server: frames in and out, ping/pong, keepalive.
    Everything else goes to the L{ChatClient}.

    After L{PING_AFTER} seconds without a frame from the server it sends a
    C{ping}; if L{GIVE_UP_AFTER} more seconds pass in silence, it aborts the
    connection (a half-open connection is otherwise never noticed).

    In encrypted mode, nothing but C{error} is accepted before the handshake
    has completed: a plaintext C{welcome} or C{message} there could only
    come from someone who does not hold the key.
    """

    MAX_LENGTH = MAX_FRAME
    PING_AFTER = 30.0
    GIVE_UP_AFTER = 30.0

    _ping_call: Any = None
    _give_up_call: Any = None

    def __init__(self, client: "ChatClient", link: "Link", clock: IReactorTime) -> None:
        self.client = client
        self.link = link
        self.clock = clock
        self._pings = 0

    def connectionMade(self) -> None:
        self._ping_call = self.clock.callLater(self.PING_AFTER, self._ping)
        self.client.connection_made(self.link, self)

    def send(self, message: Message) -> bool:
        """Send C{message}; C{False} (nothing sent) if it does not fit a frame."""
        body = encode(message)
        if len(body) > MAX_FRAME:
            return False
        self.sendString(body)
        return True

    def stringReceived(self, body: bytes) -> None:
        self._heard()
        try:
            message = decode(body)
        except RemoteProtocolError as e:
            _log.warn("ignoring a bad message from the server: {error}", error=e)
            return
        kind = message["type"]
        if (
            self.link.encrypted
            and not getattr(self.transport, "encrypted", False)
            and kind != "error"
        ):
            _log.warn("ignoring a {kind!r} sent before the handshake", kind=kind)
            return
        if kind == "ping":
            answer: Message = {"type": "pong"}
            if "token" in message:
                answer["token"] = message["token"]
            self.send(answer)
            return
        if kind == "pong":
            return  # any frame proves the connection alive
        self.client.message_received(self.link, message)

    def lengthLimitExceeded(self, length: int) -> None:
        _log.warn("the server sent a frame of {length} bytes; closing", length=length)
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        for call in (self._ping_call, self._give_up_call):
            if call is not None and call.active():
                call.cancel()
        self._ping_call = self._give_up_call = None
        self.client.connection_lost(self.link, reason)

    def _heard(self) -> None:
        if self._give_up_call is not None and self._give_up_call.active():
            self._give_up_call.cancel()
        self._give_up_call = None
        if self._ping_call is not None and self._ping_call.active():
            self._ping_call.reset(self.PING_AFTER)
        else:
            self._ping_call = self.clock.callLater(self.PING_AFTER, self._ping)

    def _ping(self) -> None:
        self._ping_call = None
        self._pings += 1
        self.send({"type": "ping", "token": self._pings})
        self._give_up_call = self.clock.callLater(self.GIVE_UP_AFTER, self._give_up)

    def _give_up(self) -> None:
        self._give_up_call = None
        _log.info("no answer from the server for {seconds} s; aborting",
                  seconds=self.PING_AFTER + self.GIVE_UP_AFTER)
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            self.transport.loseConnection()


class ChatClientFactory(Factory):
    """Builds the L{ChatClientProtocol}s of one L{Link}."""

    noisy = False

    def __init__(self, client: "ChatClient", link: "Link", clock: IReactorTime) -> None:
        self.client = client
        self.link = link
        self.clock = clock

    def buildProtocol(self, addr: Any) -> ChatClientProtocol:
        protocol = ChatClientProtocol(self.client, self.link, self.clock)
        protocol.factory = self
        return protocol


class Link:
    """
    A connection mode (plaintext or encrypted) and the C{ClientService}
    that keeps a connection up in that mode.
    """

    def __init__(self, encrypted: bool) -> None:
        self.encrypted = encrypted
        self.service: Optional[ClientService] = None
        self.protocol: Optional[ChatClientProtocol] = None
        self.conn: Optional[ConnectionState] = None

    @property
    def registered(self) -> bool:
        return self.protocol is not None and self.conn is not None and self.conn.registered

    @property
    def mode(self) -> str:
        return "encrypted" if self.encrypted else "plaintext"

    def stop(self) -> None:
        if self.service is not None and self.service.running:
            self.service.stopService().addErrback(
                lambda f: _log.failure("stopping a connection", f)
            )


def _default_encrypting_factory(
    factory: IProtocolFactory, psk: bytes, clock: IReactorTime
) -> IProtocolFactory:
    from .encryption import EncryptingFactory

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
        L{chatsvc.encryption.EncryptingFactory} with C{initiator=True}.

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
        from .keys import KeyFileError, load_key

        try:
            psk = load_key(args.psk)
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


if __name__ == "__main__":
    main()
