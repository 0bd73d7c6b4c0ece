# -*- test-case-name: tests.test_names -*-
"""
User names (PROTOCOL.md section 4.3), without I/O.

    >>> normalize("Ｂob")           # NFC, checked; raises InvalidName if bad
    >>> name_key("ALICE") == name_key("alice")
    >>> with_suffix("alice", 2)    # 'alice_2', shortened to fit 32 code points
"""

from __future__ import annotations

import unicodedata

MAX_NAME = 32
"""The longest name, in code points after NFC normalisation."""

_EXTRA = frozenset("_-.")


class InvalidName(ValueError):
    """A name that breaks the rules; C{str()} says which, safe to send."""


def normalize(name: object) -> str:
    """
    Return C{name} in NFC form if it is a valid name.

    @raise InvalidName: if it is not a string, is empty or too long after
        normalisation, or holds a character other than letters, digits,
        C{_}, C{-} and C{.}.
    """
    if not isinstance(name, str):
        raise InvalidName("a name must be a string")
    name = unicodedata.normalize("NFC", name)
    if not name:
        raise InvalidName("a name must not be empty")
    if len(name) > MAX_NAME:
        raise InvalidName(f"a name has at most {MAX_NAME} characters")
    for ch in name:
        if ch in _EXTRA:
            continue
        category = unicodedata.category(ch)
        if category[0] != "L" and category != "Nd":
            raise InvalidName(
                "a name may hold only letters, digits, '_', '-' and '.'"
            )
    return name


def name_key(name: str) -> str:
    """
    The key under which two names are the same: C{NFC(casefold(NFC(name)))}.
    """
    return unicodedata.normalize(
        "NFC", unicodedata.normalize("NFC", name).casefold()
    )


def with_suffix(name: str, n: int) -> str:
    """
    C{name} with the suffix C{_n}, its base shortened so that the result has
    at most L{MAX_NAME} code points.
    """
    suffix = f"_{n}"
    return name[: MAX_NAME - len(suffix)] + suffix
