# -*- test-case-name: tests.test_protocol_rooms -*-
"""
Protocol version 2 through L{ChatProtocol} and the single-process chat:
rooms (join, part, topic, rooms, who, say), hello's rooms, since and
epoch, actions, plaintext lists, presence, and the room limits and errors
(PROTOCOL.md 4.1 to 4.8, section 6).
"""

from __future__ import annotations

from typing import Any, Dict, List

from twisted.internet.address import IPv4Address
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from chatsvc.chat.interfaces import IChat, IChatMember
from chatsvc.server.interfaces import IChatTransport, IServerConnection, IWrappedFactory

from .helpers import FakeClient, LogCapture, RecordingTransport, make_factory, only

TS = "1970-01-01T00:00:00.000Z"


class RoomsTestCase(SynchronousTestCase):
    factory_args: Dict[str, Any] = {}

    def setUp(self) -> None:
        self.logs = LogCapture.install(self)
        self.factory = make_factory(**self.factory_args)
        self.clock = self.factory.clock
        self.chat = self.factory.room

    def tearDown(self) -> None:
        self.logs.assert_no_failures(self)

    def connect(self) -> FakeClient:
        return FakeClient(self.factory, version=2)

    def client(self, name: str, **hello: Any) -> FakeClient:
        c = self.connect()
        c.hello(name, **hello)
        return c

    def clients(self, *names: str, **hello: Any) -> List[FakeClient]:
        clients = [self.client(name, **hello) for name in names]
        for c in clients:
            c.received()
        return clients

    def error(self, messages: List[Dict[str, Any]]) -> Dict[str, Any]:
        [e] = only(messages, "error")
        return e


class InterfaceTests(RoomsTestCase):
    def test_chat_provides_ichat(self) -> None:
        self.assertTrue(verifyObject(IChat, self.chat))

    def test_connection_provides_its_interfaces(self) -> None:
        c = self.client("alice")
        self.assertTrue(verifyObject(IChatMember, c.protocol))
        self.assertTrue(verifyObject(IServerConnection, c.protocol))

    def test_factory_provides_iwrappedfactory(self) -> None:
        self.assertTrue(verifyObject(IWrappedFactory, self.factory))
        self.assertEqual(self.factory.refusal("server-full", "full")[4:],
                         b'{"type":"error","code":"server-full","text":"full","fatal":true}')


class HelloTests(RoomsTestCase):
    def test_default_room(self) -> None:
        """No rooms in hello: the default room, with room and history after welcome."""
        welcome, room, history = self.connect().hello("alice")
        self.assertEqual(welcome["rooms"], ["#lobby"])
        self.assertIsInstance(welcome["epoch"], str)
        self.assertEqual(welcome["plaintext"], ["alice"])
        self.assertEqual(room, {"type": "room", "room": "#lobby", "topic": "", "count": 1,
                                "presence": True, "users": ["alice"], "plaintext": ["alice"]})
        self.assertEqual(history, {"type": "history", "room": "#lobby", "complete": True,
                                   "messages": []})

    def test_rooms_in_order(self) -> None:
        messages = self.connect().hello("alice", rooms=["#b", "#a", "#B"])
        self.assertEqual(messages[0]["rooms"], ["#b", "#a"])
        self.assertEqual([(m["type"], m["room"]) for m in messages[1:]],
                         [("room", "#b"), ("history", "#b"), ("room", "#a"), ("history", "#a")])

    def test_no_rooms(self) -> None:
        c = self.connect()
        [welcome] = c.hello("alice", rooms=[])
        self.assertEqual(welcome["rooms"], [])
        c.send({"type": "say", "text": "hi"})
        e = self.error(c.received())
        self.assertEqual((e["code"], e["room"], e["fatal"]), ("not-in-room", "#lobby", False))

    def test_bad_rooms_refused_then_hello_again(self) -> None:
        c = self.connect()
        for rooms, code in ((["#ok", "nohash"], "bad-room"), ("#a", "bad-room"),
                            ([5], "bad-room"), (["#" + "x" * 33], "bad-room"),
                            (["#a b"], "bad-room"), (["#"], "bad-room"),
                            ([f"#r{i}" for i in range(21)], "too-many-rooms")):
            c.send({"type": "hello", "name": "alice", "rooms": rooms})
            e = self.error(c.received())
            self.assertEqual((e["code"], e["fatal"]), (code, False), rooms)
            self.assertIsNone(c.protocol.name)
        self.assertEqual(len(self.chat.rooms), 1, "no room was made for a refused hello")
        self.assertEqual(c.hello("alice", rooms=["#ok"])[0]["rooms"], ["#ok"])

    def test_bad_room_names_the_entry(self) -> None:
        c = self.connect()
        c.send({"type": "hello", "rooms": ["#ok", "#bad room"]})
        self.assertEqual(self.error(c.received())["room"], "#bad room")

    def test_room_name_spelling_and_matching(self) -> None:
        """A room keeps its creator's spelling; names match by NFC casefold."""
        alice = self.client("alice", rooms=["#Caf\u00e9"])
        bob = self.connect()
        messages = bob.hello("bob", rooms=["#CAFE\u0301"])
        self.assertEqual(messages[0]["rooms"], ["#Caf\u00e9"])
        self.assertEqual(messages[1]["users"], ["bob", "alice"])
        self.assertEqual(only(alice.received(), "joined")[0]["room"], "#Caf\u00e9")


