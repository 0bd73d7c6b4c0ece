# -*- test-case-name: tests.test_message_items -*-
"""
Tests for the item bound of L{chatsvc.wire.messages} (docs/protocol.md 4.6
and 8.1): at most L{MAX_ITEMS} elements and members in a message's arrays
and objects, counted before parsing.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.wire.errors import RemoteProtocolError
from chatsvc.wire.messages import MAX_ITEMS, count_items, decode, too_many_items


def _items(value: object) -> int:
    """The elements and members of C{value}'s lists and dicts, walked."""
    if isinstance(value, list):
        return len(value) + sum(_items(item) for item in value)
    if isinstance(value, dict):
        return len(value) + sum(_items(item) for item in value.values())
    return 0


class ItemBoundTests(SynchronousTestCase):
    def assertBadJson(self, body: bytes) -> RemoteProtocolError:
        e = self.assertRaises(RemoteProtocolError, decode, body)
        self.assertEqual((e.code, e.fatal), ("bad-json", False))
        return e

    def test_limit(self) -> None:
        """1,024 items in all decode; one more is C{bad-json}."""
        self.assertEqual(MAX_ITEMS, 1024)
        ok = json.dumps({"type": "x", "a": [0] * 1022}).encode()
        self.assertEqual(len(decode(ok)["a"]), 1022)
        e = self.assertBadJson(json.dumps({"type": "x", "a": [0] * 1023}).encode())
        self.assertIn("elements and members", e.text)

    def test_members_count(self) -> None:
        members = {f"k{i}": 0 for i in range(1023)}
        self.assertEqual(len(decode(json.dumps(dict(members, type="x")).encode())), 1024)
        members["k1023"] = 0
        self.assertBadJson(json.dumps(dict(members, type="x")).encode())

    def test_nested_count(self) -> None:
        """Items of nested containers count, the containers themselves too."""
        body = {"type": "x", "a": [[0] * 500, {"b": [0] * 519}]}
        self.assertEqual(_items(body), 1024)
        self.assertEqual(len(decode(json.dumps(body).encode())), 2)
        body["a"][1]["c"] = 0
        self.assertBadJson(json.dumps(body).encode())

    def test_small_int_flood(self) -> None:
        """Finding 3's worst body: 64 KiB of one-digit integers, refused unparsed."""
        body = b'{"type":"ping","token":[' + b"1," * 32750 + b"1]}"
        self.assertGreater(len(body), 65000)
        self.assertBadJson(body)

    def test_commas_in_strings_do_not_count(self) -> None:
        text = "a, b, " * 2000
        body = json.dumps({"type": "say", "text": text, "q": '\\",\\\\"' * 100}).encode()
        self.assertEqual(decode(body)["text"], text)
        self.assertEqual(count_items(body.decode()), 3)

    def test_a_full_hello(self) -> None:
        """The largest legitimate message is far below the bound."""
        rooms = [f"#room{i}" for i in range(20)]
        hello = {"type": "hello", "name": "n", "rooms": rooms, "since": dict.fromkeys(rooms, 9),
                 "epoch": "e", "resume": "r"}
        self.assertEqual(count_items(json.dumps(hello)), 46)
        self.assertEqual(decode(json.dumps(hello).encode())["rooms"], rooms)

    def test_few_commas_is_one_count(self) -> None:
        """Under 960 commas in all, nothing more is looked at."""
        self.assertFalse(too_many_items("," * 960 + "not json"))
        self.assertTrue(too_many_items("[" + "0," * 1024 + "0]"))

    def test_many_strings(self) -> None:
        """
        Quotes decide when there are many (two strings an item at most):
        exactly at the bound, string keys and values, 4,096 quotes.
        """
        members = {f"k{i}": "v" for i in range(1023)}
        text = json.dumps(dict(members, type="x"))
        self.assertEqual(text.count('"'), 4096)
        self.assertEqual(len(decode(text.encode())), 1024)
        members["k1023"] = "v"
        self.assertBadJson(json.dumps(dict(members, type="x")).encode())
        self.assertBadJson(json.dumps({"type": "x", "a": [""] * 2100}).encode())

    def test_escaped_quotes_are_not_strings(self) -> None:
        body = json.dumps({"type": "say", "text": '",' * 3000, "b": "\\" * 3000}).encode()
        self.assertEqual(decode(body)["text"], '",' * 3000)

    def test_empty_containers(self) -> None:
        self.assertEqual(count_items('{"type":"x","a":[[],{},[ ],{\n}]}'), 6)
        self.assertEqual(count_items('{"a":["x"],"b":{"":""}}'), 4)

    @settings(deadline=None, max_examples=300)
    @given(st.recursive(
        st.none() | st.integers() | st.text(alphabet=',[]{}"\\\\ a\u00e9', max_size=8),
        lambda children: st.lists(children, max_size=6) | st.dictionaries(
            st.text(alphabet=',[{"\\\\ ', max_size=3), children, max_size=6),
        max_leaves=60,
    ), st.sampled_from([None, 1, "\t"]), st.booleans())
    def test_count_exact(self, value, indent, ascii_only: bool) -> None:
        """The count is exact for any JSON, in any layout, whatever its strings hold."""
        message = {"type": "x", "v": value}
        text = json.dumps(message, indent=indent, ensure_ascii=ascii_only)
        self.assertEqual(count_items(text), _items(message))
