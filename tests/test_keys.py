# -*- test-case-name: tests.test_keys -*-
"""
Tests for L{chatsvc.keys}: loading, checking and generating key files, and
the C{chat-keygen} command.
"""

from __future__ import annotations

import base64
import io
import os
import socket
import stat
import subprocess
import sys

from cryptography.fernet import Fernet
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.keys import (
    KeyFileError,
    generate_key_file,
    is_demo_key,
    key_file_warning,
    load_key,
    main,
)

KEY = bytes(range(200, 232))
ENCODED = base64.urlsafe_b64encode(KEY)  # 44 bytes, with a "-" and a "_"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LoadKeyTests(SynchronousTestCase):
    def write(self, content: bytes) -> str:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(content)
        return path

    def assertRefused(self, content: bytes, *fragments: str) -> str:
        """Check load_key refuses C{content} with a one-line, key-free message."""
        path = self.write(content)
        with self.assertRaises(KeyFileError) as caught:
            load_key(path)
        message = str(caught.exception)
        self.assertIn(path, message)
        self.assertNotIn("\n", message)
        for fragment in fragments:
            self.assertIn(fragment, message)
        self.assertNotIn(ENCODED.decode()[:20], message)
        self.assertNotIn(ENCODED.decode()[-20:], message)
        return message

    def test_plain(self) -> None:
        self.assertEqual(load_key(self.write(ENCODED + b"\n")), KEY)

    def test_no_final_newline(self) -> None:
        self.assertEqual(load_key(self.write(ENCODED)), KEY)

    def test_fernet_format(self) -> None:
        """A key printed by Fernet.generate_key() is accepted as it is."""
        encoded = Fernet.generate_key()
        self.assertEqual(load_key(self.write(encoded)), base64.urlsafe_b64decode(encoded))

    def test_comments_blank_lines_white_space(self) -> None:
        content = (
            b"# a comment\r\n\r\n   \n\t# indented comment\n  "
            + ENCODED
            + b" \t\r\n\n# trailing comment\n"
        )
        self.assertEqual(load_key(self.write(content)), KEY)

    def test_pathlike(self) -> None:
        from pathlib import Path

        self.assertEqual(load_key(Path(self.write(ENCODED))), KEY)

    def test_missing(self) -> None:
        path = self.mktemp()
        with self.assertRaises(KeyFileError) as caught:
            load_key(path)
        self.assertIn(path, str(caught.exception))
        self.assertIn("no such file", str(caught.exception))

    def test_directory(self) -> None:
        path = self.mktemp()
        os.mkdir(path)
        with self.assertRaises(KeyFileError) as caught:
            load_key(path)
        self.assertIn(path, str(caught.exception))
        self.assertIn("directory", str(caught.exception))

    def test_unreadable(self) -> None:
        """A file we may not read (POSIX, not as root) is refused by name."""
        if os.name != "posix" or os.geteuid() == 0:
            # Permissions cannot make a file unreadable here; check that a
            # readable one is read, so the test still asserts something.
            self.assertEqual(load_key(self.write(ENCODED)), KEY)
            return
        path = self.write(ENCODED)
        os.chmod(path, 0)
        self.addCleanup(os.chmod, path, 0o600)
        with self.assertRaises(KeyFileError) as caught:
            load_key(path)
        self.assertIn("cannot read", str(caught.exception))
        self.assertIn(path, str(caught.exception))

    def test_empty(self) -> None:
        self.assertRefused(b"", "no key found", "URL-safe base64", "44 characters")

    def test_only_comments(self) -> None:
        self.assertRefused(b"# nothing here\n\n", "no key found")

    def test_two_keys(self) -> None:
        other = Fernet.generate_key()
        message = self.assertRefused(ENCODED + b"\n\n" + other + b"\n", "lines 1, 3")
        self.assertNotIn(other.decode()[:20], message)

    def test_same_key_twice(self) -> None:
        self.assertRefused(ENCODED + b"\n" + ENCODED + b"\n", "2 non-comment lines")

    def test_too_short(self) -> None:
        self.assertRefused(ENCODED[:-1], "43 characters")

    def test_too_long(self) -> None:
        self.assertRefused(b"# c\n" + ENCODED + b"A", "line 2 has 45 characters")

    def test_16_byte_key(self) -> None:
        self.assertRefused(base64.urlsafe_b64encode(KEY[:16]), "24 characters")

    def test_raw_bytes(self) -> None:
        self.assertRefused(KEY, "expected")

    def test_hex(self) -> None:
        self.assertRefused(KEY.hex().encode(), "64 characters")

    def test_standard_base64_alphabet(self) -> None:
        standard = base64.standard_b64encode(KEY)
        self.assertNotEqual(standard, ENCODED)
        self.assertRefused(standard, "not URL-safe base64")

    def test_not_base64(self) -> None:
        self.assertRefused(b"!" * 43 + b"=", "line 1 is not URL-safe base64")

    def test_non_ascii(self) -> None:
        self.assertRefused("é".encode() * 22, "not URL-safe base64")

    def test_non_canonical(self) -> None:
        """Stray low bits in the last character would give a second spelling."""
        alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        last = ENCODED[42]
        twin = ENCODED[:42] + bytes([alphabet[alphabet.index(last) ^ 1]]) + b"="
        self.assertEqual(base64.urlsafe_b64decode(twin), KEY)
        self.assertRefused(twin, "canonical")

    def test_comment_after_key(self) -> None:
        self.assertRefused(ENCODED + b"  # my key\n", "has 54 characters")

    def test_assignment(self) -> None:
        self.assertRefused(b"PSK=" + ENCODED, "48 characters")

    def test_byte_order_mark(self) -> None:
        self.assertRefused(b"\xef\xbb\xbf" + ENCODED, "byte order mark")

    def test_utf16(self) -> None:
        self.assertRefused(ENCODED.decode().encode("utf-16"), "expected")

    def test_huge_file(self) -> None:
        self.assertRefused(b"# x\n" * 20000 + ENCODED, "larger than")

    def test_messages_never_hold_the_key(self) -> None:
        """Whatever is wrong, no part of a key line ends up in the message."""
        for content in (
            ENCODED + b"\n" + ENCODED,
            ENCODED + b"x",
            ENCODED[:-1] + b"!",
            b"\x00" + ENCODED,
        ):
            self.assertRefused(content)

    def test_demo_key(self) -> None:
        """
        keys/demo.key loads, its first line is the key (to paste into a page
        or an IRC client's password) and the next says it is public.
        """
        path = os.path.join(REPO, "keys", "demo.key")
        self.assertEqual(len(load_key(path)), 32)
        with open(path, encoding="ascii") as f:
            key_line, warning = f.readline(), f.readline()
        self.assertEqual(len(key_line.strip()), 44)
        self.assertTrue(warning.startswith("#"))
        self.assertIn("PUBLIC", warning)