class JoinPartTests(RoomsTestCase):
    def test_join_answers_and_announces(self) -> None:
        alice, bob = self.clients("alice", "bob")
        bob.send({"type": "join", "room": "#dev"})
        room, history = bob.received()
        self.assertEqual((room["room"], room["users"], room["count"]), ("#dev", ["bob"], 1))
        self.assertEqual(history["room"], "#dev")
        alice.send({"type": "join", "room": "#dev"})
        self.assertEqual([m["type"] for m in alice.received()], ["room", "history"])
        self.assertEqual(bob.received(), [{"type": "joined", "room": "#dev", "name": "alice",
                                           "ts": TS, "plaintext": True}])

    def test_join_again_changes_nothing(self) -> None:
        alice, bob = self.clients("alice", "bob")
        alice.send({"type": "say", "text": "one"})
        alice.received()
        bob.received()
        alice.send({"type": "join", "room": "#LOBBY"})
        room, history = alice.received()
        self.assertEqual((room["type"], room["count"]), ("room", 2))
        self.assertEqual([m["text"] for m in history["messages"]], ["one"])
        self.assertEqual(bob.received(), [])

    def test_part(self) -> None:
        alice, bob = self.clients("alice", "bob")
        alice.send({"type": "part", "room": "#lobby", "reason": "lunch"})
        parted = {"type": "parted", "room": "#lobby", "name": "alice", "ts": TS,
                  "reason": "part", "text": "lunch"}
        self.assertEqual(alice.received(), [parted])
        self.assertEqual(bob.received(), [parted])
        self.assertEqual(self.chat.rooms_of(alice.protocol), [])
        alice.send({"type": "part", "room": "#lobby"})
        e = self.error(alice.received())
        self.assertEqual((e["code"], e["room"]), ("not-in-room", "#lobby"))

    def test_part_reason_left_out_when_bad(self) -> None:
        alice, bob = self.clients("alice", "bob")
        alice.send({"type": "part", "room": "#lobby", "reason": "\x1b[2J"})
        self.assertNotIn("text", bob.received()[0])

    def test_messages_stay_in_their_room(self) -> None:
        """Members only: two rooms, one client in both."""
        a = self.client("a", rooms=["#one"])
        b = self.client("b", rooms=["#two"])
        both = self.client("both", rooms=["#one", "#two"])
        for c in (a, b, both):
            c.received()
        a.send({"type": "say", "room": "#one", "text": "to one"})
        b.send({"type": "say", "room": "#two", "text": "to two"})
        both.send({"type": "say", "room": "#two", "text": "from both"})
        self.assertEqual([(m["room"], m["text"], m["seq"]) for m in a.received()],
                         [("#one", "to one", 1)])
        self.assertEqual([(m["room"], m["text"], m["seq"]) for m in b.received()],
                         [("#two", "to two", 1), ("#two", "from both", 2)])
        self.assertEqual([(m["room"], m["text"]) for m in both.received()],
                         [("#one", "to one"), ("#two", "to two"), ("#two", "from both")])

    def test_say_to_a_room_not_in(self) -> None:
        alice, bob = self.clients("alice", "bob")
        bob.send({"type": "join", "room": "#x"})
        bob.received()
        alice.send({"type": "say", "room": "#x", "text": "hi"})
        e = self.error(alice.received())
        self.assertEqual((e["code"], e["room"]), ("not-in-room", "#x"))
        self.assertEqual(bob.received(), [])
        alice.send({"type": "say", "room": "x", "text": "hi"})
        self.assertEqual(self.error(alice.received())["code"], "bad-room")

    def test_left_once_to_everyone_sharing_a_room(self) -> None:
        alice = self.client("alice", rooms=["#a", "#b"])
        bob = self.client("bob", rooms=["#a", "#b"])
        carol = self.client("carol", rooms=["#c"])
        for c in (alice, bob, carol):
            c.received()
        alice.send({"type": "quit"})
        self.assertEqual([m["type"] for m in bob.received()], ["left"])
        self.assertEqual(carol.received(), [])

    def test_renamed_to_sharers_only(self) -> None:
        alice = self.client("alice", rooms=["#a", "#b"])
        bob = self.client("bob", rooms=["#b"])
        carol = self.client("carol", rooms=["#c"])
        for c in (alice, bob, carol):
            c.received()
        alice.send({"type": "nick", "name": "alicia"})
        renamed = {"type": "renamed", "old": "alice", "new": "alicia", "ts": TS}
        self.assertEqual(alice.received(), [renamed])
        self.assertEqual(bob.received(), [renamed])
        self.assertEqual(carol.received(), [])

    def test_renamed_to_itself_in_no_room(self) -> None:
        alice = self.client("alice", rooms=[])
        alice.received()
        alice.send({"type": "nick", "name": "al"})
        self.assertEqual([m["type"] for m in alice.received()], ["renamed"])

    def test_empty_room_keeps_history(self) -> None:
        alice = self.client("alice", rooms=["#tmp"])
        alice.send({"type": "say", "room": "#tmp", "text": "kept"})
        alice.send({"type": "part", "room": "#tmp"})
        alice.received()
        alice.send({"type": "rooms"})
        self.assertEqual(alice.received()[0]["rooms"], [], "an empty room is not listed")
        alice.send({"type": "join", "room": "#tmp"})
        _, history = alice.received()
        self.assertEqual([m["text"] for m in history["messages"]], ["kept"])


