# -*- test-case-name: tests.test_framing -*-
"""
Length-prefixed frames (PROTOCOL.md section 1), without I/O.

A frame is a 4-byte unsigned big-endian length C{N} and C{N} bytes of body,
the format of Twisted's C{Int32StringReceiver}::

    decoder = FrameDecoder()
    decoder.receive_data(chunk)          # only buffers
    for body in decoder.frames():        # complete bodies, in order
        ...

L{FrameDecoder} is used where Twisted's receiver cannot be: by the encrypting
wrapper (records) and by clients and tests that parse the inner stream.
"""

from __future__ import annotations

import struct
from typing import Iterator, Optional

from .errors import RemoteProtocolError

MAX_FRAME = 65536
"""The largest frame body allowed in either direction."""

HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size

_pack_header = HEADER.pack


def encode_frame(body: bytes) -> bytes:
    """
    Return C{body} with its length prefix.

    @raise ValueError: if C{body} is empty or longer than L{MAX_FRAME}; that
        is our bug, never the peer's.
    """
    if not body or len(body) > MAX_FRAME:
        raise ValueError(f"frame body of {len(body)} bytes cannot be sent")
    return _pack_header(len(body)) + body


class FrameDecoder:
    """
    Split a byte stream into frame bodies.

    Errors are raised once the offending length prefix is complete, so a
    peer announcing a 4 GB frame is refused after four bytes, not after
    sending them.
    """

    __slots__ = ("max_length", "_buffer", "_offset")

    def __init__(self, max_length: int = MAX_FRAME) -> None:
        self.max_length = max_length
        self._buffer = bytearray()
        self._offset = 0

    def receive_data(self, data: bytes) -> None:
        """Buffer C{data}; call L{next_frame} or L{frames} to parse it."""
        if self._offset:
            del self._buffer[: self._offset]
            self._offset = 0
        self._buffer += data

    def next_frame(self) -> Optional[bytes]:
        """
        Return the next complete frame body, or C{None} if more data is needed.

        @raise RemoteProtocolError: C{bad-frame} for an empty frame,
            C{frame-too-long} for a frame over C{max_length}.
        """
        buf = self._buffer
        start = self._offset
        if len(buf) - start < HEADER_SIZE:
            return None
        (length,) = HEADER.unpack_from(buf, start)
        if length == 0:
            raise RemoteProtocolError("bad-frame", "empty frame")
        if length > self.max_length:
            raise RemoteProtocolError(
                "frame-too-long",
                f"frame of {length} bytes is over the limit of {self.max_length}",
            )
        end = start + HEADER_SIZE + length
        if len(buf) < end:
            return None
        body = bytes(buf[start + HEADER_SIZE : end])
        if end == len(buf):
            # All consumed: drop the buffer rather than keep its capacity
            # (up to a whole frame) for as long as the connection idles.
            self._buffer = bytearray()
            self._offset = 0
        else:
            self._offset = end
        return body

    def frames(self) -> Iterator[bytes]:
        """Yield every complete frame body buffered so far."""
        while True:
            body = self.next_frame()
            if body is None:
                return
            yield body

    def peek_header(self) -> Optional[int]:
        """Return the length prefix of the next frame, if all four bytes are here."""
        if len(self._buffer) - self._offset < HEADER_SIZE:
            return None
        return HEADER.unpack_from(self._buffer, self._offset)[0]

    @property
    def buffered(self) -> bytes:
        """The bytes received but not yet returned as frames."""
        return bytes(self._buffer[self._offset :])