class DemoKeyTests(SynchronousTestCase):
    """Finding 2: the public demo key, recognised by its value (PROTOCOL.md 5)."""

    def demo_copy(self, mode: int = 0o600) -> str:
        """A private copy of keys/demo.key under another name, key line only."""
        with open(os.path.join(REPO, "keys", "demo.key"), "rb") as f:
            line = [l for l in f.read().split(b"\n") if l and not l.startswith(b"#")][0]
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"# my own key, honest\n" + line + b"\n")
        os.chmod(path, mode)
        return path

    def test_is_demo_key(self) -> None:
        demo = load_key(os.path.join(REPO, "keys", "demo.key"))
        self.assertTrue(is_demo_key(demo))
        self.assertFalse(is_demo_key(KEY))
        self.assertFalse(is_demo_key(demo[:-1] + bytes([demo[-1] ^ 1])))

    def test_private_copy_warns(self) -> None:
        """A 0600 copy anywhere, under any name, still says it is the demo key."""
        path = self.demo_copy()
        warning = key_file_warning(path)
        self.assertIsNotNone(warning)
        self.assertIn(path, warning)
        self.assertIn("public demo key", warning)
        self.assertIn("chat-keygen", warning)
        self.assertNotIn("\n", warning)
        self.assertEqual(key_file_warning(path, load_key(path)), warning)

    def test_demo_warning_replaces_the_mode_warning(self) -> None:
        """The demo key's warning comes alone: not the 0644 one first."""
        path = self.demo_copy(0o644)
        warning = key_file_warning(path)
        self.assertIn("public demo key", warning)
        self.assertNotIn("chmod", warning)

    def test_the_repository_file(self) -> None:
        warning = key_file_warning(os.path.join(REPO, "keys", "demo.key"))
        self.assertIn("public demo key", warning)

    def test_load_key_warn(self) -> None:
        """C{warn} is called with the warning, once; never with the key."""
        warnings: list = []
        key = load_key(self.demo_copy(), warn=warnings.append)
        self.assertEqual(len(warnings), 1)
        self.assertIn("public demo key", warnings[0])
        self.assertNotIn(base64.urlsafe_b64encode(key).decode()[:20], warnings[0])
        path = self.mktemp()
        generate_key_file(path)
        load_key(path, warn=warnings.append)
        self.assertEqual(len(warnings), 1)

    def test_other_keys_keep_the_mode_warning(self) -> None:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(ENCODED)
        os.chmod(path, 0o644)
        warnings: list = []
        load_key(path, warn=warnings.append)
        if os.name == "posix":
            self.assertEqual(len(warnings), 1)
            self.assertIn("0644", warnings[0])
            self.assertNotIn("demo", warnings[0])

    def test_client_warns_at_start_up(self) -> None:
        """
        C{chat-client --psk} with a private copy of the demo key says so on
        stderr first (a real process, to a port nobody listens on).
        """
        path = os.path.abspath(self.demo_copy())
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        command = [sys.executable, "-c", "import sys; from chatsvc.client import main; sys.exit(main())",
                   "--name", "x", "--encrypted", "--psk", path, "--no-reconnect", "127.0.0.1", str(port)]
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO,
                              stdin=subprocess.DEVNULL, timeout=120)
        first = done.stderr.splitlines()[0]
        self.assertIn("warning", first)
        self.assertIn("public demo key", first)
        self.assertNotIn("Traceback", done.stderr)

    def test_all_zero_key_refused(self) -> None:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"# zeros\n" + base64.urlsafe_b64encode(bytes(32)) + b"\n")
        with self.assertRaises(KeyFileError) as caught:
            load_key(path)
        self.assertIn("all-zero", str(caught.exception))
        self.assertIn("line 2", str(caught.exception))
        self.assertIn("chat-keygen", str(caught.exception))


