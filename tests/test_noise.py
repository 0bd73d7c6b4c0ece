# -*- test-case-name: tests.test_noise -*-
"""
Tests for L{chatsvc.wire.noise}: the published vectors byte for byte, interop
with the C{noiseprotocol} package (a test-only dependency), and errors.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Dict, List, Optional, Tuple

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from noise.connection import Keypair, NoiseConnection
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.wire import noise
from chatsvc.wire.errors import LocalProtocolError, RemoteProtocolError
from chatsvc.wire.noise import (
    MAX_NONCE,
    PROTOCOL_NAME,
    CipherCache,
    CipherState,
    HandshakeState,
    SymmetricState,
)

VECTORS_PATH = os.path.join(
    os.path.dirname(__file__), "vectors", "vectors_NNpsk0_25519_AESGCM_SHA256.json"
)
with open(VECTORS_PATH, encoding="utf-8") as _f:
    VECTORS: Dict[str, Any] = json.load(_f)

PSK = bytes(range(32))
KEY = bytes(range(100, 132))


def _pair(
    psk: bytes = PSK, prologue: bytes = b"chatsvc/1"
) -> Tuple[HandshakeState, HandshakeState]:
    return (
        HandshakeState(initiator=True, psk=psk, prologue=prologue),
        HandshakeState(initiator=False, psk=psk, prologue=prologue),
    )


def _handshake() -> Tuple[CipherState, CipherState, CipherState, CipherState]:
    """Return the initiator's send/receive and responder's receive/send states."""
    initiator, responder = _pair()
    responder.read_message(initiator.write_message())
    initiator.read_message(responder.write_message())
    i_send, i_receive = initiator.split()
    r_receive, r_send = responder.split()
    return i_send, i_receive, r_receive, r_send


# X25519 public keys of low order: the shared secret with any of them is all
# zero (PROTOCOL.md 3.1). 0, 1, two points of order 8, and p - 1.
LOW_ORDER_POINTS = [
    bytes(32),
    b"\x01" + bytes(31),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
]


def forged_message1(e_public: bytes, psk: bytes = PSK, prologue: bytes = b"chatsvc/1"
                    ) -> Tuple[bytes, SymmetricState]:
    """
    A valid message 1 (its tag right under C{psk}) carrying any ephemeral
    key: what a client holding the key can send. Also the symmetric state
    after it, to forge a message 2 on.
    """
    state = SymmetricState(PROTOCOL_NAME)
    state.mix_hash(prologue)
    state.mix_key_and_hash(psk)
    state.mix_hash(e_public)
    state.mix_key(e_public)
    return e_public + state.encrypt_and_hash(b""), state


def forged_message2(state: SymmetricState, e_public: bytes) -> bytes:
    """
    A message 2 with a low-order C{e_public}, its tag right for the all-zero
    shared secret such a key gives: what a server holding the key can send.
    """
    state.mix_hash(e_public)
    state.mix_key(e_public)
    state.mix_key(bytes(32))  # "ee" with a low-order point
    return e_public + state.encrypt_and_hash(b"")


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


class CacophonyVectorTests(SynchronousTestCase):
    """The cacophony vector: payloads, handshake hash, six messages."""

    def setUp(self) -> None:
        (self.vector,) = VECTORS["cacophony_format"]
        self.assertEqual(self.vector["protocol_name"], PROTOCOL_NAME.decode())

    def _states(self) -> Tuple[HandshakeState, HandshakeState]:
        v = self.vector
        initiator = HandshakeState(
            initiator=True,
            psk=bytes.fromhex(v["init_psks"][0]),
            prologue=bytes.fromhex(v["init_prologue"]),
            ephemeral=bytes.fromhex(v["init_ephemeral"]),
        )
        responder = HandshakeState(
            initiator=False,
            psk=bytes.fromhex(v["resp_psks"][0]),
            prologue=bytes.fromhex(v["resp_prologue"]),
            ephemeral=bytes.fromhex(v["resp_ephemeral"]),
        )
        return initiator, responder

    def _messages(self) -> List[Tuple[bytes, bytes]]:
        return [
            (bytes.fromhex(m["payload"]), bytes.fromhex(m["ciphertext"]))
            for m in self.vector["messages"]
        ]

    def test_vector(self) -> None:
        """
        Both roles produce and accept every message byte for byte, reach the
        published handshake hash, and alternate transport messages with the
        right cipher states.
        """
        initiator, responder = self._states()
        messages = self._messages()
        (p0, c0), (p1, c1) = messages[:2]
        self.assertEqual(initiator.write_message(p0), c0)
        self.assertEqual(responder.read_message(c0), p0)
        self.assertEqual(responder.write_message(p1), c1)
        self.assertEqual(initiator.read_message(c1), p1)
        expected_hash = bytes.fromhex(self.vector["handshake_hash"])
        self.assertEqual(initiator.handshake_hash, expected_hash)
        self.assertEqual(responder.handshake_hash, expected_hash)
        i_send, i_receive = initiator.split()
        r_receive, r_send = responder.split()
        transport = messages[2:]
        self.assertGreaterEqual(len(transport), 4)
        for index, (payload, ciphertext) in enumerate(transport):
            if index % 2 == 0:
                sender, receiver = i_send, r_receive
            else:
                sender, receiver = r_send, i_receive
            self.assertEqual(sender.encrypt_with_ad(b"", payload), ciphertext)
            self.assertEqual(receiver.decrypt_with_ad(b"", ciphertext), payload)
        self.assertEqual(i_send.nonce, (len(transport) + 1) // 2)

    def test_responder_rejects_tampered_vector(self) -> None:
        """Every single bit flip of message 1 is caught by the responder."""
        _, c0 = self._messages()[0]
        for index in range(len(c0)):
            _, responder = self._states()
            with self.assertRaises(RemoteProtocolError) as caught:
                responder.read_message(_flip(c0, index))
            self.assertEqual(caught.exception.code, "handshake-failed")


class FlynnVectorTests(SynchronousTestCase):
    """The four flynn/noise vectors, including empty payloads and a prologue."""

    def test_count(self) -> None:
        self.assertEqual(len(VECTORS["flynn_format"]), 4)

    def test_vectors(self) -> None:
        for number, v in enumerate(VECTORS["flynn_format"]):
            self.assertEqual(v["handshake"], PROTOCOL_NAME.decode())
            psk = bytes.fromhex(v["preshared_key"])
            prologue = bytes.fromhex(v.get("prologue", ""))
            initiator = HandshakeState(
                True, psk, prologue, bytes.fromhex(v["gen_init_ephemeral"])
            )
            responder = HandshakeState(
                False, psk, prologue, bytes.fromhex(v["gen_resp_ephemeral"])
            )
            msg = {
                i: (
                    bytes.fromhex(v[f"msg_{i}_payload"]),
                    bytes.fromhex(v[f"msg_{i}_ciphertext"]),
                )
                for i in range(4)
            }
            self.assertEqual(initiator.write_message(msg[0][0]), msg[0][1], number)
            self.assertEqual(responder.read_message(msg[0][1]), msg[0][0], number)
            self.assertEqual(responder.write_message(msg[1][0]), msg[1][1], number)
            self.assertEqual(initiator.read_message(msg[1][1]), msg[1][0], number)
            self.assertEqual(initiator.handshake_hash, responder.handshake_hash)
            i_send, i_receive = initiator.split()
            r_receive, r_send = responder.split()
            self.assertEqual(i_send.encrypt_with_ad(b"", msg[2][0]), msg[2][1], number)
            self.assertEqual(r_receive.decrypt_with_ad(b"", msg[2][1]), msg[2][0])
            self.assertEqual(r_send.encrypt_with_ad(b"", msg[3][0]), msg[3][1], number)
            self.assertEqual(i_receive.decrypt_with_ad(b"", msg[3][1]), msg[3][0])

    def test_empty_payload_messages_are_48_bytes(self) -> None:
        """PROTOCOL.md relies on both empty-payload messages being 48 bytes."""
        initiator, responder = _pair()
        message1 = initiator.write_message(b"")
        responder.read_message(message1)
        message2 = responder.write_message(b"")
        self.assertEqual((len(message1), len(message2)), (48, 48))


class InteropTests(SynchronousTestCase):
    """Handshakes and transport messages against the noiseprotocol package."""

    def _theirs(
        self,
        initiator: bool,
        prologue: bytes = b"chatsvc/1",
        ephemeral: Optional[bytes] = None,
    ) -> NoiseConnection:
        connection = NoiseConnection.from_name(PROTOCOL_NAME)
        connection.set_psks(psk=PSK)
        connection.set_prologue(prologue)
        if ephemeral is not None:
            connection.set_keypair_from_private_bytes(Keypair.EPHEMERAL, ephemeral)
        if initiator:
            connection.set_as_initiator()
        else:
            connection.set_as_responder()
        with warnings.catch_warnings():
            # "One of ephemeral keypairs is already set": intended here.
            warnings.simplefilter("ignore", UserWarning)
            connection.start_handshake()
        return connection

    def test_our_initiator_their_responder(self) -> None:
        ours = HandshakeState(initiator=True, psk=PSK, prologue=b"chatsvc/1")
        theirs = self._theirs(initiator=False)
        self.assertEqual(bytes(theirs.read_message(ours.write_message(b"hello"))), b"hello")
        self.assertEqual(ours.read_message(theirs.write_message(b"there")), b"there")
        self.assertTrue(theirs.handshake_finished)
        self.assertEqual(ours.handshake_hash, theirs.get_handshake_hash())
        send, receive = ours.split()
        for i in range(3):
            payload = b"ping %d" % i
            self.assertEqual(theirs.decrypt(send.encrypt_with_ad(b"", payload)), payload)
            reply = b"pong %d" % i
            self.assertEqual(receive.decrypt_with_ad(b"", theirs.encrypt(reply)), reply)

    def test_their_initiator_our_responder(self) -> None:
        theirs = self._theirs(initiator=True)
        ours = HandshakeState(initiator=False, psk=PSK, prologue=b"chatsvc/1")
        self.assertEqual(ours.read_message(theirs.write_message(b"")), b"")
        reply = ours.write_message(b"")
        self.assertEqual(len(reply), 48)
        self.assertEqual(bytes(theirs.read_message(reply)), b"")
        self.assertEqual(ours.handshake_hash, theirs.get_handshake_hash())
        receive, send = ours.split()
        for i in range(3):
            payload = b"ping %d" % i
            self.assertEqual(receive.decrypt_with_ad(b"", theirs.encrypt(payload)), payload)
            self.assertEqual(theirs.decrypt(send.encrypt_with_ad(b"", b"x" * i)), b"x" * i)

    def test_fixed_ephemeral_matches_theirs(self) -> None:
        """With the same ephemeral keys, both libraries write the same bytes."""
        e_init, e_resp = bytes(range(1, 33)), bytes(range(33, 65))
        theirs_i = self._theirs(initiator=True, ephemeral=e_init)
        theirs_r = self._theirs(initiator=False, ephemeral=e_resp)
        ours_i = HandshakeState(True, PSK, b"chatsvc/1", e_init)
        ours_r = HandshakeState(False, PSK, b"chatsvc/1", e_resp)
        message1 = ours_i.write_message(b"abc")
        self.assertEqual(bytes(theirs_i.write_message(b"abc")), message1)
        self.assertEqual(ours_r.read_message(message1), b"abc")
        self.assertEqual(bytes(theirs_r.read_message(message1)), b"abc")
        message2 = ours_r.write_message(b"")
        self.assertEqual(bytes(theirs_r.write_message(b"")), message2)
        self.assertEqual(ours_i.read_message(message2), b"")
        self.assertEqual(ours_i.handshake_hash, theirs_r.get_handshake_hash())

    def test_prologue_mismatch_with_theirs(self) -> None:
        theirs = self._theirs(initiator=True, prologue=b"chatsvc/2")
        ours = HandshakeState(initiator=False, psk=PSK, prologue=b"chatsvc/1")
        with self.assertRaises(RemoteProtocolError) as caught:
            ours.read_message(theirs.write_message(b""))
        self.assertEqual(caught.exception.code, "handshake-failed")


class HandshakeErrorTests(SynchronousTestCase):
    def test_tampered_message1(self) -> None:
        for index in (0, 31, 32, 47):
            initiator, responder = _pair()
            message = _flip(initiator.write_message(b""), index)
            with self.assertRaises(RemoteProtocolError) as caught:
                responder.read_message(message)
            self.assertEqual(caught.exception.code, "handshake-failed")
            self.assertTrue(caught.exception.fatal)

    def test_tampered_message2(self) -> None:
        for index in (0, 31, 32, 47):
            initiator, responder = _pair()
            responder.read_message(initiator.write_message(b""))
            message = _flip(responder.write_message(b""), index)
            with self.assertRaises(RemoteProtocolError) as caught:
                initiator.read_message(message)
            self.assertEqual(caught.exception.code, "handshake-failed")

    def test_wrong_psk(self) -> None:
        initiator = HandshakeState(initiator=True, psk=PSK, prologue=b"")
        responder = HandshakeState(initiator=False, psk=KEY, prologue=b"")
        with self.assertRaises(RemoteProtocolError) as caught:
            responder.read_message(initiator.write_message(b""))
        self.assertEqual(caught.exception.code, "handshake-failed")

    def test_wrong_prologue(self) -> None:
        initiator = HandshakeState(initiator=True, psk=PSK, prologue=b"a")
        responder = HandshakeState(initiator=False, psk=PSK, prologue=b"b")
        with self.assertRaises(RemoteProtocolError):
            responder.read_message(initiator.write_message(b""))

    def test_bad_lengths(self) -> None:
        """Too short for a key and a tag, or over the Noise maximum."""
        for message in (b"", b"\x01" * 47, b"\x01" * 65536):
            _, responder = _pair()
            with self.assertRaises(RemoteProtocolError) as caught:
                responder.read_message(message)
            self.assertEqual(caught.exception.code, "handshake-failed")

    def test_low_order_point(self) -> None:
        """An all-zero ephemeral key (a zero shared secret) is refused."""
        initiator, responder = _pair()
        responder.read_message(initiator.write_message(b""))
        message = bytes(32) + responder.write_message(b"")[32:]
        with self.assertRaises(RemoteProtocolError) as caught:
            initiator.read_message(message)
        self.assertEqual(caught.exception.code, "handshake-failed")

    def test_forged_message1_is_valid(self) -> None:
        """The forging helper makes a message 1 the responder accepts."""
        _, responder = _pair()
        e_public = HandshakeState(True, PSK).write_message(b"")[:32]
        responder.read_message(forged_message1(e_public)[0])
        self.assertEqual(responder.remote_ephemeral, e_public)

    def test_low_order_point_in_valid_message1(self) -> None:
        """
        Finding 4: a message 1 with a low-order key and a right tag is
        C{handshake-failed} when it is read (not a C{ValueError} when the
        reply is written), and the responder can write nothing after it.
        """
        for point in LOW_ORDER_POINTS:
            _, responder = _pair()
            with self.assertRaises(RemoteProtocolError) as caught:
                responder.read_message(forged_message1(point)[0])
            self.assertEqual((caught.exception.code, caught.exception.fatal),
                             ("handshake-failed", True))
            self.assertRaises(LocalProtocolError, responder.write_message, b"")

    def test_low_order_point_in_valid_message2(self) -> None:
        """
        Finding 4, client side: a message 2 whose tag is right for the
        all-zero secret of a low-order key is a failed authentication.
        """
        for point in LOW_ORDER_POINTS:
            initiator, _ = _pair()
            message1 = initiator.write_message(b"")
            _, state = forged_message1(message1[:32])
            with self.assertRaises(RemoteProtocolError) as caught:
                initiator.read_message(forged_message2(state, point))
            self.assertEqual(caught.exception.code, "handshake-failed")
            self.assertFalse(initiator.complete)

    def test_reflected_message1(self) -> None:
        """The initiator refuses its own message 1 as message 2."""
        initiator, _ = _pair()
        message = initiator.write_message(b"")
        with self.assertRaises(RemoteProtocolError):
            initiator.read_message(message)

    def test_unusable_after_failure(self) -> None:
        initiator, responder = _pair()
        message = initiator.write_message(b"")
        with self.assertRaises(RemoteProtocolError):
            responder.read_message(_flip(message, 40))
        self.assertRaises(LocalProtocolError, responder.read_message, message)
        self.assertRaises(LocalProtocolError, responder.write_message, b"")


class MisuseTests(SynchronousTestCase):
    def test_psk_length(self) -> None:
        for psk in (b"", b"x" * 31, b"x" * 33):
            self.assertRaises(LocalProtocolError, HandshakeState, True, psk)

    def test_psk_type(self) -> None:
        self.assertRaises(LocalProtocolError, HandshakeState, True, "x" * 32)

    def test_ephemeral_length(self) -> None:
        self.assertRaises(LocalProtocolError, HandshakeState, True, PSK, b"", b"e" * 31)

    def test_wrong_turn(self) -> None:
        initiator, responder = _pair()
        self.assertRaises(LocalProtocolError, responder.write_message, b"")
        self.assertRaises(LocalProtocolError, initiator.read_message, b"x" * 48)
        message = initiator.write_message(b"")
        self.assertRaises(LocalProtocolError, initiator.write_message, b"")
        responder.read_message(message)
        self.assertRaises(LocalProtocolError, responder.read_message, message)

    def test_after_completion(self) -> None:
        initiator, responder = _pair()
        responder.read_message(initiator.write_message(b""))
        self.assertFalse(responder.complete)
        message = responder.write_message(b"")
        self.assertTrue(responder.complete)
        self.assertRaises(LocalProtocolError, responder.write_message, b"")
        initiator.read_message(message)
        self.assertRaises(LocalProtocolError, initiator.write_message, b"")
        self.assertRaises(LocalProtocolError, initiator.read_message, message)

    def test_split_and_hash_before_completion(self) -> None:
        initiator, _ = _pair()
        self.assertRaises(LocalProtocolError, initiator.split)
        self.assertRaises(LocalProtocolError, lambda: initiator.handshake_hash)
        initiator.write_message(b"")
        self.assertRaises(LocalProtocolError, initiator.split)

    def test_split_once(self) -> None:
        initiator, responder = _pair()
        responder.read_message(initiator.write_message(b""))
        initiator.read_message(responder.write_message(b""))
        initiator.split()
        self.assertRaises(LocalProtocolError, initiator.split)

    def test_payload_too_long(self) -> None:
        initiator, _ = _pair()
        self.assertRaises(LocalProtocolError, initiator.write_message, b"x" * 65488)
        self.assertEqual(len(initiator.write_message(b"x" * 65487)), 65535)


class CipherStateTests(SynchronousTestCase):
    def test_nonce_is_counter_after_four_zero_bytes(self) -> None:
        """Message n uses nonce 0x00000000 || n as a 64-bit big-endian number."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        state = CipherState(KEY)
        for n in range(3):
            expected = AESGCM(KEY).encrypt(bytes(4) + n.to_bytes(8, "big"), b"m", b"ad")
            self.assertEqual(state.encrypt_with_ad(b"ad", b"m"), expected)
        state.set_nonce(2**40 + 5)
        nonce = bytes(4) + (2**40 + 5).to_bytes(8, "big")
        self.assertEqual(
            state.encrypt_with_ad(b"", b"m"), AESGCM(KEY).encrypt(nonce, b"m", b"")
        )
        self.assertEqual(state.nonce, 2**40 + 6)

    def test_nonces_advance_in_step(self) -> None:
        i_send, _, r_receive, _ = _handshake()
        for n in range(5):
            message = i_send.encrypt_with_ad(b"", b"%d" % n)
            self.assertEqual(r_receive.decrypt_with_ad(b"", message), b"%d" % n)
        self.assertEqual((i_send.nonce, r_receive.nonce), (5, 5))

    def test_failed_decryption_keeps_nonce(self) -> None:
        i_send, _, r_receive, _ = _handshake()
        good = i_send.encrypt_with_ad(b"", b"hello")
        for bad in (_flip(good, 0), _flip(good, len(good) - 1), good[:-1], b"", b"x" * 15):
            with self.assertRaises(RemoteProtocolError) as caught:
                r_receive.decrypt_with_ad(b"", bad)
            self.assertEqual(caught.exception.code, "decrypt-failed")
            self.assertEqual(r_receive.nonce, 0)
        self.assertEqual(r_receive.decrypt_with_ad(b"", good), b"hello")
        self.assertEqual(r_receive.nonce, 1)

    def test_replay_and_reorder(self) -> None:
        i_send, _, r_receive, _ = _handshake()
        first = i_send.encrypt_with_ad(b"", b"one")
        second = i_send.encrypt_with_ad(b"", b"two")
        self.assertRaises(RemoteProtocolError, r_receive.decrypt_with_ad, b"", second)
        self.assertEqual(r_receive.decrypt_with_ad(b"", first), b"one")
        self.assertRaises(RemoteProtocolError, r_receive.decrypt_with_ad, b"", first)
        self.assertEqual(r_receive.decrypt_with_ad(b"", second), b"two")

    def test_wrong_direction(self) -> None:
        """A message cannot be decrypted by its sender's own receiving state."""
        i_send, i_receive, _, _ = _handshake()
        with self.assertRaises(RemoteProtocolError) as caught:
            i_receive.decrypt_with_ad(b"", i_send.encrypt_with_ad(b"", b"hi"))
        self.assertEqual(caught.exception.code, "decrypt-failed")

    def test_associated_data_is_authenticated(self) -> None:
        sender, receiver = CipherState(KEY), CipherState(KEY)
        message = sender.encrypt_with_ad(b"one", b"payload")
        self.assertRaises(RemoteProtocolError, receiver.decrypt_with_ad, b"two", message)
        self.assertEqual(receiver.decrypt_with_ad(b"one", message), b"payload")

    def test_receiver_refuses_nonce_limit_for_the_limit(self) -> None:
        """
        A record sealed under nonce 2**64-1, which would authenticate, is
        refused by a receiver at that count because of the limit (not its
        tag), and the counter stays.
        """
        sealed = AESGCM(KEY).encrypt(b"\x00" * 4 + (MAX_NONCE).to_bytes(8, "big"), b"x", b"")
        receiver = CipherState(KEY)
        receiver.set_nonce(MAX_NONCE)
        with self.assertRaises(RemoteProtocolError) as caught:
            receiver.decrypt_with_ad(b"", sealed)
        self.assertEqual((caught.exception.code, caught.exception.text),
                         ("decrypt-failed", "no nonce left"))
        self.assertEqual(receiver.nonce, MAX_NONCE)

    def test_last_nonce_is_never_used(self) -> None:
        """Nonce 2**64-2 is the last one used; 2**64-1 raises on both sides."""
        sender, receiver = CipherState(KEY), CipherState(KEY)
        sender.set_nonce(MAX_NONCE - 1)
        receiver.set_nonce(MAX_NONCE - 1)
        message = sender.encrypt_with_ad(b"", b"last")
        self.assertEqual(receiver.decrypt_with_ad(b"", message), b"last")
        self.assertEqual(sender.nonce, MAX_NONCE)
        self.assertRaises(LocalProtocolError, sender.encrypt_with_ad, b"", b"more")
        with self.assertRaises(RemoteProtocolError) as caught:
            receiver.decrypt_with_ad(b"", message)
        self.assertEqual(caught.exception.code, "decrypt-failed")
        self.assertEqual(sender.nonce, MAX_NONCE)

    def test_no_key_passes_through(self) -> None:
        state = CipherState()
        self.assertFalse(state.has_key())
        self.assertEqual(state.encrypt_with_ad(b"ad", b"clear"), b"clear")
        self.assertEqual(state.decrypt_with_ad(b"ad", b"clear"), b"clear")
        self.assertEqual(state.nonce, 0)

    def test_fresh_keys_per_handshake(self) -> None:
        """Two handshakes with the same psk give unrelated transport keys."""
        first, second = _handshake()[0], _handshake()[0]
        self.assertNotEqual(
            first.encrypt_with_ad(b"", b"same"), second.encrypt_with_ad(b"", b"same")
        )


