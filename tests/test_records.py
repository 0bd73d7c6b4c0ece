# -*- test-case-name: tests.test_records -*-
"""
Tests for L{chatsvc.wire.records}: two sessions talking in memory, and every
way a peer can break PROTOCOL.md section 3.
"""

from __future__ import annotations

from typing import List, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.wire.errors import LocalProtocolError, RemoteProtocolError
from chatsvc.wire.framing import MAX_FRAME, FrameDecoder, encode_frame
from chatsvc.wire.noise import CipherCache, CipherState, HandshakeState
from chatsvc.wire.records import (
    MAX_CHUNK,
    PROLOGUE,
    RECORD_DATA,
    RECORD_HANDSHAKE,
    DataReceived,
    Event,
    HandshakeComplete,
    PlaintextFrame,
    RecordSession,
    SessionState,
)

from .support.noise import LOW_ORDER_POINTS, forged_message1, forged_message2

PSK = bytes(range(32))
OTHER_PSK = bytes(range(1, 33))
CLIENT_EPHEMERAL = bytes(range(64, 96))
SERVER_EPHEMERAL = bytes(range(96, 128))
ERROR_FRAME = encode_frame(b'{"type":"error","code":"server-full","fatal":true}')


def _bodies(data: bytes) -> List[bytes]:
    decoder = FrameDecoder()
    decoder.receive_data(data)
    bodies = list(decoder.frames())
    if decoder.buffered:
        raise AssertionError("trailing bytes after the last frame")
    return bodies


def _feed(session: RecordSession, data: bytes) -> List[Event]:
    session.receive_data(data)
    return list(session.events())


def _open_pair() -> Tuple[RecordSession, RecordSession]:
    client = RecordSession(PSK, initiator=True)
    server = RecordSession(PSK, initiator=False, cipher_cache=CipherCache(4))
    if _feed(server, client.initiate()) != [HandshakeComplete()]:
        raise AssertionError("the server did not complete the handshake")
    if _feed(client, server.data_to_send()) != [HandshakeComplete()]:
        raise AssertionError("the client did not complete the handshake")
    return client, server


def _shadow_pair() -> Tuple[RecordSession, RecordSession, CipherState, CipherState]:
    """
    An open pair with fixed ephemeral keys, and the cipher states the client
    sends and the server sends with, rebuilt from noise primitives, so tests
    can forge records a real session never sends (an empty chunk, say).
    """
    client = RecordSession(PSK, initiator=True, ephemeral=CLIENT_EPHEMERAL)
    server = RecordSession(PSK, initiator=False, ephemeral=SERVER_EPHEMERAL)
    shadow = HandshakeState(True, PSK, PROLOGUE, CLIENT_EPHEMERAL)
    message1 = client.initiate()
    if _bodies(message1)[0][1:] != shadow.write_message(b""):
        raise AssertionError("shadow handshake diverged")
    _feed(server, message1)
    message2 = server.data_to_send()
    _feed(client, message2)
    shadow.read_message(_bodies(message2)[0][1:])
    client_send, server_send = shadow.split()
    return client, server, client_send, server_send


def _record(kind: int, data: bytes) -> bytes:
    return encode_frame(bytes([kind]) + data)


