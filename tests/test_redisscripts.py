"""
The pure half of the Redis backend (L{chatsvc.chat.redis.keys},
L{chatsvc.chat.redis.scripts}, L{chatsvc.chat.redis.room_scripts},
L{chatsvc.chat.redis.entries}, L{chatsvc.chat.redis.local}): keys and their
Cluster slots, Lua texts, entry decoding, holders, the bodies the scripts
complete, the answers split over frames. No Redis here.
"""

from __future__ import annotations

import hashlib
import json
import re

from twisted.trial.unittest import SynchronousTestCase

from chatsvc.chat.common import History
from chatsvc.chat.redis.entries import (
    GUEST_DIGITS,
    MAX_NAME_BYTES,
    Holder,
    entry_number,
    history_answer,
    history_bodies,
    history_items,
    message_head,
    name_candidates,
    names_from_hash,
    parse_entry,
    parse_gone,
    parse_member,
    parse_xread,
    private_parts,
    room_bodies,
    rooms_bodies,
    users_bodies,
)
from chatsvc.chat.redis.keys import (
    ChatKeys,
    RoomKeys,
    check_chat_name,
    hash_slot,
    parse_room,
)
from chatsvc.chat.redis.local import ChatState, LocalMember, Told
from chatsvc.chat.redis.scripts import SCRIPTS, script_sha
from chatsvc.wire.errors import RemoteProtocolError
from chatsvc.wire.framing import MAX_FRAME
from chatsvc.wire.messages import encode
from chatsvc.wire.names import MAX_NAME, look_alike_key, name_key

TS = "2026-11-22T02:50:00.123Z"


class KeyTests(SynchronousTestCase):
    def test_chat_keys_share_one_slot(self) -> None:
        keys = ChatKeys("team")
        self.assertEqual(keys.all[:2], ["chatsvc:{team}:meta", "chatsvc:{team}:names"])
        self.assertEqual(len(keys.all), 10)
        self.assertEqual(keys.all[9], "chatsvc:{team}:alike")
        self.assertEqual(len({hash_slot(k) for k in keys.all}), 1)

    def test_room_keys_share_one_slot_of_their_own(self) -> None:
        """Each room's keys are in one slot; rooms spread over slots."""
        lobby = RoomKeys("team", "#lobby")
        self.assertEqual(lobby.all[0], "chatsvc:{team#lobby}:meta")
        self.assertEqual(len({hash_slot(k) for k in lobby.all}), 1)
        slots = {hash_slot(RoomKeys("team", f"#r{n}").events) for n in range(100)}
        self.assertGreater(len(slots), 90)
        self.assertNotEqual(RoomKeys("a", "#x").all, RoomKeys("b", "#x").all)

    def test_slot_vectors(self) -> None:
        """The same slot as C{CLUSTER KEYSLOT} (values from the Redis docs and tests)."""
        self.assertEqual(hash_slot("foo"), 12182)
        self.assertEqual(hash_slot("somekey"), 11058)
        self.assertEqual(hash_slot("{foo}bar"), 12182)
        self.assertEqual(hash_slot("foo{}{bar}"), hash_slot("foo{}{bar}"))
        self.assertEqual(hash_slot("{}foo"), hash_slot("{}foo"))

    def test_chat_names(self) -> None:
        for good in ("chat", "Team-1", "a.b_c", "x" * 64):
            self.assertEqual(check_chat_name(good), good)
        for bad in ("", "a b", "{x}", "x" * 65, "é", "a:b", "a\n", "a#b"):
            self.assertRaises(ValueError, check_chat_name, bad)

    def test_room_names(self) -> None:
        self.assertEqual(parse_room("#Lobby"), ("#Lobby", "#lobby"))
        self.assertEqual(parse_room("#Cafe\u0301"), ("#Caf\u00e9", "#caf\u00e9"))
        self.assertEqual(parse_room("#" + "x" * 32)[1], "#" + "x" * 32)
        for bad in ("lobby", "#", "##a", "#a b", "#" + "x" * 33, None, 3, "#a{b}", "#a|b", "#a,b"):
            self.assertRaises(RemoteProtocolError, parse_room, bad)


