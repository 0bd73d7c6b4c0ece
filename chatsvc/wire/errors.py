# -*- test-case-name: tests.test_framing -*-
"""
The two exception families of the wire layer (after h11's C{_util.py}).

L{RemoteProtocolError} means the peer broke the protocol: adapters catch it,
tell the peer (when the protocol allows) and hang up or carry on according to
C{fatal}.  L{LocalProtocolError} means our own code misused an API: it is a bug
and is never caught by the adapters.
"""

from __future__ import annotations

from typing import Optional


class ChatsvcError(Exception):
    """Base class of every error raised on purpose by chatsvc."""


class LocalProtocolError(ChatsvcError):
    """We misused an API (sent in the wrong state, for example)."""


class RemoteProtocolError(ChatsvcError):
    """
    The peer broke the protocol.

    @ivar code: the error code of PROTOCOL.md section 4.6 (C{"bad-json"}, ...),
        or C{"decrypt-failed"} for a record that failed authentication, which
        is never sent on the wire (the connection is aborted instead).
    @ivar text: a human readable explanation, safe to send to the peer: it
        never contains key material or the offending bytes.
    @ivar fatal: whether the connection must be closed.
    @ivar room: the room the request was about (the error's C{room}), or
        C{None}.
    """

    def __init__(self, code: str, text: str = "", fatal: bool = True,
                 room: Optional[str] = None) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text or code
        self.fatal = fatal
        self.room = room

    def __repr__(self) -> str:
        return f"RemoteProtocolError({self.code!r}, {self.text!r}, fatal={self.fatal!r})"

    def __str__(self) -> str:
        return f"{self.code}: {self.text}"