class HandshakeTests(SynchronousTestCase):
    def test_handshake(self) -> None:
        client = RecordSession(PSK, initiator=True)
        server = RecordSession(PSK, initiator=False)
        self.assertEqual(client.state, SessionState.HANDSHAKING)
        self.assertEqual(server.state, SessionState.HANDSHAKING)
        message1 = client.initiate()
        self.assertEqual(len(message1), 4 + 1 + 48)
        self.assertEqual(message1[:5], b"\x00\x00\x00\x31\x01")
        self.assertEqual(server.data_to_send(), b"")
        self.assertEqual(_feed(server, message1), [HandshakeComplete()])
        self.assertEqual(server.state, SessionState.OPEN)
        message2 = server.data_to_send()
        self.assertEqual(_bodies(message2)[0][0], RECORD_HANDSHAKE)
        self.assertEqual(len(message2), 4 + 1 + 48)
        self.assertEqual(server.data_to_send(), b"")
        self.assertEqual(client.state, SessionState.HANDSHAKING)
        self.assertEqual(_feed(client, message2), [HandshakeComplete()])
        self.assertEqual(client.state, SessionState.OPEN)
        self.assertEqual(client.data_to_send(), b"")

    def test_byte_at_a_time(self) -> None:
        client = RecordSession(PSK, initiator=True)
        server = RecordSession(PSK, initiator=False)
        events: List[Event] = []
        for byte in client.initiate():
            events += _feed(server, bytes([byte]))
        self.assertEqual(events, [HandshakeComplete()])
        events = []
        for byte in server.data_to_send():
            self.assertEqual(client.state, SessionState.HANDSHAKING)
            events += _feed(client, bytes([byte]))
        self.assertEqual(events, [HandshakeComplete()])
        received: List[Event] = []
        for byte in client.send(b"hello") + client.send(b" world"):
            received += _feed(server, bytes([byte]))
        self.assertEqual(received, [DataReceived(b"hello"), DataReceived(b" world")])

    def test_handshake_and_data_in_one_chunk(self) -> None:
        """The client acts on data that arrives with the server's message 2."""
        client = RecordSession(PSK, initiator=True)
        server = RecordSession(PSK, initiator=False)
        _feed(server, client.initiate())
        data = server.data_to_send() + server.send(b"welcome")
        self.assertEqual(
            _feed(client, data), [HandshakeComplete(), DataReceived(b"welcome")]
        )

    def test_send_flushes_pending_handshake(self) -> None:
        """Data sent before data_to_send() cannot overtake message 2."""
        client = RecordSession(PSK, initiator=True)
        server = RecordSession(PSK, initiator=False)
        _feed(server, client.initiate())
        wire = server.send(b"early")
        self.assertEqual(server.data_to_send(), b"")
        self.assertEqual([body[0] for body in _bodies(wire)], [RECORD_HANDSHAKE, RECORD_DATA])
        self.assertEqual(_feed(client, wire), [HandshakeComplete(), DataReceived(b"early")])

    def test_plaintext_error_to_client(self) -> None:
        """The client reports a server's '{' frame, before or after initiating."""
        client = RecordSession(PSK, initiator=True)
        body = _bodies(ERROR_FRAME)[0]
        self.assertEqual(_feed(client, ERROR_FRAME), [PlaintextFrame(body)])
        client.initiate()
        self.assertEqual(_feed(client, ERROR_FRAME), [PlaintextFrame(body)])
        self.assertEqual(client.state, SessionState.HANDSHAKING)

    def test_plaintext_then_handshake(self) -> None:
        client = RecordSession(PSK, initiator=True)
        server = RecordSession(PSK, initiator=False)
        _feed(server, client.initiate())
        events = _feed(client, ERROR_FRAME + server.data_to_send())
        self.assertEqual(
            events, [PlaintextFrame(_bodies(ERROR_FRAME)[0]), HandshakeComplete()]
        )

    def test_fresh_keys_per_connection(self) -> None:
        first, _ = _open_pair()
        second, _ = _open_pair()
        self.assertNotEqual(first.send(b"same"), second.send(b"same"))