class KeyFileWarningTests(SynchronousTestCase):
    def test_private_file(self) -> None:
        path = self.mktemp()
        generate_key_file(path)
        self.assertIsNone(key_file_warning(path))

    def test_readable_by_others(self) -> None:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(ENCODED)
        os.chmod(path, 0o644)
        warning = key_file_warning(path)
        if os.name != "posix":
            self.assertIsNone(warning)
            return
        self.assertIsNotNone(warning)
        self.assertIn(path, warning)
        self.assertIn("0644", warning)
        self.assertIn("chmod 600", warning)
        self.assertNotIn("\n", warning)
        os.chmod(path, 0o640)
        self.assertIn("0640", key_file_warning(path) or "")
        os.chmod(path, 0o600)
        self.assertIsNone(key_file_warning(path))

    def test_missing(self) -> None:
        """Nothing to warn about; load_key reports a missing file."""
        self.assertIsNone(key_file_warning(self.mktemp()))


class GenerateKeyFileTests(SynchronousTestCase):
    def test_generate(self) -> None:
        path = self.mktemp()
        generate_key_file(path)
        key = load_key(path)
        self.assertEqual(len(key), 32)
        with open(path, "rb") as f:
            content = f.read()
        self.assertTrue(content.startswith(b"#"))
        self.assertIn(base64.urlsafe_b64encode(key) + b"\n", content)
        self.assertTrue(content.endswith(b"\n"))

    def test_random(self) -> None:
        first, second = self.mktemp(), self.mktemp()
        generate_key_file(first)
        generate_key_file(second)
        self.assertNotEqual(load_key(first), load_key(second))

    def test_permissions(self) -> None:
        path = self.mktemp()
        generate_key_file(path)
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if os.name == "posix":
            self.assertEqual(mode, 0o600)
        else:
            self.assertTrue(mode & stat.S_IREAD)

    def test_permissions_ignore_umask(self) -> None:
        """A permissive umask does not widen the file's mode."""
        old = os.umask(0)
        try:
            path = self.mktemp()
            generate_key_file(path)
        finally:
            os.umask(old)
        if os.name == "posix":
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        else:
            self.assertEqual(len(load_key(path)), 32)

    def test_refuses_overwrite(self) -> None:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"precious")
        with self.assertRaises(KeyFileError) as caught:
            generate_key_file(path)
        self.assertIn(path, str(caught.exception))
        self.assertIn("already exists", str(caught.exception))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"precious")

    def test_refuses_overwrite_of_key(self) -> None:
        path = self.mktemp()
        generate_key_file(path)
        key = load_key(path)
        self.assertRaises(KeyFileError, generate_key_file, path)
        self.assertEqual(load_key(path), key)

    def test_refuses_directory(self) -> None:
        path = self.mktemp()
        os.mkdir(path)
        self.assertRaises(KeyFileError, generate_key_file, path)

    def test_refuses_symlink(self) -> None:
        """A symlink (even a dangling one) at the path is not followed."""
        if os.name != "posix":
            # Creating symlinks needs privileges on Windows; nothing to check.
            path = self.mktemp()
            generate_key_file(path)
            self.assertEqual(len(load_key(path)), 32)
            return
        target, link = self.mktemp(), self.mktemp()
        os.symlink(target, link)
        self.assertRaises(KeyFileError, generate_key_file, link)
        self.assertFalse(os.path.exists(target))

    def test_missing_directory(self) -> None:
        path = os.path.join(self.mktemp(), "sub", "chat.key")
        with self.assertRaises(KeyFileError) as caught:
            generate_key_file(path)
        self.assertIn("cannot create", str(caught.exception))
        self.assertIn(path, str(caught.exception))


