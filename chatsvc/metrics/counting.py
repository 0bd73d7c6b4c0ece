# -*- test-case-name: tests.test_metrics -*-
"""
L{CountingSendQueue}: a send queue that counts the bytes given to it, used
only with C{--metrics}, so that a server without metrics keeps the plain
L{SendQueue}'s write path (the fan-out's per-recipient call) untouched.
"""

from __future__ import annotations

from ..server.sendq import SendQueue


class CountingSendQueue(SendQueue):
    """
    @ivar sent: bytes given to L{write} so far (sent, queued or discarded).
    """

    __slots__ = ("sent",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        SendQueue.__init__(self, *args, **kwargs)  # type: ignore[arg-type]
        self.sent = 0

    def write(self, data: bytes) -> None:
        self.sent += len(data)
        SendQueue.write(self, data)