class TopicTests(RoomsTestCase):
    def test_set_and_clear(self) -> None:
        alice, bob = self.clients("alice", "bob")
        alice.send({"type": "topic", "room": "#lobby", "text": "plans"})
        topic = {"type": "topic", "room": "#lobby", "text": "plans", "by": "alice", "ts": TS}
        self.assertEqual(alice.received(), [topic])
        self.assertEqual(bob.received(), [topic])
        carol = self.connect()
        self.assertEqual(carol.hello("carol")[1]["topic"], "plans")
        bob.send({"type": "topic", "room": "#lobby", "text": ""})
        self.assertEqual(only(alice.received(), "topic")[0]["text"], "")

    def test_bad_topics(self) -> None:
        [alice] = self.clients("alice")
        for text, code in (("x" * 391, "too-long"), ("\u00e9" * 196, "too-long"),
                           ("two\nlines", "bad-text"), ("\x07", "bad-text"), (None, "bad-text"),
                           (5, "bad-text")):
            alice.send({"type": "topic", "room": "#lobby", "text": text})
            e = self.error(alice.received())
            self.assertEqual((e["code"], e["room"]), (code, "#lobby"), text)
        alice.send({"type": "topic", "room": "#lobby", "text": "x" * 390})
        self.assertEqual(only(alice.received(), "topic")[0]["text"], "x" * 390)

    def test_topic_of_a_room_not_in(self) -> None:
        [alice] = self.clients("alice")
        alice.send({"type": "topic", "room": "#elsewhere", "text": "t"})
        self.assertEqual(self.error(alice.received())["code"], "not-in-room")


