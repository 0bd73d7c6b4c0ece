# -*- test-case-name: tests.test_encryption -*-
"""
Telling the two modes of a server connection apart (PROTOCOL.md section 2),
and remembering handshakes seen, without I/O::

    mode = first_frame_mode(head)   # None until the first body byte is in
    guard = ReplayGuard(16384)
    guard.first_use(ephemeral)      # False for a replayed message 1
"""

from __future__ import annotations

from typing import Dict, Optional

from .errors import RemoteProtocolError
from .framing import HEADER, HEADER_SIZE, MAX_FRAME

PLAINTEXT = "plaintext"
HANDSHAKE = "handshake"

_PLAINTEXT_BYTE = 0x7B  # "{"
_HANDSHAKE_BYTE = 0x01


def first_frame_mode(head: bytes) -> Optional[str]:
    """
    The mode the first frame of a connection asks for: L{PLAINTEXT} or
    L{HANDSHAKE}, or C{None} while its length and first body byte are not
    all in C{head} (the bytes received so far).

    @raise RemoteProtocolError: C{bad-frame} (an empty frame, or a first
        byte that is neither), C{frame-too-long}.
    """
    if len(head) < HEADER_SIZE:
        return None
    (length,) = HEADER.unpack_from(head)
    if length == 0:
        raise RemoteProtocolError("bad-frame", "empty frame")
    if length > MAX_FRAME:
        raise RemoteProtocolError(
            "frame-too-long", f"frame of {length} bytes is over the limit of {MAX_FRAME}")
    if len(head) == HEADER_SIZE:
        return None
    first = head[HEADER_SIZE]
    if first == _PLAINTEXT_BYTE:
        return PLAINTEXT
    if first == _HANDSHAKE_BYTE:
        return HANDSHAKE
    raise RemoteProtocolError(
        "bad-frame", "a first frame starts with '{' (plaintext) or 0x01 (handshake)")


class ReplayGuard:
    """
    The initiators' ephemeral keys of the last C{size} handshakes: NNpsk0's
    message 1 carries no freshness, so a responder refuses one it has seen.

    It keeps each key's 64-bit C{hash()} (SipHash, keyed per process), not
    the key: half the memory for the 16,384 a server remembers. The same key
    always hashes the same, so a replay is always refused; a fresh key is
    refused only if its hash equals one of the last C{size} (a chance of
    2**-50 per handshake, and no one outside the process can aim for it).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._seen: Dict[int, None] = {}

    def first_use(self, ephemeral: bytes) -> bool:
        """Remember C{ephemeral}; C{False} if it was seen before."""
        seen = self._seen
        key = hash(ephemeral)
        if key in seen:
            return False
        seen[key] = None
        if len(seen) > self.size:
            del seen[next(iter(seen))]
        return True
