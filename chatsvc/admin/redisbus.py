# -*- test-case-name: tests.test_admin_redis -*-
"""
L{RedisOperatorBus}: with C{--redis}, an operator's bans, unbans, kicks and mutes
reach every server of the chat, not only the one whose admin socket was
used.

Each action is appended to the chat's stream C{chatsvc:{CHAT}:admin}
(trimmed to the last 1,000), which every server reads with a blocking
C{XREAD} on a connection of its own and applies to its own connections
(L{LocalOperator.apply <chatsvc.admin.operator.LocalOperator.apply>}).
Bans are also kept in the hash C{chatsvc:{CHAT}:bans} (network -> the
time it ends, in ms since the epoch, 0 for never), which a server loads
whenever it (re)connects, so that a server started later, or one that
missed events while Redis was away, refuses the same addresses.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger

_log = Logger()

READ_BLOCK_MS = 5000
KEEP = 1000
"""Entries kept in the admin stream (an approximate trim)."""


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def parse_events(reply: Any) -> List[tuple]:
    """C{(entry id, event dict)} of an C{XREAD} reply on the admin stream."""
    events = []
    for _, entries in (reply or []):
        for entry_id, flat in entries:
            fields = {_text(flat[i]): flat[i + 1] for i in range(0, len(flat) - 1, 2)}
            try:
                event = json.loads(_text(fields.get("e", "")))
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append((_text(entry_id), event))
    return events


class RedisOperatorBus:
    """
    @param endpoint: the C{--redis} client endpoint.
    @param clock: the reactor.
    @param chat: the chat's name (C{--chat}).
    @param apply: called with each event read (a dict with C{action}), on
        every server, the one that sent it included.
    """

    def __init__(self, endpoint: Any, clock: Any, chat: str,
                 apply: Callable[[Dict[str, Any]], None]) -> None:
        from ..chat.redis.link import RedisLink

        self.stream = f"chatsvc:{{{chat}}}:admin"
        self.bans_key = f"chatsvc:{{{chat}}}:bans"
        self._clock = clock
        self._apply = apply
        self._last = "$"
        self._running = False
        self._reading = False
        self._commands = RedisLink(endpoint, clock, "admin", on_ready=self._commands_ready)
        self._reader = RedisLink(endpoint, clock, "admin events", reply_timeout=None,
                                 on_ready=self._reader_ready)

    @property
    def ready(self) -> bool:
        return self._commands.ready

    def start(self) -> None:
        self._running = True
        self._commands.start()
        self._reader.start()

    def stop(self) -> Deferred:
        self._running = False
        self._reader.stop()
        return self._commands.stop()

    # -- sending ------------------------------------------------------------

    def publish(self, event: Dict[str, Any]) -> Deferred:
        """Append C{event} for every server; for a ban, keep it in the hash too."""
        link = self._commands
        action = event.get("action")
        if action == "ban":
            seconds = event.get("seconds") or 0
            ends = int((self._clock.seconds() + seconds) * 1000) if seconds else 0
            d = link.command("HSET", self.bans_key, event["network"], ends)
        elif action == "unban":
            d = link.command("HDEL", self.bans_key, event["network"])
        else:
            d = link.when_ready()
        d.addCallback(lambda _: link.command("XADD", self.stream, "MAXLEN", "~", KEEP, "*",
                                             "e", json.dumps(event)))
        d.addErrback(self._failed, action)
        return d

    def _failed(self, failure: Any, action: Any) -> None:
        _log.error("operator: {action} could not be sent to the other servers: {why}",
                   action=action, why=failure.getErrorMessage())

    # -- receiving ----------------------------------------------------------
    #
    # A link calls on_ready before it is ready (commands fail then): each
    # one asks to be called back once the new connection is ready.

    def _commands_ready(self, link: Any) -> None:
        link.when_ready().addCallback(lambda _: self._load_bans()).addErrback(
            self._failed, "loading the bans")

    def _load_bans(self) -> Deferred:
        return self._commands.command("HGETALL", self.bans_key).addCallback(self._got_bans)

    def _got_bans(self, reply: Any) -> None:
        now_ms = self._clock.seconds() * 1000
        items = list(reply.items()) if isinstance(reply, dict) else \
            [(reply[i], reply[i + 1]) for i in range(0, len(reply or []) - 1, 2)]
        for network, ends in items:
            ends = int(_text(ends))
            if ends and ends <= now_ms:
                continue
            seconds = (ends - now_ms) / 1000 if ends else 0
            self._apply({"action": "ban", "network": _text(network), "seconds": seconds})

    def _reader_ready(self, link: Any) -> None:
        link.when_ready().addCallback(lambda _: self._start_reading()).addErrback(
            self._failed, "reading the other servers' actions")

    def _start_reading(self) -> Optional[Deferred]:
        if self._last != "$":
            self._read()
            return None
        # From now on: what came before is in the hash (bans) or over (kicks).
        d = self._reader.command("XREVRANGE", self.stream, "+", "-", "COUNT", 1)

        def start(reply: Any) -> None:
            self._last = _text(reply[0][0]) if reply else "0-0"
            self._read()

        return d.addCallback(start)

    def _read(self) -> None:
        if not self._running or self._reading or not self._reader.ready:
            return
        self._reading = True
        d = self._reader.command("XREAD", "BLOCK", READ_BLOCK_MS, "STREAMS", self.stream,
                                 self._last, blocking=True)
        d.addCallback(self._got)
        d.addErrback(lambda failure: None)  # lost: the next connection reads again

        def again(_: Any) -> None:
            self._reading = False
            if self._reader.ready:
                self._clock.callLater(0, self._read)

        d.addBoth(again)

    def _got(self, reply: Any) -> None:
        for entry_id, event in parse_events(reply):
            self._last = entry_id
            try:
                self._apply(event)
            except Exception:
                _log.failure("operator: applying {action} from another server failed",
                             action=event.get("action"))