class CipherCacheTests(SynchronousTestCase):
    """
    Kept ciphers are only a cache: what is encrypted never depends on
    whether a cipher was kept, made anew or given up in between.
    """

    def setUp(self) -> None:
        self.cache = CipherCache(2)

    def test_cached_states_keep_their_cipher_up_to_size(self) -> None:
        states = [CipherState(bytes([i]) * 32, cache=self.cache) for i in range(3)]
        for state in states:
            state.encrypt_with_ad(b"", b"x")
        self.assertEqual(len(self.cache), 2)
        self.assertEqual([s._aead is not None for s in states], [False, True, True],
                         "the oldest was given up")

    def test_uncached_states_keep_nothing(self) -> None:
        state, receiver = CipherState(bytes(32)), CipherState(bytes(32))
        self.assertEqual(receiver.decrypt_with_ad(b"", state.encrypt_with_ad(b"", b"x")), b"x")
        self.assertIsNone(state._aead)
        self.assertIsNone(receiver._aead)
        self.assertEqual(len(self.cache), 0)

    def test_same_output_whether_kept_or_not(self) -> None:
        key = os.urandom(32)
        kept, made = CipherState(key, cache=self.cache), CipherState(key)
        receiver = CipherState(key)
        for i in range(5):
            if i == 2:
                # Push the kept one out of the cache in the middle.
                for j in range(3):
                    CipherState(bytes([j]) * 32, cache=self.cache).encrypt_with_ad(b"", b"")
                self.assertIsNone(kept._aead)
            one = kept.encrypt_with_ad(b"ad", b"message %d" % i)
            self.assertEqual(one, made.encrypt_with_ad(b"ad", b"message %d" % i))
            self.assertEqual(receiver.decrypt_with_ad(b"ad", one), b"message %d" % i)

    def test_release_and_new_key(self) -> None:
        state = CipherState(bytes(32), cache=self.cache)
        state.encrypt_with_ad(b"", b"x")
        self.assertEqual(len(self.cache), 1)
        state.release()
        self.assertEqual(len(self.cache), 0)
        self.assertIsNone(state._aead)
        state.encrypt_with_ad(b"", b"x")
        state.initialize_key(bytes([1]) * 32)
        self.assertEqual(len(self.cache), 0, "a new key gives up the old cipher")
        other = CipherState(bytes([1]) * 32)
        self.assertEqual(state.encrypt_with_ad(b"", b"z"), other.encrypt_with_ad(b"", b"z"))

    def test_size_zero_keeps_none(self) -> None:
        self.cache.size = 0
        state = CipherState(bytes(32), cache=self.cache)
        state.encrypt_with_ad(b"", b"x")
        self.assertIsNone(state._aead)


