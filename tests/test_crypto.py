# -*- test-case-name: tests.test_crypto -*-
"""
Tests for L{chatsvc.crypto}, the stateless AES-256-GCM helpers.
"""

from __future__ import annotations

import base64

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.crypto import DecryptionError, decrypt_message, encrypt_message
from chatsvc.wire.errors import ChatsvcError

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


class RoundTripTests(SynchronousTestCase):
    def test_str(self) -> None:
        text = encrypt_message("héllo wörld ✓", KEY)
        self.assertIsInstance(text, str)
        self.assertEqual(decrypt_message(text, KEY), "héllo wörld ✓".encode("utf-8"))

    def test_bytes(self) -> None:
        data = bytes(range(256))
        self.assertEqual(decrypt_message(encrypt_message(data, KEY), KEY), data)

    def test_empty(self) -> None:
        self.assertEqual(decrypt_message(encrypt_message(b"", KEY), KEY), b"")

    def test_bytes_ciphertext_and_white_space(self) -> None:
        """A line read from a file, newline and all, decrypts."""
        text = encrypt_message(b"log line", KEY)
        self.assertEqual(decrypt_message(text.encode("ascii"), KEY), b"log line")
        self.assertEqual(decrypt_message(text + "\n", KEY), b"log line")
        self.assertEqual(decrypt_message(b"  " + text.encode() + b"\r\n", KEY), b"log line")

    def test_associated_data(self) -> None:
        text = encrypt_message(b"m", KEY, associated_data=b"chat.log")
        self.assertEqual(decrypt_message(text, KEY, associated_data=b"chat.log"), b"m")
        for wrong in (b"", b"chat.lo", b"other"):
            self.assertRaises(DecryptionError, decrypt_message, text, KEY, associated_data=wrong)
        plain = encrypt_message(b"m", KEY)
        self.assertRaises(DecryptionError, decrypt_message, plain, KEY, associated_data=b"x")


class FormatTests(SynchronousTestCase):
    def test_layout(self) -> None:
        """URL-safe base64 of a 12-byte nonce, the ciphertext and a 16-byte tag."""
        text = encrypt_message(b"hello", KEY, associated_data=b"ad")
        self.assertTrue(text.isascii())
        self.assertFalse(set(text) & set("+/\n "))
        sealed = base64.urlsafe_b64decode(text)
        self.assertEqual(len(sealed), 12 + 5 + 16)
        self.assertEqual(AESGCM(KEY).decrypt(sealed[:12], sealed[12:], b"ad"), b"hello")

    def test_random_nonce(self) -> None:
        texts = {encrypt_message(b"same", KEY) for _ in range(50)}
        self.assertEqual(len(texts), 50)
        nonces = {base64.urlsafe_b64decode(t)[:12] for t in texts}
        self.assertEqual(len(nonces), 50)

    def test_reads_plain_aesgcm(self) -> None:
        """Anything AES-GCM-encrypted in the documented layout decrypts."""
        nonce = b"\x07" * 12
        sealed = nonce + AESGCM(KEY).encrypt(nonce, b"interop", None)
        self.assertEqual(decrypt_message(base64.urlsafe_b64encode(sealed), KEY), b"interop")


class RefusalTests(SynchronousTestCase):
    def assertRefused(self, ciphertext: object, key: bytes = KEY) -> DecryptionError:
        with self.assertRaises(DecryptionError) as caught:
            decrypt_message(ciphertext, key)  # type: ignore[arg-type]
        error = caught.exception
        self.assertIn("cannot decrypt", str(error))
        self.assertNotIn("\n", str(error))
        self.assertIsNone(error.__cause__)
        self.assertTrue(error.__suppress_context__)
        self.assertNotIsInstance(error, InvalidTag)
        return error

    def test_wrong_key(self) -> None:
        error = self.assertRefused(encrypt_message(b"secret", KEY), OTHER_KEY)
        self.assertNotIn(KEY.hex(), str(error))
        self.assertNotIn("secret", str(error))

    def test_tampered(self) -> None:
        sealed = bytearray(base64.urlsafe_b64decode(encrypt_message(b"secret", KEY)))
        for index in range(len(sealed)):
            tampered = bytearray(sealed)
            tampered[index] ^= 0x01
            self.assertRefused(base64.urlsafe_b64encode(bytes(tampered)).decode())

    def test_truncated(self) -> None:
        sealed = base64.urlsafe_b64decode(encrypt_message(b"secret", KEY))
        for length in (0, 11, 12, 27, len(sealed) - 1):
            self.assertRefused(base64.urlsafe_b64encode(sealed[:length]))

    def test_garbage(self) -> None:
        for garbage in ("", "not base64!", "abc", "====", "é" * 40, b"\xff\xfe" * 30, "A" * 64):
            self.assertRefused(garbage)

    def test_error_family(self) -> None:
        """DecryptionError belongs to chatsvc's errors, not to ValueError."""
        error = self.assertRefused("garbage")
        self.assertIsInstance(error, ChatsvcError)
        self.assertNotIsInstance(error, ValueError)


class KeyTests(SynchronousTestCase):
    def test_wrong_key_length(self) -> None:
        for key in (b"", b"k" * 16, b"k" * 31, b"k" * 33, b"k" * 64):
            with self.assertRaises(ValueError) as caught:
                encrypt_message(b"m", key)
            self.assertIn("32 bytes", str(caught.exception))
            self.assertRaises(ValueError, decrypt_message, "x", key)

    def test_base64_text_is_not_a_key(self) -> None:
        """The 44-character text of a key file is refused; load_key decodes it."""
        encoded = base64.urlsafe_b64encode(KEY)
        self.assertRaises(ValueError, encrypt_message, b"m", encoded)
        self.assertRaises(ValueError, encrypt_message, b"m", encoded.decode())

    def test_bytearray_key(self) -> None:
        text = encrypt_message(b"m", bytearray(KEY))
        self.assertEqual(decrypt_message(text, KEY), b"m")

    def test_key_never_in_message(self) -> None:
        with self.assertRaises(ValueError) as caught:
            encrypt_message(b"m", b"SUPERSECRETKEY")
        self.assertNotIn("SUPERSECRET", str(caught.exception))
