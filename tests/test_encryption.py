"""
Tests for L{chatsvc.server.encryption}: mode detection, the Noise handshake and
records around the real chat protocol, in memory (iosim and StringTransport).
"""

from __future__ import annotations

import json
from typing import Any, List, Optional

from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.server.encryption import FLUSH_AT, EncryptingFactory, EncryptingProtocol
from chatsvc.chat.memory import Room
from chatsvc.server.factory import ChatFactory, ServerConfig
from chatsvc.server.turns import end_of_turn
from chatsvc.wire.errors import RemoteProtocolError
from chatsvc.wire.framing import FrameDecoder, encode_frame
from chatsvc.wire.records import DataReceived, HandshakeComplete, RecordSession

from .helpers import v1_view

PSK = bytes(range(32))
OTHER_PSK = bytes(range(1, 33))


def frame(message: dict) -> bytes:
    return encode_frame(json.dumps(message).encode())


def decode_all(data: bytes) -> List[dict]:
    """The messages in C{data}, as a version 1 client sees them."""
    decoder = FrameDecoder()
    decoder.receive_data(data)
    return v1_view([json.loads(body) for body in decoder.frames()])


class Client(Int32StringReceiver):
    """A minimal chat client that records what it gets."""

    MAX_LENGTH = 65536

    def __init__(self, hello: Optional[dict] = None) -> None:
        self.messages: List[dict] = []
        self.lost: Optional[Failure] = None
        self.hello = hello

    def connectionMade(self) -> None:
        if self.hello is not None:
            self.send(self.hello)

    def send(self, message: dict) -> None:
        self.sendString(json.dumps(message).encode())

    def stringReceived(self, body: bytes) -> None:
        self.messages.append(json.loads(body))

    def connectionLost(self, reason: Failure) -> None:
        self.lost = reason

    def types(self) -> List[str]:
        return [m["type"] for m in v1_view(self.messages)]


class ServerTransport(StringTransport):
    """A StringTransport that records aborts and pauses, like a TCP one."""

    aborted = False
    reading_paused = False

    def abortConnection(self) -> None:
        self.aborted = True
        self.disconnecting = True

    def pauseProducing(self) -> None:
        self.reading_paused = True


class DirectTransport(ServerTransport):
    """
    A L{ServerTransport} that looks like Twisted's TCP transport to
    L{chatsvc.server.fastwrite}: what is sent at once is counted.
    """

    dataBuffer = b""
    _tempDataLen = 0
    connected = True

    def __init__(self) -> None:
        ServerTransport.__init__(self)
        self.socket = self
        self.direct = 0

    def send(self, data: bytes) -> int:
        self.direct += 1
        self.io.write(bytes(data))
        return len(data)


class Harness:
    def __init__(self, psk: Optional[bytes] = PSK, require: bool = False, **config: Any) -> None:
        self.clock = Clock()
        self.room = Room(self.clock)
        self.chat = ChatFactory(self.room, ServerConfig(**config), self.clock)
        self.server = EncryptingFactory(self.chat, psk, require_encryption=require, clock=self.clock)

    def connect_raw(self) -> tuple:
        """A server protocol on a StringTransport, for raw bytes."""
        proto = self.server.buildProtocol(None)
        transport = ServerTransport()
        proto.makeConnection(transport)
        return proto, transport

    def connect_encrypted_raw(self) -> tuple:
        """
        A server protocol on a StringTransport, its handshake done by a bare
        L{RecordSession} (returned), the transport cleared.
        """
        proto, transport = self.connect_raw()
        session = RecordSession(PSK, initiator=True)
        proto.dataReceived(session.initiate())
        session.receive_data(transport.value())
        events = list(session.events())
        if [type(e) for e in events] != [HandshakeComplete]:
            raise AssertionError(f"handshake did not complete: {events}")
        transport.clear()
        return proto, transport, session

    def registered_encrypted_raw(self, name: str) -> tuple:
        """L{connect_encrypted_raw}, then registered as C{name}: welcome and
        history read, the transport cleared."""
        proto, transport, session = self.connect_encrypted_raw()
        proto.dataReceived(session.send(frame({"type": "hello", "name": name})))
        self.clock.advance(0)
        session.receive_data(transport.value())  # welcome and history
        list(session.events())
        transport.clear()
        return proto, transport, session

    def connect(self, psk: Optional[bytes] = PSK, hello: Optional[dict] = None,
                encrypted: bool = True) -> tuple:
        """A real client wrapped in its own EncryptingProtocol, over iosim."""
        client = Client(hello)
        if encrypted:
            client_factory = EncryptingFactory(Factory.forProtocol(lambda: client), psk,
                                               initiator=True, clock=self.clock)
            client_side = lambda: client_factory.buildProtocol(None)  # noqa: E731
        else:
            client_side = lambda: client  # noqa: E731
        c, s, pump = iosim.connectedServerAndClient(
            lambda: self.server.buildProtocol(None), client_side, clock=self.clock
        )
        return client, c, s, pump