class ListTests(RoomsTestCase):
    def test_rooms_largest_first(self) -> None:
        a = self.client("a", rooms=["#small", "#big"])
        self.client("b", rooms=["#big"])
        a.received()
        a.send({"type": "topic", "room": "#big", "text": "t"})
        a.received()
        a.send({"type": "rooms"})
        [answer] = a.received()
        self.assertEqual(answer, {"type": "rooms", "rooms": [
            {"room": "#big", "count": 2, "topic": "t"}, {"room": "#small", "count": 1, "topic": ""}]})

    def test_who_room(self) -> None:
        alice = self.client("alice", rooms=["#a"])
        self.client("bob", rooms=["#b"])
        alice.received()
        alice.send({"type": "who", "room": "#A"})
        self.assertEqual(alice.received(), [{"type": "users", "room": "#a", "users": ["alice"],
                                             "plaintext": ["alice"]}])
        alice.send({"type": "who"})
        self.assertEqual(alice.received()[0]["users"], ["alice", "bob"])
        alice.send({"type": "who", "room": "#none"})
        e = self.error(alice.received())
        self.assertEqual((e["code"], e["room"]), ("no-such-room", "#none"))

    def test_plaintext_lists(self) -> None:
        """(4.8) Encrypted members are left out of the plaintext lists."""
        alice = FakeClient(self.factory, transport=EncryptedTransport(), version=2)
        alice.hello("alice")
        bob = self.connect()
        welcome, room, _ = bob.hello("bob")
        self.assertEqual((welcome["users"], welcome["plaintext"]), (["bob", "alice"], ["bob"]))
        self.assertEqual(room["plaintext"], ["bob"])
        self.assertEqual(only(alice.received(), "joined")[0]["plaintext"], True)
        bob.send({"type": "who"})
        self.assertEqual(bob.received()[0]["plaintext"], ["bob"])


@implementer(IChatTransport)
class EncryptedTransport(RecordingTransport):
    """The transport of an encrypted connection, as the wrapper is."""

    encrypted = True

    def __init__(self) -> None:
        RecordingTransport.__init__(self, peerAddress=IPv4Address("TCP", "127.0.0.1", 1))

    def direct_writer(self) -> None:
        return None


class ActionTests(RoomsTestCase):
    def test_action_say_and_msg(self) -> None:
        alice, bob = self.clients("alice", "bob")
        alice.send({"type": "say", "text": "waves", "action": True})
        alice.send({"type": "say", "text": "plain", "action": False})
        alice.send({"type": "msg", "to": "bob", "text": "nods", "action": True})
        got = bob.received()
        self.assertIs(got[0]["action"], True)
        self.assertNotIn("action", got[1])
        self.assertEqual((got[2]["type"], got[2]["action"]), ("private", True))

    def test_non_bool_action_is_bad_json(self) -> None:
        alice, bob = self.clients("alice", "bob")
        for action in (1, "true", None, [True]):
            alice.send({"type": "say", "text": "x", "action": action})
            self.assertEqual(self.error(alice.received())["code"], "bad-json")
        alice.send({"type": "msg", "to": "bob", "text": "x", "action": 0})
        self.assertEqual(self.error(alice.received())["code"], "bad-json")
        self.assertEqual(bob.received(), [])