class SymmetricStateTests(SynchronousTestCase):
    def test_initial_hash_is_the_padded_name(self) -> None:
        """A name of at most 32 bytes is used as h directly, not hashed."""
        self.assertEqual(len(PROTOCOL_NAME), 32)
        state = SymmetricState(PROTOCOL_NAME)
        self.assertEqual(state.h, PROTOCOL_NAME)
        self.assertEqual(state.ck, PROTOCOL_NAME)
        self.assertEqual(SymmetricState(b"short").h, b"short" + bytes(27))

    def test_long_name_is_hashed(self) -> None:
        import hashlib

        name = b"Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s"
        self.assertEqual(SymmetricState(name).h, hashlib.sha256(name).digest())

    def test_hkdf_matches_rfc5869(self) -> None:
        """Noise HKDF(ck, ikm, 2) is RFC 5869 HKDF with salt=ck and no info."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        state = SymmetricState(PROTOCOL_NAME)
        expected = HKDF(hashes.SHA256(), 64, salt=PROTOCOL_NAME, info=b"").derive(b"ikm")
        state.mix_key(b"ikm")
        self.assertEqual(state.ck, expected[:32])
        sealed = state.encrypt_and_hash(b"")
        self.assertEqual(CipherState(expected[32:]).encrypt_with_ad(PROTOCOL_NAME, b""), sealed)
