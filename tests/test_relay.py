"""Tests for L{chatsvc.relay}: describing wire traffic, and relaying it."""

from __future__ import annotations

import json
from typing import List

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.relay import Relay, WebSocketDescriber, WireDescriber
from chatsvc.wire.framing import encode_frame
from chatsvc.wire.records import RecordSession


class WireDescriberTests(SynchronousTestCase):
    def test_plaintext_frames_byte_by_byte(self) -> None:
        describer = WireDescriber("c->s")
        wire = encode_frame(json.dumps({"type": "say", "text": "hi\x1b[2J"}).encode())
        lines: List[str] = []
        for b in wire:
            lines += describer.feed(bytes([b]))
        self.assertEqual(len(lines), 1)
        self.assertTrue(lines[0].startswith("c->s plaintext"))
        self.assertIn('"text": "hi', lines[0])
        self.assertNotIn("\x1b", lines[0], "control characters are escaped")

    def test_records_show_ciphertext_only(self) -> None:
        describer = WireDescriber("c->s", width=4)
        session = RecordSession(bytes(32), initiator=True)
        [line] = describer.feed(session.initiate())
        self.assertRegex(line, r"^c->s record handshake +48 B  [0-9a-f]{8}\.\.\.$")

    def test_garbage_stops_framing_without_error(self) -> None:
        describer = WireDescriber("x")
        [line] = describer.feed(b"\xff\xff\xff\xff")
        self.assertIn("frame-too-long", line)
        self.assertEqual(describer.feed(b"more"), [])


class _FakeEndpoint:
    def __init__(self) -> None:
        self.factories: list = []

    def connect(self, factory):
        from twisted.internet.defer import succeed

        self.factories.append(factory)
        return succeed(None)


class RelayTests(SynchronousTestCase):
    def test_forwards_both_ways_and_describes(self) -> None:
        lines: List[str] = []
        endpoint = _FakeEndpoint()
        relay = Relay(endpoint, lines.append)
        down = relay.buildProtocol(None)
        down_transport = StringTransport()
        down.makeConnection(down_transport)
        hello = encode_frame(b'{"type":"hello"}')
        down.dataReceived(hello)  # before the upstream is connected: held
        up = endpoint.factories[0].buildProtocol(None)
        up_transport = StringTransport()
        up.makeConnection(up_transport)
        self.assertEqual(up_transport.value(), hello)
        welcome = encode_frame(b'{"type":"welcome"}')
        up.dataReceived(welcome)
        self.assertEqual(down_transport.value(), welcome)
        self.assertTrue(any("client->server plaintext" in l for l in lines))
        self.assertTrue(any("server->client plaintext" in l for l in lines))
        up.connectionLost(None)
        self.assertTrue(down_transport.disconnecting)


class WebSocketDescriberTests(SynchronousTestCase):
    """The relay in front of a --web endpoint (chatsvc.relay --websocket)."""

    def test_upgrade_then_masked_frames(self) -> None:
        describer = WebSocketDescriber("c->s")
        head = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        body = b'{"type":"hello","name":"dana"}'
        mask = b"\x01\x02\x03\x04"
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(body))
        frame = bytes((0x82, 0x80 | len(body))) + mask + masked
        data = head + frame + bytes((0x89, 0x80)) + mask
        lines = []
        for i in range(len(data)):
            lines += describer.feed(data[i:i + 1])
        self.assertEqual(lines, [
            "c->s http GET /ws HTTP/1.1",
            'c->s plaintext    30 B  {"type":"hello","name":"dana"}',
            "c->s websocket ping 0 B",
        ])

    def test_server_records(self) -> None:
        describer = WebSocketDescriber("s->c", width=2)
        record = b"\x01" + b"\xab" * 48
        lines = describer.feed(b"HTTP/1.1 101 Switching Protocols\r\n\r\n" + bytes((0x82, 49)) + record)
        self.assertEqual(lines, ["s->c http HTTP/1.1 101 Switching Protocols",
                                 "s->c record handshake    48 B  abab..."])

    def test_plain_http_is_not_parsed(self) -> None:
        describer = WebSocketDescriber("s->c")
        lines = describer.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n\x82\x01hello")
        self.assertEqual(len(lines), 1)
        self.assertIn("plain HTTP", lines[0])
        self.assertEqual(describer.feed(b"\x82\x01x"), [])
