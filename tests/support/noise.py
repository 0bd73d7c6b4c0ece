# -*- test-case-name: tests.test_noise -*-
"""
Forged Noise handshake messages for the attack tests: what a peer holding
the key (or none) can send, built from the primitives of
L{chatsvc.wire.noise}.
"""

from __future__ import annotations

from typing import Tuple

from chatsvc.wire.noise import PROTOCOL_NAME, SymmetricState

PSK = bytes(range(32))
"""The key of the in-memory tests (as L{tests.support.encrypted.PSK})."""

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