class DataTests(SynchronousTestCase):
    def test_sending_cipher_is_kept_and_released(self) -> None:
        """
        Only the sending side keeps its cipher ready (the fan-out's hot
        path); release() gives it up and ends the session.
        """
        client, server = _open_pair()
        server.send(b"x")
        self.assertIsNotNone(server._sender._aead)
        self.assertIsNone(server._receiver._aead)
        server.receive_data(client.send(b"z"))
        self.assertEqual([e.data for e in server.events()], [b"z"])
        self.assertIsNone(server._receiver._aead, "receiving keeps nothing")
        sender = server._sender
        server.release()
        self.assertIsNone(sender._aead)
        self.assertIs(server.state, SessionState.CLOSED)
        self.assertRaises(LocalProtocolError, server.send, b"after")

    def test_both_directions(self) -> None:
        client, server = _open_pair()
        for i in range(5):
            up, down = b"up %d" % i, b"down %d" % i
            self.assertEqual(_feed(server, client.send(up)), [DataReceived(up)])
            self.assertEqual(_feed(client, server.send(down)), [DataReceived(down)])

    def test_record_format(self) -> None:
        """A data record is a frame: type 0x02, then ciphertext and a 16-byte tag."""
        client, _ = _open_pair()
        wire = client.send(b"hello")
        self.assertEqual(len(wire), 4 + 1 + 5 + 16)
        self.assertEqual(wire[:5], b"\x00\x00\x00\x16\x02")
        self.assertNotIn(b"hello", wire)

    def test_empty_send(self) -> None:
        client, server = _open_pair()
        self.assertEqual(client.send(b""), b"")
        # Nothing was consumed: the next record still decrypts.
        self.assertEqual(_feed(server, client.send(b"x")), [DataReceived(b"x")])

    def test_big_data_is_split(self) -> None:
        client, server = _open_pair()
        data = bytes(range(256)) * 1000  # 256,000 bytes
        wire = client.send(data)
        bodies = _bodies(wire)
        self.assertEqual(len(bodies), 4)
        for body in bodies:
            self.assertEqual(body[0], RECORD_DATA)
            self.assertLessEqual(len(body), MAX_FRAME)
        self.assertEqual(len(bodies[0]), MAX_FRAME)
        events = _feed(server, wire)
        self.assertEqual(len(events), 4)
        self.assertEqual(b"".join(e.data for e in events if isinstance(e, DataReceived)), data)

    def test_chunk_boundaries(self) -> None:
        """MAX_CHUNK bytes fill one maximal record; one more byte needs two."""
        client, server = _open_pair()
        self.assertEqual(MAX_CHUNK, 65519)
        one = client.send(b"a" * MAX_CHUNK)
        self.assertEqual([len(b) for b in _bodies(one)], [MAX_FRAME])
        two = client.send(b"b" * (MAX_CHUNK + 1))
        self.assertEqual([len(b) for b in _bodies(two)], [MAX_FRAME, 1 + 1 + 16])
        events = _feed(server, one + two)
        self.assertEqual(
            events,
            [DataReceived(b"a" * MAX_CHUNK), DataReceived(b"b" * MAX_CHUNK), DataReceived(b"b")],
        )

    def test_bytearray_and_memoryview(self) -> None:
        client, server = _open_pair()
        wire = client.send(bytearray(b"ab")) + client.send(memoryview(b"cd" * 40000))
        events = _feed(server, wire)
        received = b"".join(e.data for e in events if isinstance(e, DataReceived))
        self.assertEqual(received, b"ab" + b"cd" * 40000)

    def test_empty_chunk_ignored(self) -> None:
        """A 16-byte record (an empty chunk) yields nothing but counts."""
        client, server, client_send, server_send = _shadow_pair()
        empty = client_send.encrypt_with_ad(b"", b"")
        self.assertEqual(len(empty), 16)
        self.assertEqual(_feed(server, _record(RECORD_DATA, empty)), [])
        self.assertEqual(server.state, SessionState.OPEN)
        # The client's own counter is now behind: its next record is a replay
        # of nonce 1, so forge that one too.
        forged = client_send.encrypt_with_ad(b"", b"after")
        self.assertEqual(_feed(server, _record(RECORD_DATA, forged)), [DataReceived(b"after")])
        self.assertEqual(
            _feed(client, _record(RECORD_DATA, server_send.encrypt_with_ad(b"", b""))), []
        )

    def test_shadow_matches_session(self) -> None:
        """The forged records of the shadow helper are the session's own."""
        client, server, client_send, _ = _shadow_pair()
        forged = _record(RECORD_DATA, client_send.encrypt_with_ad(b"", b"same"))
        self.assertEqual(client.send(b"same"), forged)