class MainTests(SynchronousTestCase):
    def run_main(self, *argv: str) -> "tuple[int, str, str]":
        out, err = io.StringIO(), io.StringIO()
        status = main(list(argv), stdout=out, stderr=err)
        return status, out.getvalue(), err.getvalue()

    def test_success(self) -> None:
        path = self.mktemp()
        status, out, err = self.run_main(path)
        self.assertEqual(status, 0)
        self.assertEqual(err, "")
        self.assertIn(path, out)
        key = load_key(path)
        for encoding in (base64.urlsafe_b64encode(key).decode(), key.hex()):
            self.assertNotIn(encoding, out)
            self.assertNotIn(encoding[:16], out)

    def test_exists(self) -> None:
        path = self.mktemp()
        generate_key_file(path)
        status, out, err = self.run_main(path)
        self.assertEqual(status, 1)
        self.assertEqual(out, "")
        self.assertEqual(err.count("\n"), 1)
        self.assertTrue(err.startswith("chat-keygen: error: "))
        self.assertIn("already exists", err)
        self.assertNotIn("Traceback", err)
        self.assertNotIn(base64.urlsafe_b64encode(load_key(path)).decode()[:16], err)

    def test_cannot_create(self) -> None:
        path = os.path.join(self.mktemp(), "missing", "chat.key")
        status, out, err = self.run_main(path)
        self.assertEqual(status, 1)
        self.assertIn("cannot create", err)
        self.assertEqual(err.count("\n"), 1)

    def test_usage_error(self) -> None:
        status, out, err = self.run_main()
        self.assertEqual(status, 2)
        self.assertIn("usage: chat-keygen", err)

    def test_help(self) -> None:
        status, out, err = self.run_main("--help")
        self.assertEqual(status, 0)
        self.assertIn("usage: chat-keygen", out)

    def test_default_streams(self) -> None:
        """Without stream arguments main() writes to sys.stdout/sys.stderr."""
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        path = self.mktemp()
        self.assertEqual(main([path]), 0)
        self.assertIn(path, out.getvalue())
        self.assertEqual(main([path]), 1)
        self.assertIn("already exists", err.getvalue())

    def test_python_m(self) -> None:
        """C{python -m chatsvc.keys PATH} works and exits with main()'s status."""
        path = os.path.abspath(self.mktemp())
        command = [sys.executable, "-m", "chatsvc.keys", path]
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        first = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertIn(path, first.stdout)
        self.assertEqual(len(load_key(path)), 32)
        second = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
        self.assertEqual(second.returncode, 1)
        self.assertNotIn("Traceback", second.stderr)
        self.assertIn("already exists", second.stderr)
