"""
The pure half of the Redis room (L{chatsvc.redisscripts}): keys, Lua texts,
entry decoding, holders, the bodies the scripts complete, name candidates and
the history answer. No Redis here.
"""

from __future__ import annotations

import hashlib
import json

from twisted.trial.unittest import SynchronousTestCase

from chatsvc.redisscripts import (
    KINDS,
    MAX_NAME_BYTES,
    SCRIPTS,
    ChatKeys,
    Holder,
    check_chat_name,
    entry_number,
    history_answer,
    history_items,
    message_head,
    name_candidates,
    names_from_hash,
    parse_entry,
    parse_xread,
    private_parts,
    script_sha,
)
from chatsvc.chat.common import History
from chatsvc.wire.messages import encode
from chatsvc.wire.names import MAX_NAME, name_key


class KeyTests(SynchronousTestCase):
    def test_one_hash_tag_per_chat(self) -> None:
        """Every key of a chat shares the hash tag C{{chat}}: one Cluster slot."""
        keys = ChatKeys("lobby")
        self.assertEqual(keys.all, [
            "chatsvc:{lobby}:meta", "chatsvc:{lobby}:names", "chatsvc:{lobby}:tokens",
            "chatsvc:{lobby}:servers", "chatsvc:{lobby}:events", "chatsvc:{lobby}:history",
        ])
        self.assertNotEqual(ChatKeys("a").all, ChatKeys("b").all)

    def test_chat_names(self) -> None:
        for good in ("chat", "Team-1", "a.b_c", "x" * 64):
            self.assertEqual(check_chat_name(good), good)
        for bad in ("", "a b", "{x}", "x" * 65, "é", "a:b", "a\n"):
            self.assertRaises(ValueError, check_chat_name, bad)


class ScriptTests(SynchronousTestCase):
    def test_every_script_takes_the_six_keys(self) -> None:
        self.assertEqual(set(SCRIPTS), {"say", "private", "register", "rename", "leave",
                                        "beat", "reconcile", "sync"})
        for name, text in SCRIPTS.items():
            self.assertIn("KEYS[6]", text, name)
            self.assertNotIn("KEYS[7]", text, name)

    def test_sha(self) -> None:
        """C{EVALSHA} names a script by the SHA1 of its text, as C{SCRIPT LOAD} does."""
        text = SCRIPTS["say"]
        self.assertEqual(script_sha(text), hashlib.sha1(text.encode()).hexdigest())
        self.assertEqual(len({script_sha(t) for t in SCRIPTS.values()}), len(SCRIPTS))

    def test_writes_go_through_add_event(self) -> None:
        """Only C{add_event} appends to the event stream, so ids stay n-0 in order."""
        for name, text in SCRIPTS.items():
            self.assertEqual(text.count("'XADD', events"), 1, name)


class HolderTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        holder = Holder("ab12cd34", "ab12cd34-7", "tok_-en", "Ünïcode.名")
        self.assertEqual(Holder.decode(holder.encode().encode("utf-8")), holder)
        self.assertEqual(Holder.decode(holder.encode()), holder)

    def test_names_from_hash(self) -> None:
        flat = [b"alice", b"s|s-1|t|Alice", "bob".encode(), b"s|s-2|t|bob"]
        self.assertEqual(names_from_hash(flat), {"alice": "Alice", "bob": "bob"})
        self.assertEqual(names_from_hash([]), {})