class ErrorTests(SynchronousTestCase):
    def assertRemoteError(
        self, session: RecordSession, data: bytes, code: str
    ) -> RemoteProtocolError:
        session.receive_data(data)
        with self.assertRaises(RemoteProtocolError) as caught:
            list(session.events())
        self.assertEqual(caught.exception.code, code)
        self.assertTrue(caught.exception.fatal)
        self.assertEqual(session.state, SessionState.CLOSED)
        return caught.exception

    # Framing.

    def test_empty_frame(self) -> None:
        empty = b"\x00\x00\x00\x00"
        self.assertRemoteError(RecordSession(PSK, initiator=False), empty, "bad-frame")
        client, _ = _open_pair()
        self.assertRemoteError(client, empty, "bad-frame")

    def test_frame_too_long(self) -> None:
        """Refused as soon as the length prefix is known."""
        too_long = (MAX_FRAME + 1).to_bytes(4, "big")
        self.assertRemoteError(RecordSession(PSK, initiator=False), too_long, "frame-too-long")
        _, server = _open_pair()
        self.assertRemoteError(server, too_long + b"\x02", "frame-too-long")

    # Before the handshake completes.

    def test_server_refuses_plaintext_first(self) -> None:
        self.assertRemoteError(RecordSession(PSK, initiator=False), ERROR_FRAME, "bad-frame")

    def test_server_refuses_data_record_first(self) -> None:
        client, _ = _open_pair()
        server = RecordSession(PSK, initiator=False)
        self.assertRemoteError(server, client.send(b"hello"), "bad-frame")

    def test_server_refuses_unknown_first_byte(self) -> None:
        for first in (0x00, 0x03, 0x20, 0x7A, 0xFF):
            self.assertRemoteError(
                RecordSession(PSK, initiator=False), _record(first, b"x" * 48), "bad-frame"
            )

    def test_client_refuses_data_record_before_handshake(self) -> None:
        client = RecordSession(PSK, initiator=True)
        client.initiate()
        _, server = _open_pair()
        self.assertRemoteError(client, server.send(b"hello"), "bad-frame")

    def test_client_refuses_unknown_type_before_handshake(self) -> None:
        client = RecordSession(PSK, initiator=True)
        client.initiate()
        self.assertRemoteError(client, _record(0x03, b"x" * 48), "bad-frame")

    def test_client_refuses_handshake_before_initiating(self) -> None:
        client = RecordSession(PSK, initiator=True)
        self.assertRemoteError(client, _record(RECORD_HANDSHAKE, b"x" * 48), "bad-frame")

    def test_wrong_handshake_length(self) -> None:
        for length in (0, 47, 49, 200):
            server = RecordSession(PSK, initiator=False)
            record = _record(RECORD_HANDSHAKE, b"x" * length)
            self.assertRemoteError(server, record, "handshake-failed")
        # The server's message 2 with an extra byte (a payload) is refused too.
        client = RecordSession(PSK, initiator=True)
        other = HandshakeState(False, PSK, PROLOGUE)
        other.read_message(_bodies(client.initiate())[0][1:])
        message2 = other.write_message(b"x")
        self.assertEqual(len(message2), 49)
        self.assertRemoteError(client, _record(RECORD_HANDSHAKE, message2), "handshake-failed")

    def test_server_wrong_psk(self) -> None:
        """A client with another key fails the server's check of message 1."""
        client = RecordSession(OTHER_PSK, initiator=True)
        server = RecordSession(PSK, initiator=False)
        error = self.assertRemoteError(server, client.initiate(), "handshake-failed")
        self.assertIn("wrong key", error.text)
        self.assertEqual(server.data_to_send(), b"")

    def test_client_wrong_psk(self) -> None:
        """
        A server with another key that answers anyway (here: it answers a
        twin of message 1 made with its own key and the same ephemeral)
        fails the client's check of message 2.
        """
        client = RecordSession(OTHER_PSK, initiator=True, ephemeral=CLIENT_EPHEMERAL)
        twin = RecordSession(PSK, initiator=True, ephemeral=CLIENT_EPHEMERAL)
        server = RecordSession(PSK, initiator=False)
        client.initiate()
        _feed(server, twin.initiate())
        error = self.assertRemoteError(client, server.data_to_send(), "handshake-failed")
        self.assertEqual(error.text, "the server failed authentication (wrong key?)")

    def test_low_order_key_in_valid_message1(self) -> None:
        """
        Finding 4: a message 1 with a low-order ephemeral key (all zero, the
        point 1, ...) and a right tag is C{handshake-failed} from L{events},
        never another exception; the server sends no message 2.
        """
        for point in LOW_ORDER_POINTS:
            server = RecordSession(PSK, initiator=False)
            message1, _ = forged_message1(point, PSK, PROLOGUE)
            error = self.assertRemoteError(
                server, _record(RECORD_HANDSHAKE, message1), "handshake-failed")
            self.assertIn("failed authentication", error.text)
            self.assertEqual(server.data_to_send(), b"")
            self.assertIs(server.state, SessionState.CLOSED)

    def test_low_order_key_in_valid_message2(self) -> None:
        """Finding 4, client side: the server failed authentication."""
        for point in LOW_ORDER_POINTS:
            client = RecordSession(PSK, initiator=True)
            message1 = _bodies(client.initiate())[0][1:]
            _, state = forged_message1(message1[:32], PSK, PROLOGUE)
            message2 = forged_message2(state, point)
            error = self.assertRemoteError(
                client, _record(RECORD_HANDSHAKE, message2), "handshake-failed")
            self.assertEqual(error.text, "the server failed authentication (wrong key?)")

    def test_wrong_prologue(self) -> None:
        client = RecordSession(PSK, initiator=True, prologue=b"chatsvc/2")
        server = RecordSession(PSK, initiator=False)
        self.assertRemoteError(server, client.initiate(), "handshake-failed")

    def test_tampered_message1(self) -> None:
        for index in range(5, 53):
            message = bytearray(RecordSession(PSK, initiator=True).initiate())
            message[index] ^= 0x80
            server = RecordSession(PSK, initiator=False)
            self.assertRemoteError(server, bytes(message), "handshake-failed")

    def test_tampered_message2(self) -> None:
        for index in (5, 20, 36, 37, 52):
            client = RecordSession(PSK, initiator=True)
            server = RecordSession(PSK, initiator=False)
            _feed(server, client.initiate())
            message = bytearray(server.data_to_send())
            message[index] ^= 0x01
            error = self.assertRemoteError(client, bytes(message), "handshake-failed")
            self.assertEqual(error.text, "the server failed authentication (wrong key?)")

    def test_reflected_message1(self) -> None:
        """A client given back its own message 1 as message 2 refuses it."""
        client = RecordSession(PSK, initiator=True)
        self.assertRemoteError(client, client.initiate(), "handshake-failed")

    # After the handshake.

    def test_second_handshake_record(self) -> None:
        client, server = _open_pair()
        self.assertRemoteError(server, RecordSession(PSK, initiator=True).initiate(), "bad-frame")
        self.assertRemoteError(client, _record(RECORD_HANDSHAKE, b"x" * 48), "bad-frame")

    def test_server_reflected_message2(self) -> None:
        client = RecordSession(PSK, initiator=True)
        server = RecordSession(PSK, initiator=False)
        _feed(server, client.initiate())
        self.assertRemoteError(server, server.data_to_send(), "bad-frame")

    def test_plaintext_after_handshake(self) -> None:
        client, server = _open_pair()
        self.assertRemoteError(client, ERROR_FRAME, "bad-frame")
        self.assertRemoteError(server, ERROR_FRAME, "bad-frame")

    def test_unknown_type_after_handshake(self) -> None:
        for kind in (0x00, 0x03, 0xFF):
            client, server = _open_pair()
            record = bytearray(client.send(b"hello"))
            record[4] = kind
            self.assertRemoteError(server, bytes(record), "bad-frame")

    def test_bit_flips(self) -> None:
        """Every bit flip in a data record's ciphertext or tag is caught."""
        for index in range(5, 5 + 5 + 16):
            for bit in (0x01, 0x80):
                client, server = _open_pair()
                record = bytearray(client.send(b"hello"))
                record[index] ^= bit
                self.assertRemoteError(server, bytes(record), "decrypt-failed")

    def test_remote_ephemeral_taken_once(self) -> None:
        """The server reads the client's ephemeral key once, for its replay check, then holds none."""
        client = RecordSession(PSK, initiator=True)
        server = RecordSession(PSK, initiator=False)
        initiation = client.initiate()
        _feed(server, initiation)
        key = server.take_remote_ephemeral()
        self.assertEqual(key, _bodies(initiation)[0][1:33])
        self.assertEqual((server.remote_ephemeral, server.take_remote_ephemeral()), (b"", b""))

    def test_remote_ephemeral_is_not_forgotten_before_the_handshake_ends(self) -> None:
        server = RecordSession(PSK, initiator=False)
        self.assertEqual(server.take_remote_ephemeral(), b"")
        client = RecordSession(PSK, initiator=True)
        _feed(server, client.initiate())
        self.assertEqual(len(server.remote_ephemeral), 32)

    def test_replay(self) -> None:
        client, server = _open_pair()
        record = client.send(b"once")
        self.assertEqual(_feed(server, record), [DataReceived(b"once")])
        self.assertRemoteError(server, record, "decrypt-failed")

    def test_reorder(self) -> None:
        client, server = _open_pair()
        first, second = client.send(b"1"), client.send(b"2")
        self.assertRemoteError(server, second + first, "decrypt-failed")

    def test_dropped_record(self) -> None:
        client, server = _open_pair()
        client.send(b"lost")
        self.assertRemoteError(server, client.send(b"next"), "decrypt-failed")

    def test_truncated(self) -> None:
        client, server = _open_pair()
        body = _bodies(client.send(b"hello"))[0]
        self.assertRemoteError(server, encode_frame(body[:-1]), "decrypt-failed")

    def test_extended(self) -> None:
        client, server = _open_pair()
        body = _bodies(client.send(b"hello"))[0]
        self.assertRemoteError(server, encode_frame(body + b"\x00"), "decrypt-failed")

    def test_reflected_data(self) -> None:
        """A record sent back to its sender fails (the directions have different keys)."""
        client, server = _open_pair()
        self.assertRemoteError(client, client.send(b"hello"), "decrypt-failed")
        self.assertRemoteError(server, server.send(b"hello"), "decrypt-failed")

    def test_short_records(self) -> None:
        for length in (0, 1, 15):
            _, server = _open_pair()
            record = _record(RECORD_DATA, b"\x00" * length)
            self.assertRemoteError(server, record, "decrypt-failed")

    def test_other_session_key(self) -> None:
        client, _ = _open_pair()
        _, server = _open_pair()
        self.assertRemoteError(server, client.send(b"hello"), "decrypt-failed")

    def test_events_before_error_stand(self) -> None:
        """Events of frames completed before the bad record are yielded first."""
        client, server = _open_pair()
        good = client.send(b"first") + client.send(b"second")
        bad = bytearray(client.send(b"third"))
        bad[-1] ^= 1
        server.receive_data(good + bytes(bad) + client.send(b"fourth"))
        seen: List[Event] = []
        with self.assertRaises(RemoteProtocolError) as caught:
            for event in server.events():
                seen.append(event)
        self.assertEqual(caught.exception.code, "decrypt-failed")
        self.assertEqual(seen, [DataReceived(b"first"), DataReceived(b"second")])

    def test_client_handshake_then_error(self) -> None:
        """HandshakeComplete stands when a bad record follows message 2."""
        client = RecordSession(PSK, initiator=True)
        server = RecordSession(PSK, initiator=False)
        _feed(server, client.initiate())
        client.receive_data(server.data_to_send() + ERROR_FRAME)
        seen: List[Event] = []
        with self.assertRaises(RemoteProtocolError):
            for event in client.events():
                seen.append(event)
        self.assertEqual(seen, [HandshakeComplete()])

    def test_closed_after_decrypt_failure(self) -> None:
        """After a record failed to decrypt, nothing is parsed or sent."""
        client, server = _open_pair()
        self.assertRemoteError(server, server.send(b"reflected"), "decrypt-failed")
        self.assertEqual(_feed(server, client.send(b"more")), [])
        self.assertEqual(server.data_to_send(), b"")
        with self.assertRaises(LocalProtocolError) as caught:
            server.send(b"reply")
        self.assertIn("CLOSED", str(caught.exception))

    def test_final_error_after_record_out_of_place(self) -> None:
        """
        After a record out of place following the handshake, the session
        parses nothing more but can still send (the server's last fatal
        error, inside the encrypted stream), and the peer can read it.
        """
        for bad in (ERROR_FRAME, _record(RECORD_HANDSHAKE, b"x" * 48), b"\xff" * 4):
            client, server = _open_pair()
            code = "frame-too-long" if bad == b"\xff" * 4 else "bad-frame"
            self.assertRemoteError(server, bad, code)
            self.assertEqual(_feed(server, client.send(b"more")), [])
            final = server.send(b"error: bad-frame")
            self.assertEqual(_feed(client, final), [DataReceived(b"error: bad-frame")])

    def test_responder_error_right_after_message1(self) -> None:
        """
        A bad frame right behind message 1 closes the server; message 2 is
        still sent before its final error, so the client can read that.
        """
        client = RecordSession(PSK, initiator=True)
        server = RecordSession(PSK, initiator=False)
        server.receive_data(client.initiate() + ERROR_FRAME)
        seen: List[Event] = []
        with self.assertRaises(RemoteProtocolError):
            for event in server.events():
                seen.append(event)
        self.assertEqual(seen, [HandshakeComplete()])
        wire = server.send(b"error")
        self.assertEqual(_feed(client, wire), [HandshakeComplete(), DataReceived(b"error")])

    def test_closed_during_handshake(self) -> None:
        server = RecordSession(PSK, initiator=False)
        self.assertRemoteError(server, ERROR_FRAME, "bad-frame")
        self.assertEqual(_feed(server, RecordSession(PSK, initiator=True).initiate()), [])
        self.assertEqual(server.state, SessionState.CLOSED)
        self.assertEqual(server.data_to_send(), b"")
        self.assertRaises(LocalProtocolError, server.send, b"x")

    def test_closed_after_failed_handshake(self) -> None:
        """An unauthenticated peer gets nothing encrypted, either role."""
        server = RecordSession(PSK, initiator=False)
        message1 = RecordSession(OTHER_PSK, initiator=True).initiate()
        self.assertRemoteError(server, message1, "handshake-failed")
        self.assertEqual(server.data_to_send(), b"")
        self.assertRaises(LocalProtocolError, server.send, b"x")
        client = RecordSession(PSK, initiator=True)
        self.assertRemoteError(client, client.initiate(), "handshake-failed")
        self.assertRaises(LocalProtocolError, client.send, b"x")

    def test_error_texts_hold_no_data(self) -> None:
        """Error texts never echo the offending bytes."""
        client, server = _open_pair()
        secret = b"SECRETSECRET"
        error = self.assertRemoteError(server, encode_frame(b"\x7b" + secret), "bad-frame")
        self.assertNotIn("SECRET", str(error))


