# -*- test-case-name: tests.test_room -*-
"""
The chat room: who is here, their names, the message order (C{seq}), the
history, and the fan-out. No I/O.

The room talks to its members through the narrow L{IChatMember} interface
(as C{twisted.words}' groups call C{IChatClient.receive}); it never touches a
transport. Public messages are encoded once and the same frame is handed to
every member, so the per-recipient cost is one method call::

    room = Room(clock, history_size=50, message_log=None)
    room.register(member, name="alice", resume=None, since=None)
    room.say(member, "hello")              # everyone gets the same frame
    room.leave(member, "quit", text="bye")

Everything a later, distributed room must replace (ordering, history,
names) sits behind the public methods of L{Room}.
"""

from __future__ import annotations

import itertools
import os
import secrets
from typing import Any, Callable, Dict, Iterable, List, Optional

from twisted.logger import Logger
from zope.interface import implementer

from ..server.turns import end_of_turn
from ..wire.errors import RemoteProtocolError
from ..wire.framing import MAX_FRAME, encode_frame
from ..wire.messages import Message, encode, timestamp
from ..wire.names import InvalidName, name_key, normalize, with_suffix
from .common import (
    HISTORY_HEAD,
    MAX_PUBLIC_BODY,
    MAX_WELCOME_USERS,
    MORE_TAIL,
    SILENT_REASONS,
    History,
    json_str,
    split_list_frames,
    too_big,
)
from .interfaces import IChat, IChatMember

_log = Logger()