class ModeDetectionTests(SynchronousTestCase):
    def test_plaintext_passes_through_byte_by_byte(self) -> None:
        h = Harness()
        proto, transport = h.connect_raw()
        for b in frame({"type": "hello", "name": "alice"}):
            proto.dataReceived(bytes([b]))
        messages = decode_all(transport.value())
        self.assertEqual([m["type"] for m in messages], ["welcome", "history"])
        self.assertIs(messages[0]["encrypted"], False)
        self.assertFalse(proto.encrypted)

    def refused(self, data: bytes, **kwargs: Any) -> tuple:
        h = Harness(**kwargs)
        proto, transport = h.connect_raw()
        proto.dataReceived(data)
        return h, decode_all(transport.value()), transport

    def assert_fatal(self, data: bytes, code: str, **kwargs: Any) -> None:
        h, messages, transport = self.refused(data, **kwargs)
        self.assertEqual(messages, [messages[0]])
        self.assertEqual(messages[0]["type"], "error")
        self.assertEqual(messages[0]["code"], code)
        self.assertIs(messages[0]["fatal"], True)
        self.assertTrue(transport.disconnecting)
        self.assertTrue(transport.reading_paused)
        # And nothing it sends later is acted on.
        transport.clear()
        h.server.protocols and list(h.server.protocols)[0].dataReceived(frame({"type": "hello"}))
        self.assertEqual(transport.value(), b"")

    def test_encrypted_client_without_key(self) -> None:
        session = RecordSession(PSK, initiator=True)
        self.assert_fatal(session.initiate(), "encryption-not-enabled", psk=None)

    def test_plaintext_client_when_encryption_required(self) -> None:
        self.assert_fatal(frame({"type": "hello"}), "encryption-required", require=True)

    def test_unknown_first_byte(self) -> None:
        self.assert_fatal(encode_frame(b' {"type":"hello"}'), "bad-frame")

    def test_empty_first_frame(self) -> None:
        self.assert_fatal(b"\x00\x00\x00\x00", "bad-frame")

    def test_first_frame_too_long(self) -> None:
        self.assert_fatal(b"\x00\x01\x00\x01{", "frame-too-long")

    def test_handshake_of_wrong_length(self) -> None:
        self.assert_fatal(encode_frame(b"\x01" + b"\x00" * 47), "handshake-failed")

    def test_wrong_key(self) -> None:
        session = RecordSession(OTHER_PSK, initiator=True)
        self.assert_fatal(session.initiate(), "handshake-failed")

    def test_plaintext_timeout_before_handshake(self) -> None:
        h = Harness()
        proto, transport = h.connect_raw()
        proto.dataReceived(RecordSession(PSK, initiator=True).initiate()[:30])
        transport.clear()
        h.clock.advance(10)
        messages = decode_all(transport.value())  # still plaintext: no handshake done
        self.assertEqual([(m["code"], m["fatal"]) for m in messages], [("timeout", True)])

    def test_server_full_is_plaintext(self) -> None:
        h = Harness(max_clients=1)
        h.connect_raw()
        proto, transport = h.connect_raw()
        self.assertEqual(decode_all(transport.value())[0]["code"], "server-full")


