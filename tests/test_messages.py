"""
Tests for L{chatsvc.wire.messages}: encoding, the total decoder, the text
rules of PROTOCOL.md 4.4, timestamps.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.wire.errors import RemoteProtocolError
from chatsvc.wire.messages import (
    decode_from_server,
    CLIENT_TYPES,
    DEFAULT_MAX_TEXT,
    MAX_CONTAINERS,
    MAX_DEPTH,
    MAX_PING_TOKEN,
    check_text,
    count_containers,
    decode,
    encode,
    error,
    ping_error,
    text_error,
    timestamp,
)


class EncodeTests(SynchronousTestCase):
    def test_compact(self) -> None:
        self.assertEqual(encode({"type": "say", "text": "hi"}), b'{"type":"say","text":"hi"}')

    def test_non_ascii_as_utf8(self) -> None:
        body = encode({"type": "say", "text": "h\u00e9llo \u4e16\U0001f600"})
        self.assertEqual(body, '{"type":"say","text":"h\u00e9llo \u4e16\U0001f600"}'.encode("utf-8"))
        self.assertNotIn(b"\\u", body)

    def test_nan_refused(self) -> None:
        self.assertRaises(ValueError, encode, {"type": "x", "n": float("nan")})

    def test_round_trip(self) -> None:
        message = {"type": "msg", "to": "b\u00f6b", "text": "a\tb\nc \"q\" \\", "n": [1, 2.5, None, True]}
        self.assertEqual(decode(encode(message)), message)


class DecodeTests(SynchronousTestCase):
    def assertBadJson(self, body: bytes) -> RemoteProtocolError:
        e = self.assertRaises(RemoteProtocolError, decode, body)
        self.assertEqual(e.code, "bad-json")
        self.assertFalse(e.fatal)
        return e

    def test_good(self) -> None:
        self.assertEqual(decode(b'{"type":"say","text":"hi","extra":[1]}'),
                         {"type": "say", "text": "hi", "extra": [1]})

    def test_escapes(self) -> None:
        """Ordinary escapes and escaped surrogate pairs are fine."""
        self.assertEqual(decode(b'{"type":"say","text":"\\u00e9\\ud83d\\ude00\\n"}')["text"],
                         "\u00e9\U0001f600\n")

    def test_utf8(self) -> None:
        self.assertEqual(decode('{"type":"say","text":"\u00e9"}'.encode("utf-8"))["text"], "\u00e9")

    def test_invalid_utf8(self) -> None:
        self.assertBadJson(b'{"type":"say","text":"\xff"}')

    def test_encoded_surrogate(self) -> None:
        """A surrogate encoded as UTF-8 bytes is not UTF-8."""
        self.assertBadJson(b'{"type":"say","text":"\xed\xa0\x80"}')

    def test_latin1(self) -> None:
        self.assertBadJson('{"type":"say","text":"\u00e9"}'.encode("latin-1"))

    def test_not_json(self) -> None:
        for body in (b"{", b'{"type":"say"', b"{'type':'say'}", b'{"type":"say"} x',
                     b'\xef\xbb\xbf{"type":"say"}', b'{"type":"say","t":"a\x01"}'):
            self.assertBadJson(body)

    def test_not_an_object(self) -> None:
        for body in (b"[]", b'["type"]', b'"type"', b"1", b"null", b"true"):
            self.assertBadJson(body)

    def test_no_string_type(self) -> None:
        for body in (b"{}", b'{"type":null}', b'{"type":1}', b'{"type":["say"]}',
                     b'{"type":{"a":1}}', b'{"Type":"say"}'):
            self.assertBadJson(body)

    def test_nan_and_infinity(self) -> None:
        for literal in (b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400"):
            self.assertBadJson(b'{"type":"ping","token":' + literal + b"}")

    def test_big_float_allowed(self) -> None:
        self.assertEqual(decode(b'{"type":"ping","token":1e308}')["token"], 1e308)

    def test_lone_surrogate(self) -> None:
        for body in (b'{"type":"say","text":"\\ud800"}',
                     b'{"type":"say","text":"a\\udc00b"}',
                     b'{"type":"say","text":"\\ude00\\ud83d"}',
                     b'{"type":"say","\\ud800":1}',
                     b'{"type":"say","x":[{"y":["\\ud800"]}]}',
                     b'{"type":"\\ud800"}'):
            self.assertBadJson(body)

    def test_deep_nesting(self) -> None:
        for depth in (2000, 100000):
            self.assertBadJson(b'{"type":"x","a":' + b"[" * depth + b"]" * depth + b"}")
            self.assertBadJson(b'{"type":"x","a":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}")

    def test_deep_nesting_with_escape(self) -> None:
        """
        Nesting the parser accepts, plus a C{\\u} escape, does not exhaust
        the stack in the surrogate check: it is C{bad-json} past L{MAX_DEPTH}.
        """
        for depth in range(MAX_DEPTH, 1100, 50):
            self.assertBadJson(
                b'{"type":"x","a":' + b"[" * depth + b'"\\u00e9"' + b"]" * depth + b"}")

    def test_depth_limit(self) -> None:
        """
        The message object is depth 1; L{MAX_DEPTH} levels decode, one more
        is C{bad-json}, with or without escapes, for arrays and objects.
        """
        inner = MAX_DEPTH - 1
        for value in (b"1", b'"\\u00e9"'):
            ok = b'{"type":"x","a":' + b"[" * inner + value + b"]" * inner + b"}"
            self.assertEqual(decode(ok)["type"], "x")
            deep = b'{"type":"x","a":' + b"[" * (inner + 1) + value + b"]" * (inner + 1) + b"}"
            e = self.assertBadJson(deep)
            self.assertIn("arrays and objects", e.text)
        ok = b'{"type":"x","a":' + b'{"a":' * inner + b"1" + b"}" * inner + b"}"
        self.assertEqual(decode(ok)["type"], "x")
        self.assertBadJson(b'{"type":"x","a":' + b'{"a":' * (inner + 1) + b"1" + b"}" * (inner + 1) + b"}")

    def test_decoded_always_encodes(self) -> None:
        """
        The deepest message that decodes can be encoded again from a deep
        stack (a C{pong} echoes a C{ping}'s token).
        """
        inner = MAX_DEPTH - 1
        message = decode(b'{"type":"ping","token":' + b"[" * inner + b"]" * inner + b"}")

        def nest(n: int) -> bytes:
            return nest(n - 1) if n else encode({"type": "pong", "token": message["token"]})

        self.assertEqual(len(nest(500)), len('{"type":"pong","token":}') + 2 * inner)

    def test_many_brackets_in_strings(self) -> None:
        """Brackets inside strings do not count as nesting."""
        text = "[{" * 500
        self.assertEqual(decode(encode({"type": "say", "text": text}))["text"], text)

    def test_deep_surrogate(self) -> None:
        depth = 300
        self.assertBadJson(b'{"type":"x","a":' + b"[" * depth + b'"\\ud800"' + b"]" * depth + b"}")

    def test_containers_side_by_side(self) -> None:
        """
        Finding 3: L{MAX_CONTAINERS} arrays and objects in all, the message
        object included, decode; one more is C{bad-json}, nested or not.
        """
        self.assertEqual(MAX_CONTAINERS, 64)
        for empty in (b"[]", b"{}"):
            ok = b'{"type":"x","a":[' + b",".join([empty] * 62) + b"]}"
            self.assertEqual(len(decode(ok)["a"]), 62)
            self.assertBadJson(b'{"type":"x","a":[' + b",".join([empty] * 63) + b"]}")
        mixed = b'{"type":"x","a":[[{}],{"b":[]}],' + b",".join(
            b'"k%d":[]' % i for i in range(59)) + b"}"
        self.assertBadJson(mixed)
        self.assertEqual(len(decode(mixed.replace(b'"k58":[]', b'"k58":0'))), 61)

    def test_container_flood_body(self) -> None:
        """A 64 KiB body of C{[],[],...} is refused before it is parsed."""
        body = b'{"type":"ping","token":[' + b",".join([b"[]"] * 21800) + b"]}"
        self.assertGreater(len(body), 65000)
        e = self.assertBadJson(body)
        self.assertIn("arrays and objects", e.text)

    def test_count_containers(self) -> None:
        """Brackets inside strings, escaped quotes included, do not count."""
        self.assertEqual(count_containers('{"a":[]}'), 2)
        text = '{"t":"' + '[{\\\\\\"' * 100 + '","u":[{}]}'
        self.assertEqual(count_containers(text), 3)
        self.assertEqual(json.loads(text)["u"], [{}])
        # An unterminated string (not JSON anyway) ends the count, in linear time.
        self.assertGreater(count_containers('{"a":[' * 40 + '"\\"' * 30000), MAX_CONTAINERS)
        self.assertEqual(count_containers('[' * 65 + '"' + '[\\' * 30000), 65)

    @settings(deadline=None, max_examples=300)
    @given(st.recursive(
        st.none() | st.integers() | st.text(alphabet='[]{}"\\\\ab\u00e9', max_size=8),
        lambda children: st.lists(children) | st.dictionaries(
            st.text(alphabet='[{"\\\\', max_size=3), children),
        max_leaves=90,
    ), st.booleans())
    def test_count_containers_exact(self, value, ascii_only: bool) -> None:
        """The count is exact for any JSON, brackets and escapes in strings included."""
        def walk(item) -> int:
            if isinstance(item, list):
                return 1 + sum(walk(member) for member in item)
            if isinstance(item, dict):
                return 1 + sum(walk(member) for member in item.values())
            return 0

        text = json.dumps([value, "[" * 70], ensure_ascii=ascii_only)
        expected = walk(value) + 1
        if expected > MAX_CONTAINERS:  # it may stop counting there
            self.assertGreater(count_containers(text), MAX_CONTAINERS)
        else:
            self.assertEqual(count_containers(text), expected)

    def test_count_containers_few_brackets_many_strings(self) -> None:
        """Both ways of counting agree, brackets in strings or not."""
        for inside in ("[" * 70, "[{" * 40):
            for outside in (0, 10, 64, 65, 100):
                text = json.dumps({"type": "x", "s": [""] * 5000 + [inside], "a": [[]] * outside})
                expected = 1 + 1 + 1 + outside
                result = count_containers(text)
                if expected > MAX_CONTAINERS:
                    self.assertGreater(result, MAX_CONTAINERS)
                else:
                    self.assertEqual(result, expected)

    def test_ping_token_size_is_cheap(self) -> None:
        """
        A token of 30,000 values is found over the limit without being
        encoded: the answer is the same as for the encoded size.
        """
        for token in ([1] * 30000, {str(i): i for i in range(3000)}, [[1] * 30000],
                      ["a" * 60000], [float("inf")], {"k": float("nan")}):
            error = ping_error({"type": "ping", "token": token})
            self.assertEqual((error.code, error.fatal), ("bad-json", False))

    @settings(deadline=None, max_examples=300)
    @given(st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=300),
        lambda children: st.lists(children, max_size=200) | st.dictionaries(st.text(max_size=5),
                                                                            children, max_size=50),
        max_leaves=300,
    ))
    def test_ping_token_limit_exact(self, token) -> None:
        """C{ping_error} says over exactly when the compact UTF-8 JSON is over 256 bytes."""
        over = len(encode(token)) > MAX_PING_TOKEN
        self.assertEqual(ping_error({"type": "ping", "token": token}) is not None, over)

    def test_ping_token_limit(self) -> None:
        """
        Finding 3: a C{ping} token over 256 bytes of compact UTF-8 JSON is
        C{bad-json}; 256 is fine; no token is fine.
        """
        self.assertEqual(MAX_PING_TOKEN, 256)
        self.assertIsNone(ping_error({"type": "ping"}))
        for token, size in (("a" * 254, 256), ("\u00e9" * 127, 256), ([1] * 128, 257), ([1] * 126 + [11], 256),
                            ({"k": "a" * 248}, 256), ("a" * 255, 257), ("\u00e9" * 128, 258)):
            self.assertEqual(len(encode(token)), size)
            error = ping_error({"type": "ping", "token": token})
            if size <= 256:
                self.assertIsNone(error, token)
            else:
                self.assertEqual((error.code, error.fatal), ("bad-json", False))

    def test_float_range(self) -> None:
        """
        Numbers too large for a float are C{bad-json} however they are
        spelled; large finite ones and underflows decode.
        """
        for literal in (b"1e309", b"1E+999", b"1e0000999", b"-1e400", b"1" + b"0" * 309 + b".0",
                        b"1" + b"0" * 250 + b"e99", b"[1.5,2e500]"):
            self.assertBadJson(b'{"type":"ping","token":' + literal + b"}")
        for literal, value in ((b"1e308", 1e308), (b"1e-999", 0.0), (b"1" * 250 + b".5", float("1" * 250)),
                               (b"1.5e+99", 1.5e99), (b"12345678901234567890", 12345678901234567890),
                               (b"1" * 100, int("1" * 100)), (b"-" + b"9" * 100, -int("9" * 100))):
            message = decode(b'{"type":"ping","token":' + literal + b"}")
            self.assertEqual(message["token"], value)

    def test_huge_integer(self) -> None:
        """Integers of more than 100 digits are bad-json (each costs quadratic time)."""
        for digits in (101, 4299, 5000):
            self.assertBadJson(b'{"type":"ping","token":' + b"1" * digits + b"}")
            self.assertBadJson(b'{"type":"ping","token":-' + b"1" * digits + b"}")
        # fifteen 4,299-digit integers once took 1.75 ms to decode
        body = b'{"type":"ping","token":[' + b",".join([b"7" * 4299] * 15) + b"]}"
        self.assertBadJson(body)

    def test_unknown_types_decode(self) -> None:
        """Known or not, any string type decodes: the protocol decides."""
        self.assertEqual(decode(b'{"type":"dance"}'), {"type": "dance"})

    @settings(deadline=None, max_examples=300)
    @given(st.binary(max_size=200))
    def test_total_on_bytes(self, body: bytes) -> None:
        try:
            message = decode(body)
        except RemoteProtocolError as e:
            self.assertEqual(e.code, "bad-json")
        else:
            self.assertIsInstance(message["type"], str)

    @settings(deadline=None, max_examples=300)
    @given(st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=20,
    ))
    def test_total_on_json(self, value) -> None:
        body = json.dumps({"type": "ping", "token": value}).encode("utf-8")
        try:
            message = decode(body)
        except RemoteProtocolError as e:
            self.assertEqual(e.code, "bad-json")
        else:
            self.assertEqual(message["type"], "ping")
            encode(message)  # whatever decodes can be sent back


class ServerMessageTests(SynchronousTestCase):
    """
    The bounds on containers and items hold for what clients send; a
    client parses the server's long lists (regression: a client refused a
    C{welcome} naming 537 users and 484 plaintext ones as C{bad-json}).
    """

    def test_long_lists_from_the_server(self) -> None:
        users = [f"user{i}" for i in range(1000)]
        bodies = [
            encode({"type": "welcome", "name": "me", "users": users, "plaintext": users[:900]}),
            encode({"type": "rooms", "rooms": [{"room": f"#r{i}", "count": 1, "topic": ""} for i in range(200)]}),
            encode({"type": "history", "room": "#lobby", "complete": True, "messages": [
                {"type": "message", "room": "#lobby", "from": "a", "text": "x", "ts": "t", "seq": i}
                for i in range(100)]}),
        ]
        for body in bodies:
            self.assertRaises(RemoteProtocolError, decode, body)  # from a client: bounded
            self.assertEqual(decode_from_server(body), json.loads(body))

    def test_other_rules_still_hold(self) -> None:
        for body in (b'{"type":"x","a":NaN}', b"[1]", b'{"type":"x","t":"\\ud800"}', b"\xff",
                     b'{"type":"x","t":' + b"[" * 100000 + b"]" * 100000 + b"}",
                     b'{"type":"x","n":' + b"1" * 101 + b"}"):
            with self.assertRaises(RemoteProtocolError) as caught:
                decode_from_server(body)
            self.assertEqual(caught.exception.code, "bad-json")


class TextTests(SynchronousTestCase):
    def assertTextError(self, text: object, code: str, max_bytes: int = DEFAULT_MAX_TEXT) -> None:
        e = text_error(text, max_bytes)
        self.assertIsNotNone(e, f"{text!r} accepted")
        self.assertEqual((e.code, e.fatal), (code, False))
        raised = self.assertRaises(RemoteProtocolError, check_text, text, max_bytes)
        self.assertEqual(raised.code, code)

    def assertGood(self, text: str, max_bytes: int = DEFAULT_MAX_TEXT) -> None:
        self.assertIsNone(text_error(text, max_bytes))
        self.assertEqual(check_text(text, max_bytes), text)

    def test_default_limit(self) -> None:
        self.assertEqual(DEFAULT_MAX_TEXT, 4096)

    def test_good(self) -> None:
        for text in ("hi", "a\tb", "line\nline", "\u00e9\u4e16\U0001f600", " ", "\u200f\u200e",
                     "\u2029", "\u202f", "\u2065", "\u206a", "\u00a0"):
            self.assertGood(text)

    def test_missing_or_not_a_string(self) -> None:
        for text in (None, 1, 1.5, True, ["a"], {"a": "b"}, b"hi"):
            self.assertTextError(text, "bad-text")

    def test_empty(self) -> None:
        self.assertTextError("", "bad-text")

    def test_control_characters(self) -> None:
        for code in list(range(0x00, 0x20)) + list(range(0x7F, 0xA0)):
            ch = chr(code)
            if ch in "\t\n":
                continue
            self.assertTextError("a" + ch + "b", "bad-text")

    def test_carriage_return(self) -> None:
        self.assertTextError("line\r\n", "bad-text")
        self.assertTextError("\r", "bad-text")

    def test_escape_sequence(self) -> None:
        self.assertTextError("\x1b[2J", "bad-text")

    def test_bidi(self) -> None:
        for code in list(range(0x202A, 0x202F)) + list(range(0x2066, 0x206A)):
            self.assertTextError("abc" + chr(code) + "def", "bad-text")

    def test_length_in_utf8_bytes(self) -> None:
        self.assertGood("a" * 4096)
        self.assertTextError("a" * 4097, "too-long")
        self.assertGood("\u00e9" * 2048)  # 4096 bytes
        self.assertTextError("\u00e9" * 2048 + "a", "too-long")
        self.assertGood("\U0001f600" * 1024)
        self.assertTextError("\U0001f600" * 1025, "too-long")

    def test_custom_limit(self) -> None:
        self.assertGood("abcd", max_bytes=4)
        self.assertTextError("abcde", "too-long", max_bytes=5 - 1)
        self.assertTextError("\u00e9\u00e9\u00e9", "too-long", max_bytes=5)


# Each rule of 4.4 on text characters, one test each (a rule broken alone
# fails its own test): the character, where it sits in a text.
REFUSED_CHARACTERS = {
    "nul": "\x00", "bell": "\x07", "backspace": "\x08", "vertical_tab": "\x0b",
    "form_feed": "\x0c", "carriage_return": "\r", "escape": "\x1b", "unit_separator": "\x1f",
    "delete": "\x7f", "c1_padding": "\x80", "c1_csi": "\x9b", "c1_last": "\x9f",
    "lre": "\u202a", "rle": "\u202b", "pdf": "\u202c", "lro": "\u202d", "rlo": "\u202e",
    "lri": "\u2066", "rli": "\u2067", "fsi": "\u2068", "pdi": "\u2069",
}
ALLOWED_CHARACTERS = {
    "tab": "\t", "newline": "\n", "nbsp": "\xa0", "paragraph_separator": "\u2029",
    "narrow_nbsp": "\u202f", "lrm": "\u200e", "rlm": "\u200f", "before_isolates": "\u2065",
    "after_isolates": "\u206a", "space": " ",
}


def _refusal_test(ch: str):
    def test(self: "TextTests") -> None:
        for text in (ch, "a" + ch, ch + "b", "a" + ch + "b"):
            self.assertTextError(text, "bad-text")
    return test


def _allowed_test(ch: str):
    def test(self: "TextTests") -> None:
        self.assertGood("a" + ch + "b")
    return test


for _name, _ch in REFUSED_CHARACTERS.items():
    setattr(TextTests, f"test_refuses_{_name}", _refusal_test(_ch))
for _name, _ch in ALLOWED_CHARACTERS.items():
    setattr(TextTests, f"test_allows_{_name}", _allowed_test(_ch))


class MiscTests(SynchronousTestCase):
    def test_client_types(self) -> None:
        self.assertEqual(CLIENT_TYPES, {"hello", "say", "msg", "nick", "join", "part", "topic",
                                        "rooms", "who", "ping", "pong", "quit"})

    def test_the_server_handles_every_client_type(self) -> None:
        from chatsvc.server.requests import HANDLERS

        self.assertEqual(set(HANDLERS), CLIENT_TYPES)

    def test_timestamp(self) -> None:
        self.assertEqual(timestamp(1795315800.123), "2026-11-22T02:50:00.123Z")
        self.assertEqual(timestamp(0), "1970-01-01T00:00:00.000Z")
        self.assertEqual(timestamp(1795315800.9999), "2026-11-22T02:50:00.999Z")

    @settings(max_examples=300)
    @given(st.dictionaries(st.text(), st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20)))
    def test_encode_is_compact_json(self, message: dict) -> None:
        """The encoder made once writes what C{json.dumps} would, every time."""
        expected = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        self.assertEqual(encode(message), expected.encode("utf-8", "surrogatepass"))

    def test_encode_refuses_what_is_not_json(self) -> None:
        for bad in ({"x": float("nan")}, {"x": float("inf")}, {"x": object()}, {("k",): 1}):
            with self.assertRaises((ValueError, TypeError)):
                encode(bad)

    def test_timestamp_reused_within_a_millisecond_only(self) -> None:
        """The string made once per millisecond is right for every time in it, and after it."""
        self.assertEqual(timestamp(1795315800.1231), "2026-11-22T02:50:00.123Z")
        self.assertEqual(timestamp(1795315800.1239), "2026-11-22T02:50:00.123Z")
        self.assertEqual(timestamp(1795315800.124), "2026-11-22T02:50:00.124Z")
        self.assertEqual(timestamp(1795315801.124), "2026-11-22T02:50:01.124Z")
        self.assertEqual(timestamp(1795315800.1235), "2026-11-22T02:50:00.123Z")  # clock went back

    @settings(max_examples=500)
    @given(st.lists(st.floats(min_value=0, max_value=4102444800), min_size=1, max_size=20))
    def test_timestamp_as_datetime_formats_it(self, times: list) -> None:
        from datetime import datetime, timezone

        for seconds in times:
            stamp = datetime.fromtimestamp(seconds, tz=timezone.utc)
            expected = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
            self.assertEqual(timestamp(seconds), expected)

    def test_error(self) -> None:
        self.assertEqual(error("slow", "read!", True),
                         {"type": "error", "code": "slow", "text": "read!", "fatal": True})
