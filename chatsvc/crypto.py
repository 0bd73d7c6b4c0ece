# -*- test-case-name: tests.test_crypto -*-
"""
Stateless AES-256-GCM helpers for data at rest, such as a chat log.

The connection itself is protected by the Noise handshake in
L{chatsvc.wire.noise}; these helpers are for everything else.  Each call
picks a fresh random 96-bit nonce and returns printable text (URL-safe
base64 of nonce, ciphertext and tag), so one encrypted message fits one line
of a text file.  For example, to keep a log encrypted with the PSK::

    from chatsvc.crypto import encrypt_message, decrypt_message
    from chatsvc.keys import load_key

    key = load_key("keys/chat.key")
    with open("chat.log.enc", "a", encoding="ascii") as log:
        log.write(encrypt_message(line, key, associated_data=b"chat.log") + "\\n")

    with open("chat.log.enc", encoding="ascii") as log:
        for text in log:
            print(decrypt_message(text, key, associated_data=b"chat.log").decode())

C{associated_data} is authenticated but not stored: a line only decrypts
with the same value, so a line moved from another file (another value) is
refused.  Random nonces keep a key safe for about 2**32 messages; use a
new key well before that.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Union

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chatsvc.wire.errors import ChatsvcError

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16


class DecryptionError(ChatsvcError):
    """The text is not a message encrypted under this key and associated data."""


def _aead(key: bytes) -> AESGCM:
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_SIZE:
        raise ValueError(
            f"the key must be {KEY_SIZE} bytes (read a key file with"
            " chatsvc.keys.load_key)"
        )
    return AESGCM(bytes(key))


def encrypt_message(
    message: Union[str, bytes], key: bytes, *, associated_data: bytes = b""
) -> str:
    """
    Return C{message} encrypted and authenticated under C{key}, as ASCII text.

    @param message: text (encoded as UTF-8) or bytes.
    @param key: 32 bytes.
    @param associated_data: authenticated, not encrypted, not included in the
        result; L{decrypt_message} must be given the same.
    @raise ValueError: if C{key} is not 32 bytes.
    """
    aead = _aead(key)
    if isinstance(message, str):
        message = message.encode("utf-8")
    nonce = os.urandom(NONCE_SIZE)
    sealed = nonce + aead.encrypt(nonce, message, associated_data)
    return base64.urlsafe_b64encode(sealed).decode("ascii")


def decrypt_message(
    ciphertext: Union[str, bytes], key: bytes, *, associated_data: bytes = b""
) -> bytes:
    """
    Return the bytes that L{encrypt_message} encrypted into C{ciphertext}.

    White space around C{ciphertext} (a line's newline) is ignored.

    @raise DecryptionError: if C{ciphertext} is not base64, is too short, or
        fails authentication (wrong key, wrong associated data, altered).
    @raise ValueError: if C{key} is not 32 bytes.
    """
    aead = _aead(key)
    try:
        if isinstance(ciphertext, str):
            ciphertext = ciphertext.encode("ascii")
        sealed = base64.b64decode(ciphertext.strip(), altchars=b"-_", validate=True)
        if len(sealed) < NONCE_SIZE + TAG_SIZE:
            raise ValueError("too short")
        return aead.decrypt(
            sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], associated_data
        )
    except (InvalidTag, binascii.Error, ValueError):
        # UnicodeEncodeError and binascii.Error are ValueErrors too.
        raise DecryptionError(
            "cannot decrypt: wrong key or associated data, altered text, or not"
            " a chatsvc.crypto ciphertext"
        ) from None