class DirectWriterTests(SynchronousTestCase):
    def test_plaintext_fan_out_skips_the_wrapper(self) -> None:
        h = Harness()
        proto = h.server.buildProtocol(None)
        transport = DirectTransport()
        proto.makeConnection(transport)
        self.assertIsNone(proto.direct_writer(), "the mode is not known yet")
        proto.dataReceived(frame({"type": "hello", "name": "alice"}))
        h.clock.advance(0)
        self.assertIsNotNone(proto.direct_writer())
        self.assertEqual([m["type"] for m in decode_all(transport.value())],
                         ["welcome", "history"])
        self.assertGreater(transport.direct, 0)
        write = proto.wrappedProtocol.queue._write
        self.assertIsNot(getattr(write, "__self__", None), proto,
                         "the send queue does not write through the wrapper")
        before = transport.direct
        transport.clear()
        proto.dataReceived(frame({"type": "say", "text": "hi"}))
        h.clock.advance(0)
        self.assertEqual(decode_all(transport.value())[-1]["text"], "hi")
        self.assertEqual(transport.direct, before + 1)

    def test_not_for_encrypted_or_other_transports(self) -> None:
        h = Harness()
        proto, transport, session = h.connect_encrypted_raw()
        self.assertIsNone(proto.direct_writer())
        plain, _ = h.connect_raw()  # a StringTransport: no socket to send on
        plain.dataReceived(frame({"type": "hello", "name": "bob"}))
        self.assertIsNone(plain.direct_writer())


