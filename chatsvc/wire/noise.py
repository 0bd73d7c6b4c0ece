# -*- test-case-name: tests.test_noise -*-
"""
C{Noise_NNpsk0_25519_AESGCM_SHA256} (Noise spec revision 34), without I/O.

Only the one handshake pattern that PROTOCOL.md section 3.1 uses, written on
C{cryptography}'s X25519, AES-GCM, SHA-256 and HMAC, and checked byte for byte
against the published vectors in C{tests/vectors/}::

    client = HandshakeState(initiator=True, psk=key, prologue=b"chatsvc/1")
    server = HandshakeState(initiator=False, psk=key, prologue=b"chatsvc/1")
    server.read_message(client.write_message(b""))
    client.read_message(server.write_message(b""))
    client_send, client_receive = client.split()
    server_receive, server_send = server.split()
    server_receive.decrypt_with_ad(b"", client_send.encrypt_with_ad(b"", b"hi"))

The class and method names follow the spec's section 5 (C{MixKey} is
L{SymmetricState.mix_key}, and so on).  Errors caused by the peer's bytes
raise L{RemoteProtocolError}: C{handshake-failed} during the handshake,
C{decrypt-failed} for a transport message.  Misuse raises
L{LocalProtocolError}.
"""

from __future__ import annotations

import struct
from typing import Optional, Tuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import LocalProtocolError, RemoteProtocolError

PROTOCOL_NAME = b"Noise_NNpsk0_25519_AESGCM_SHA256"
DHLEN = 32
HASHLEN = 32
TAGLEN = 16
PSKLEN = 32
MAX_MESSAGE = 65535
"""The largest Noise message, handshake or transport (spec section 3)."""
MAX_NONCE = 2**64 - 1
"""Reserved by the spec: a cipher state never uses this nonce."""

# 32 zero bits, then the 64-bit big-endian counter (spec section 12.3).
_pack_nonce = struct.Struct(">4xQ").pack


