"""
Tests for the client's side of protocol version 2 (issue 9, "The terminal
client, for rooms"): L{chatsvc.client.session} with rooms, the epoch,
actions and plaintext members; L{chatsvc.client.outgoing}; and
L{chatsvc.client.parts}, the bounded gathering of split lists (issue 12,
finding 6). Pure: decoded messages in, rows and messages out.
"""

from __future__ import annotations

from typing import Any, List

from twisted.trial.unittest import SynchronousTestCase

from chatsvc.client.commands import Join, Me, Part, Rooms, Say, Switch, Topic, Who, parse_command
from chatsvc.client.outgoing import NO_ROOMS, local, to_message
from chatsvc.client.parts import Parts
from chatsvc.client.rooms import is_room_name
from chatsvc.client.session import ClientSession, ConnectionState

from .client_helpers import texts

TS = "2026-12-06T14:02:00.000Z"


def msg(room: str, seq: int, text: str = "hi", sender: str = "bob", **extra: Any) -> dict:
    message = {"type": "message", "room": room, "from": sender, "text": text, "ts": TS, "seq": seq}
    message.update(extra)
    return message


def welcome2(rooms: List[str], epoch: str = "e1", **extra: Any) -> dict:
    message = {"type": "welcome", "name": "alice", "id": "1", "users": ["alice", "bob"],
               "plaintext": [], "encrypted": True, "resume": "tok", "epoch": epoch, "rooms": rooms}
    message.update(extra)
    return message


def room(name: str, users: List[str], plaintext: List[str] = [], topic: str = "", **extra: Any) -> dict:
    message = {"type": "room", "room": name, "topic": topic, "count": len(users), "users": users,
               "plaintext": plaintext, "presence": True}
    message.update(extra)
    return message


def history(name: str, items: List[dict], complete: bool = True, **extra: Any) -> dict:
    message = {"type": "history", "room": name, "messages": items, "complete": complete}
    message.update(extra)
    return message


class V2Session(SynchronousTestCase):
    def joined(self, rooms: List[str] = ["#lobby", "#dev"], epoch: str = "e1") -> Any:
        self.session = ClientSession("alice")
        conn = self.session.connect(encrypted=True)
        self.session.receive(conn, welcome2(rooms, epoch))
        for name in rooms:
            self.session.receive(conn, room(name, ["alice", "bob"]))
            self.session.receive(conn, history(name, []))
        return conn

    def show(self, conn: ConnectionState, message: dict) -> List[str]:
        return texts(self.session.receive(conn, message))


class HelloTests(V2Session):
    def test_reconnect_hello(self) -> None:
        """After a version 2 welcome, hello names every room, since per room, the epoch."""
        conn = self.joined()
        self.session.receive(conn, msg("#lobby", 4))
        self.session.receive(conn, msg("#dev", 9))
        hello = self.session.connect(encrypted=True).hello
        self.assertEqual(hello, {"type": "hello", "name": "alice", "resume": "tok",
                                 "rooms": ["#lobby", "#dev"], "since": {"#lobby": 4, "#dev": 9},
                                 "epoch": "e1"})

    def test_first_hello_plain(self) -> None:
        """The first hello names no rooms: the server's default room."""
        self.assertEqual(ClientSession("alice").connect().hello, {"type": "hello", "name": "alice"})

    def test_no_rooms_left(self) -> None:
        """Having left every room, the next hello asks for none."""
        conn = self.joined(["#lobby"])
        self.session.receive(conn, {"type": "parted", "room": "#lobby", "name": "alice",
                                    "reason": "part", "ts": TS})
        self.assertEqual(self.session.connect().hello["rooms"], [])


