# -*- test-case-name: tests.test_client_editor -*-
"""
The input line, without I/O: L{LineEditor} holds the text being typed (a
list of characters, any Unicode), the cursor, and the lines sent before
(for Up/Down recall, kept for the whole run, never written to disk);
L{Utf8Keys} turns the bytes a terminal sends, one at a time, into
characters (C{RecvLine} itself takes ASCII only: twisted#6335)::

    editor = LineEditor()
    for ch in Utf8Keys().feed(b"h\\xc3\\xa9llo"):
        editor.insert(ch)
    editor.text            # 'héllo'
    editor.submit()        # 'héllo', remembered for recall
    editor.recall(-1)      # back to 'héllo'

L{complete} is Tab's completion of commands, room names and user names.
"""

from __future__ import annotations

import codecs
from typing import Iterable, List, Optional, Sequence

from .display import sanitize

MAX_RECALL = 500
"""Lines remembered for recall."""

MAX_INPUT = 16_384
"""Characters the input line holds (a frame holds at most 64 KiB)."""


class Utf8Keys:
    """Bytes typed, one or more at a time, to characters (bad bytes: U+FFFD)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._decoder.decode(data)

    @property
    def pending(self) -> bool:
        """Part of a character has arrived, the rest not yet."""
        return bool(self._decoder.getstate()[0])


class LineEditor:
    """
    The text being typed and its cursor, with recall of the lines sent.

    @ivar chars: the characters of the line.
    @ivar cursor: the index in C{chars} the next character goes to.
    """

    def __init__(self) -> None:
        self.chars: List[str] = []
        self.cursor = 0
        self.history: List[str] = []
        self._position = 0
        self._draft: Optional[str] = None

    @property
    def text(self) -> str:
        return "".join(self.chars)

    def set(self, text: str) -> None:
        self.chars = list(text[:MAX_INPUT])
        self.cursor = len(self.chars)

    # -- editing -----------------------------------------------------------------

    def insert(self, text: str) -> None:
        room = MAX_INPUT - len(self.chars)
        if room <= 0:
            return
        chars = [ch for ch in text[:room] if sanitize(ch) == ch]
        self.chars[self.cursor:self.cursor] = chars
        self.cursor += len(chars)

    def left(self) -> None:
        self.cursor = max(0, self.cursor - 1)

    def right(self) -> None:
        self.cursor = min(len(self.chars), self.cursor + 1)

    def home(self) -> None:
        self.cursor = 0

    def end(self) -> None:
        self.cursor = len(self.chars)

    def backspace(self) -> None:
        if self.cursor > 0:
            self.cursor -= 1
            del self.chars[self.cursor]

    def delete(self) -> None:
        if self.cursor < len(self.chars):
            del self.chars[self.cursor]

    def kill_to_start(self) -> None:
        """Ctrl-U."""
        del self.chars[:self.cursor]
        self.cursor = 0

    def kill_to_end(self) -> None:
        """Ctrl-K."""
        del self.chars[self.cursor:]

    def kill_word(self) -> None:
        """Ctrl-W: the word before the cursor, and the spaces after it."""
        start = self.cursor
        while start > 0 and self.chars[start - 1] == " ":
            start -= 1
        while start > 0 and self.chars[start - 1] != " ":
            start -= 1
        del self.chars[start:self.cursor]
        self.cursor = start

    # -- lines ---------------------------------------------------------------------

    def submit(self) -> str:
        """The line, cleared from the editor and remembered for recall."""
        text = self.text
        if text.strip() and (not self.history or self.history[-1] != text):
            self.history.append(text)
            del self.history[:-MAX_RECALL]
        self.chars, self.cursor = [], 0
        self._position = len(self.history)
        self._draft = None
        return text

    def recall(self, step: int) -> None:
        """Up (C{-1}) or Down (C{+1}) through the lines sent; below the
        last one is the line that was being typed."""
        position = self._position + step
        if position < 0 or position > len(self.history):
            return
        if self._position == len(self.history):
            self._draft = self.text
        self._position = position
        if position == len(self.history):
            self.set(self._draft or "")
        else:
            self.set(self.history[position])

    # -- completion ------------------------------------------------------------------

    def complete(self, candidates: Iterable[str]) -> List[str]:
        """
        Tab: complete the word before the cursor from C{candidates} (case
        does not matter). One match replaces the word (with C{": "} after a
        name that starts the line, a space otherwise); several extend it to
        their common start. Returns the matches.
        """
        start = self.cursor
        while start > 0 and self.chars[start - 1] != " ":
            start -= 1
        word = "".join(self.chars[start:self.cursor])
        if not word:
            return []
        folded = word.casefold()
        matches = sorted({c for c in candidates
                          if c.casefold().startswith(folded) and sanitize(c) == c})
        if not matches:
            return []
        if len(matches) == 1:
            done = matches[0]
            if start == 0 and not done.startswith(("/", "#")):
                done += ": "
            else:
                done += " "
        else:
            done = _common_start(matches, len(word)) or word
        self.chars[start:self.cursor] = list(done)
        self.cursor = start + len(done)
        return matches


def _common_start(words: Sequence[str], at_least: int) -> str:
    first = words[0]
    n = len(first)
    for word in words[1:]:
        i = 0
        while i < min(n, len(word)) and word[i].casefold() == first[i].casefold():
            i += 1
        n = i
    return first[:n] if n >= at_least else ""