def _hash(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def _hmac(key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def _hkdf(chaining_key: bytes, ikm: bytes, outputs: int) -> Tuple[bytes, ...]:
    """The spec's C{HKDF()}: RFC 5869 with salt C{chaining_key}, empty info."""
    temp_key = _hmac(chaining_key, ikm)
    result = [_hmac(temp_key, b"\x01")]
    for i in range(2, outputs + 1):
        result.append(_hmac(temp_key, result[-1] + bytes([i])))
    return tuple(result)


def _public_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


class CipherCache:
    """
    The AES-GCM key schedules kept ready between uses.

    An C{AESGCM} object costs about 2.6 KiB (OpenSSL keeps an encryption and
    a decryption context) and 0.8 microseconds to make. Kept for every
    connection, that is most of an idle encrypted connection's memory; made
    for every record, it is an eighth of the cost of a fan-out. So the
    ciphers that encrypt the hot path (a server's sending side) are kept
    here, at most L{size} of them, the oldest given up first; every other
    use makes one and drops it. A room with fewer busy encrypted members
    than L{size} never makes one twice; ten thousand idle ones hold at most
    L{size}.

    @ivar size: how many to keep (0: none).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._states: "dict[CipherState, None]" = {}  # oldest first

    def __len__(self) -> int:
        return len(self._states)

    def keep(self, state: "CipherState", aead: AESGCM) -> None:
        if self.size <= 0:
            return
        states = self._states
        state._aead = aead
        states[state] = None
        while len(states) > self.size:
            oldest = next(iter(states))
            del states[oldest]
            oldest._aead = None

    def drop(self, state: "CipherState") -> None:
        if state in self._states:
            del self._states[state]
        state._aead = None


class CipherState:
    """
    An AES-256-GCM key and its message counter (spec section 5.1).

    The counter goes up by one for each message encrypted or successfully
    decrypted; a message that fails to decrypt leaves it alone.

    @ivar nonce: the counter value the next message will use.
    @ivar cache: the L{CipherCache} that keeps the cipher between uses (set
        it on the hot sending side), or C{None}: a cipher per message.
    """

    __slots__ = ("nonce", "_key", "_aead", "cache")

    def __init__(self, key: Optional[bytes] = None,
                 cache: Optional[CipherCache] = None) -> None:
        self._aead: Optional[AESGCM] = None
        self.cache = cache
        self.initialize_key(key)

    def initialize_key(self, key: Optional[bytes]) -> None:
        """Use C{key} (or no key: messages pass through) from nonce 0 on."""
        self.nonce = 0
        if self._aead is not None:
            self.cache.drop(self)  # type: ignore[union-attr]
        self._key = key

    def release(self) -> None:
        """Give up the kept cipher, if any (the connection is over)."""
        if self._aead is not None:
            self.cache.drop(self)  # type: ignore[union-attr]

    def _cipher(self) -> AESGCM:
        aead = AESGCM(self._key)  # type: ignore[arg-type]
        if self.cache is not None:
            self.cache.keep(self, aead)
        return aead

    def has_key(self) -> bool:
        return self._key is not None

    def set_nonce(self, nonce: int) -> None:
        """The spec's C{SetNonce()}, used by tests to reach the counter's end."""
        self.nonce = nonce

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        """
        Return C{plaintext} encrypted, with the 16-byte tag appended.

        @raise LocalProtocolError: if all 2**64-1 nonces have been used.
        """
        if self._key is None:
            return plaintext
        nonce = self.nonce
        if nonce >= MAX_NONCE:
            raise LocalProtocolError("cipher state exhausted: no nonce left")
        aead = self._aead or self._cipher()
        ciphertext = aead.encrypt(_pack_nonce(nonce), plaintext, ad)
        self.nonce = nonce + 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """
        Return the plaintext of C{ciphertext}.

        @raise RemoteProtocolError: C{decrypt-failed} if the message is shorter
            than a tag, fails authentication, or the peer used up every nonce.
        """
        if self._key is None:
            return ciphertext
        nonce = self.nonce
        if nonce >= MAX_NONCE:
            raise RemoteProtocolError("decrypt-failed", "no nonce left")
        if len(ciphertext) < TAGLEN:
            raise RemoteProtocolError("decrypt-failed", "message shorter than a tag")
        aead = self._aead or self._cipher()
        try:
            plaintext = aead.decrypt(_pack_nonce(nonce), ciphertext, ad)
        except InvalidTag:
            raise RemoteProtocolError(
                "decrypt-failed", "message failed authentication"
            ) from None
        self.nonce = nonce + 1
        return plaintext


class SymmetricState:
    """The chaining key, the handshake hash and a L{CipherState} (section 5.2)."""

    def __init__(self, protocol_name: bytes = PROTOCOL_NAME) -> None:
        if len(protocol_name) <= HASHLEN:
            self.h = protocol_name.ljust(HASHLEN, b"\x00")
        else:
            self.h = _hash(protocol_name)
        self.ck = self.h
        self.cipher_state = CipherState()

    def mix_key(self, ikm: bytes) -> None:
        self.ck, temp_k = _hkdf(self.ck, ikm, 2)
        self.cipher_state.initialize_key(temp_k)

    def mix_hash(self, data: bytes) -> None:
        self.h = _hash(self.h + data)

    def mix_key_and_hash(self, ikm: bytes) -> None:
        self.ck, temp_h, temp_k = _hkdf(self.ck, ikm, 3)
        self.mix_hash(temp_h)
        self.cipher_state.initialize_key(temp_k)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher_state.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher_state.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> Tuple[CipherState, CipherState]:
        k1, k2 = _hkdf(self.ck, b"", 2)
        return CipherState(k1), CipherState(k2)


class HandshakeState:
    """
    One side of an NNpsk0 handshake (spec section 5.3)::

        -> psk, e
        <- e, ee

    Call L{write_message} and L{read_message} in turn (the initiator writes
    first), then L{split}.  After any error the object is unusable.
    """

    def __init__(
        self,
        initiator: bool,
        psk: bytes,
        prologue: bytes = b"",
        ephemeral: Optional[bytes] = None,
    ) -> None:
        """
        @param initiator: whether this side sends the first message.
        @param psk: the 32-byte pre-shared key.
        @param prologue: data both sides must agree on; it is authenticated.
        @param ephemeral: a fixed X25519 private key, for test vectors only;
            by default a fresh one is generated.
        @raise LocalProtocolError: if C{psk} or C{ephemeral} is not 32 bytes.
        """
        if not isinstance(psk, bytes) or len(psk) != PSKLEN:
            raise LocalProtocolError(f"the psk must be {PSKLEN} bytes")
        if ephemeral is None:
            self._e = X25519PrivateKey.generate()
        elif isinstance(ephemeral, bytes) and len(ephemeral) == DHLEN:
            self._e = X25519PrivateKey.from_private_bytes(ephemeral)
        else:
            raise LocalProtocolError(f"the ephemeral key must be {DHLEN} bytes")
        self.initiator = initiator
        self._psk = psk
        self._symmetric = SymmetricState(PROTOCOL_NAME)
        self._symmetric.mix_hash(prologue)
        self._re = b""
        # The responder's "ee", computed as soon as message 1 is read, so that
        # a low-order key fails there (handshake-failed), not in write_message.
        self._ee = b""
        # Index of the next message of the pattern; 2 means complete, -1 failed.
        self._index = 0
        self._split = False

    @property
    def complete(self) -> bool:
        return self._index == 2

    @property
    def remote_ephemeral(self) -> bytes:
        """The peer's ephemeral public key, once its message was read (else C{b""})."""
        return self._re

    @property
    def handshake_hash(self) -> bytes:
        """The final handshake hash C{h}, for channel binding."""
        self._check_complete()
        return self._symmetric.h

    def _check_turn(self, writing: bool) -> None:
        if self._index == -1:
            raise LocalProtocolError("the handshake already failed")
        if self._index == 2:
            raise LocalProtocolError("the handshake is already complete")
        # The initiator writes message 0, the responder message 1.
        if writing != (self.initiator == (self._index == 0)):
            verb = "write" if writing else "read"
            raise LocalProtocolError(f"not our turn to {verb} a handshake message")

    def _check_complete(self) -> None:
        if self._index != 2:
            raise LocalProtocolError("the handshake is not complete")

    def _mix_ephemeral(self, public: bytes) -> None:
        # Token "e"; with a psk modifier every "e" is also MixKey(e.public).
        self._symmetric.mix_hash(public)
        self._symmetric.mix_key(public)

    def _dh(self, remote_public: bytes) -> bytes:
        """
        X25519 with the peer's ephemeral key.

        @raise ValueError: for a low-order point (an all-zero result), which
            C{cryptography} refuses; the callers make it C{handshake-failed}.
        """
        return self._e.exchange(X25519PublicKey.from_public_bytes(remote_public))

    def write_message(self, payload: bytes = b"") -> bytes:
        """Return the next handshake message, carrying C{payload}."""
        self._check_turn(writing=True)
        if DHLEN + len(payload) + TAGLEN > MAX_MESSAGE:
            raise LocalProtocolError("handshake payload too long")
        e_public = _public_bytes(self._e)
        if self.initiator:
            self._symmetric.mix_key_and_hash(self._psk)  # "psk"
            self._mix_ephemeral(e_public)  # "e"
        else:
            self._mix_ephemeral(e_public)  # "e"
            self._symmetric.mix_key(self._ee)  # "ee", computed by read_message
            self._ee = b""
        message = e_public + self._symmetric.encrypt_and_hash(payload)
        self._index += 1
        return message

    def read_message(self, message: bytes) -> bytes:
        """
        Process the peer's next handshake message and return its payload.

        @raise RemoteProtocolError: C{handshake-failed} if the message is
            malformed or fails authentication (most likely a different psk).
        """
        self._check_turn(writing=False)
        failed_index, self._index = self._index, -1
        message = bytes(message)
        if not DHLEN + TAGLEN <= len(message) <= MAX_MESSAGE:
            raise RemoteProtocolError(
                "handshake-failed", "handshake message of the wrong length"
            )
        re = message[:DHLEN]
        try:
            if not self.initiator:
                self._symmetric.mix_key_and_hash(self._psk)  # "psk"
                self._mix_ephemeral(re)  # "e"
            else:
                self._mix_ephemeral(re)  # "e"
                self._symmetric.mix_key(self._dh(re))  # "ee"
            payload = self._symmetric.decrypt_and_hash(message[DHLEN:])
            if not self.initiator:
                # The "ee" of our reply, now: a low-order key is refused here,
                # with the authenticated message that brought it.
                self._ee = self._dh(re)
        except (RemoteProtocolError, ValueError):
            # ValueError: X25519 refuses a low-order point (all-zero secret),
            # on either side (PROTOCOL.md 3.1).
            raise RemoteProtocolError(
                "handshake-failed", "handshake message failed authentication"
            ) from None
        self._re = re
        self._index = failed_index + 1
        return payload

    def split(self) -> Tuple[CipherState, CipherState]:
        """
        Return the two transport cipher states: the first encrypts messages
        from the initiator to the responder, the second the other way.

        @raise LocalProtocolError: before the handshake is complete, or on a
            second call (two copies of a cipher state would reuse nonces).
        """
        self._check_complete()
        if self._split:
            raise LocalProtocolError("split() may only be called once")
        self._split = True
        return self._symmetric.split()