class EntryTests(SynchronousTestCase):
    def test_parse_xread(self) -> None:
        reply = [[b"chatsvc:{c}:events", [
            [b"7-0", [b"k", b"m", b"s", b"3", b"b", b'{"type":"message"}']],
            [b"8-0", [b"k", b"p", b"s", b"4", b"b", b"{}", b"v", b"srv", b"i", b"srv-1"]],
            [b"9-0", [b"k", b"?"]],
        ]]]
        first, second, third = parse_xread(reply)
        self.assertEqual((first.n, first.kind, first.seq, first.body),
                         (7, "message", 3, b'{"type":"message"}'))
        self.assertEqual((second.kind, second.get(b"v"), second.get(b"i"), second.get(b"x")),
                         ("private", "srv", "srv-1", None))
        self.assertEqual(third.kind, "unknown")
        self.assertEqual(parse_xread(None), [])
        self.assertEqual(parse_xread([]), [])

    def test_kinds(self) -> None:
        self.assertEqual(set(KINDS.values()),
                         {"message", "private", "joined", "left", "renamed", "resumed"})
        entry = parse_entry("12-0", [b"k", b"j", b"key", b"al", b"name", b"Al"])
        self.assertEqual((entry.n, entry.kind, entry.get(b"name")), (12, "joined", "Al"))

    def test_numbers(self) -> None:
        self.assertEqual(entry_number(b"42-0"), 42)
        self.assertEqual(entry_number("1-5"), 1)
        self.assertEqual(history_items([[b"5-0", [b"b", b"x"]], [b"3-0", [b"b", b"y"]]]),
                         [(5, b"x"), (3, b"y")])


class BodyTests(SynchronousTestCase):
    """The scripts finish bodies byte for byte as the single-process room encodes them."""

    def test_message(self) -> None:
        for text in ("hi", 'quote " and \\ and \n', "ünï 名 \U0001f600", "</script>"):
            head = message_head("alice", text, "2026-11-22T02:50:00.123Z")
            expected = encode({"type": "message", "from": "alice", "text": text,
                               "ts": "2026-11-22T02:50:00.123Z", "seq": 123})
            self.assertEqual(head + b"123}", expected)
            json.loads(head + b"1}")

    def test_private(self) -> None:
        part1, part2 = private_parts("Ünï", 'a "b"', "2026-11-22T02:50:00.123Z")
        # The script puts the recipient's name between quotes: names never
        # need escaping.
        body = part1 + b'"bob"' + part2 + b"9}"
        self.assertEqual(body, encode({"type": "private", "from": "Ünï", "to": "bob",
                                       "text": 'a "b"', "ts": "2026-11-22T02:50:00.123Z",
                                       "seq": 9}))

    def test_names_need_no_escaping(self) -> None:
        """What the Lua builds between quotes is valid JSON for any valid name."""
        for name in ("a", "Zoë-1.x_", "名前", "x" * MAX_NAME):
            self.assertEqual(json.dumps(name, ensure_ascii=False), f'"{name}"')
        self.assertGreaterEqual(MAX_NAME_BYTES, len(("\U0001f600" * MAX_NAME).encode()))


class CandidateTests(SynchronousTestCase):
    def test_suffixes(self) -> None:
        self.assertEqual(name_candidates("Bob", 1, 3),
                         [("Bob", "bob"), ("Bob_2", "bob_2"), ("Bob_3", "bob_3")])
        self.assertEqual(name_candidates("Bob", 9, 2), [("Bob_9", "bob_9"), ("Bob_10", "bob_10")])

    def test_long_names_stay_short(self) -> None:
        for name, key in name_candidates("x" * MAX_NAME, 1, 12):
            self.assertLessEqual(len(name), MAX_NAME)
            self.assertEqual(key, name_key(name))


class HistoryAnswerTests(SynchronousTestCase):
    """L{history_answer} gives what L{History.since} gives for the same messages."""

    def check(self, published: int, size: int, since) -> None:
        history = History(size)
        for seq in range(1, published + 1):
            history.append(seq, b"%d" % seq)
        expected = history.since(since, published)
        # What the register script reads: newest first, size + 1 at most.
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
        """Another server kept more: this one shows its own size, incomplete."""
        items = [(s, b"%d" % s) for s in (9, 8, 7, 6)]
        self.assertEqual(history_answer(items, None, 9, 0, 3), ([b"7", b"8", b"9"], False))
        self.assertEqual(history_answer(items, 5, 9, 0, 3), ([b"7", b"8", b"9"], False))
        self.assertEqual(history_answer(items[:3], 6, 9, 0, 3), ([b"7", b"8", b"9"], True))