class CatchUpTests(V2Session):
    def reconnect(self, epoch: str = "e1") -> ConnectionState:
        conn = self.session.connect(encrypted=True)
        self.session.receive(conn, welcome2(["#lobby", "#dev"], epoch))
        return conn

    def test_per_room_complete(self) -> None:
        """Each room says its own catch-up: complete, or missed."""
        conn = self.joined()
        self.session.receive(conn, msg("#lobby", 4))
        self.session.receive(conn, msg("#dev", 9))
        conn = self.reconnect()
        self.show(conn, room("#lobby", ["alice"]))
        lobby = self.show(conn, history("#lobby", [msg("#lobby", 4), msg("#lobby", 5, "new")]))
        self.assertEqual(lobby, ["-- history: 1 message --", "bob: new", "-- end of history (complete) --"])
        self.show(conn, room("#dev", ["alice"]))
        dev = self.show(conn, history("#dev", [msg("#dev", 30, "late", sender="carol")], complete=False))
        self.assertEqual(dev, ["-- history: 1 message --", "carol: late",
                               "-- end of history: some messages before these were missed --"])
        rows = self.session.receive(conn, history("#dev", [])).lines
        self.assertEqual([r.room for r in rows], ["#dev"])  # tagged: not the active room

    def test_epoch_changed(self) -> None:
        """A new epoch: the server's history was reset, not messages missed;
        the room's numbering starts again."""
        conn = self.joined()
        self.session.receive(conn, msg("#lobby", 40))
        conn = self.reconnect(epoch="e2")
        lines = self.show(conn, history("#lobby", [msg("#lobby", 1, "fresh")], complete=False))
        self.assertEqual(lines, ["-- history: 1 message --", "bob: fresh", "-- the server's history was reset --"])
        self.assertEqual(self.session.rooms.get("#lobby").seq, 1)
        self.assertEqual(self.session.connect().hello["epoch"], "e2")

    def test_same_epoch_nothing_new(self) -> None:
        conn = self.joined()
        self.session.receive(conn, msg("#lobby", 40))
        conn = self.reconnect()
        self.assertEqual(self.show(conn, history("#lobby", [msg("#lobby", 40)])),
                         ["-- end of history (complete) --"])

    def test_history_items_keep_action_and_room(self) -> None:
        conn = self.joined()
        lines = self.show(conn, history("#lobby", [msg("#lobby", 1, "waves", action=True)]))
        self.assertEqual(lines[1], "* bob waves")


class RoomTests(V2Session):
    def test_room_summary_and_topic(self) -> None:
        self.session = ClientSession("alice")
        conn = self.session.connect()
        self.session.receive(conn, welcome2(["#lobby"]))
        lines = self.show(conn, room("#lobby", ["alice", "bob", "dave"], ["dave"], topic="builds"))
        self.assertEqual(lines, ["* in #lobby: 3 members, 1 plaintext (~name)", "* topic: builds"])

    def test_room_users_in_parts(self) -> None:
        self.session = ClientSession("alice")
        conn = self.session.connect()
        self.session.receive(conn, welcome2(["#big"]))
        self.assertEqual(self.show(conn, room("#big", ["a", "b"], more=True, count=3)), [])
        self.show(conn, room("#big", ["c"], count=3))
        self.assertEqual(sorted(self.session.rooms.get("#big").members), ["a", "b", "c"])

    def test_other_room_tagged_and_unread(self) -> None:
        conn = self.joined()
        rows = self.session.receive(conn, msg("#dev", 3, "pushed the fix")).lines
        self.assertEqual([(r.room, r.text) for r in rows], [("#dev", "bob: pushed the fix")])
        self.assertEqual(self.session.rooms.get("#dev").unread, 1)
        rows = self.session.receive(conn, msg("#lobby", 3)).lines
        self.assertIsNone(rows[0].room)
        self.session.rooms.switch("#dev")
        self.assertEqual(self.session.rooms.get("#dev").unread, 0)

    def test_action_and_mention(self) -> None:
        conn = self.joined()
        [row] = self.session.receive(conn, msg("#lobby", 1, "waves", action=True)).lines
        self.assertEqual((row.text, row.kind, row.nick), ("* bob waves", "action", "bob"))
        [row] = self.session.receive(conn, msg("#lobby", 2, "hi Alice!")).lines
        self.assertTrue(row.mention)
        [row] = self.session.receive(conn, msg("#lobby", 3, "malice aforethought")).lines
        self.assertFalse(row.mention)

    def test_own_line(self) -> None:
        conn = self.joined()
        [row] = self.session.receive(conn, msg("#lobby", 1, "mine", sender="alice")).lines
        self.assertEqual((row.kind, row.mention), ("own", False))

    def test_plaintext_join_marked(self) -> None:
        conn = self.joined()
        lines = self.show(conn, {"type": "joined", "room": "#lobby", "name": "dave", "ts": TS,
                                 "plaintext": True})
        self.assertEqual(lines, ["* dave joined (plaintext: anyone on the network can read dave)"])
        self.assertEqual(self.show(conn, msg("#lobby", 1, "yo", sender="dave")), ["~dave: yo"])
        self.assertEqual(self.session.rooms.plaintext_in(self.session.rooms.get("#lobby")), 1)
        self.show(conn, {"type": "left", "name": "dave", "reason": "quit", "ts": TS})
        self.assertEqual(self.show(conn, msg("#lobby", 2, "x", sender="dave")), ["dave: x"])

    def test_users_plaintext(self) -> None:
        conn = self.joined()
        lines = self.show(conn, {"type": "users", "room": "#dev", "users": ["alice", "eve"],
                                 "plaintext": ["eve"]})
        self.assertEqual(lines, ["* users in #dev: alice, ~eve"])

    def test_parted_self(self) -> None:
        conn = self.joined()
        self.session.rooms.switch("#dev")
        lines = self.show(conn, {"type": "parted", "room": "#dev", "name": "alice", "reason": "part",
                                 "ts": TS})
        self.assertEqual(lines, ["* you left #dev"])
        self.assertEqual((self.session.rooms.names(), self.session.rooms.active_name),
                         (["#lobby"], "#lobby"))

    def test_parted_other(self) -> None:
        conn = self.joined()
        lines = self.show(conn, {"type": "parted", "room": "#lobby", "name": "bob", "reason": "part",
                                 "text": "lunch", "ts": TS})
        self.assertEqual(lines, ["* bob left #lobby (part: lunch)"])
        self.assertEqual(self.session.rooms.get("#lobby").count, 1)

    def test_topic(self) -> None:
        conn = self.joined()
        self.assertEqual(self.show(conn, {"type": "topic", "room": "#lobby", "text": "hi\x1b",
                                          "by": "bob", "ts": TS}),
                         ["* bob set the topic of #lobby: hi\\x1b"])
        self.assertEqual(self.session.rooms.get("#lobby").topic, "hi\\x1b")

    def test_join_switches_when_room_arrives(self) -> None:
        conn = self.joined()
        self.assertEqual(to_message(self.session, Join("#ops")), {"type": "join", "room": "#ops"})
        self.show(conn, room("#ops", ["alice"]))
        self.assertEqual(self.session.rooms.active_name, "#ops")

    def test_rooms_list(self) -> None:
        conn = self.joined()
        lines = self.show(conn, {"type": "rooms", "rooms": [{"room": "#lobby", "count": 4, "topic": "t"},
                                                            {"room": "#dev", "count": 2, "topic": ""}]})
        self.assertEqual(lines, ["* rooms:", "*   #lobby (4) t", "*   #dev (2)"])

    def test_messages_before_welcome_ignored(self) -> None:
        session = ClientSession("alice")
        conn = session.connect()
        self.assertEqual(texts(session.receive(conn, msg("#lobby", 1))), [])


