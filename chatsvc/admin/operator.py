# -*- test-case-name: tests.test_admin -*-
"""
L{LocalOperator}: L{IOperator} for one server process, over its factory
(the connections), its chat (names and rooms, through L{IChat} and
L{IChatAdmin}) and its L{IBanList}.

With C{--redis}, a L{RedisOperatorBus <chatsvc.admin.redisbus.RedisOperatorBus>}
carries bans, unbans and kicks to every server of the chat, which apply
them with L{LocalOperator.apply}.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from ..chat.interfaces import IChatAdmin
from ..metrics import transport_label
from ..server.interfaces import IConnectionState
from ..wire.framing import encode_frame
from ..wire.messages import Message, encode, text_error, timestamp
from ..wire.names import name_key
from ..wire.rooms import room_key
from .interfaces import IOperator, OperatorError

_log = Logger()

MAX_NOTICE = 4096
"""The longest notice or topic, in UTF-8 bytes."""


def _mode(connection: Any) -> str:
    if connection.name is None:
        return "pending"
    return "encrypted" if connection.encrypted else "plaintext"


def _muted(connection: Any) -> bool:
    state = IConnectionState(connection, None)
    return bool(state is not None and state.muted)


def _a_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > 256:
        raise OperatorError("give the name of a user")
    return name


def _checked_text(text: object, what: str, empty_ok: bool = False) -> str:
    if empty_ok and text == "":
        return ""
    problem = text_error(text, MAX_NOTICE)
    if problem is not None:
        raise OperatorError(f"{what}: {problem.text}")
    return text  # type: ignore[return-value]


def then(value: Any, action: Callable[[Any], Any]) -> Any:
    """
    C{action(value)}, or a Deferred of it if C{value} is a Deferred: the
    room controls of a chat that asks a store (Redis) answer later, those of
    the single-process chat at once.
    """
    if isinstance(value, Deferred):
        return value.addCallback(action)
    return action(value)


@implementer(IOperator)
class LocalOperator:
    """
    @param factory: the L{ChatFactory <chatsvc.server.factory.ChatFactory>}
        (its C{connections}).
    @param chat: the chat (L{IChat} C{find}, and L{IChatAdmin}).
    @param bans: an L{IBanList}, the one the factory checks.
    @param clock: an C{IReactorTime}, for timed mutes and timestamps.
    """

    bus: Any = None
    """A L{RedisOperatorBus <chatsvc.admin.redisbus.RedisOperatorBus>} (C{--redis}), or None."""

    def __init__(self, factory: Any, chat: Any, bans: Any, clock: Any) -> None:
        self._factory = factory
        self._chat = chat
        self._rooms = IChatAdmin(chat, None)  # None: a backend without room controls
        self._bans = bans
        self._clock = clock
        self._unmute_calls: Dict[Any, Any] = {}

    def _member(self, name: object) -> Any:
        member = self._chat.find(name) if isinstance(name, str) else None
        if member is None or member.closing:
            raise OperatorError(f"no user called {name!r} is connected here")
        return member

    def connections(self) -> List[Dict[str, Any]]:
        rows = []
        for connection in list(self._factory.connections):
            name = connection.name
            rows.append({
                "name": name,
                "address": connection.peer,
                "mode": _mode(connection),
                "transport": transport_label(connection.transport),
                "rooms": self._member_rooms(connection) if name is not None else [],
                "queued": connection.queue.queued,
                "muted": _muted(connection),
            })
        rows.sort(key=lambda row: (row["name"] is None, name_key(row["name"] or ""), row["address"]))
        return rows

    def kick(self, name: object, reason: object) -> str:
        text = _checked_text(reason or "kicked by an operator", "the reason")
        if self.bus is not None:
            self._kick_here(_a_name(name), text)
            self.bus.publish({"action": "kick", "name": name, "reason": text})
            return name
        member = self._member(name)
        found = member.name
        member.fatal("kicked", text)
        return found

    def _kick_here(self, name: str, text: str) -> bool:
        member = self._chat.find(name)
        if member is None or member.closing:
            return False
        member.fatal("kicked", text)
        return True

    def ban(self, network: object, seconds: object) -> Dict[str, Any]:
        normal = self._bans.ban(network, seconds)
        closed = self._close_banned(normal)
        if self.bus is not None:
            self.bus.publish({"action": "ban", "network": normal, "seconds": seconds})
        return {"network": normal, "closed": closed}

    def _close_banned(self, network: str) -> int:
        closed = 0
        for connection in list(self._factory.connections):
            if not connection.closing and self._bans.covers(network, connection.peer):
                connection.fatal("banned", "your address is banned from this server")
                closed += 1
        return closed

    def unban(self, network: object) -> None:
        if not self._bans.unban(network) and self.bus is None:
            raise OperatorError(f"{network} is not banned")
        if self.bus is not None:
            self.bus.publish({"action": "unban", "network": str(network)})

    def apply(self, event: Dict[str, Any]) -> None:
        """
        Apply a ban, unban or kick that an operator made through any server
        of a Redis chat (this one included) to this server's connections.
        """
        action = event.get("action")
        try:
            if action == "ban":
                normal = self._bans.ban(event.get("network"), event.get("seconds", 0))
                closed = self._close_banned(normal)
                if closed:
                    _log.info("operator: banned {network} (through Redis); {closed} "
                              "connections closed here", network=normal, closed=closed)
            elif action == "unban":
                if self._bans.unban(event.get("network")):
                    _log.info("operator: unbanned {network} (through Redis)",
                              network=event.get("network"))
            elif action == "mute" and isinstance(event.get("name"), str):
                seconds = event.get("seconds", 0)
                if (isinstance(seconds, (int, float)) and 0 <= seconds < 1e9
                        and self._mute_here(event["name"], seconds)):
                    _log.info("operator: muted {name} (through Redis)", name=event["name"])
            elif action == "unmute" and isinstance(event.get("name"), str):
                if self._unmute_here(event["name"]):
                    _log.info("operator: unmuted {name} (through Redis)", name=event["name"])
            elif action == "kick" and isinstance(event.get("name"), str):
                reason = event.get("reason")
                text = reason if text_error(reason, MAX_NOTICE) is None else "kicked by an operator"
                if self._kick_here(event["name"], text):
                    _log.info("operator: kicked {name} (through Redis)", name=event["name"])
        except OperatorError as e:
            _log.warn("operator: a {action} from another server is not valid here: {why}",
                      action=action, why=str(e))

    def bans(self) -> List[Dict[str, Any]]:
        return self._bans.entries()

    def mute(self, name: object, seconds: object) -> str:
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds < 1e9:
            raise OperatorError("the time of a mute is seconds, 0 or more (0: while connected)")
        if self.bus is not None:
            self._mute_here(_a_name(name), seconds)
            self.bus.publish({"action": "mute", "name": name, "seconds": seconds})
            return name  # type: ignore[return-value]
        member = self._member(name)
        self._set_mute(member, seconds)
        return member.name

    def _set_mute(self, member: Any, seconds: float) -> None:
        self._cancel_unmute(member)
        member.muted = True
        if seconds:
            self._unmute_calls[member] = self._clock.callLater(seconds, self._expire, member)

    def _mute_here(self, name: str, seconds: float) -> bool:
        member = self._chat.find(name)
        if member is None or member.closing:
            return False
        self._set_mute(member, seconds)
        return True

    def _expire(self, member: Any) -> None:
        self._unmute_calls.pop(member, None)
        member.muted = False

    def _cancel_unmute(self, member: Any) -> None:
        call = self._unmute_calls.pop(member, None)
        if call is not None and call.active():
            call.cancel()

    def unmute(self, name: object) -> str:
        if self.bus is not None:
            self._unmute_here(_a_name(name))
            self.bus.publish({"action": "unmute", "name": name})
            return name  # type: ignore[return-value]
        member = self._member(name)
        if not member.muted:
            raise OperatorError(f"{member.name} is not muted")
        self._unmute_here(member.name)
        return member.name

    def _unmute_here(self, name: str) -> bool:
        member = self._chat.find(name)
        if member is None or not member.muted:
            return False
        self._cancel_unmute(member)
        member.muted = False
        return True

    def notice(self, text: object, room: Optional[str]) -> Any:
        message: Message = {"type": "notice", "text": _checked_text(text, "the notice"),
                            "ts": timestamp(self._clock.seconds())}
        if room is None:
            return self._send_notice(message, None)
        return then(self._room(room), lambda row: self._send_notice(message, row["room"]))

    def _send_notice(self, message: Message, room: Optional[str]) -> int:
        if room is not None:
            message["room"] = room
        chat = self._chat
        frame = encode_frame(encode(message))
        chat.flush()  # after everything already said, for everyone
        sent = 0
        for member in list(self._factory.registered_connections):
            if member.closing or member not in chat:
                continue
            if room is None or room in self._member_rooms(member):
                member.send_frame(frame)
                sent += 1
        return sent

    def _member_rooms(self, member: Any) -> List[str]:
        return self._rooms.member_rooms(member) if self._rooms is not None else []

    def _room_admin(self) -> Any:
        if self._rooms is None:
            raise OperatorError("this chat backend has no room controls (IChatAdmin) yet")
        return self._rooms

    def _room(self, room: object) -> Any:
        """The C{room_list} entry of C{room} (compared as 4.3 compares names), or a Deferred of it."""
        return then(self.rooms(), lambda rows: self._row(rows, room))

    def _row(self, rows: List[Dict[str, Any]], room: object) -> Dict[str, Any]:
        if isinstance(room, str):
            key = room_key(room)
            for row in rows:
                if room_key(row["room"]) == key:
                    return row
        raise OperatorError(f"no room called {str(room)[:64]!r} has members")

    def _room_action(self, room: object, action: Callable[..., Any], *args: Any) -> Any:
        """C{action(*args)} with the chat's C{KeyError} and C{ValueError} as L{OperatorError}s."""
        def refused(failure: Any) -> None:
            failure.trap(KeyError, ValueError)
            if failure.check(KeyError):
                raise OperatorError(f"no room called {room!r}")
            raise OperatorError(str(failure.value))

        try:
            result = action(*args)
        except KeyError:
            raise OperatorError(f"no room called {room!r}")
        except ValueError as e:
            raise OperatorError(str(e))
        if isinstance(result, Deferred):
            result.addErrback(refused)
        return result

    def set_topic(self, room: object, text: object) -> Any:
        checked = _checked_text(text, "the topic", empty_ok=True)
        rooms = self._room_admin()
        return then(self._room(room),
                    lambda row: self._room_action(room, rooms.operator_topic, room, checked))

    def rooms(self) -> Any:
        return self._room_action(None, self._room_admin().room_list)

    def clear_room(self, room: object) -> Any:
        rooms = self._room_admin()
        return self._room_action(room, rooms.clear_room, room)