class MisuseTests(SynchronousTestCase):
    def test_psk_length(self) -> None:
        for psk in (b"", b"k" * 31, b"k" * 33):
            self.assertRaises(LocalProtocolError, RecordSession, psk, initiator=True)
            self.assertRaises(LocalProtocolError, RecordSession, psk, initiator=False)

    def test_send_before_open(self) -> None:
        client = RecordSession(PSK, initiator=True)
        server = RecordSession(PSK, initiator=False)
        for session in (client, server):
            with self.assertRaises(LocalProtocolError) as caught:
                session.send(b"too early")
            self.assertIn("HANDSHAKING", str(caught.exception))
        client.initiate()
        self.assertRaises(LocalProtocolError, client.send, b"still too early")

    def test_initiate(self) -> None:
        self.assertRaises(LocalProtocolError, RecordSession(PSK, initiator=False).initiate)
        client = RecordSession(PSK, initiator=True)
        client.initiate()
        self.assertRaises(LocalProtocolError, client.initiate)
        opened, _ = _open_pair()
        self.assertRaises(LocalProtocolError, opened.initiate)

    def test_events_after_partial_iteration(self) -> None:
        """Frames left by a consumer that stopped early are parsed next time."""
        client, server = _open_pair()
        server.receive_data(client.send(b"a") + client.send(b"b"))
        iterator = server.events()
        self.assertEqual(next(iterator), DataReceived(b"a"))
        del iterator
        self.assertEqual(list(server.events()), [DataReceived(b"b")])


