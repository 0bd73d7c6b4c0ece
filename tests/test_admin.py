"""
Tests for L{chatsvc.admin}'s inside: the ban list, and the request layer
over the operator, a real factory and chat on a Clock (the endpoint, the
command and the real processes are in L{tests.test_admin_endpoint}).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

from twisted.internet.task import Clock
from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from chatsvc.admin.bans import BanList
from chatsvc.admin.interfaces import IBanList, IOperator, OperatorError
from chatsvc.admin.operator import LocalOperator
from chatsvc.admin.requests import AdminRequests
from chatsvc.chat.interfaces import IChatAdmin, IChatStats

from .helpers import FakeClient, LogCapture, make_factory, only


class BanListTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.bans = BanList(self.clock)

    def test_interface(self) -> None:
        verifyObject(IBanList, self.bans)

    def test_address_and_networks(self) -> None:
        self.assertEqual(self.bans.ban("192.0.2.7", 0), "192.0.2.7/32")
        self.assertEqual(self.bans.ban("2001:db8::17/64", 0), "2001:db8::/64")
        self.assertTrue(self.bans.banned("192.0.2.7"))
        self.assertFalse(self.bans.banned("192.0.2.8"))
        self.assertTrue(self.bans.banned("2001:db8::ffff"))
        self.assertTrue(self.bans.banned("2001:db8::1%eth0"))
        self.assertFalse(self.bans.banned("2001:db8:1::1"))
        self.assertFalse(self.bans.banned("/run/a.sock"))

    def test_ipv4_mapped(self) -> None:
        """A dual-stack socket's ::ffff:a.b.c.d is the IPv4 address, both ways."""
        self.bans.ban("198.51.100.0/24", 0)
        self.assertTrue(self.bans.banned("::ffff:198.51.100.9"))
        self.assertEqual(self.bans.ban("::ffff:203.0.113.5", 0), "203.0.113.5/32")
        self.assertTrue(self.bans.banned("203.0.113.5"))

    def test_expiry(self) -> None:
        self.bans.ban("192.0.2.0/24", 60)
        self.clock.advance(59)
        self.assertTrue(self.bans.banned("192.0.2.1"))
        self.assertEqual(self.bans.entries(), [{"network": "192.0.2.0/24", "expires": 1.0}])
        self.clock.advance(1)
        self.assertFalse(self.bans.banned("192.0.2.1"))
        self.assertEqual(self.bans.entries(), [])

    def test_unban(self) -> None:
        self.bans.ban("192.0.2.0/24", 0)
        self.assertTrue(self.bans.unban("192.0.2.99/24"))
        self.assertFalse(self.bans.unban("192.0.2.0/24"))
        self.assertFalse(self.bans.banned("192.0.2.1"))

    def test_bad_input(self) -> None:
        for bad in ["", "alice", "300.1.1.1", "10.0.0.0/33", None, 7, "x" * 100]:
            self.assertRaises(OperatorError, self.bans.ban, bad, 0)
        for seconds in [-1, "1h", True, float("nan"), 1e12]:
            self.assertRaises(OperatorError, self.bans.ban, "192.0.2.1", seconds)


