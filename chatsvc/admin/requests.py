# -*- test-case-name: tests.test_admin -*-
"""
L{AdminRequests}: the admin wire's pure part. One request is one JSON object
on one line; the answer is one JSON object on one line::

    {"action": "kick", "name": "bob", "reason": "spam"}
    {"ok": true, "name": "bob"}

    {"action": "ban", "network": "203.0.113.0/24", "seconds": 3600}
    {"ok": true, "network": "203.0.113.0/24", "closed": 2}

    {"action": "nope"}
    {"ok": false, "error": "unknown action 'nope'; one of: ban, bans, ..."}

Every action is logged (what and on whom, never a notice's or a reason's
text) and counted by the metrics. An action the chat answers later (the
room controls of a Redis chat) makes L{AdminRequests.handle} return a
Deferred of the reply instead of the reply.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..metrics import NO_METRICS
from .interfaces import IOperator, OperatorError
from .operator import then

_log = Logger()

Reply = Dict[str, Any]


def _seconds(request: Dict[str, Any]) -> Any:
    return request.get("seconds", 0)


class AdminRequests:
    """
    @param operator: an L{IOperator}.
    @param metrics: an L{IServerMetrics <chatsvc.metrics.IServerMetrics>}.
    """

    def __init__(self, operator: Any, metrics: Any = NO_METRICS) -> None:
        self._operator = IOperator(operator)
        self._metrics = metrics
        self._actions: Dict[str, Callable[[Dict[str, Any]], Reply]] = {
            "list": self._list, "kick": self._kick, "ban": self._ban, "unban": self._unban,
            "bans": self._bans, "mute": self._mute, "unmute": self._unmute,
            "notice": self._notice, "topic": self._topic, "rooms": self._rooms,
            "clear": self._clear,
        }

    def handle_line(self, line: bytes) -> Any:
        """The reply line (without its newline) to one request line, or a Deferred of it."""
        return then(self.handle(line),
                    lambda reply: json.dumps(reply, ensure_ascii=False).encode("utf-8"))

    def handle(self, line: bytes) -> Any:
        """The reply to one request line, as a dict (or a Deferred of it)."""
        try:
            request = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return {"ok": False, "error": "a request is one JSON object on one line"}
        if not isinstance(request, dict) or not isinstance(request.get("action"), str):
            return {"ok": False, "error": 'a request is a JSON object with an "action"'}
        action = request["action"]
        handler = self._actions.get(action)
        if handler is None:
            return {"ok": False, "error": f"unknown action {action[:32]!r}; one of: "
                    + ", ".join(sorted(self._actions))}
        try:
            reply = handler(request)
        except Exception:
            return self._failed(action, Failure())
        if isinstance(reply, Deferred):
            return reply.addCallbacks(lambda done: self._done(action, done),
                                      lambda failure: self._failed(action, failure))
        return self._done(action, reply)

    def _done(self, action: str, reply: Reply) -> Reply:
        self._metrics.operator_action(action)
        reply["ok"] = True
        return reply

    def _failed(self, action: str, failure: Failure) -> Reply:
        if failure.check(OperatorError):
            why = str(failure.value)
            _log.info("operator: {action} refused: {why}", action=action, why=why)
            return {"ok": False, "error": why}
        # A bug, not the operator's mistake: say so, keep the endpoint up.
        _log.failure("operator: {action} failed", failure, action=action)
        return {"ok": False, "error": f"{action} failed inside the server (see its log)"}

    # -- actions ------------------------------------------------------------

    def _list(self, request: Dict[str, Any]) -> Reply:
        connections = self._operator.connections()
        _log.info("operator: listed {n} connections", n=len(connections))
        return {"connections": connections}

    def _kick(self, request: Dict[str, Any]) -> Reply:
        name = self._operator.kick(request.get("name"), request.get("reason"))
        _log.info("operator: kicked {name}", name=name)
        return {"name": name}

    def _ban(self, request: Dict[str, Any]) -> Reply:
        result = self._operator.ban(request.get("network"), _seconds(request))
        _log.info("operator: banned {network} for {seconds} s (0: until unbanned); "
                  "{closed} connections closed", seconds=_seconds(request), **result)
        return result

    def _unban(self, request: Dict[str, Any]) -> Reply:
        self._operator.unban(request.get("network"))
        _log.info("operator: unbanned {network}", network=request.get("network"))
        return {}

    def _bans(self, request: Dict[str, Any]) -> Reply:
        bans = self._operator.bans()
        _log.info("operator: listed {n} bans", n=len(bans))
        return {"bans": bans}

    def _mute(self, request: Dict[str, Any]) -> Reply:
        name = self._operator.mute(request.get("name"), _seconds(request))
        _log.info("operator: muted {name} for {seconds} s (0: while connected)", name=name,
                  seconds=_seconds(request))
        return {"name": name}

    def _unmute(self, request: Dict[str, Any]) -> Reply:
        name = self._operator.unmute(request.get("name"))
        _log.info("operator: unmuted {name}", name=name)
        return {"name": name}

    def _notice(self, request: Dict[str, Any]) -> Reply:
        room = request.get("room")
        if room is not None and not isinstance(room, str):
            raise OperatorError("a room is a string such as #lobby")

        def sent(count: int) -> Reply:
            _log.info("operator: notice to {to} ({sent} users)", to=room or "everyone",
                      sent=count)
            return {"sent": count}

        return then(self._operator.notice(request.get("text"), room), sent)

    def _topic(self, request: Dict[str, Any]) -> Any:
        room = request.get("room")

        def done(_: Any) -> Reply:
            _log.info("operator: set the topic of {room}", room=room)
            return {}

        return then(self._operator.set_topic(room, request.get("text", "")), done)

    def _rooms(self, request: Dict[str, Any]) -> Any:
        def listed(rooms: list) -> Reply:
            _log.info("operator: listed {n} rooms", n=len(rooms))
            return {"rooms": rooms}

        return then(self._operator.rooms(), listed)

    def _clear(self, request: Dict[str, Any]) -> Any:
        room = request.get("room")

        def cleared(forgotten: int) -> Reply:
            _log.info("operator: cleared the history of {room} ({n} messages)", room=room,
                      n=forgotten)
            return {"forgotten": forgotten}

        return then(self._operator.clear_room(room), cleared)
