# -*- test-case-name: tests.test_names -*-
"""
User names (PROTOCOL.md section 4.3), without I/O.

    >>> normalize("Ｂob")           # NFC, checked; raises InvalidName if bad
    >>> name_key("ALICE") == name_key("alice")
    >>> look_alike_key("\u0430lice") == look_alike_key("alice")   # Cyrillic a
    >>> name_keys("Alice")         # ('alice', 'alice'): both keys at once
    >>> with_suffix("alice", 2)    # 'alice_2', shortened to fit 32 code points

A name table keeps two keys per name (v2): L{name_key}, under which two names
are the same name, and L{look_alike_key}, under which they look alike. A new
name whose look-alike key is taken counts as taken (C{hello} gets a suffix,
C{nick} gets C{name-taken}), unless the one who holds it is the one asking.
"""

from __future__ import annotations

import unicodedata
from typing import Tuple

from .confusables import skeleton

MAX_NAME = 32
"""The longest name, in code points after NFC normalisation."""

_EXTRA = frozenset("_-.")

FILLERS = frozenset("\u115f\u1160\u3164\uffa0")
"""The Hangul and halfwidth fillers: letters (Lo) that show as nothing, so
not name characters (v2)."""


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
        if (category[0] != "L" and category != "Nd") or ch in FILLERS:
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


def look_alike_key(name: str) -> str:
    """
    The key under which two names look alike:
    C{NFC(casefold(skeleton(NFC(name))))}, C{skeleton} being Unicode TR39's
    (L{chatsvc.wire.confusables}), taken before case folding so that
    C{PayPaI} with a capital i looks like C{paypal}.
    """
    return unicodedata.normalize(
        "NFC", skeleton(unicodedata.normalize("NFC", name)).casefold()
    )


def name_keys(name: str) -> Tuple[str, str]:
    """
    C{(name_key(name), look_alike_key(name))}, the second the very same
    string as the first when they are equal (most names), so a table that
    keeps both keys stores one string. A name is taken when either key is
    held by someone else: what a name table, in memory or in a store,
    checks and claims.
    """
    same = name_key(name)
    alike = look_alike_key(name)
    return same, same if alike == same else alike


def with_suffix(name: str, n: int) -> str:
    """
    C{name} with the suffix C{_n}, its base shortened so that the result has
    at most L{MAX_NAME} code points.
    """
    suffix = f"_{n}"
    return name[: MAX_NAME - len(suffix)] + suffix
