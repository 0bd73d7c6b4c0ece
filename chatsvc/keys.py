# -*- test-case-name: tests.test_keys -*-
"""
Pre-shared key files (PROTOCOL.md section 5): load, check, generate.

A key file holds one line, the 32-byte key in URL-safe base64 (44
characters, the format C{cryptography.fernet.Fernet.generate_key()} prints),
and may hold blank lines and C{#} comment lines around it::

    $ chat-keygen ~/.config/chatsvc/chat.key      # or python -m chatsvc.keys
    >>> key = load_key(os.path.expanduser("~/.config/chatsvc/chat.key"))
    >>> key_file_warning(path)    # None, or "...: other users can access ..."
    >>> key = load_key(path, warn=print)   # the same, the warning given to warn()

The project's own demo key (C{keys/demo.key}) is public: L{is_demo_key}
recognises it by its value, wherever its file lies, and
L{key_file_warning} then says so (and only that: its file's mode does not
matter). An all-zero key is refused.

Every failure raises L{KeyFileError} with a one-line message that names the
file and says what was expected, and never holds key material: it is meant to
be shown to the user as it is.  Keys must be random (L{generate_key_file}),
never derived from a password: anyone who records a handshake can test
password guesses offline.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import codecs
import contextlib
import hashlib
import hmac
import os
import re
import stat
import sys
from typing import IO, Callable, Optional, Sequence, Union

from chatsvc.wire.errors import ChatsvcError

KEY_SIZE = 32
ENCODED_SIZE = 44
MAX_FILE_SIZE = 64 * 1024
"""A key file is tiny; refuse to read, say, a log file given by mistake."""

_KEY_LINE = re.compile(rb"[A-Za-z0-9_-]{43}=")
_HEADER = (
    "# chatsvc pre-shared key (chat-keygen). Keep it secret: anyone who has it\n"
    "# can join the chat and read it. Copy it to clients over a secure channel.\n"
)

_DEMO_KEY_SHA256 = bytes.fromhex(
    "751e4d82921f1a59bb6a2b58e64c4d3bf821394afd11d608148fae8acb46d4a7")
"""SHA-256 of the public demo key of C{keys/demo.key}: it is recognised by
its value, not its file name (PROTOCOL.md section 5)."""

Path = Union[str, "os.PathLike[str]"]


class KeyFileError(ChatsvcError):
    """A key file is missing, unreadable or malformed (the message says which)."""


def _name(path: Path) -> str:
    """The path as the user typed it, quoted only if it would break the line."""
    text = os.fsdecode(path)
    return text if text.isprintable() else repr(text)


def _expected(path: Path, problem: str) -> KeyFileError:
    return KeyFileError(
        f"{_name(path)}: {problem}; expected one line holding a {KEY_SIZE}-byte"
        f" key in URL-safe base64 ({ENCODED_SIZE} characters, as made by"
        " chat-keygen)"
    )


def _read_key(path: Path) -> bytes:
    """L{load_key} without the warning."""
    if os.path.isdir(path):
        raise KeyFileError(f"{_name(path)}: is a directory; expected a key file")
    try:
        with open(path, "rb") as f:
            content = f.read(MAX_FILE_SIZE + 1)
    except FileNotFoundError:
        raise KeyFileError(
            f"{_name(path)}: no such file; expected a key file"
            " (make one with chat-keygen)"
        ) from None
    except OSError as e:
        raise KeyFileError(
            f"{_name(path)}: cannot read the key file ({e.strerror or e})"
        ) from None
    if len(content) > MAX_FILE_SIZE:
        raise _expected(path, f"file larger than {MAX_FILE_SIZE} bytes")
    if content.startswith(codecs.BOM_UTF8):
        # Some Windows editors add one; name it rather than blame line 1.
        raise _expected(path, "the file starts with a byte order mark")
    found = []
    for number, line in enumerate(content.split(b"\n"), 1):
        line = line.strip()  # white space and the CR of CRLF files
        if line and not line.startswith(b"#"):
            found.append((number, line))
    if not found:
        raise _expected(path, "no key found")
    if len(found) > 1:
        lines = ", ".join(str(number) for number, _ in found)
        raise _expected(path, f"{len(found)} non-comment lines (lines {lines})")
    number, line = found[0]
    if len(line) != ENCODED_SIZE:
        raise _expected(path, f"line {number} has {len(line)} characters")
    if not _KEY_LINE.fullmatch(line):
        raise _expected(path, f"line {number} is not URL-safe base64")
    try:
        key = base64.urlsafe_b64decode(line)
    except (binascii.Error, ValueError):  # pragma: no cover (the regex checks)
        raise _expected(path, f"line {number} is not URL-safe base64") from None
    # Refuse non-canonical spellings (stray low bits in the last character),
    # so that one key has exactly one textual form.
    if base64.urlsafe_b64encode(key) != line:
        raise _expected(path, f"line {number} is not canonical URL-safe base64")
    if key == bytes(KEY_SIZE):
        raise KeyFileError(
            f"{_name(path)}: line {number} is an all-zero key, which protects"
            " nothing; make a random key with chat-keygen"
        )
    return key


def load_key(path: Path, warn: Optional[Callable[[str], None]] = None) -> bytes:
    """
    Return the 32-byte key stored in the key file at C{path}.

    @param warn: if given, called with L{key_file_warning}'s warning, if any
        (the public demo key, or a file other users can access).
    @raise KeyFileError: if the file is missing, unreadable, a directory, or
        holds anything but one key, blank lines and C{#} comments, or its
        key is all zero.
    """
    key = _read_key(path)
    if warn is not None:
        warning = key_file_warning(path, key)
        if warning is not None:
            warn(warning)
    return key


def is_demo_key(key: bytes) -> bool:
    """Whether C{key} is the project's public demo key (C{keys/demo.key})."""
    return hmac.compare_digest(hashlib.sha256(key).digest(), _DEMO_KEY_SHA256)


def key_file_warning(path: Path, key: Optional[bytes] = None) -> Optional[str]:
    """
    Return a warning about the key file at C{path}, else C{None}: that it
    holds the public demo key (whatever its mode), or that other users may
    read or change it.

    @param key: the key the file holds, if already loaded; else it is read
        here (a file that cannot be loaded gets only the mode check:
        L{load_key} reports the rest).

    The mode check is always C{None} where POSIX permissions do not apply
    (Windows), or if the file cannot be examined.
    """
    if key is None:
        try:
            key = _read_key(path)
        except KeyFileError:
            key = None
    if key is not None and is_demo_key(key):
        return (
            f"{_name(path)} holds the public demo key of chatsvc, which everyone"
            " has: it protects nothing. Make your own with: chat-keygen PATH"
        )
    if os.name != "posix":
        return None
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (
        f"{_name(path)}: other users can access this key file (mode"
        f" {mode:04o}); restrict it with: chmod 600 {_name(path)}"
    )


def generate_key_file(path: Path) -> None:
    """
    Write a new random key to a new file at C{path}, readable by its owner
    only where the OS supports that.

    @raise KeyFileError: if C{path} exists (a key is never overwritten) or
        cannot be created.
    """
    key = os.urandom(KEY_SIZE)
    text = _HEADER.encode("ascii") + base64.urlsafe_b64encode(key) + b"\n"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyFileError(
            f"{_name(path)}: already exists; refusing to overwrite a key"
            " (remove it first if you really mean to replace it)"
        ) from None
    except OSError as e:
        raise KeyFileError(f"{_name(path)}: cannot create ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text)
    except OSError as e:
        # Leave no half-written key behind for a server to trip over.
        with contextlib.suppress(OSError):
            os.remove(path)
        raise KeyFileError(f"{_name(path)}: cannot write ({e.strerror or e})") from None


def main(
    argv: Optional[Sequence[str]] = None,
    stdout: Optional[IO[str]] = None,
    stderr: Optional[IO[str]] = None,
) -> int:
    """
    C{chat-keygen PATH}: write a new key file.  Return the exit status.

    @param argv: the arguments, without the program name (default:
        C{sys.argv[1:]}).
    @param stdout: where to report success (default: C{sys.stdout}).
    @param stderr: where to report errors (default: C{sys.stderr}).
    """
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    parser = argparse.ArgumentParser(
        prog="chat-keygen",
        description="Write a new random chatsvc pre-shared key to a new file.",
    )
    parser.add_argument("path", metavar="PATH", help="the key file to create")
    # argparse prints usage errors and --help itself, then exits.
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else 2
    try:
        generate_key_file(args.path)
    except KeyFileError as e:
        print(f"chat-keygen: error: {e}", file=stderr)
        return 1
    print(f"wrote a new key to {_name(args.path)}", file=stdout)
    print("copy it to the server and to each client over a secure channel", file=stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
