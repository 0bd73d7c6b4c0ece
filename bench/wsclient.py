"""
WebSocket clients for the load generator (L{bench.loadgen}): the chat over
C{twistd chat --web}'s C{/ws} (PROTOCOL.md 7.1), spoken with a minimal
RFC 6455 writer and reader of our own, no library in the hot path:

  - the upgrade is one fixed HTTP request, checked for C{101};
  - a client frame is C{FIN+binary}, the mask bit and a zero masking key (a
    valid key, so the payload goes out as it is: the generator spends no
    CPU on masking, the server still unmasks as for any key);
  - a server frame (never masked) is parsed from its 2, 4 or 10-byte header.

Two dialects: C{chat-ws} (plaintext, each message one binary message) and
C{chat-ws-enc} (Noise records, one per binary message). A plaintext
receiver is counted on the raw bytes like a TCP one (a WebSocket header
cannot hold the 64-byte marker); an encrypted one parses frames and
decrypts each record (L{ws_records}).
"""

from __future__ import annotations

import struct
from typing import Any, Dict, List, Optional, Tuple

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
_ZERO_MASK = b"\x00\x00\x00\x00"
_pack_h = struct.Struct(">H").pack
_pack_q = struct.Struct(">Q").pack


def ws_frame(body: bytes) -> bytes:
    """One client binary message (masked with the zero key)."""
    n = len(body)
    if n < 126:
        head = bytes((0x82, 0x80 | n))
    elif n < 65536:
        head = b"\x82\xfe" + _pack_h(n)
    else:
        head = b"\x82\xff" + _pack_q(n)
    return head + _ZERO_MASK + body


def parse_frames(data: bytes) -> Tuple[List[Tuple[int, bytes]], bytes]:
    """Server frames in C{data}: ([(opcode, payload)], the incomplete rest)."""
    out = []
    pos = 0
    end = len(data)
    while end - pos >= 2:
        b1 = data[pos + 1]
        n = b1 & 0x7F
        head = 2
        if n == 126:
            if end - pos < 4:
                break
            n = int.from_bytes(data[pos + 2:pos + 4], "big")
            head = 4
        elif n == 127:
            if end - pos < 10:
                break
            n = int.from_bytes(data[pos + 2:pos + 10], "big")
            head = 10
        if end - pos < head + n:
            break
        out.append((data[pos] & 0x0F, bytes(data[pos + head:pos + head + n])))
        pos += head + n
    return out, bytes(data[pos:])


def _upgraded(c: Any, data: bytes) -> Optional[bytes]:
    """Collect the 101 response; return the bytes after it once complete."""
    c.reg += data
    if b"\r\n\r\n" not in c.reg:
        return None
    head, _, rest = c.reg.partition(b"\r\n\r\n")
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        from .loadgen import LoadError

        raise LoadError(f"{c.name}: upgrade refused: {head[:200]!r}")
    c.reg = b""
    c.stage = 1
    return rest


class ChatWsDialect:
    """chatsvc plaintext over the WebSocket."""

    echo = True

    def __init__(self, opts: Dict[str, Any]) -> None:
        from .loadgen import ChatDialect

        self.chat = ChatDialect(opts)

    def start(self, c: Any, setup_only: bool) -> bytes:
        return UPGRADE

    def registration(self, c: Any, data: bytes, setup_only: bool) -> tuple:
        if c.stage == 0:
            rest = _upgraded(c, data)
            if rest is None:
                return False, b""
            hello = self.chat.hello(c)[4:]
            done = bool(rest) and self.chat._welcome(c, rest)
            return done, ws_frame(hello)
        return self.chat._welcome(c, data), b""

    def messages(self, sender: int, k: int) -> bytes:
        from .loadgen import _stamp_texts

        return b"".join(ws_frame(b'{"type":"say","text":"' + text + b'"}')
                        for text in _stamp_texts(sender, k, self.chat.pad))

    def wrap(self, c: Any, plain: bytes) -> bytes:
        return plain