class EncryptedSessionTests(SynchronousTestCase):
    def test_hello_and_chat(self) -> None:
        h = Harness()
        alice, a_wrapper, _, pump_a = h.connect(hello={"type": "hello", "name": "alice"})
        bob, _, _, pump_b = h.connect(hello={"type": "hello", "name": "bob"}, encrypted=False)
        pump_a.flush()
        self.assertEqual(alice.types(), ["welcome", "history", "joined"])
        self.assertIs(alice.messages[0]["encrypted"], True)
        self.assertIs(bob.messages[0]["encrypted"], False)
        self.assertTrue(a_wrapper.encrypted)
        alice.send({"type": "say", "text": "héllo"})
        pump_a.flush()
        pump_b.flush()
        self.assertEqual(alice.messages[-1]["text"], "héllo")
        self.assertEqual(bob.messages[-1]["text"], "héllo")
        self.assertEqual(bob.messages[-1]["from"], "alice")

    def test_nothing_in_clear(self) -> None:
        """The hello, the name and the text never cross the wire in clear."""
        h = Harness()
        proto, transport, session = h.connect_encrypted_raw()
        proto.dataReceived(session.send(frame({"type": "hello", "name": "zebedee"})))
        h.clock.advance(0)
        wire = transport.value()
        self.assertNotIn(b"zebedee", wire)
        self.assertNotIn(b"welcome", wire)
        session.receive_data(wire)
        inner = b"".join(e.data for e in session.events() if isinstance(e, DataReceived))
        self.assertEqual([m["type"] for m in decode_all(inner)], ["welcome", "history"])

    def test_writes_of_one_turn_make_one_record(self) -> None:
        h = Harness()
        proto, transport, session = h.registered_encrypted_raw("a")
        for i in range(5):
            proto.wrappedProtocol.send({"type": "ping", "token": i})
        self.assertEqual(transport.value(), b"", "nothing written before the turn ends")
        h.clock.advance(0)
        wire = transport.value()
        decoder = FrameDecoder()
        decoder.receive_data(wire)
        self.assertEqual(len(list(decoder.frames())), 1)
        session.receive_data(wire)
        inner = b"".join(e.data for e in session.events() if isinstance(e, DataReceived))
        self.assertEqual([m["token"] for m in decode_all(inner)], [0, 1, 2, 3, 4])

    def test_broadcast_is_encrypted_in_the_same_pass(self) -> None:
        """
        The room's fan-out and its encryption happen in one end-of-turn
        pass (one clock step), as one record per member.
        """
        h = Harness()
        members = []
        for name in ("a", "b"):
            proto, transport, session = h.connect_encrypted_raw()
            proto.dataReceived(session.send(frame({"type": "hello", "name": name})))
            h.clock.advance(0)
            members.append((proto, transport, session))
        for _, transport, session in members:
            session.receive_data(transport.value())
            list(session.events())
            transport.clear()
        sender = members[0][0]
        for i in range(3):
            sender.dataReceived(members[0][2].send(frame({"type": "say", "text": f"m{i}"})))
        h.clock.advance(0)
        for _, transport, session in members:
            wire = transport.value()
            decoder = FrameDecoder()
            decoder.receive_data(wire)
            self.assertEqual(len(list(decoder.frames())), 1, "one record for the turn")
            session.receive_data(wire)
            inner = b"".join(e.data for e in session.events() if isinstance(e, DataReceived))
            self.assertEqual([m["text"] for m in decode_all(inner)], ["m0", "m1", "m2"])
        self.assertIsNone(end_of_turn(h.clock)._delayed, "no second pass pending")

    def test_a_big_write_is_encrypted_at_once(self) -> None:
        """
        A send queue handing over its backlog must meet the transport's
        back-pressure in the same call: a big write becomes a record at
        once (with what was pending before it), small ones wait for the
        turn's end.
        """
        h = Harness()
        proto, transport, session = h.registered_encrypted_raw("a")
        proto.write(b"small")
        self.assertEqual(transport.value(), b"")
        big = b"x" * FLUSH_AT
        proto.write(big)
        wire = transport.value()
        self.assertNotEqual(wire, b"", "written before the turn ends")
        session.receive_data(wire)
        inner = b"".join(e.data for e in session.events() if isinstance(e, DataReceived))
        self.assertEqual(inner, b"small" + big)
        transport.clear()
        h.clock.advance(0)
        self.assertEqual(transport.value(), b"", "nothing left for the turn's end")

    def test_tampered_record_aborts_silently(self) -> None:
        h = Harness()
        bob, _, _, pump_b = h.connect(hello={"type": "hello", "name": "bob"}, encrypted=False)
        proto, transport, session = h.connect_encrypted_raw()
        proto.dataReceived(session.send(frame({"type": "hello", "name": "mallory"})))
        h.clock.advance(0)
        pump_b.flush()
        transport.clear()
        record = bytearray(session.send(frame({"type": "say", "text": "evil"})))
        record[-1] ^= 0x01
        proto.dataReceived(bytes(record))
        h.clock.advance(0)
        self.assertTrue(transport.aborted)
        self.assertEqual(transport.value(), b"")
        proto.connectionLost(Failure(ConnectionError("gone")))
        pump_b.flush()
        self.assertNotIn("evil", [m.get("text") for m in bob.messages])
        self.assertEqual(bob.messages[-1]["type"], "left")
        self.assertEqual(bob.messages[-1]["reason"], "disconnected")

    def test_handshake_record_after_handshake(self) -> None:
        h = Harness()
        proto, transport, session = h.connect_encrypted_raw()
        proto.dataReceived(RecordSession(PSK, initiator=True).initiate())
        h.clock.advance(0)
        self.assertTrue(transport.disconnecting)
        session.receive_data(transport.value())
        inner = b"".join(e.data for e in session.events() if isinstance(e, DataReceived))
        self.assertEqual([(m["code"], m["fatal"]) for m in decode_all(inner)], [("bad-frame", True)])

    def test_client_sees_server_with_wrong_key(self) -> None:
        h = Harness(psk=OTHER_PSK)
        client, _, _, pump = h.connect(psk=PSK, hello={"type": "hello", "name": "a"})
        pump.flush()
        # The server refused message 1 in plaintext; the client got it as an
        # ordinary error message.
        self.assertEqual([m.get("code") for m in client.messages], ["handshake-failed"])
        self.assertIsNotNone(client.lost)

    def test_client_detects_impostor_server(self) -> None:
        """Message 2 under another key: the client closes with handshake-failed."""
        h = Harness()
        client = Client({"type": "hello", "name": "a"})
        factory = EncryptingFactory(Factory.forProtocol(lambda: client), PSK,
                                    initiator=True, clock=h.clock)
        proto = factory.buildProtocol(None)
        transport = ServerTransport()
        proto.makeConnection(transport)
        impostor = RecordSession(OTHER_PSK, initiator=False)
        impostor.receive_data(transport.value())
        with self.assertRaises(RemoteProtocolError):
            list(impostor.events())  # the impostor cannot even read message 1
        # Forge a message 2 from a responder that read a message 1 of its own key.
        fake_init = RecordSession(OTHER_PSK, initiator=True)
        impostor = RecordSession(OTHER_PSK, initiator=False)
        impostor.receive_data(fake_init.initiate())
        list(impostor.events())
        sent = transport.value()
        proto.dataReceived(impostor.data_to_send())
        self.assertTrue(transport.aborted)
        self.assertEqual(transport.value(), sent, "nothing but message 1 was sent")
        proto.connectionLost(Failure(ConnectionError("gone")))
        self.assertTrue(client.lost.check(RemoteProtocolError))
        self.assertEqual(client.lost.value.code, "handshake-failed")
        self.assertEqual(client.messages, [])

    def test_client_writes_wait_for_handshake(self) -> None:
        h = Harness()
        client = Client({"type": "hello", "name": "early"})
        factory = EncryptingFactory(Factory.forProtocol(lambda: client), PSK,
                                    initiator=True, clock=h.clock)
        proto = factory.buildProtocol(None)
        transport = ServerTransport()
        proto.makeConnection(transport)
        decoder = FrameDecoder()
        decoder.receive_data(transport.value())
        records = list(decoder.frames())
        self.assertEqual([(r[0], len(r)) for r in records], [(0x01, 49)])

    def test_log_prefix_names_both(self) -> None:
        h = Harness()
        proto, _ = h.connect_raw()
        self.assertEqual(proto.logPrefix(), "ChatProtocol (EncryptingProtocol)")

    def test_keys_never_logged(self) -> None:
        events: List[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        h = Harness()
        client, _, _, pump = h.connect(psk=OTHER_PSK, hello={"type": "hello"})
        pump.flush()
        client, _, _, pump = h.connect(hello={"type": "hello", "name": "x"})
        pump.flush()
        text = repr(events)
        self.assertNotIn(PSK.hex(), text)
        self.assertNotIn(repr(PSK), text)
        self.assertFalse([e for e in events if "log_failure" in e])


class GenericWrapperTests(SynchronousTestCase):
    """The wrapper knows nothing of the chat: its refusal and end of turn come from outside."""

    def test_imports_nothing_of_the_chat(self) -> None:
        import ast
        import inspect

        from chatsvc.server import encryption, recordlayer

        imported = [node.module for module in (encryption, recordlayer)
                    for node in ast.walk(ast.parse(inspect.getsource(module)))
                    if isinstance(node, ast.ImportFrom)]
        for module in imported:
            self.assertFalse(module and ("chat" in module.split(".") or module.endswith("messages")
                                         or module.endswith("protocol") or module.endswith("factory")),
                             module)

    def test_provides_ichattransport(self) -> None:
        from zope.interface.verify import verifyObject

        from chatsvc.server.interfaces import IChatTransport

        factory = EncryptingFactory(Factory.forProtocol(Int32StringReceiver), PSK,
                                    clock=Clock(), refusal=lambda code, text: b"")
        proto = factory.buildProtocol(None)
        self.assertTrue(verifyObject(IChatTransport, proto))

    def test_refusal_from_the_caller(self) -> None:
        refused = []

        def refusal(code: str, text: str) -> bytes:
            refused.append(code)
            return b"REFUSED:" + code.encode()

        factory = EncryptingFactory(Factory.forProtocol(Int32StringReceiver), PSK,
                                    require_encryption=True, clock=Clock(), refusal=refusal)
        proto = factory.buildProtocol(None)
        transport = ServerTransport()
        proto.makeConnection(transport)
        proto.dataReceived(frame({"type": "hello"}))
        self.assertEqual(refused, ["encryption-required"])
        self.assertEqual(transport.value(), b"REFUSED:encryption-required")

    def test_no_refusal_closes_without_a_word(self) -> None:
        factory = EncryptingFactory(Factory.forProtocol(Int32StringReceiver), PSK,
                                    require_encryption=True, clock=Clock())
        proto = factory.buildProtocol(None)
        transport = ServerTransport()
        proto.makeConnection(transport)
        proto.dataReceived(frame({"type": "hello"}))
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)

    def test_cipher_cache_passed_in(self) -> None:
        from chatsvc.wire.noise import CipherCache

        cache = CipherCache(3)
        factory = EncryptingFactory(Factory.forProtocol(Int32StringReceiver), PSK,
                                    initiator=True, clock=Clock(), cipher_cache=cache)
        self.assertIs(factory.cipher_cache, cache)