class BroadcastTests(SynchronousTestCase):
    def test_broadcast_many_sessions(self) -> None:
        """One message to 200 sessions: every copy decrypts, every copy differs."""
        pairs = [_open_pair() for _ in range(200)]
        wires = [server.send(b"message to all") for _, server in pairs]
        self.assertEqual(len(set(wires)), 200)
        for (client, _), wire in zip(pairs, wires):
            self.assertEqual(_feed(client, wire), [DataReceived(b"message to all")])


class ChunkingPropertyTests(SynchronousTestCase):
    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(
        messages=st.lists(st.binary(max_size=3000), max_size=8),
        cuts=st.lists(st.integers(min_value=0, max_value=30000), max_size=10),
    )
    def test_any_split_of_the_wire(self, messages: List[bytes], cuts: List[int]) -> None:
        """However TCP splits the records, the inner stream arrives intact."""
        client, server = _open_pair()
        wire = b"".join(client.send(m) for m in messages)
        points = sorted({min(c, len(wire)) for c in cuts} | {0, len(wire)})
        events: List[Event] = []
        for start, end in zip(points, points[1:]):
            events += _feed(server, wire[start:end])
        received = b"".join(e.data for e in events if isinstance(e, DataReceived))
        self.assertEqual(received, b"".join(messages))
        self.assertEqual(len(events), sum(1 for m in messages if m))