class CatchUpTests(RoomsTestCase):
    def say(self, c: FakeClient, room: str, n: int) -> None:
        for i in range(n):
            c.send({"type": "say", "room": room, "text": f"{room} {i}"})
        c.received()

    def test_since_per_room(self) -> None:
        alice = self.client("alice", rooms=["#a", "#b"])
        self.say(alice, "#a", 3)
        self.say(alice, "#b", 2)
        bob = self.connect()
        messages = bob.hello("bob", rooms=["#a", "#b"], since={"#a": 1, "#B": 0, "#c": 5, "x": 1})
        histories = only(messages, "history")
        self.assertEqual([[m["seq"] for m in h["messages"]] for h in histories], [[2, 3], [1, 2]])
        self.assertEqual([h["complete"] for h in histories], [True, True])

    def test_since_integer_is_the_default_room(self) -> None:
        alice = self.client("alice", rooms=["#lobby", "#b"])
        self.say(alice, "#lobby", 3)
        self.say(alice, "#b", 3)
        histories = only(self.connect().hello("bob", rooms=["#lobby", "#b"], since=2), "history")
        self.assertEqual([len(h["messages"]) for h in histories], [1, 3])

    def test_epoch_mismatch_is_a_reset(self) -> None:
        alice = self.client("alice", rooms=["#a", "#b"])
        epoch = self.chat.epoch
        self.say(alice, "#a", 3)
        self.say(alice, "#b", 3)
        same = only(self.connect().hello("b1", rooms=["#a", "#b"], since={"#a": 2}, epoch=epoch),
                    "history")
        self.assertEqual([(len(h["messages"]), h["complete"]) for h in same], [(1, True), (3, True)])
        other = only(self.connect().hello("b2", rooms=["#a", "#b"], since={"#a": 2},
                                          epoch="another"), "history")
        self.assertEqual([(len(h["messages"]), h["complete"]) for h in other],
                         [(3, False), (3, True)])

    def test_since_beyond_newest(self) -> None:
        self.client("alice", rooms=["#a"])
        [history] = only(self.connect().hello("bob", rooms=["#a"], since={"#a": 99}), "history")
        self.assertIs(history["complete"], False)

    def test_resume_keeps_rooms_and_adds(self) -> None:
        alice = self.connect()
        welcome = alice.hello("alice", rooms=["#a", "#b"])[0]
        bob = self.client("bob", rooms=["#a", "#c"])
        bob.received()
        again = self.connect()
        messages = again.hello("x", resume=welcome["resume"], rooms=["#c"])
        self.assertEqual(messages[0]["name"], "alice")
        self.assertEqual(messages[0]["rooms"], ["#a", "#b", "#c"])
        self.assertEqual(self.chat.rooms_of(again.protocol), ["#a", "#b", "#c"])
        self.assertEqual([m["type"] for m in bob.received()], ["joined"], "joined #c only")
        self.assertTrue(alice.closed)
        again.send({"type": "say", "room": "#a", "text": "back"})
        self.assertEqual(only(bob.received(), "message")[0]["text"], "back")

    def test_resume_without_rooms_adds_none(self) -> None:
        alice = self.connect()
        welcome = alice.hello("alice", rooms=["#a"])[0]
        again = self.connect()
        self.assertEqual(again.hello(resume=welcome["resume"])[0]["rooms"], ["#a"])


