# -*- test-case-name: tests.test_e2e_rooms -*-
"""
Rooms end to end: a real C{twistd chat} process and raw wire clients over
TCP (L{tests.hardening_procs.RawClient}): two clients in two rooms and one
in both, plaintext and encrypted beside each other; then a restart with
C{--log-messages} after which a returning client catches up in each room
with the right C{complete}, and the epoch tells a kept history from a
reset one.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Dict, List

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from .hardening_procs import PSK, connect, shows_server_log, start_server
from .procs import DEMO_KEY


@defer.inlineCallbacks
def joined(test: Any, port: int, name: str, rooms: List[str], psk: Any = None,
           **members: Any):
    """A raw client registered in C{rooms}; fires once every room's history is in."""
    client = yield connect(test, port, psk, label=name)
    client.send({"type": "hello", "name": name, "rooms": rooms, **members})
    welcome = yield client.wait_for(lambda m: m["type"] in ("welcome", "error"), what="welcome")
    if welcome["type"] == "error":
        raise AssertionError(f"{name}: hello refused: {welcome}")
    for room in rooms:
        yield client.wait_for(lambda m, r=room: m["type"] == "history" and m["room"] == r
                              and not m.get("more"), what=f"history of {room}")
    return client


def in_room(client: Any, room: str) -> List[str]:
    return [m["text"] for m in client.messages if m["type"] == "message" and m["room"] == room]


def histories(client: Any) -> Dict[str, Dict[str, Any]]:
    return {m["room"]: m for m in client.messages if m["type"] == "history"}


class RoomsOverTCPTests(TestCase):
    timeout = 120

    @shows_server_log
    def test_two_rooms_and_one_client_in_both(self):
        server = yield start_server(self, "--psk", DEMO_KEY, "--allow-plaintext")
        one = yield joined(self, server.port, "one", ["#one"])
        two = yield joined(self, server.port, "two", ["#two"])
        both = yield joined(self, server.port, "both", ["#one", "#two"], psk=PSK)
        one.send({"type": "say", "room": "#one", "text": "for one"})
        two.send({"type": "say", "room": "#two", "text": "for two"})
        both.send({"type": "say", "room": "#two", "text": "waves", "action": True})
        for client, texts in ((both, ("for one", "for two", "waves")),
                              (two, ("for two", "waves")), (one, ("for one",))):
            for text in texts:
                yield client.wait_for(lambda m, t=text: m.get("text") == t, what=text)
        self.assertEqual(in_room(one, "#one"), ["for one"])
        self.assertEqual(in_room(one, "#two"), [], "not a member of #two")
        self.assertEqual(sorted(in_room(two, "#two")), ["for two", "waves"])
        self.assertEqual([m["seq"] for m in two.messages if m["type"] == "message"], [1, 2])
        self.assertEqual(sorted(in_room(both, "#one") + in_room(both, "#two")),
                         ["for one", "for two", "waves"])
        action = [m for m in two.messages if m.get("text") == "waves"][0]
        self.assertIs(action["action"], True)
        joined_both = [m for m in one.messages if m["type"] == "joined" and m["name"] == "both"]
        self.assertEqual([m.get("plaintext") for m in joined_both], [None], "encrypted: no mark")
        one.send({"type": "who", "room": "#one"})
        users = yield one.wait_for(lambda m: m["type"] == "users", what="who #one")
        self.assertEqual((sorted(users["users"]), users["plaintext"]), (["both", "one"], ["one"]))

    @shows_server_log
    def test_restart_with_the_log_catches_up_per_room(self):
        log = os.path.join(tempfile.mkdtemp(), "messages.jsonl")
        server = yield start_server(self, "--log-messages", log, "--history", "3")
        alice = yield joined(self, server.port, "alice", ["#a", "#b"])
        away = yield joined(self, server.port, "away", ["#a", "#b"])
        welcome = away.of_type("welcome")[0]
        for text in ("a1", "a2"):
            alice.send({"type": "say", "room": "#a", "text": text})
        alice.send({"type": "say", "room": "#b", "text": "b1"})
        yield away.wait_for(lambda m: m.get("text") == "b1", what="b1")
        seen = {room: max(m["seq"] for m in away.messages
                          if m["type"] == "message" and m["room"] == room) for room in ("#a", "#b")}
        away.abort()
        alice.send({"type": "say", "room": "#a", "text": "a3"})
        for text in ("b2", "b3", "b4", "b5"):
            alice.send({"type": "say", "room": "#b", "text": text})
        yield alice.wait_for(lambda m: m.get("text") == "b5", what="b5")

        server.signal("TERM")
        self.assertEqual((yield server.wait_exit()), 0)
        server = yield start_server(self, "--log-messages", log, "--history", "3")
        back = yield joined(self, server.port, "away", ["#a", "#b"], since=seen,
                            epoch=welcome["epoch"])
        self.assertEqual(back.of_type("welcome")[0]["epoch"], welcome["epoch"], "kept")
        found = histories(back)
        self.assertEqual(([m["text"] for m in found["#a"]["messages"]], found["#a"]["complete"]),
                         (["a3"], True))
        self.assertEqual(([m["text"] for m in found["#b"]["messages"]], found["#b"]["complete"]),
                         (["b3", "b4", "b5"], False), "b2 was dropped from a history of 3")
        stale = yield joined(self, server.port, "stale", ["#a"], since={"#a": 1}, epoch="old")
        self.assertEqual(histories(stale)["#a"]["complete"], False, "another epoch: a reset")
        back.send({"type": "say", "room": "#a", "text": "a4"})
        message = yield back.wait_for(lambda m: m.get("text") == "a4", what="a4")
        self.assertEqual(message["seq"], 4, "#a's numbering continues")

    @shows_server_log
    def test_restart_without_the_log_is_a_new_epoch(self):
        server = yield start_server(self)
        alice = yield joined(self, server.port, "alice", ["#a"])
        epoch = alice.of_type("welcome")[0]["epoch"]
        alice.send({"type": "say", "room": "#a", "text": "gone"})
        yield alice.wait_for(lambda m: m.get("text") == "gone", what="gone")
        port = server.port
        server.signal("TERM")
        yield server.wait_exit()
        server = yield start_server(self, port=port)
        back = yield joined(self, server.port, "alice", ["#a"], since={"#a": 1}, epoch=epoch)
        self.assertNotEqual(back.of_type("welcome")[0]["epoch"], epoch)
        self.assertEqual((histories(back)["#a"]["messages"], histories(back)["#a"]["complete"]),
                         ([], False))