class ScriptTests(SynchronousTestCase):
    def test_scopes_and_keys(self) -> None:
        """Chat scripts take the chat's 10 keys, room scripts the room's 4: never both."""
        self.assertEqual({n for n, (scope, _) in SCRIPTS.items() if scope == "room"},
                         {"join", "say", "part", "topic", "rename_in", "who", "rejoin", "catch_up",
                          "operator_topic", "clear"})
        for name, (scope, text) in SCRIPTS.items():
            used = {int(k) for k in re.findall(r"KEYS\[(\d+)\]", text)}
            self.assertEqual(used, set(range(1, 11 if scope == "chat" else 5)), name)
            self.assertNotIn("redis.call('KEYS'", text)
            self.assertNotIn("SCAN', 0, 'MATCH", text, name)

    def test_sha(self) -> None:
        text = SCRIPTS["say"][1]
        self.assertEqual(script_sha(text), hashlib.sha1(text.encode()).hexdigest())
        self.assertEqual(len({script_sha(t) for _, t in SCRIPTS.values()}), len(SCRIPTS))

    def test_writes_go_through_add_event(self) -> None:
        """Only C{add_event} appends to an event stream, so ids stay n-0 in order."""
        for name, (_, text) in SCRIPTS.items():
            self.assertEqual(text.count("'XADD', events"), 1, name)


class StoredValueTests(SynchronousTestCase):
    def test_holder(self) -> None:
        holder = Holder("ab12cd34", "ab12cd34-7", "tok_-en", True, "Ünïcode.名")
        self.assertEqual(Holder.decode(holder.encode().encode("utf-8")), holder)
        self.assertEqual(Holder.decode(holder.encode()), holder)

    def test_names_from_hash(self) -> None:
        flat = [b"alice", b"s|s-1|t|0|Alice", b"bob", b"s|s-2|t|1|bob"]
        self.assertEqual(names_from_hash(flat), {"alice": ("Alice", False), "bob": ("bob", True)})
        self.assertEqual(names_from_hash([]), {})

    def test_members_and_gone(self) -> None:
        self.assertEqual(parse_member("srv|1|Zoë".encode()), ("Zoë", True))
        self.assertEqual(parse_member("srv|0|a"), ("a", False))
        self.assertEqual(parse_gone([b"s-1", b"srv|#a,#b|alice", b"s-2", b"srv||bob"]),
                         [("s-1", "srv", ["#a", "#b"], "alice"), ("s-2", "srv", [], "bob")])


class EntryTests(SynchronousTestCase):
    def test_parse_xread_of_several_streams(self) -> None:
        reply = [[b"chatsvc:{c}:events", [
            [b"7-0", [b"k", b"p", b"s", b"3", b"b", b"{}", b"v", b"srv", b"i", b"srv-1"]]]],
            [b"chatsvc:{c#a}:events", [
                [b"8-0", [b"k", b"j", b"pr", b"0", b"c", b"1001"]],
                [b"9-0", [b"k", b"m", b"s", b"4", b"b", b'{"type":"message"}']]]]]
        (chat, [private]), (room, [joined, message]) = parse_xread(reply)
        self.assertEqual((chat, room), ("chatsvc:{c}:events", "chatsvc:{c#a}:events"))
        self.assertEqual((private.n, private.kind, private.seq, private.get(b"v")),
                         (7, "p", 3, "srv"))
        self.assertEqual((joined.presence, joined.get(b"c"), joined.get(b"x")), (False, "1001", None))
        self.assertEqual((message.body, message.presence), (b'{"type":"message"}', True))
        self.assertEqual(parse_xread(None), [])
        self.assertEqual(parse_xread([]), [])

    def test_numbers(self) -> None:
        self.assertEqual(entry_number(b"42-0"), 42)
        self.assertEqual(entry_number("1-5"), 1)
        self.assertEqual(parse_entry("12-0", [b"k", b"x"]).kind, "x")
        self.assertEqual(history_items([[b"5-0", [b"b", b"x"]], [b"3-0", [b"b", b"y"]]]),
                         [(5, b"x"), (3, b"y")])