class OperatorTests(SynchronousTestCase):
    """L{AdminRequests} over L{LocalOperator}, a real factory and chat on a Clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = make_factory(self.clock)
        self.bans = BanList(self.clock)
        self.factory.bans = self.bans
        self.operator = LocalOperator(self.factory, self.factory.room, self.bans, self.clock)
        self.requests = AdminRequests(self.operator)
        self.logs = LogCapture.install(self)

    def client(self, name: str, host: str = "127.0.0.1") -> FakeClient:
        client = FakeClient(self.factory, host=host, version=2)
        client.hello(name)
        return client

    def ask(self, **request: Any) -> Dict[str, Any]:
        return json.loads(self.requests.handle_line(json.dumps(request).encode()))

    def logged(self) -> str:
        return "\n".join(formatEvent(e) for e in self.logs.events)

    def test_interfaces(self) -> None:
        verifyObject(IOperator, self.operator)
        verifyObject(IChatAdmin, self.factory.room)
        verifyObject(IChatStats, self.factory.room)

    def test_list(self) -> None:
        self.client("alice", host="192.0.2.1")
        FakeClient(self.factory, host="192.0.2.2")
        reply = self.ask(action="list")
        self.assertTrue(reply["ok"])
        self.assertEqual(reply["connections"], [
            {"name": "alice", "address": "192.0.2.1", "mode": "plaintext", "transport": "tcp",
             "rooms": ["#lobby"], "queued": 0, "muted": False},
            {"name": None, "address": "192.0.2.2", "mode": "pending", "transport": "tcp",
             "rooms": [], "queued": 0, "muted": False},
        ])
        self.assertIn("operator: listed 2 connections", self.logged())

    def test_kick(self) -> None:
        alice, bob = self.client("alice"), self.client("bob")
        alice.received()
        reply = self.ask(action="kick", name="BOB", reason="spamming the room")
        self.assertEqual(reply, {"ok": True, "name": "bob"})
        [err] = only(bob.received(), "error")
        self.assertEqual((err["code"], err["fatal"], err["text"]), ("kicked", True, "spamming the room"))
        self.assertTrue(bob.closed)
        [left] = only(alice.received(), "left")
        self.assertEqual((left["name"], left["reason"]), ("bob", "kicked"))
        self.assertIn("operator: kicked bob", self.logged())
        self.assertNotIn("spamming", self.logged())

    def test_kick_unknown(self) -> None:
        reply = self.ask(action="kick", name="nobody")
        self.assertFalse(reply["ok"])
        self.assertIn("nobody", reply["error"])

    def test_ban_closes_and_refuses(self) -> None:
        alice = self.client("alice", host="192.0.2.1")
        bob = self.client("bob", host="198.51.100.7")
        alice.received()
        reply = self.ask(action="ban", network="198.51.100.0/24", seconds=600)
        self.assertEqual(reply, {"ok": True, "network": "198.51.100.0/24", "closed": 1})
        [err] = only(bob.received(), "error")
        self.assertEqual((err["code"], err["fatal"]), ("banned", True))
        self.assertEqual([(m["name"], m["reason"]) for m in only(alice.received(), "left")],
                         [("bob", "banned")])
        again = FakeClient(self.factory, host="198.51.100.8")
        [refusal] = again.received()
        self.assertEqual((refusal["code"], refusal["fatal"]), ("banned", True))
        self.assertTrue(again.closed)
        self.assertIn("operator: banned 198.51.100.0/24", self.logged())
        self.assertEqual(self.ask(action="bans")["bans"],
                         [{"network": "198.51.100.0/24", "expires": 600.0}])
        self.assertTrue(self.ask(action="unban", network="198.51.100.0/24")["ok"])
        self.assertEqual(FakeClient(self.factory, host="198.51.100.8").received(), [])
        self.assertFalse(self.ask(action="unban", network="198.51.100.0/24")["ok"])

    def test_ban_expires(self) -> None:
        self.ask(action="ban", network="192.0.2.9", seconds=30)
        self.clock.advance(30)
        self.assertEqual(FakeClient(self.factory, host="192.0.2.9").received(), [])

    def test_mute(self) -> None:
        alice, bob = self.client("alice"), self.client("bob")
        alice.received()
        self.assertEqual(self.ask(action="mute", name="bob", seconds=60),
                         {"ok": True, "name": "bob"})
        bob.send({"type": "say", "text": "hey"})
        bob.send({"type": "msg", "to": "alice", "text": "hey"})
        errors = only(bob.received(), "error")
        self.assertEqual([(e["code"], e["fatal"]) for e in errors], [("muted", False)] * 2)
        self.assertEqual(alice.received(), [])
        self.assertFalse(bob.closed)
        self.clock.advance(60)
        bob.send({"type": "say", "text": "back"})
        self.assertEqual([m["text"] for m in only(alice.received(), "message")], ["back"])

    def test_unmute(self) -> None:
        alice, bob = self.client("alice"), self.client("bob")
        self.ask(action="mute", name="bob")
        self.assertEqual(self.ask(action="unmute", name="bob"), {"ok": True, "name": "bob"})
        self.assertFalse(self.ask(action="unmute", name="bob")["ok"])
        bob.send({"type": "say", "text": "free"})
        self.assertEqual([m["text"] for m in only(alice.received(), "message")], ["free"])

    def test_notice(self) -> None:
        alice, bob = self.client("alice"), self.client("bob")
        pending = FakeClient(self.factory)
        alice.received()
        self.assertEqual(self.ask(action="notice", text="restart at six"), {"ok": True, "sent": 2})
        for client in (alice, bob):
            [notice] = only(client.received(), "notice")
            self.assertEqual(notice["text"], "restart at six")
            self.assertNotIn("room", notice)
        self.assertEqual(pending.received(), [])
        self.assertEqual(self.ask(action="notice", text="hi", room="#LOBBY")["sent"], 2)
        self.assertEqual(only(alice.received(), "notice")[0]["room"], "#lobby")
        self.assertFalse(self.ask(action="notice", text="hi", room="#nowhere")["ok"])
        self.assertFalse(self.ask(action="notice", text="\x1b[2J")["ok"])
        self.assertNotIn("restart at six", self.logged())

    def test_rooms_topic_clear(self) -> None:
        alice, bob = self.client("alice"), self.client("bob")
        alice.send({"type": "join", "room": "#dev"})
        alice.send({"type": "say", "text": "spam"})
        alice.received(), bob.received()
        self.assertEqual(self.ask(action="rooms")["rooms"], [
            {"room": "#lobby", "count": 2, "topic": "", "history": 1},
            {"room": "#dev", "count": 1, "topic": "", "history": 0}])
        self.assertEqual(self.ask(action="topic", room="#DEV", text="welcome"), {"ok": True})
        [topic] = only(alice.received(), "topic")
        self.assertEqual((topic["room"], topic["text"], topic["by"]), ("#dev", "welcome", "(operator)"))
        self.assertEqual(only(bob.received(), "topic"), [])
        self.assertEqual(self.ask(action="rooms")["rooms"][1]["topic"], "welcome")
        self.assertFalse(self.ask(action="topic", room="#nowhere", text="x")["ok"])
        self.assertFalse(self.ask(action="topic", room="#dev", text="\x07")["ok"])
        self.assertNotIn("welcome", self.logged())
        self.assertEqual(self.ask(action="clear", room="#lobby"), {"ok": True, "forgotten": 1})
        newcomer = FakeClient(self.factory, version=2)
        [history] = only(newcomer.hello("carol"), "history")
        self.assertEqual((history["messages"], history["complete"]), ([], False))
        self.assertFalse(self.ask(action="clear", room="#nowhere")["ok"])

    def test_notice_to_a_room(self) -> None:
        alice, bob = self.client("alice"), self.client("bob")
        alice.send({"type": "join", "room": "#dev"})
        alice.received(), bob.received()
        self.assertEqual(self.ask(action="notice", text="dev only", room="#dev")["sent"], 1)
        [notice] = only(alice.received(), "notice")
        self.assertEqual((notice["room"], notice["text"]), ("#dev", "dev only"))
        self.assertEqual(bob.received(), [])

    def test_muted_say_names_its_room(self) -> None:
        alice = self.client("alice")
        alice.send({"type": "join", "room": "#dev"})
        alice.received()
        self.ask(action="mute", name="alice")
        alice.send({"type": "say", "room": "#dev", "text": "hi"})
        alice.send({"type": "say", "text": "hi"})
        self.assertEqual([(e["code"], e.get("room")) for e in only(alice.received(), "error")],
                         [("muted", "#dev"), ("muted", "#lobby")])

    def test_bad_requests(self) -> None:
        for line in [b"not json", b"[1]", b'{"action": 3}', b"\xff", b"[" * 100000]:
            reply = json.loads(self.requests.handle_line(line))
            self.assertFalse(reply["ok"])
        reply = self.ask(action="explode")
        self.assertIn("one of: ban, bans, clear", reply["error"])
        for request in [dict(action="kick"), dict(action="ban", network="x"),
                        dict(action="mute", name="alice", seconds=-5),
                        dict(action="notice", text=7), dict(action="notice", text="a", room=[1])]:
            self.assertFalse(self.ask(**request)["ok"], request)
        self.logs.assert_no_failures(self)


class RobustnessTests(SynchronousTestCase):
    def test_backend_without_room_controls(self) -> None:
        """A chat without IChatAdmin: room actions are refused, the rest works."""
        clock = Clock()
        factory = make_factory(clock)
        FakeClient(factory).hello("alice")

        class Bare:
            """Only what IChat offers (a backend that has no IChatAdmin)."""

            def __init__(self, room: Any) -> None:
                self.find = room.find
                self.flush = room.flush
                self._room = room

            def __contains__(self, member: Any) -> bool:
                return member in self._room

        operator = LocalOperator(factory, Bare(factory.room), BanList(clock), clock)
        requests = AdminRequests(operator)
        self.assertEqual([c["rooms"] for c in requests.handle(b'{"action": "list"}')["connections"]],
                         [[]])
        for line in [b'{"action": "rooms"}', b'{"action": "clear", "room": "#lobby"}',
                     b'{"action": "topic", "room": "#lobby", "text": "x"}']:
            reply = requests.handle(line)
            self.assertIn("no room controls", reply["error"])
        self.assertEqual(requests.handle(b'{"action": "notice", "text": "hi"}'), {"ok": True, "sent": 1})

    def test_a_bug_is_an_error_reply(self) -> None:
        """An exception inside an action is logged and answered, never a dropped endpoint."""
        class Broken(LocalOperator):
            def connections(self) -> List[Dict[str, Any]]:
                raise ZeroDivisionError()

        logs = LogCapture.install(self)
        clock = Clock()
        requests = AdminRequests(Broken(make_factory(clock), None, BanList(clock), clock))
        reply = requests.handle(b'{"action": "list"}')
        self.assertEqual(reply, {"ok": False, "error": "list failed inside the server (see its log)"})
        self.assertEqual(len(logs.failures()), 1)
        self.flushLoggedErrors(ZeroDivisionError)

    def test_tap_refuses_open_admin_endpoint(self) -> None:
        from chatsvc import tap

        options = tap.Options()
        options.parseOptions(["--listen", "tcp:0:interface=127.0.0.1", "--admin", "tcp:9001"])
        with self.assertRaises(SystemExit) as caught:
            tap.makeService(options)
        self.assertIn("loopback", str(caught.exception))