class OutgoingTests(V2Session):
    def test_say_goes_to_active_room(self) -> None:
        self.joined()
        self.assertEqual(to_message(self.session, Say("hi")), {"type": "say", "text": "hi", "room": "#lobby"})
        self.session.rooms.switch("#dev")
        self.assertEqual(to_message(self.session, Me("waves")),
                         {"type": "say", "text": "waves", "action": True, "room": "#dev"})

    def test_v1_server(self) -> None:
        session = ClientSession("alice")
        session.receive(session.connect(), {"type": "welcome", "name": "alice", "users": ["alice"]})
        self.assertEqual(to_message(session, Say("hi")), {"type": "say", "text": "hi"})
        self.assertEqual(to_message(session, Me("waves")), {"type": "say", "text": "* alice waves"})
        self.assertEqual(texts(to_message(session, Join("#dev"))), [NO_ROOMS])

    def test_part_topic_who_rooms(self) -> None:
        self.joined()
        self.assertEqual(to_message(self.session, Part(None, "bye")),
                         {"type": "part", "room": "#lobby", "reason": "bye"})
        self.assertEqual(to_message(self.session, Part("#dev")), {"type": "part", "room": "#dev"})
        self.assertEqual(to_message(self.session, Topic("new")),
                         {"type": "topic", "room": "#lobby", "text": "new"})
        self.assertEqual(to_message(self.session, Topic("-")),
                         {"type": "topic", "room": "#lobby", "text": ""})
        self.assertEqual(to_message(self.session, Who("#dev")), {"type": "who", "room": "#dev"})
        self.assertEqual(to_message(self.session, Rooms()), {"type": "rooms"})

    def test_switch_is_local(self) -> None:
        self.joined()
        self.assertEqual(texts(local(self.session, Switch("#DEV"))), ["* talking in #dev"])
        self.assertEqual(self.session.rooms.active_name, "#dev")
        self.assertEqual(texts(local(self.session, Switch("#nope"))),
                         ["! you are not in #nope; /join it first"])
        self.assertEqual(texts(local(self.session, Topic())), ["* #dev has no topic"])
        self.assertIsNone(local(self.session, Say("x")))

    def test_no_room(self) -> None:
        self.joined(["#lobby"])
        self.session.rooms.leave("#lobby")
        self.assertEqual(texts(to_message(self.session, Say("x"))), ["! you are in no room: /join #ROOM"])

    def test_commands_parse(self) -> None:
        for line, action in [("/join #dev", Join("#dev")), ("/join dev", Join("#dev")),
                             ("/part", Part()), ("/part #dev gone home", Part("#dev", "gone home")),
                             ("/part bye now", Part(None, "bye now")), ("/topic", Topic()),
                             ("/topic a b", Topic("a b")), ("/rooms", Rooms()), ("/who", Who()),
                             ("/who #dev", Who("#dev")), ("/switch dev", Switch("#dev"))]:
            self.assertEqual(parse_command(line), action, line)

    def test_room_names(self) -> None:
        self.assertTrue(is_room_name("#dev"))
        self.assertFalse(is_room_name("dev"))
        self.assertFalse(is_room_name("#" + "x" * 33))


