# -*- test-case-name: tests.test_admin_endpoint -*-
"""
C{chat-admin}: an operator's command line for a server started with
C{--admin}::

    chat-admin --admin unix:/run/chatsvc/admin.sock list
    chat-admin kick bob "spamming"          # the endpoint from $CHATSVC_ADMIN
    chat-admin ban --for 1h 203.0.113.0/24
    chat-admin notice --room '#lobby' "restart at 18:00 UTC"

One request, one reply: L{request_of} builds the request from the options,
L{format_reply} prints the answer; L{main} does the I/O.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, Dict, List, NoReturn, Optional

from twisted.internet import defer, task
from twisted.internet.endpoints import clientFromString, connectProtocol
from twisted.internet.error import ConnectError
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python import usage

ENV = "CHATSVC_ADMIN"
TIMEOUT = 10.0

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """C{90}, C{90s}, C{15m}, C{2h}, C{7d} in seconds; C{0} means no end."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if found is None:
        raise usage.UsageError(f"a duration is a number with s, m, h or d, e.g. 30m; got {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


class _Timed(usage.Options):
    optParameters = [["for", "f", 0.0, "How long: 90s, 15m, 2h, 7d (0: no end).", parse_duration]]


class _Named(usage.Options):
    def parseArgs(self, name: str) -> None:
        self["name"] = name


class ListOptions(usage.Options):
    synopsis = "list"
    longdesc = "The open connections: name, address, mode, transport, rooms, queued bytes."


class KickOptions(usage.Options):
    synopsis = "kick NAME [REASON...]"

    def parseArgs(self, name: str, *reason: str) -> None:
        self["name"] = name
        self["reason"] = " ".join(reason) or None


class BanOptions(_Timed):
    synopsis = "ban [--for DURATION] ADDRESS|NETWORK"

    def parseArgs(self, network: str) -> None:
        self["network"] = network


class UnbanOptions(usage.Options):
    synopsis = "unban ADDRESS|NETWORK"

    def parseArgs(self, network: str) -> None:
        self["network"] = network


class MuteOptions(_Timed):
    synopsis = "mute [--for DURATION] NAME"

    def parseArgs(self, name: str) -> None:
        self["name"] = name


class NoticeOptions(usage.Options):
    synopsis = "notice [--room ROOM] TEXT..."
    optParameters = [["room", "r", None, "Only to this room's members."]]

    def parseArgs(self, *text: str) -> None:
        if not text:
            raise usage.UsageError("notice: give the text")
        self["text"] = " ".join(text)


class TopicOptions(usage.Options):
    synopsis = "topic ROOM [TEXT...]   (no text clears it)"

    def parseArgs(self, room: str, *text: str) -> None:
        self["room"] = room
        self["text"] = " ".join(text)


class RoomOptions(usage.Options):
    def parseArgs(self, room: str) -> None:
        self["room"] = room


class Options(usage.Options):
    synopsis = "[--admin ENDPOINT] COMMAND [ARGS]"
    longdesc = ("Control a chat server started with --admin. ENDPOINT is a client endpoint "
                f"(unix:/run/chatsvc/admin.sock, tcp:127.0.0.1:9001); default ${ENV}.")
    optParameters = [["admin", "a", None, "The server's admin endpoint."]]
    subCommands = [
        ["list", None, ListOptions, "List connections."],
        ["kick", None, KickOptions, "Disconnect a user (kicked); others see it leave."],
        ["ban", None, BanOptions, "Ban an address or network; its connections are closed."],
        ["unban", None, UnbanOptions, "Lift a ban."],
        ["bans", None, ListOptions, "List the bans."],
        ["mute", None, MuteOptions, "Mute a user: its messages are refused (muted)."],
        ["unmute", None, type("UnmuteOptions", (_Named,), {"synopsis": "unmute NAME"}), "Unmute."],
        ["notice", None, NoticeOptions, "Send a server notice to everyone or a room."],
        ["topic", None, TopicOptions, "Set or clear a room's topic."],
        ["rooms", None, ListOptions, "List rooms."],
        ["clear", None, type("ClearOptions", (RoomOptions,), {"synopsis": "clear ROOM"}),
         "Forget a room's history."],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("give a command: " + ", ".join(c[0] for c in self.subCommands))
        if self["admin"] is None:
            self["admin"] = os.environ.get(ENV)
        if not self["admin"]:
            raise usage.UsageError(f"give --admin ENDPOINT (or set ${ENV})")


def request_of(options: Options) -> Dict[str, Any]:
    """The JSON request for parsed L{Options}."""
    action = options.subCommand
    sub = options.subOptions
    request: Dict[str, Any] = {"action": action}
    for key in ("name", "reason", "network", "text", "room"):
        if key in sub and sub[key] is not None:
            request[key] = sub[key]
    if "for" in sub:
        request["seconds"] = sub["for"]
    return request


def _table(rows: List[List[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in rows)


def format_reply(action: str, reply: Dict[str, Any]) -> str:
    """What C{chat-admin} prints for C{reply}."""
    if not reply.get("ok"):
        return f"chat-admin: {reply.get('error', 'the server refused')}"
    if action == "list":
        rows = [["NAME", "ADDRESS", "MODE", "TRANSPORT", "ROOMS", "QUEUED", "MUTED"]]
        for c in reply["connections"]:
            rows.append([c["name"] or "-", c["address"], c["mode"], c["transport"],
                         ",".join(c["rooms"]) or "-", str(c["queued"]), "yes" if c["muted"] else ""])
        return _table(rows) + f"\n{len(rows) - 1} connections"
    if action == "bans":
        rows = [["NETWORK", "EXPIRES IN"]]
        for b in reply["bans"]:
            rows.append([b["network"], "never" if b["expires"] is None else f"{b['expires']:g} s"])
        return _table(rows) if len(rows) > 1 else "no bans"
    if action == "rooms":
        rows = [["ROOM", "USERS", "HISTORY", "TOPIC"]]
        for r in reply["rooms"]:
            rows.append([r["room"], str(r["count"]), str(r["history"]), r["topic"]])
        return _table(rows) if len(rows) > 1 else "no rooms"
    done = {k: v for k, v in reply.items() if k != "ok"}
    return f"{action}: done" + (" " + json.dumps(done, ensure_ascii=False) if done else "")


class _OneRequest(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 64 << 20

    def __init__(self, request: Dict[str, Any]) -> None:
        self._request = request
        self.reply: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.sendLine(json.dumps(self._request).encode("utf-8"))

    def lineReceived(self, line: bytes) -> None:
        if not self.reply.called:
            self.reply.callback(json.loads(line.decode("utf-8")))
        self.transport.loseConnection()

    def connectionLost(self, reason: Any) -> None:
        if not self.reply.called:
            self.reply.errback(ConnectError(string="the server closed without answering"))


@defer.inlineCallbacks
def _run(reactor: Any, options: Options):
    request = request_of(options)
    try:
        endpoint = clientFromString(reactor, options["admin"])
    except (ValueError, TypeError, KeyError) as e:
        _fail(f"bad endpoint {options['admin']!r}: {e}")
    proto = _OneRequest(request)
    try:
        yield connectProtocol(endpoint, proto).addTimeout(TIMEOUT, reactor)
        reply = yield proto.reply.addTimeout(TIMEOUT, reactor)
    except (ConnectError, defer.TimeoutError, OSError, ValueError) as e:
        _fail(f"cannot reach {options['admin']}: {e}")
    print(format_reply(request["action"], reply), file=sys.stdout if reply.get("ok") else sys.stderr)
    if not reply.get("ok"):
        raise SystemExit(1)


def _fail(problem: str) -> NoReturn:
    """Exit with status 2 (a usage error or no server), saying why on stderr."""
    print(f"chat-admin: {problem}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: Optional[List[str]] = None) -> None:
    """
    The C{chat-admin} console script. Exit status: 0 done, 1 the server
    refused (the reason is printed), 2 a usage error or no server to ask.
    """
    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as e:
        _fail(f"{e} (chat-admin --help lists the commands)")
    task.react(lambda reactor: _run(reactor, options))
