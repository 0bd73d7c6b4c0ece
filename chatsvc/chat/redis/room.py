# -*- test-case-name: tests.test_redisroom -*-
"""
L{RedisRoom}: one chat served by several chatsvc servers through Redis.

It has the public methods of L{chatsvc.room.Room} (C{register}, C{say},
C{private}, C{rename}, C{leave}, C{who_frames}, ...), and the protocol
drives it the same way; the requests that Redis must answer first return
Deferreds (the protocol reads nothing more from that client until they
fire)::

    room = RedisRoom(reactor, clientFromString(reactor, "tcp:127.0.0.1:6379"),
                     chat="lobby", history_size=50)
    room.start()                        # connects, reconnects with backoff
    factory = ChatFactory(room, config, reactor)
    ...
    yield room.stop()

How it works (the Lua and the keys are in L{chatsvc.chat.redis.scripts}):

  - Every change is one Lua script that updates the state and appends an
    event to the chat's event stream, numbered by one counter; public and
    private messages get their C{seq} from another counter in the same
    script. So the stream is the one global order.
  - Each server reads the stream (C{XREAD BLOCK}, on a connection of its
    own) and fans each event out to its own clients: a public message is
    framed once and the same frame goes to every local client.
  - A client's own requests only write; it sees its messages when the stream
    brings them, in their place in the global order, like everyone else.
  - C{hello}: the script claims the name and appends C{joined} (or
    C{resumed}); its reply carries the history as of that event. The client
    gets C{welcome} and the history when this server's reader reaches the
    event, and every later event from there on: no gap, no duplicate.
  - Each server renews a lease on its names (a heartbeat); a server whose
    lease runs out is reaped by the next heartbeat of any other: its names
    are released and everyone gets C{left}.
  - Redis unreachable: clients stay connected; requests get the non-fatal
    C{unavailable}; both connections reconnect with backoff; requests whose
    reply was lost are re-sent once the link is back and applied at most once
    (each carries a number the scripts remember), then the server makes
    Redis hold exactly its members again (C{reconcile}).
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from .link import NotReady, RedisLink, connection_errors
from .scripts import (
    EVENTS_KEPT,
    MAX_NAME_BYTES,
    MAX_SEQ_DIGITS,
    ChatKeys,
    Entry,
    check_chat_name,
    history_answer,
    history_items,
    message_head,
    name_candidates,
    names_from_hash,
    parse_xread,
    private_parts,
)
from ...room import MAX_WELCOME_USERS, SILENT_REASONS, split_list_frames
from ...wire.errors import RemoteProtocolError
from ...wire.framing import MAX_FRAME, encode_frame
from ...wire.messages import Message, encode, timestamp
from ...wire.names import InvalidName, name_key, normalize

_log = Logger()

_HISTORY_HEAD = b'{"type":"history","complete":%s,"messages":['
_MORE_TAIL = b'],"more":true}'
MAX_PUBLIC_BODY = MAX_FRAME - len(_HISTORY_HEAD % b"false") - len(_MORE_TAIL)

INFLIGHT_GRACE = 10.0
"""Seconds a request whose reply was lost waits for Redis to come back (to
be re-sent) before its client is told C{unavailable}."""

READ_BATCH = 1000
READ_BLOCK_MS = 2000
MAX_RESUME_TOKEN = 128
_BACKLOG_MAX = 100_000


def _unavailable(text: str = "the chat store is unreachable; not delivered, try again shortly") -> RemoteProtocolError:
    return RemoteProtocolError("unavailable", text, fatal=False)


def _too_big() -> RemoteProtocolError:
    return RemoteProtocolError(
        "too-long", "the message would not fit a frame; nothing delivered", fatal=False
    )


def _no_such_user() -> RemoteProtocolError:
    return RemoteProtocolError("no-such-user", "no user of that name is online", fatal=False)


@dataclass
class _Local:
    """What the room keeps about one of its own registered members."""

    session: str
    key: str
    token: str


@dataclass
class _Pending:
    """A C{hello} between its script and its place in the stream."""

    member: Any
    session: str
    token: str
    since: Optional[int]
    encrypted: bool
    done: Deferred = field(default_factory=Deferred)
    reply: Optional[list] = None
    waiter: Optional[Deferred] = None
    abandoned: bool = False


@dataclass
class _Release:
    """A name to let go of once Redis is reachable again."""

    key: str
    session: str
    token: str
    name: str
    body: bytes


@dataclass
class _Request:
    """A guarded request (C{say}, C{private}): re-sent if its reply is lost."""

    number: int
    script: str
    args: list
    result: Deferred = field(default_factory=Deferred)
    timer: Any = None


class RedisRoom:
    """
    One chat shared through Redis by every server started with the same
    Redis and chat name.

    @param clock: the reactor.
    @param endpoint: an C{IStreamClientEndpoint} for Redis.
    @param chat: the chat's name (L{check_chat_name}).
    @param history_size: public messages kept for C{history} (the same on
        every server of a chat).
    @param lease: seconds after which the names of a server that stopped
        renewing its lease (it died, or lost Redis) are released.
    """

    def __init__(
        self,
        clock: Any,
        endpoint: Any,
        chat: str = "chat",
        history_size: int = 50,
        motd: Optional[str] = None,
        lease: float = 10.0,
        server_id: Optional[str] = None,
    ) -> None:
        self._clock = clock
        self.keys = ChatKeys(check_chat_name(chat))
        self._keys = self.keys.all
        self.history_size = history_size
        self.motd = motd
        self.lease = lease
        self.server_id = server_id or os.urandom(4).hex()
        self._ids = itertools.count(1)
        # This server's members.
        self._senders: Dict[Any, Callable[[bytes], None]] = {}
        self._info: Dict[Any, _Local] = {}
        self._local: Dict[str, Any] = {}  # session id -> member
        self._pending: Dict[str, _Pending] = {}
        # The chat as the event stream has told it so far.
        self._names: Dict[str, str] = {}  # name key -> name, every server's
        self.seq = 0
        self._ev = 0
        self._epoch: Optional[bytes] = None
        self._synced = False
        self._check_sync = False
        self._gap = False  # the reader found an entry missing
        # Requests.
        self._numbers = itertools.count(1)
        self._inflight: Dict[int, _Request] = {}
        self._backlog: List[_Release] = []
        self._running = False
        self._reading: Optional[Deferred] = None
        self._watchdog: Any = None
        self._commands = RedisLink(endpoint, clock, "commands", on_ready=self._commands_ready,
                                   on_lost=self._commands_lost)
        self._events = RedisLink(endpoint, clock, "events", on_ready=self._events_ready)
        self._beat = LoopingCall(self._heartbeat)
        self._beat.clock = clock

    # -- life ------------------------------------------------------------------

    def start(self) -> None:
        """Connect (and keep reconnecting) to Redis; start reading the chat."""
        if self._running:
            return
        self._running = True
        self._commands.start()
        self._events.start()
        self._reading = Deferred.fromCoroutine(self._read_loop())
        self._reading.addErrback(lambda f: _log.failure("event reader stopped", f))
        self._beat.start(max(0.1, self.lease / 4), now=False)

    def stop(self) -> Deferred:
        """
        Stop: wait a little for requests in flight, then close both
        connections. Names still held are released when the lease runs out,
        unless their clients resume them on another server first.
        """
        if not self._running:
            return succeed(None)
        self._running = False
        if self._beat.running:
            self._beat.stop()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        waiting = [r.result for r in self._inflight.values() if self._commands.ready]
        if waiting:
            settled = DeferredList([_quiet(d) for d in waiting])
            timer = self._clock.callLater(2.0, settled.cancel)
            try:
                await settled
            except Exception:
                pass
            if timer.active():
                timer.cancel()
        self._cancel_watchdog()
        await DeferredList([self._commands.stop(), self._events.stop()])
        if self._reading is not None:
            await self._reading

    @property
    def available(self) -> bool:
        """Whether requests can go to Redis now."""
        return self._commands.ready

    # -- queries ---------------------------------------------------------------

    def __len__(self) -> int:
        """This server's members."""
        return len(self._senders)

    def __contains__(self, member: Any) -> bool:
        return member in self._senders

    def members(self) -> List[Any]:
        """This server's members."""
        return list(self._senders)

    def names(self) -> List[str]:
        """Everyone's names, on every server (as the event stream told)."""
        return list(self._names.values())

    def find(self, name: object) -> Optional[Any]:
        """This server's member called C{name}, or C{None}."""
        if not isinstance(name, str):
            return None
        key = name_key(name)
        for member, info in self._info.items():
            if info.key == key:
                return member
        return None

    def who_frames(self) -> List[bytes]:
        """The C{users} answer to C{who}: everyone on every server."""
        items = [_json_str(name) for name in self._names.values()]
        return [
            encode_frame(body)
            for body in split_list_frames(b'{"type":"users","users":[', items, b"]}",
                                          b'],"more":true}')
        ]

    def _now(self) -> str:
        return timestamp(self._clock.seconds())

    # -- registration ----------------------------------------------------------

    def register(
        self,
        member: Any,
        name: object = None,
        resume: object = None,
        since: object = None,
        encrypted: bool = False,
    ) -> Deferred:
        """
        Claim a name in Redis, then (in the stream's order) send C{member}
        C{welcome} and C{history}; everyone else gets C{joined}.

        @raise RemoteProtocolError: C{bad-name}, or C{unavailable}.
        @return: a Deferred that fires with the assigned name.
        """
        if name is None:
            wanted = None
        else:
            try:
                wanted = normalize(name)
            except InvalidName as e:
                raise RemoteProtocolError("bad-name", str(e), fatal=False)
        if not self._commands.ready:
            raise _unavailable("the chat store is unreachable; try again shortly")
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            since = None
        if not isinstance(resume, str) or len(resume) > MAX_RESUME_TOKEN:
            resume = ""
        session = f"{self.server_id}-{next(self._ids)}"
        pending = _Pending(member, session, secrets.token_urlsafe(18), since, encrypted)
        self._pending[session] = pending
        return Deferred.fromCoroutine(self._register(pending, wanted, resume))

    async def _register(self, p: _Pending, wanted: Optional[str], resume: str) -> str:
        since = None if p.since is None else min(p.since, 1 << 62)
        start, batch = 1, 8
        try:
            while True:
                args: list = [
                    self.server_id, p.session, p.token, resume,
                    "" if since is None else since, "" if since is None else since + 1,
                    self.history_size, EVENTS_KEPT, self._now(),
                    "1" if wanted is None else "0",
                ]
                if wanted is not None:
                    for candidate in name_candidates(wanted, start, batch):
                        args.extend(candidate)
                reply = await self._commands.call("register", self._keys, args)
                if reply[0] != b"more":
                    break
                start, batch, resume = start + batch, batch * 4, ""
        except BaseException as e:
            self._pending.pop(p.session, None)
            if p.waiter is not None:
                p.waiter.errback(Failure(e))
            if isinstance(e, connection_errors()):
                raise _unavailable("the chat store is unreachable; try again shortly")
            raise
        p.reply = reply
        if p.abandoned:
            self._release_pending(p)
            raise _unavailable("the chat store lost track of this hello; try again")
        if p.waiter is not None:
            p.waiter.callback(None)
        return await p.done

    def _reached(self, p: _Pending) -> Optional[Deferred]:
        """The reader reached C{p}'s event: complete it, once its reply is here."""
        if p.reply is not None:
            self._complete(p)
            return None
        p.waiter = Deferred()

        async def wait() -> None:
            try:
                await p.waiter
            except Exception:
                return  # the script's reply was lost; reconcile releases the name
            self._complete(p)

        return Deferred.fromCoroutine(wait())

    def _complete(self, p: _Pending) -> None:
        self._pending.pop(p.session, None)
        member = p.member
        kind, name, key = p.reply[0], p.reply[1].decode("utf-8"), p.reply[2].decode("utf-8")
        if getattr(member, "closing", False):
            # It went away while its hello was on the way: let the name go.
            self._release_pending(p)
            p.done.errback(_unavailable("closed"))
            return
        session = _session_of(p)
        member.name = name
        member.session_id = session
        self._senders[member] = member.send_frame
        self._info[member] = _Local(session, key, p.token)
        self._local[session] = member
        welcome: Message = {
            "type": "welcome",
            "name": name,
            "id": session,
            "users": self._welcome_users(name, key),
            "encrypted": p.encrypted,
            "resume": p.token,
        }
        if self.motd:
            welcome["motd"] = self.motd
        member.send(welcome)
        newest, dropped = int(p.reply[4]), int(p.reply[5])
        bodies, complete = history_answer(history_items(p.reply[6]), p.since, newest,
                                          dropped, self.history_size)
        flag = b"true" if complete else b"false"
        for body in split_list_frames(_HISTORY_HEAD % flag, bodies, b"]}", _MORE_TAIL):
            member.send_frame(encode_frame(body))
        if kind == b"r":
            _log.info("{name} resumed session {id}", name=name, id=session)
        p.done.callback(name)

    def _abandon_pending(self) -> None:
        """The reader skipped ahead: no pending hello can find its place now."""
        pending, self._pending = self._pending, {}
        for p in pending.values():
            p.abandoned = True
            if p.reply is not None:
                self._release_pending(p)
            if not p.done.called:
                p.done.errback(_unavailable("the chat store lost track of this hello; try again"))

    def _welcome_users(self, name: str, key: str) -> List[str]:
        names = [name]
        size = 200 + len(name.encode()) * 2 + len(self.motd or "") * 6
        for other_key, other in self._names.items():
            if other_key == key:
                continue
            if len(names) >= MAX_WELCOME_USERS:
                break
            size += len(other.encode("utf-8")) + 3
            if size > MAX_FRAME:
                break
            names.append(other)
        return names

    # -- leaving -----------------------------------------------------------------

    def _left_body(self, name: str, reason: str, text: Optional[str] = None) -> bytes:
        message: Message = {"type": "left", "name": name, "reason": reason, "ts": self._now()}
        if text is not None:
            message["text"] = text
        body = encode(message)
        if len(body) > MAX_FRAME and text is not None:
            del message["text"]
            body = encode(message)
        return body

    def leave(self, member: Any, reason: str, text: Optional[str] = None) -> None:
        """
        Remove C{member}. The others get C{left} (through the stream) unless
        C{reason} is C{replaced} (the name moved to the resuming session) or
        C{shutdown} (the name is kept until the lease runs out, so that the
        client can resume it on another server). Leaving twice is harmless.
        """
        info = self._drop_local(member)
        if info is None or reason in SILENT_REASONS:
            return
        self._release(_Release(info.key, info.session, info.token, member.name,
                               self._left_body(member.name, reason, text)))

    def _release_pending(self, p: _Pending) -> None:
        name = p.reply[1].decode("utf-8")
        self._release(_Release(p.reply[2].decode("utf-8"), _session_of(p), p.token, name,
                               self._left_body(name, "disconnected")))

    def _drop_local(self, member: Any) -> Optional[_Local]:
        info = self._info.pop(member, None)
        if info is not None:
            del self._senders[member]
            self._local.pop(info.session, None)
        return info

    def _release(self, release: _Release, early: bool = False) -> Deferred:
        """Let go of a name (with its C{left}); later if Redis is unreachable."""
        if not (self._commands.ready or early):
            self._keep_for_later(release)
            return succeed(None)

        def failed(failure: Failure) -> None:
            failure.trap(*connection_errors())
            self._keep_for_later(release)

        d = self._commands.call("leave", self._keys, [
            self.server_id, release.session, release.key, release.body, EVENTS_KEPT,
            release.token], early=early)
        d.addErrback(failed)
        d.addErrback(lambda f: _log.failure("releasing a name failed", f))
        return d

    def _keep_for_later(self, release: _Release) -> None:
        if len(self._backlog) < _BACKLOG_MAX:
            self._backlog.append(release)

    # -- messages ----------------------------------------------------------------

    def say(self, member: Any, text: str) -> Deferred:
        """
        Append a public message to the chat; every client on every server
        (the sender included) gets it from the stream.

        @raise RemoteProtocolError: C{too-long}, C{unavailable}.
        @return: a Deferred that fires with its C{seq} once Redis has it (0
            if it was a re-sent request that Redis had applied already).
        """
        head = message_head(member.name, text, self._now())
        if len(head) + MAX_SEQ_DIGITS + 1 > MAX_PUBLIC_BODY:
            raise _too_big()
        d = self._guarded("say", [self.server_id, 0, head, self.history_size, EVENTS_KEPT])
        return d.addCallback(lambda reply: int(reply[0]))

    def private(self, member: Any, to: object, text: str) -> Deferred:
        """
        Send a private message to whoever holds C{to}, on any server; the
        sender gets the echo from the stream.

        @raise RemoteProtocolError: C{no-such-user}, C{too-long}, C{unavailable}.
        """
        if not isinstance(to, str):
            raise _no_such_user()
        key = name_key(to)
        info = self._info.get(member)
        if key not in self._names or info is None:
            raise _no_such_user()
        part1, part2 = private_parts(member.name, text, self._now())
        if len(part1) + len(part2) + MAX_NAME_BYTES + 2 + MAX_SEQ_DIGITS + 1 > MAX_FRAME:
            raise _too_big()

        def sent(reply: list) -> int:
            if int(reply[0]) < 0:
                raise _no_such_user()
            return int(reply[0])

        d = self._guarded("private", [self.server_id, 0, info.session, key, part1, part2,
                                      EVENTS_KEPT])
        return d.addCallback(sent)

    def rename(self, member: Any, name: object) -> Any:
        """
        Rename C{member}; everyone gets C{renamed} from the stream.

        @raise RemoteProtocolError: C{bad-name}, C{name-taken}, C{unavailable}.
        @return: the new name, or a Deferred that fires with it.
        """
        try:
            new = normalize(name)
        except InvalidName as e:
            raise RemoteProtocolError("bad-name", str(e), fatal=False)
        info = self._info[member]
        new_key = name_key(new)
        if new_key != info.key and new_key in self._names:
            raise RemoteProtocolError("name-taken", f"the name {new} is in use", fatal=False)
        if new == member.name:
            return new
        if not self._commands.ready:
            raise _unavailable()

        def answered(reply: bytes) -> str:
            if reply == b"taken":
                raise RemoteProtocolError("name-taken", f"the name {new} is in use", fatal=False)
            if reply == b"gone":
                raise _unavailable("the chat store does not know you right now; try again")
            if reply == b"ok" and member in self._info:
                member.name = new
                self._info[member].key = new_key
            return new

        d = self._commands.call("rename", self._keys, [
            self.server_id, info.session, info.key, new_key, new, self._now(), EVENTS_KEPT,
            info.token])
        return d.addCallbacks(answered, self._as_unavailable)

    def _as_unavailable(self, failure: Failure) -> None:
        failure.trap(*connection_errors())
        raise _unavailable("the chat store did not answer; try again")

    # -- guarded requests --------------------------------------------------------

    def _guarded(self, script: str, args: list) -> Deferred:
        if not self._commands.ready:
            raise _unavailable()
        number = next(self._numbers)
        args[1] = number
        request = _Request(number, script, args)
        self._inflight[number] = request
        self._send(request)
        return request.result

    def _send(self, request: _Request, early: bool = False) -> Deferred:
        d = self._commands.call(request.script, self._keys, request.args, early=early)

        def done(reply: Any) -> None:
            self._settle(request)
            if not request.result.called:
                request.result.callback(reply)

        def failed(failure: Failure) -> Optional[Failure]:
            if failure.check(*connection_errors()):
                if request.timer is None and request.number in self._inflight:
                    request.timer = self._clock.callLater(INFLIGHT_GRACE, self._expire, request)
                return failure if early else None
            self._settle(request)
            _log.failure("Redis script {script} failed", failure, script=request.script)
            if not request.result.called:
                request.result.errback(_unavailable("the chat store refused this; not delivered"))
            return None

        return d.addCallbacks(done, failed)

    def _settle(self, request: _Request) -> None:
        self._inflight.pop(request.number, None)
        if request.timer is not None and request.timer.active():
            request.timer.cancel()

    def _expire(self, request: _Request) -> None:
        request.timer = None
        if self._inflight.pop(request.number, None) is not None and not request.result.called:
            request.result.errback(_unavailable(
                "the chat store did not confirm this message; it may or may not have been delivered"))

    def _commands_lost(self) -> None:
        for request in self._inflight.values():
            if request.timer is None:
                request.timer = self._clock.callLater(INFLIGHT_GRACE, self._expire, request)

    async def _commands_ready(self, link: RedisLink) -> None:
        """
        A new command connection: catch Redis up with this server, in order.
        First C{reconcile} (it also makes sure that a Redis that lost its
        data never hands out an id or a C{seq} twice), counting the names
        still to be released as held; then release them, with the reasons
        their clients gave; then re-send the requests whose replies were
        lost (the scripts skip those applied already).
        """
        await self._reconcile(early=True)
        backlog, self._backlog = self._backlog, []
        for release in backlog:
            await self._release(release, early=True)
        for number in sorted(self._inflight):
            request = self._inflight.get(number)
            if request is not None:
                await self._send(request, early=True)

    async def _reconcile(self, early: bool = False) -> None:
        args: list = [self.server_id, int(self.lease * 1000), self._now(), EVENTS_KEPT,
                      os.urandom(8).hex(), self._ev, self.seq]
        resuming = {_session_of(p) for p in self._pending.values() if p.reply is not None}
        for member, info in self._info.items():
            if info.session not in resuming:  # else resumed on this server, being replaced
                args.extend([info.key, info.session, info.token, member.name])
        for p in self._pending.values():
            if p.reply is not None:
                args.extend([p.reply[2], _session_of(p), p.token, p.reply[1]])
        for release in self._backlog:
            args.extend([release.key, release.session, release.token, release.name])
        reply = await self._commands.call("reconcile", self._keys, args, early=early)
        for session in reply[1]:
            member = self._local.get(session.decode("utf-8"))
            if member is None:
                continue
            self._drop_local(member)
            _log.warn("{name}: the name was taken while this server was cut off", name=member.name)
            fatal = getattr(member, "fatal", None)
            if fatal is not None:
                fatal("unavailable", "your name was given to someone else while this server "
                                     "was cut off from the chat; reconnect")

    def _heartbeat(self) -> None:
        if not self._commands.ready:
            return

        def beaten(reply: list) -> Any:
            if int(reply[1]):
                _log.info("released {n} names of servers that stopped", n=int(reply[1]))
            if not int(reply[0]):
                _log.warn("this server's lease had run out; restoring its names")
                return Deferred.fromCoroutine(self._reconcile())
            return None

        d = self._commands.call("beat", self._keys, [
            self.server_id, int(self.lease * 1000), self._now(), EVENTS_KEPT])
        d.addCallback(beaten)
        d.addErrback(lambda f: f.trap(*connection_errors()))
        d.addErrback(lambda f: _log.failure("heartbeat failed", f))

    # -- reading the stream --------------------------------------------------------

    def _events_ready(self, link: RedisLink) -> None:
        self._check_sync = True

    async def _read_loop(self) -> None:
        link = self._events
        errors = connection_errors()
        while self._running:
            try:
                await link.when_ready()
            except NotReady:
                return
            try:
                if not self._synced or self._check_sync:
                    await self._sync()
                reply = await self._xread(link)
            except errors:
                continue
            for entry in parse_xread(reply):
                if entry.n <= self._ev:
                    continue
                if entry.n != self._ev + 1:
                    _log.warn("the event stream moved on without this server "
                              "(at {at}, next {next}); resynchronising", at=self._ev, next=entry.n)
                    self._check_sync = self._gap = True
                    break
                self._ev = entry.n
                try:
                    waiting = self._apply(entry)
                    if waiting is not None:
                        await waiting
                except Exception:
                    _log.failure("applying event {n} failed", n=entry.n)

    def _xread(self, link: RedisLink) -> Deferred:
        d = link.command("XREAD", "COUNT", READ_BATCH, "BLOCK", READ_BLOCK_MS,
                         "STREAMS", self.keys.events, f"{self._ev}-0", blocking=True)
        # A Redis that stops answering (frozen, or a half-open TCP connection).
        self._watchdog = self._clock.callLater(READ_BLOCK_MS / 1000 + 10, link.abort)
        return d.addBoth(self._cancel_watchdog)

    def _cancel_watchdog(self, result: Any = None) -> Any:
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = None
        return result

    async def _sync(self) -> None:
        """
        On the first connection, take the chat's names and position. On a
        reconnection, go on from where the reader was, unless Redis lost
        its data or trimmed past this server: then take a new snapshot and
        give the local clients the public messages they missed.
        """
        link = self._events
        first = not self._synced
        reply = await link.call("sync", self._keys, [""])
        ev, seq, epoch = int(reply[0]), int(reply[1]), reply[2]
        self._check_sync = False
        if first:
            self._take_snapshot(reply)
            self._synced = True
            return
        if epoch is None:
            # Redis came back empty and no server has restored it yet
            # (reconcile): wait for that rather than take an empty snapshot.
            self._check_sync = True
            await deferLater(self._clock, 0.1, lambda: None)
            raise NotReady("waiting for the chat store to be restored")
        same = epoch == self._epoch or self._epoch is None
        if same and ev >= self._ev and not self._gap:
            if self._epoch is None:
                self._epoch = epoch
            return
        reply = await link.call("sync", self._keys, [self.seq + 1])
        items = history_items(reply[4])
        missed = [body for s, body in items if s > self.seq]
        _log.warn("resynchronised with the chat store: {n} public messages replayed",
                  n=len(missed))
        for body in missed:
            frame = encode_frame(body)
            for send in self._senders.values():
                send(frame)
        self._take_snapshot(reply)
        self._abandon_pending()

    def _take_snapshot(self, reply: list) -> None:
        self._ev, self._epoch = int(reply[0]), reply[2]
        self.seq = max(self.seq, int(reply[1]))
        self._names = names_from_hash(reply[3])
        self._gap = False

    def _fan_out(self, body: bytes) -> None:
        frame = encode_frame(body)
        for send in self._senders.values():
            send(frame)

    def _apply(self, entry: Entry) -> Optional[Deferred]:
        kind = entry.kind
        if kind == "message":
            self.seq = entry.seq
            frame = encode_frame(entry.body)
            for send in self._senders.values():
                send(frame)
            return None
        if kind == "private":
            self.seq = entry.seq
            me = self.server_id
            target = self._local.get(entry.get(b"i")) if entry.get(b"v") == me else None
            sender = self._local.get(entry.get(b"fi")) if entry.get(b"fv") == me else None
            if target is not None or sender is not None:
                frame = encode_frame(entry.body)
                if target is not None:
                    target.send_frame(frame)
                if sender is not None and sender is not target:
                    sender.send_frame(frame)
            return None
        if kind == "joined":
            self._names[entry.get(b"key")] = entry.get(b"name")
            self._fan_out(entry.body)
            return self._mine(entry)
        if kind == "left":
            self._names.pop(entry.get(b"key"), None)
            self._fan_out(entry.body)
            return None
        if kind == "renamed":
            self._names.pop(entry.get(b"ok"), None)
            key, name = entry.get(b"key"), entry.get(b"name")
            self._names[key] = name
            if entry.get(b"v") == self.server_id:
                member = self._local.get(entry.get(b"i"))
                if member is not None:
                    member.name = name
                    self._info[member].key = key
            self._fan_out(entry.body)
            return None
        if kind == "resumed":
            self._names[entry.get(b"key")] = entry.get(b"name")
            if entry.get(b"ov") == self.server_id:
                old = self._local.get(entry.get(b"oi"))
                if old is not None:
                    self._drop_local(old)
                    old.replaced()
            return self._mine(entry)
        _log.warn("unknown event kind in the stream (event {n})", n=entry.n)
        return None

    def _mine(self, entry: Entry) -> Optional[Deferred]:
        if entry.get(b"v") != self.server_id:
            return None
        p = self._pending.get(entry.get(b"pi") or entry.get(b"i"))
        return None if p is None else self._reached(p)


def _session_of(p: _Pending) -> str:
    """The session id a hello got: its own, or the one it resumed."""
    return p.reply[7].decode("utf-8")


def _quiet(d: Deferred) -> Deferred:
    result: Deferred = Deferred()

    def settle(_: Any) -> None:
        if not result.called:
            result.callback(None)

    d.addBoth(lambda r: (settle(r), r)[1])
    return result


def _json_str(value: str) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")
