"""
Tests for L{chatsvc.wire.framing} and L{chatsvc.wire.errors}.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.wire.errors import ChatsvcError, LocalProtocolError, RemoteProtocolError
from chatsvc.wire.framing import HEADER_SIZE, MAX_FRAME, FrameDecoder, encode_frame


class EncodeFrameTests(SynchronousTestCase):
    def test_prefix(self) -> None:
        self.assertEqual(encode_frame(b"abc"), b"\x00\x00\x00\x03abc")

    def test_largest(self) -> None:
        body = b"x" * MAX_FRAME
        self.assertEqual(encode_frame(body), b"\x00\x01\x00\x00" + body)

    def test_empty_refused(self) -> None:
        self.assertRaises(ValueError, encode_frame, b"")

    def test_too_long_refused(self) -> None:
        self.assertRaises(ValueError, encode_frame, b"x" * (MAX_FRAME + 1))

    def test_header_size(self) -> None:
        self.assertEqual(HEADER_SIZE, 4)
        self.assertEqual(MAX_FRAME, 65536)


class FrameDecoderTests(SynchronousTestCase):
    def test_one_frame(self) -> None:
        d = FrameDecoder()
        d.receive_data(encode_frame(b"hello"))
        self.assertEqual(list(d.frames()), [b"hello"])
        self.assertEqual(d.buffered, b"")

    def test_several_frames_in_one_chunk(self) -> None:
        d = FrameDecoder()
        d.receive_data(encode_frame(b"a") + encode_frame(b"bc") + encode_frame(b"def"))
        self.assertEqual(list(d.frames()), [b"a", b"bc", b"def"])

    def test_one_byte_at_a_time(self) -> None:
        data = encode_frame(b"first") + encode_frame(b"second")
        d = FrameDecoder()
        out = []
        for i in range(len(data)):
            d.receive_data(data[i : i + 1])
            out.extend(d.frames())
        self.assertEqual(out, [b"first", b"second"])

    def test_incomplete(self) -> None:
        d = FrameDecoder()
        d.receive_data(b"\x00\x00\x00\x05ab")
        self.assertIsNone(d.next_frame())
        self.assertEqual(d.buffered, b"\x00\x00\x00\x05ab")
        self.assertEqual(d.peek_header(), 5)
        d.receive_data(b"cde")
        self.assertEqual(d.next_frame(), b"abcde")
        self.assertIsNone(d.next_frame())

    def test_peek_header_needs_four_bytes(self) -> None:
        d = FrameDecoder()
        d.receive_data(b"\x00\x00\x01")
        self.assertIsNone(d.peek_header())
        d.receive_data(b"\x00")
        self.assertEqual(d.peek_header(), 256)

    def test_buffered_after_frames(self) -> None:
        d = FrameDecoder()
        d.receive_data(encode_frame(b"x") + b"\x00\x00")
        self.assertEqual(list(d.frames()), [b"x"])
        self.assertEqual(d.buffered, b"\x00\x00")

    def test_empty_frame(self) -> None:
        d = FrameDecoder()
        d.receive_data(b"\x00\x00\x00\x00")
        e = self.assertRaises(RemoteProtocolError, d.next_frame)
        self.assertEqual((e.code, e.fatal), ("bad-frame", True))

    def test_max_frame_accepted(self) -> None:
        d = FrameDecoder()
        d.receive_data(struct.pack(">I", MAX_FRAME) + b"y" * MAX_FRAME)
        self.assertEqual(d.next_frame(), b"y" * MAX_FRAME)

    def test_too_long_refused_after_header(self) -> None:
        """A 4 GB frame is refused after its four header bytes."""
        d = FrameDecoder()
        d.receive_data(b"\xff\xff\xff\xff")
        e = self.assertRaises(RemoteProtocolError, d.next_frame)
        self.assertEqual((e.code, e.fatal), ("frame-too-long", True))

    def test_one_over_limit(self) -> None:
        d = FrameDecoder()
        d.receive_data(struct.pack(">I", MAX_FRAME + 1))
        e = self.assertRaises(RemoteProtocolError, d.next_frame)
        self.assertEqual(e.code, "frame-too-long")

    def test_custom_limit(self) -> None:
        d = FrameDecoder(max_length=3)
        d.receive_data(encode_frame(b"abc") + encode_frame(b"abcd"))
        self.assertEqual(d.next_frame(), b"abc")
        self.assertRaises(RemoteProtocolError, d.next_frame)

    @settings(deadline=None, max_examples=200)
    @given(
        st.lists(st.binary(min_size=1, max_size=300), max_size=8),
        st.lists(st.integers(min_value=0, max_value=3000), max_size=10),
    )
    def test_any_split(self, bodies, cuts) -> None:
        """However the stream is cut, the same bodies come out, in order."""
        data = b"".join(encode_frame(b) for b in bodies)
        points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
        d = FrameDecoder()
        out = []
        for start, end in zip(points, points[1:]):
            d.receive_data(data[start:end])
            out.extend(d.frames())
        self.assertEqual(out, bodies)
        self.assertEqual(d.buffered, b"")


class ErrorTests(SynchronousTestCase):
    def test_remote(self) -> None:
        e = RemoteProtocolError("bad-json", "nope", fatal=False)
        self.assertEqual((e.code, e.text, e.fatal), ("bad-json", "nope", False))
        self.assertEqual(str(e), "bad-json: nope")
        self.assertEqual(repr(e), "RemoteProtocolError('bad-json', 'nope', fatal=False)")
        self.assertIsInstance(e, ChatsvcError)

    def test_text_defaults_to_code(self) -> None:
        e = RemoteProtocolError("timeout")
        self.assertEqual(e.text, "timeout")
        self.assertTrue(e.fatal)

    def test_families_are_distinct(self) -> None:
        self.assertFalse(issubclass(LocalProtocolError, RemoteProtocolError))
        self.assertTrue(issubclass(LocalProtocolError, ChatsvcError))