class PartsTests(SynchronousTestCase):
    """Issue 12, finding 6: split lists are capped."""

    def test_parts_capped(self) -> None:
        parts = Parts(max_parts=3)
        for _ in range(100):
            self.assertIsNone(parts.add("k", ["x"] * 10, more=True))
        whole = parts.add("k", ["y"], more=False)
        self.assertEqual((len(whole.items), whole.cut, whole.parts), (30, True, 101))

    def test_items_capped(self) -> None:
        parts = Parts(max_items=5)
        parts.add("k", list(range(4)), more=True)
        whole = parts.add("k", list(range(4)), more=False)
        self.assertEqual((whole.items, whole.cut), ([0, 1, 2, 3, 0], True))

    def test_open_lists_capped(self) -> None:
        """A server that starts many lists and never ends them holds few."""
        parts = Parts(max_open=2)
        for i in range(50):
            parts.add(("history", i), ["x"] * 100, more=True)
        self.assertEqual(parts.open_items, 200)

    def test_history_flood_bounded(self) -> None:
        """The session's history gathering is bounded: 10,000 parts of
        'more' hold at most MAX_PARTS parts, and the catch-up says cut."""
        session = ClientSession("alice")
        conn = session.connect()
        session.receive(conn, welcome2(["#lobby"]))
        item = msg("#lobby", 1, "x" * 100)
        for _ in range(10_000):
            session.receive(conn, history("#lobby", [item] * 10, more=True))
        self.assertLessEqual(conn.parts.open_items, conn.parts.max_parts * 10)
        lines = texts(session.receive(conn, history("#lobby", [], complete=True)))
        self.assertEqual(lines[-1], "-- end of history: some messages before these were missed --")

    def test_users_flood_bounded(self) -> None:
        session = ClientSession("alice")
        conn = session.connect()
        session.receive(conn, welcome2(["#lobby"]))
        for i in range(1000):
            session.receive(conn, {"type": "users", "users": [f"u{i}_{j}" for j in range(100)], "more": True})
        self.assertLessEqual(conn.parts.open_items, conn.parts.max_items)
        lines = texts(session.receive(conn, {"type": "users", "users": []}))
        self.assertIn("the list was cut", lines[-1])


class HostileServerTests(V2Session):
    """Nothing a server sends reaches the terminal unsanitised, the status line included."""

    def test_bad_room_names_not_followed(self) -> None:
        self.session = ClientSession("alice")
        conn = self.session.connect()
        self.session.receive(conn, welcome2(["#ok", "#\x1b[2J", "no-hash", 5]))
        self.assertEqual(self.session.rooms.names(), ["#ok"])
        lines = self.show(conn, room("#a\u202eb", ["alice"]))
        self.assertEqual(lines, ["! #a\\u202eb is not followed (too many rooms, or not a room name)"])

    def test_status_sanitised(self) -> None:
        from chatsvc.client.layout import status_row
        from chatsvc.client.view import Status

        status = Status(server="h\x1b]0;x\x07", name="al\x1bice", rooms=(("#a", 0),), active="#a")
        text = "".join(t for t, _ in status_row(status, 0.0))
        self.assertNotIn("\x1b", text)
        self.assertIn("al\\x1bice", text)

    def test_completion_skips_bad_names(self) -> None:
        from chatsvc.client.editor import LineEditor

        editor = LineEditor()
        editor.insert("b")
        self.assertEqual(editor.complete(["b\x1b[2Job", "bob"]), ["bob"])
        editor.insert("\u202e\x9b")
        self.assertEqual(editor.text, "bob: ")