class Room:
    """
    One chat: members, names, C{seq}, history, fan-out.

    @param clock: an L{IReactorTime} for timestamps.
    @param history_size: how many public messages to keep for C{history}.
    @param message_log: an optional L{chatsvc.server.msglog.MessageLog}; every
        message is appended to it before anyone is sent it.
    @param motd: an optional message of the day for C{welcome}.
    """

    def __init__(
        self,
        clock: Any,
        history_size: int = 50,
        message_log: Any = None,
        motd: Optional[str] = None,
    ) -> None:
        self._clock = clock
        self._log_file = message_log
        self.motd = motd
        self._members: Dict[str, Any] = {}  # name key -> member
        self._senders: Dict[Any, Callable[[bytes], None]] = {}  # member -> send_frame
        self._tokens: Dict[str, Any] = {}  # resume token -> member
        self._token_of: Dict[Any, str] = {}
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(3).hex() + "-"
        self._guests = itertools.count(1)
        self.seq = 0
        self.history = History(history_size)
        self._outbox: List[bytes] = []  # broadcast frames not yet handed out
        self._late: Dict[Any, int] = {}  # registered this turn -> outbox index
        self.outbox_size = 0  # their bytes: senders pause past a budget
        self._flush_scheduled = False
        self._end_of_turn = end_of_turn(clock)
        if message_log is not None:
            self.seq, restored, dropped = message_log.restore(history_size)
            for seq, body in restored:
                self.history.append(seq, body)
            self.history.dropped_upto = max(self.history.dropped_upto, dropped)

    # -- life -----------------------------------------------------------

    def start(self) -> None:
        """Nothing to connect to: the history was restored when made."""

    def stop(self) -> None:
        """Hand out what is queued; the service closes the message log."""
        self.flush()

    # -- queries --------------------------------------------------------

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, member: Any) -> bool:
        return member in self._senders

    def names(self) -> List[str]:
        return [m.name for m in self._members.values()]

    def members(self) -> Iterable[Any]:
        return list(self._members.values())

    def find(self, name: object) -> Optional[Any]:
        """The member called C{name} (same-name rules of 4.3), or C{None}."""
        if not isinstance(name, str):
            return None
        return self._members.get(name_key(name))

    # -- fan-out ----------------------------------------------------------

    def _broadcast(self, frame: bytes) -> None:
        """
        Queue C{frame} for everyone. Frames broadcast during one reactor turn
        go out together at its end: one write per member per turn, however
        many messages arrived (as C{_AggregateSmallWrites} does in tls.py).
        """
        self._outbox.append(frame)
        self.outbox_size += len(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._end_of_turn.schedule(self.flush)

    def flush(self) -> None:
        """
        Hand every queued broadcast to every member now. Called at the end of
        the turn, and before anything is sent to a member directly, so that
        each member gets everything in order.
        """
        if self._flush_scheduled:
            self._flush_scheduled = False
            self._end_of_turn.cancel(self.flush)
        outbox = self._outbox
        late = self._late
        if not outbox:
            late.clear()
            return
        blob = outbox[0] if len(outbox) == 1 else b"".join(outbox)
        if late:
            # Members that registered during this turn get only what came
            # after them (the rest is in their history, or is their own joined).
            parts = {member: b"".join(outbox[start:]) for member, start in late.items()}
            late.clear()
            outbox.clear()
            self.outbox_size = 0
            for member, send in list(self._senders.items()):
                data = parts.get(member, blob)
                if data:
                    send(data)
            return
        outbox.clear()
        self.outbox_size = 0
        for send in list(self._senders.values()):
            send(blob)

    # -- registration -------------------------------------------------

    def _free_name(self, wanted: Optional[str]) -> str:
        members = self._members
        if wanted is None:
            while True:
                name = f"guest_{next(self._guests)}"
                if name_key(name) not in members:
                    return name
        if name_key(wanted) not in members:
            return wanted
        for n in itertools.count(2):
            name = with_suffix(wanted, n)
            if name_key(name) not in members:
                return name
        raise AssertionError("unreachable")  # pragma: no cover

    def register(
        self,
        member: Any,
        name: object = None,
        resume: object = None,
        since: object = None,
        encrypted: bool = False,
    ) -> str:
        """
        Add C{member}, send it C{welcome} and C{history}, tell the others.

        @raise RemoteProtocolError: C{bad-name} (not fatal) for an invalid
            C{name}; the member stays unregistered.
        @return: the assigned name.
        """
        old = self._tokens.get(resume) if isinstance(resume, str) else None
        if old is not None and old is not member:
            name_ = old.name
            session_id = old.session_id
            self._remove(old)
            old.replaced()
            _log.info("{name} resumed session {id}", name=name_, id=session_id)
            silent = True
        else:
            if name is None:
                wanted = None
            else:
                try:
                    wanted = normalize(name)
                except InvalidName as e:
                    raise RemoteProtocolError("bad-name", str(e), fatal=False)
            name_ = self._free_name(wanted)
            session_id = self._id_prefix + str(next(self._ids))
            silent = False

        member.name = name_
        member.session_id = session_id
        self._members[name_key(name_)] = member
        self._senders[member] = member.send_frame
        # Broadcasts queued before this point are in its history, not in its
        # live stream: it joins the turn's batch from here on.
        self._late[member] = len(self._outbox)
        token = secrets.token_urlsafe(18)
        self._tokens[token] = member
        self._token_of[member] = token

        welcome: Message = {
            "type": "welcome",
            "name": name_,
            "id": session_id,
            "users": self._welcome_users(member),
            "encrypted": encrypted,
            "resume": token,
        }
        if self.motd:
            welcome["motd"] = self.motd
        member.send_frame(encode_frame(encode(welcome)))  # no flush: see _late
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            since = None
        bodies, complete = self.history.since(since, self.seq)
        flag = b"true" if complete else b"false"
        for body in split_list_frames(HISTORY_HEAD % flag, bodies, b"]}", MORE_TAIL):
            member.send_frame(encode_frame(body))
        if not silent:
            self._broadcast(encode_frame(encode({"type": "joined", "name": name_, "ts": self._now()})))
            self._late[member] = len(self._outbox)  # not its own joined
        return name_

    def _welcome_users(self, member: Any) -> List[str]:
        names = [member.name]
        size = 200 + len(member.name.encode()) * 2 + len(self.motd or "") * 6
        for other in self._members.values():
            if other is member:
                continue
            if len(names) >= MAX_WELCOME_USERS:
                break
            size += len(other.name.encode("utf-8")) + 3
            if size > MAX_FRAME:
                break
            names.append(other.name)
        return names

    def _remove(self, member: Any) -> None:
        del self._members[name_key(member.name)]
        del self._senders[member]
        self._late.pop(member, None)
        token = self._token_of.pop(member, None)
        if token is not None:
            del self._tokens[token]

    def leave(self, member: Any, reason: str, text: Optional[str] = None) -> None:
        """
        Remove C{member}; unless C{reason} is C{shutdown} or C{replaced},
        tell the others with C{left}, with C{text} if it fits a frame.
        Leaving twice is harmless.
        """
        if member not in self._senders:
            return
        self.flush()  # what was accepted while it was here still reaches it
        self._remove(member)
        if reason in SILENT_REASONS:
            return
        message: Message = {"type": "left", "name": member.name, "reason": reason, "ts": self._now()}
        if text is not None:
            message["text"] = text
        body = encode(message)
        if len(body) > MAX_FRAME:  # only with a huge --max-message
            del message["text"]
            body = encode(message)
        self._broadcast(encode_frame(body))

    # -- messages --------------------------------------------------------

    def _now(self) -> str:
        return timestamp(self._clock.seconds())


    def _append_log(self, body: bytes) -> None:
        if self._log_file is not None:
            try:
                self._log_file.append(body)
            except OSError as e:
                _log.error("message log write failed: {error}", error=e)
                raise RemoteProtocolError(
                    "unavailable", "the server cannot store messages right now; not delivered",
                    fatal=False,
                )

    def say(self, member: Any, text: str) -> int:
        """
        Broadcast a public message from C{member} (text already checked).

        @return: its C{seq}.
        @raise RemoteProtocolError: C{too-long} if the encoded message would
            not fit a frame (escapes can double a text's size, and the text
            limit is an option), C{unavailable} if the log failed.
        """
        seq = self.seq + 1
        body = encode(
            {"type": "message", "from": member.name, "text": text, "ts": self._now(), "seq": seq}
        )
        if len(body) > MAX_PUBLIC_BODY:
            raise too_big()
        self._append_log(body)
        self.seq = seq
        self.history.append(seq, body)
        self._broadcast(encode_frame(body))
        return seq

    def private(self, member: Any, to: object, text: str) -> int:
        """
        Send a private message to the member called C{to}, echoed to the sender.

        @raise RemoteProtocolError: C{no-such-user}, C{too-long} or C{unavailable}.
        """
        target = self.find(to)
        if target is None:
            raise RemoteProtocolError("no-such-user", "no user of that name is online", fatal=False)
        seq = self.seq + 1
        body = encode(
            {
                "type": "private",
                "from": member.name,
                "to": target.name,
                "text": text,
                "ts": self._now(),
                "seq": seq,
            }
        )
        if len(body) > MAX_FRAME:
            raise too_big()
        self._append_log(body)
        self.seq = seq
        self.flush()  # keep public and private messages in seq order
        frame = encode_frame(body)
        target.send_frame(frame)
        if target is not member:
            member.send_frame(frame)
        return seq

    def rename(self, member: Any, name: object) -> str:
        """
        Rename C{member}; everyone gets C{renamed}.

        @raise RemoteProtocolError: C{bad-name} or C{name-taken}.
        """
        try:
            new = normalize(name)
        except InvalidName as e:
            raise RemoteProtocolError("bad-name", str(e), fatal=False)
        old = member.name
        new_key = name_key(new)
        holder = self._members.get(new_key)
        if holder is not None and holder is not member:
            raise RemoteProtocolError("name-taken", f"the name {new} is in use", fatal=False)
        if new == old:
            return new
        del self._members[name_key(old)]
        self._members[new_key] = member
        member.name = new
        self._broadcast(encode_frame(encode(
            {"type": "renamed", "old": old, "new": new, "ts": self._now()})))
        return new

    def who_frames(self) -> List[bytes]:
        """The C{users} answer to C{who}, split over frames as needed."""
        items = [json_str(name) for name in self.names()]
        return [
            encode_frame(body)
            for body in split_list_frames(b'{"type":"users","users":[', items, b"]}", b'],"more":true}')
        ]
