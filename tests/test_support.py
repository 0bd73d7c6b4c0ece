# -*- test-case-name: tests.test_support -*-
"""
Tests for the test kit itself (L{tests.support}): the client's wire end, the
one frame client against the real server stack in memory, the fakes, and
the process starter's line matching. A kit that lied would let every test
built on it pass for nothing.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List

from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from chatsvc.chat.interfaces import IChatMember
from chatsvc.wire.errors import RemoteProtocolError
from chatsvc.wire.framing import encode_frame
from chatsvc.wire.records import RecordSession

from .support.encrypted import PSK, EncryptionHarness
from .support.fakes import FakeMember, PausingTransport
from .support.frameclient import FrameClient
from .support.processes import LineProcess, free_port
from .support.wire import ClientWire, decode_frames, frame, raw_frame, v1_view


class WireTests(SynchronousTestCase):
    def test_frames(self) -> None:
        self.assertEqual(raw_frame(b""), b"\x00\x00\x00\x00")
        self.assertEqual(frame({"type": "x"}), b'\x00\x00\x00\r{"type": "x"}')
        self.assertEqual(frame(b"raw"), b"\x00\x00\x00\x03raw")
        self.assertEqual(decode_frames(frame({"type": "a"}) + frame({"type": "b"})),
                         [{"type": "a"}, {"type": "b"}])

    def test_decode_frames_is_strict(self) -> None:
        """A partial frame, or a body that is not a message, fails the test."""
        with self.assertRaises(AssertionError):
            decode_frames(frame({"type": "a"})[:-1])
        with self.assertRaises(AssertionError):
            decode_frames(frame([1, 2]))

    def test_v1_view(self) -> None:
        messages = [{"type": "room", "room": "#a"},
                    {"type": "message", "room": "#a", "from": "b", "text": "t", "seq": 1},
                    {"type": "history", "room": "#a", "complete": True,
                     "messages": [{"type": "message", "room": "#a", "text": "t"}]}]
        self.assertEqual(v1_view(messages), [
            {"type": "message", "from": "b", "text": "t", "seq": 1},
            {"type": "history", "complete": True, "messages": [{"type": "message", "text": "t"}]}])

    def test_plaintext_wire(self) -> None:
        wire = ClientWire()
        self.assertEqual((wire.initiate(), wire.open), (b"", True))
        self.assertEqual(wire.seal_message({"type": "say"}), encode_frame(b'{"type":"say"}'))
        data = frame({"type": "pong"}) + raw_frame(b"not json")
        self.assertEqual(wire.receive(data[:3]), [])
        self.assertEqual(wire.receive(data[3:]), [{"type": "pong"}])
        self.assertEqual(wire.bad_frames, [b"not json"])

    def test_long_server_lists_decode(self) -> None:
        """
        A C{welcome} listing 2,000 names is a message, though the server's
        guard on client input refuses over 1,024 items; NaN is not JSON.
        """
        names = [f"c{i}" for i in range(2000)]
        wire = ClientWire()
        welcome = {"type": "welcome", "users": names, "plaintext": names}
        self.assertEqual(wire.receive(frame(welcome)), [welcome])
        self.assertEqual(wire.receive(raw_frame(b'{"type":"ping","token":NaN}')), [])
        self.assertEqual(len(wire.bad_frames), 1)

    def test_encrypted_wire(self) -> None:
        """Frames sealed before the handshake wait, then go in order."""
        wire = ClientWire(PSK)
        server = RecordSession(PSK, initiator=False)
        server.receive_data(wire.initiate())
        list(server.events())
        self.assertEqual(wire.seal_message({"type": "hello"}), b"")
        self.assertEqual(wire.pending(), b"", "nothing before the handshake")
        self.assertEqual(wire.receive(server.data_to_send()), [])
        self.assertTrue(wire.open)
        server.receive_data(wire.pending() + wire.seal_message({"type": "say"}))
        bodies = [e.data for e in server.events()]
        self.assertEqual(bodies, [encode_frame(b'{"type":"hello"}'), encode_frame(b'{"type":"say"}')])
        self.assertEqual(wire.receive(server.send(frame({"type": "welcome"}))), [{"type": "welcome"}])
        self.assertEqual(len(wire.records), 2)

    def test_bad_record_raises(self) -> None:
        wire = ClientWire(PSK)
        wire.initiate()
        with self.assertRaises(RemoteProtocolError):
            wire.receive(b"\x00\x00\x00\x31\x01" + b"\x00" * 48)


class FrameClientTests(SynchronousTestCase):
    """The one frame client, against the real wrapper and chat over iosim."""

    def connect(self, h: EncryptionHarness, client: FrameClient) -> iosim.IOPump:
        _, _, pump = iosim.connectedServerAndClient(
            lambda: h.server.buildProtocol(None), lambda: client, clock=h.clock)
        for _ in range(3):
            pump.flush()
            h.clock.advance(0)
        return pump

    def test_encrypted_hello_and_listen(self) -> None:
        h = EncryptionHarness()
        alice = FrameClient(PSK, "alice", greeting={"type": "hello", "name": "alice"})
        heard: List[Dict[str, Any]] = []
        alice.listen(heard.append)
        pump = self.connect(h, alice)
        self.assertTrue(alice.handshaken.called)
        self.assertEqual([m["type"] for m in v1_view(alice.messages)], ["welcome", "history"])
        self.assertIs(alice.messages[0]["encrypted"], True)
        self.assertEqual(heard, alice.messages)
        alice.say("hi")
        for _ in range(3):
            pump.flush()
            h.clock.advance(0)
        self.assertEqual(alice.texts(), ["hi"])
        self.assertEqual(alice.seqs(), [1])
        self.assertEqual(alice.history("#lobby")["complete"], True)
        self.assertTrue(self.successResultOf(alice.wait_for(lambda m: m.get("text") == "hi")))

    def test_plaintext_refused_then_lost(self) -> None:
        h = EncryptionHarness(require=True)
        bob = FrameClient(label="bob", greeting={"type": "hello", "name": "bob"})
        self.connect(h, bob)
        [error] = bob.of_type("error")
        self.assertEqual(error["code"], "encryption-required")
        self.assertFalse(bob.connected)
        self.assertIsNotNone(bob.lost_reason)
        self.failureResultOf(bob.wait_for(lambda m: m["type"] == "welcome"), AssertionError)


class FakesTests(SynchronousTestCase):
    def test_fake_member_provides_the_interface(self) -> None:
        self.assertTrue(verifyObject(IChatMember, FakeMember()))

    def test_pausing_transport(self) -> None:
        class Producer:
            paused = 0
            resumed = 0

            def pauseProducing(self) -> None:
                self.paused += 1

            def resumeProducing(self) -> None:
                self.resumed += 1

        transport = PausingTransport(limit=3)
        producer = Producer()
        transport.registerProducer(producer, True)
        transport.write(b"abcd")
        transport.write(b"e")
        self.assertEqual((producer.paused, producer.resumed), (1, 0))
        self.assertEqual(transport.read_all(), b"abcde")
        self.assertEqual(producer.resumed, 1)


class LineProcessTests(SynchronousTestCase):
    """The output matching every real-process wait relies on (no process)."""

    def test_lines_and_matchers(self) -> None:
        proc = LineProcess("p")
        found: List[str] = []
        proc.wait_for(re.compile(r"starting on (\d+)")).addCallback(found.append)
        proc.wait_for("ready", after=1).addCallback(found.append)
        proc.childDataReceived(1, b"ready early\nChatFactory starting on 4")
        self.assertEqual(found, [])
        proc.childDataReceived(1, b"2\r\n")
        proc.childDataReceived(2, b"now ready\n")
        self.assertEqual(found, ["ChatFactory starting on 42", "now ready"])
        self.assertTrue(proc.logged("early"))
        self.assertEqual(proc.err_lines, ["now ready"])

    def test_free_port(self) -> None:
        self.assertGreater(free_port(), 0)