class BodyTests(SynchronousTestCase):
    """The scripts finish bodies that decode as the v2 messages of PROTOCOL.md 4.2."""

    def test_message(self) -> None:
        for text in ("hi", 'quote " and \\ and \n', "ünï 名 \U0001f600", "</script>"):
            for action in (False, True):
                head = message_head("#Tea", "alice", text, TS, action)
                expected = {"type": "message", "room": "#Tea", "from": "alice", "text": text,
                            "ts": TS, "seq": 123}
                if action:
                    expected["action"] = True
                self.assertEqual(json.loads(head + b"123}"), expected)
                self.assertNotIn(b"\\u", head)

    def test_private(self) -> None:
        part1, part2 = private_parts("Ünï", 'a "b"', TS, True)
        body = part1 + b'"bob"' + part2 + b"9}"
        self.assertEqual(json.loads(body), {"type": "private", "from": "Ünï", "to": "bob",
                                            "text": 'a "b"', "ts": TS, "seq": 9, "action": True})

    def test_names_need_no_escaping(self) -> None:
        """What the Lua builds between quotes is valid JSON for any valid name or room."""
        for name in ("a", "Zoë-1.x_", "名前", "x" * MAX_NAME, "#lobby"):
            self.assertEqual(json.dumps(name, ensure_ascii=False), f'"{name}"')
        self.assertGreaterEqual(MAX_NAME_BYTES, len(("\U0001f600" * MAX_NAME).encode()))


class AnswerTests(SynchronousTestCase):
    def test_room_and_users_list_plaintext_per_frame(self) -> None:
        users = [(f"user{n:04d}" + "x" * 20, n % 3 == 0) for n in range(3000)]
        bodies = room_bodies("#big", "t", 3000, users, False)
        self.assertGreater(len(bodies), 1)
        got = [json.loads(b) for b in bodies]
        for body, message in zip(bodies, got):
            self.assertLessEqual(len(body), MAX_FRAME)
            self.assertEqual((message["room"], message["count"], message["presence"]),
                             ("#big", 3000, False))
            self.assertTrue(set(message["plaintext"]) <= set(message["users"]))
        self.assertEqual([m.get("more", False) for m in got], [True] * (len(got) - 1) + [False])
        self.assertEqual(sum((m["users"] for m in got), []), [u for u, _ in users])
        self.assertEqual(sum((m["plaintext"] for m in got), []), [u for u, p in users if p])
        [who] = users_bodies(None, [("a", False), ("b", True)])
        self.assertEqual(json.loads(who), {"type": "users", "users": ["a", "b"], "plaintext": ["b"]})
        [who] = users_bodies("#x", [])
        self.assertEqual(json.loads(who), {"type": "users", "room": "#x", "users": [], "plaintext": []})

    def test_history(self) -> None:
        one = encode({"type": "message", "room": "#a", "text": "x" * 30000, "seq": 1})
        bodies = history_bodies("#a", [one, one, one], True)
        self.assertEqual(len(bodies), 2)
        self.assertEqual(sum(len(json.loads(b)["messages"]) for b in bodies), 3)
        for body in bodies:
            self.assertLessEqual(len(body), MAX_FRAME)
            message = json.loads(body)
            self.assertEqual((message["room"], message["complete"]), ("#a", True))

    def test_rooms_largest_first(self) -> None:
        flat = [b"#a", b"2|#A|", b"#b", b"7|#b|pipes | in topics", b"#c", b"2|#c|x"]
        [body] = rooms_bodies(flat)
        self.assertEqual(json.loads(body)["rooms"], [
            {"room": "#b", "count": 7, "topic": "pipes | in topics"},
            {"room": "#A", "count": 2, "topic": ""}, {"room": "#c", "count": 2, "topic": "x"}])