class PresenceTests(RoomsTestCase):
    factory_args = {"presence_limit": 3}

    def test_past_the_limit(self) -> None:
        a, b, c = self.clients("a", "b", "c")
        d = self.connect()
        welcome, room, _ = d.hello("d")
        self.assertEqual((room["count"], room["presence"]), (4, False))
        self.assertEqual(a.received(), [], "no joined past the limit")
        d.send({"type": "part", "room": "#lobby"})
        self.assertEqual([m["type"] for m in d.received()], ["parted"], "its own parted")
        self.assertEqual(a.received(), [], "decided before the part: 4 members")
        c.send({"type": "quit"})
        self.assertEqual([m["type"] for m in a.received()], ["left"], "3 members with c")

    def test_renamed_and_topic_always_go_out(self) -> None:
        a, b, c, d = self.clients("a", "b", "c", "d")
        d.send({"type": "nick", "name": "dd"})
        d.send({"type": "topic", "room": "#lobby", "text": "t"})
        self.assertEqual([m["type"] for m in a.received()], ["renamed", "topic"])

    def test_room_lists_at_most_the_welcome_limit(self) -> None:
        from chatsvc.chat.common import MAX_WELCOME_USERS

        for i in range(MAX_WELCOME_USERS + 5):
            self.chat.register(_Quiet(), name=f"u{i}")
        me = self.connect()
        welcome, room, _ = me.hello("me")
        self.assertEqual(len(welcome["users"]), MAX_WELCOME_USERS)
        self.assertEqual(len(room["users"]), MAX_WELCOME_USERS)
        self.assertEqual((room["count"], room["users"][0]), (MAX_WELCOME_USERS + 6, "me"))
        me.send({"type": "who", "room": "#lobby"})
        self.assertEqual(sum(len(m["users"]) for m in me.received()), MAX_WELCOME_USERS + 6)


class _Quiet:
    """A member that takes everything and says nothing."""

    name = session_id = None
    encrypted = True
    closing = False

    def send(self, message: Any) -> None:
        pass

    def send_frame(self, frame: bytes) -> None:
        pass

    def replaced(self) -> None:
        pass

    def fatal(self, code: str, text: str) -> None:
        pass


class LimitTests(RoomsTestCase):
    factory_args = {"max_rooms": 4, "max_rooms_per_client": 2}

    def test_rooms_per_client(self) -> None:
        [alice] = self.clients("alice")
        alice.send({"type": "join", "room": "#two"})
        alice.received()
        alice.send({"type": "join", "room": "#three"})
        e = self.error(alice.received())
        self.assertEqual((e["code"], e["room"]), ("too-many-rooms", "#three"))
        alice.send({"type": "join", "room": "#two"})
        self.assertEqual([m["type"] for m in alice.received()], ["room", "history"],
                         "a room it is in does not count again")

    def test_rooms_per_server_forgets_empty_rooms_oldest_first(self) -> None:
        a = self.client("a", rooms=["#r1", "#r2"])
        b = self.client("b", rooms=["#r3"])
        a.send({"type": "say", "room": "#r1", "text": "one"})
        a.send({"type": "say", "room": "#r2", "text": "two"})
        a.send({"type": "part", "room": "#r1"})
        a.send({"type": "part", "room": "#r2"})
        c = self.connect()
        self.assertEqual(c.hello("c", rooms=["#r4"])[0]["rooms"], ["#r4"])
        self.assertIsNone(self.chat.room("#r1"), "the oldest empty room was forgotten")
        self.assertIsNotNone(self.chat.room("#r2"))
        b.send({"type": "join", "room": "#r1"})
        history = b.received()[-1]
        self.assertEqual((history["messages"], history["complete"]), ([], False))
        b.send({"type": "say", "room": "#r1", "text": "again"})
        self.assertEqual(only(b.received(), "message")[0]["seq"], 2, "its seq continues")

    def test_too_many_rooms_on_the_server(self) -> None:
        self.client("a", rooms=["#r1", "#r2"])
        self.client("b", rooms=["#r3"])
        c = self.connect()
        c.send({"type": "hello", "name": "c", "rooms": ["#r4"]})
        self.assertEqual(self.error(c.received())["code"], "too-many-rooms",
                         "#lobby and three rooms with members: no room is free")
