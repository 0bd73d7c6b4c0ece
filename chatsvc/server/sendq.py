# -*- test-case-name: tests.test_sendq -*-
"""
A per-client send queue, registered as the transport's streaming producer.

C{transport.write()} never refuses data: it only pauses a registered producer
once its buffer passes 64 KiB. L{SendQueue} is that producer. While the
transport is paused it keeps outgoing frames itself and counts them; past its
limit it stops taking data and calls C{on_overflow} (the server then drops
the client as C{slow}), so a client that stops reading costs at most the
limit in memory and never slows anybody else. It tells its connection (an
L{ISendQueueOwner}) when it overflows and when it falls behind.

(The chat protocol must not register itself: C{Int32StringReceiver} as a
producer would stop I{reading} from the client when paused.)
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, Optional

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from .interfaces import ISendQueueOwner


@implementer(IPushProducer)
class SendQueue:
    """
    @param transport: the transport to write to.
    @param limit: the most bytes queued here before C{owner}'s
        C{send_queue_overflowed} (0: none); called once, when the limit is
        first passed.
    @param owner: the L{ISendQueueOwner} told of overflow and of falling
        behind.
    @param soft: the soft limit (0: none): past it the queue is I{behind},
        and C{owner.send_queue_behind(True)} is called; once it has drained
        to half of it, C{send_queue_behind(False)}. The server slows its
        senders down while many queues are behind (see
        L{chatsvc.server.factory.ChatFactory}).
    @ivar drained: bytes handed to the transport from the queue so far; a
        queue that is behind and whose C{drained} does not move is stalled.
    """

    __slots__ = ("_write", "_limit", "_owner", "_soft", "_queue",
                 "queued", "paused", "overflowed", "behind", "drained")

    def __init__(self, transport: Any, limit: int, owner: ISendQueueOwner, soft: int = 0) -> None:
        self._write = transport.write
        self._limit = limit
        self._owner = owner
        self._soft = soft
        # Made when first needed: most clients never fall behind, and an
        # empty deque costs 600 bytes for each of them.
        self._queue: Optional[Deque[bytes]] = None
        self.queued = 0
        self.paused = False
        self.overflowed = False
        self.behind = False
        self.drained = 0

    def use_writer(self, write: Callable[[bytes], None]) -> None:
        """Write through C{write} from now on instead of C{transport.write}."""
        self._write = write

    def write(self, data: bytes) -> None:
        """Send C{data} now if the transport takes it, else queue it."""
        if not self.paused:
            self._write(data)
            return
        if self.overflowed:
            return
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append(data)
        queued = self.queued = self.queued + len(data)
        if self._limit and queued > self._limit:
            self.overflowed = True
            self.discard()
            self._owner.send_queue_overflowed()
        elif self._soft and not self.behind and queued > self._soft:
            self.behind = True
            self._owner.send_queue_behind(True)

    def _caught_up(self) -> None:
        if self.behind:
            self.behind = False
            self._owner.send_queue_behind(False)

    def discard(self) -> None:
        """Forget everything queued."""
        self._queue = None
        self.queued = 0
        self._caught_up()

    def flush(self) -> None:
        """Hand everything queued to the transport, paused or not."""
        queue = self._queue
        if queue:
            data = b"".join(queue)
            self.discard()
            self._write(data)

    # IPushProducer

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        queue = self._queue
        while queue and not self.paused:
            # Hand over a batch at a time: the transport pauses us again
            # synchronously once its own buffer is full.
            batch = []
            size = 0
            while queue and size < 65536:
                data = queue.popleft()
                batch.append(data)
                size += len(data)
            self.queued -= size
            self.drained += size
            self._write(b"".join(batch))
        if queue is not None and not queue and self._queue is queue:
            self._queue = None
        if self.behind and self.queued <= self._soft // 2:
            self._caught_up()

    def stopProducing(self) -> None:
        self.discard()
        self.paused = True