class CandidateTests(SynchronousTestCase):
    def test_suffixes(self) -> None:
        self.assertEqual(name_candidates("Bob", 1, 3),
                         [("Bob", "bob", "bob"), ("Bob_2", "bob_2", "bob_2"),
                          ("Bob_3", "bob_3", "bob_3")])
        for name, key, alike in name_candidates("x" * MAX_NAME, 1, 12):
            self.assertLessEqual(len(name), MAX_NAME)
            self.assertEqual(key, name_key(name))
            self.assertEqual(alike, look_alike_key(name))

    def test_look_alike_keys(self) -> None:
        """The third key is the look-alike key (v2): a Cyrillic a looks like a Latin one."""
        [(name, key, alike)] = name_candidates("\u0430lice", 1, 1)
        self.assertNotEqual(key, name_key("alice"))
        self.assertEqual(alike, "alice")
        self.assertEqual(name_candidates("PayPaI", 2, 1)[0][1:], ("paypai_2", "paypal_2"))

    def test_guest_digits(self) -> None:
        """
        What the register script builds for C{guest_N} from L{GUEST_DIGITS}
        is C{guest_N}'s look-alike key (0 looks like o, 1 like l).
        """
        self.assertEqual(GUEST_DIGITS, "ol23456789")
        for n in (1, 10, 101, 2048, 9_876_543_210):
            built = "guest_" + "".join(GUEST_DIGITS[int(d)] for d in str(n))
            self.assertEqual(built, look_alike_key(f"guest_{n}"), n)


class HistoryAnswerTests(SynchronousTestCase):
    """L{history_answer} gives what L{History.since} gives for the same messages."""

    def check(self, published: int, size: int, since) -> None:
        history = History(size)
        for seq in range(1, published + 1):
            history.append(seq, b"%d" % seq)
        expected = history.since(since, published)
        if since is not None and since <= published:
            held = [s for s in range(published, 0, -1) if s > since]
        else:
            held = list(range(published, 0, -1))
        held = [s for s in held if s > published - size][: size + 1] if size > 0 else []
        items = [(s, b"%d" % s) for s in held]
        got = history_answer(items, since, published, history.dropped_upto, size)
        self.assertEqual(got, expected, (published, size, since))

    def test_same_as_single_process(self) -> None:
        for published in (0, 1, 3, 5, 9):
            for size in (0, 1, 3, 5):
                for since in (None, 0, 1, 2, 4, 5, 8, 9, 10, 100):
                    self.check(published, size, since)

    def test_longer_history_elsewhere(self) -> None:
        items = [(s, b"%d" % s) for s in (9, 8, 7, 6)]
        self.assertEqual(history_answer(items, None, 9, 0, 3), ([b"7", b"8", b"9"], False))
        self.assertEqual(history_answer(items[:3], 6, 9, 0, 3), ([b"7", b"8", b"9"], True))

    def test_another_epoch(self) -> None:
        """A client of another epoch gets the newest messages, incomplete."""
        items = [(s, b"%d" % s) for s in (3, 2, 1)]
        self.assertEqual(history_answer(items, None, 3, 0, 5, reset=True),
                         ([b"1", b"2", b"3"], False))


class LocalStateTests(SynchronousTestCase):
    def test_told_once(self) -> None:
        told = Told(most=2)
        self.assertTrue(told.first("e1", "m"))
        self.assertFalse(told.first("e1", "m"))
        self.assertTrue(told.first("e1", "n"))
        told.first("e2", "m")
        told.first("e3", "m")  # e1 forgotten: bounded
        self.assertTrue(told.first("e1", "m"))

    def test_rooms_emptied_by_a_drop(self) -> None:
        state = ChatState()

        class M:
            name, session_id = "a", "s-1"

        member = M()
        info = LocalMember(member, "s-1", "a", "t", False, "h", send=lambda f: None)
        state.add(info)
        for key in ("#a", "#b"):
            state.enter(info, state.room(key, key))
        state.room("#b", "#b").joining = 1
        dropped, emptied = state.drop(member)
        self.assertIs(dropped, info)
        self.assertEqual([r.key for r in emptied], ["#a"])
        self.assertEqual(list(state.rooms), ["#b"])
        self.assertEqual(state.sessions, {})