class ChatWsEncDialect:
    """chatsvc's Noise records over the WebSocket, one record per binary message."""

    echo = True

    def __init__(self, opts: Dict[str, Any]) -> None:
        from .loadgen import EncChatDialect

        self.enc = EncChatDialect(opts)

    def start(self, c: Any, setup_only: bool) -> bytes:
        c.rbuf = self.enc.start(c, setup_only)  # message 1: sent once upgraded
        return UPGRADE

    def registration(self, c: Any, data: bytes, setup_only: bool) -> tuple:
        out = b""
        if c.stage == 0:
            data = _upgraded(c, data)
            if data is None:
                return False, b""
            out, c.rbuf = self._records_out(c.rbuf), b""
        frames, c.pbuf = parse_frames(c.pbuf + data)
        # back into the 4-byte framing the sans-IO record layer reads
        framed = b"".join(struct.pack(">I", len(body)) + body for op, body in frames if op == 2)
        done, reply = self.enc.registration(c, framed, setup_only) if framed else (False, b"")
        return done, out + self._records_out(reply)

    @staticmethod
    def _records_out(framed: bytes) -> bytes:
        """The record layer's 4-byte framed records, as WebSocket messages."""
        out = []
        pos = 0
        while pos < len(framed):
            n = int.from_bytes(framed[pos:pos + 4], "big")
            out.append(ws_frame(framed[pos + 4:pos + 4 + n]))
            pos += 4 + n
        return b"".join(out)

    def messages(self, sender: int, k: int) -> bytes:
        return self.enc.messages(sender, k)  # the inner stream: 4-byte frames

    def wrap(self, c: Any, plain: bytes) -> bytes:
        return self._records_out(c.session.send(plain))


DIALECTS = {"chat-ws": ChatWsDialect, "chat-ws-enc": ChatWsEncDialect}
BASE_KIND = {"chat-ws": "chat", "chat-ws-enc": "chat-enc"}
"""The dialect of the TCP clients of a mixed run."""


def inline_state(c: Any) -> bytes:
    """What an encrypted WebSocket receiver holds when it starts decrypting inline."""
    rest, c.pbuf = c.pbuf, b""
    return rest


def ws_records(gen: Any, c: Any, data: bytes, pack_nonce: Any, mark: bytes) -> None:
    """
    Decrypt and count the records in C{data} (C{c.rbuf} already prepended):
    the WebSocket twin of C{LoadGen._records}.
    """
    whole = c.role not in (0, 1)  # trackers and probes read the text
    plains: List[bytes] = []
    view = memoryview(data)
    end = len(data)
    pos = 0
    decrypt = c.decrypt
    nonce = c.nonce
    count = 0
    lt = c.lt
    last = None
    while end - pos >= 2:
        n = data[pos + 1] & 0x7F
        head = 2
        if n == 126:
            if end - pos < 4:
                break
            n = (data[pos + 2] << 8) | data[pos + 3]
            head = 4
        elif n == 127:
            if end - pos < 10:
                break
            n = int.from_bytes(data[pos + 2:pos + 10], "big")
            head = 10
        stop = pos + head + n
        if stop > end:
            break
        if data[pos] & 0x0F == 2 and data[pos + head] == 2:
            plain = decrypt(pack_nonce(nonce), view[pos + head + 1:stop], b"")
            nonce += 1
            if whole:
                plains.append(plain)
            elif plain:
                count += plain.count(mark)
                if lt and plain[0] == 83:
                    count += 1
                lt = plain[-1] == 60
                last = plain
        pos = stop
    c.nonce = nonce
    c.rbuf = data[pos:] if pos < end else b""
    if whole:
        text = b"".join(plains)
        if text:
            gen._account(c, text, len(text))
        return
    c.lt = lt
    c.count += count
    if last is not None:
        c.last = last[-600:]
