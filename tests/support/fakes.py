# -*- test-case-name: tests.test_support -*-
"""
The in-memory fakes the unit tests share: a chat member that records its
frames (L{FakeMember}), transports that record aborts and pause like a
real one, and a capture of the log.

No network, no real reactor: time is a L{Clock}, transports are in memory.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from chatsvc.chat.interfaces import IChatMember
from chatsvc.chat.memory import Room
from chatsvc.server.interfaces import ISendQueueOwner
from chatsvc.wire.framing import encode_frame
from chatsvc.wire.messages import encode

from .wire import decode_frames, v1_view

T0 = 1795315800.123  # 2026-11-22T02:50:00.123Z
"""Where the chat's clock starts in L{RoomTestCase}."""


@implementer(ISendQueueOwner)
class QueueOwner:
    """
    A send queue's connection, recording what the queue told it.

    @ivar overflows: how many times it overflowed.
    @ivar behind: each C{send_queue_behind} argument, in order.
    """

    def __init__(self) -> None:
        self.overflows = 0
        self.behind: List[bool] = []

    def send_queue_overflowed(self) -> None:
        self.overflows += 1

    def send_queue_behind(self, behind: bool) -> None:
        self.behind.append(behind)


@implementer(IChatMember)
class FakeMember:
    """
    A member as the chat sees it, recording the frames the chat hands it.

    @ivar version: 1 to see what a version 1 client sees (L{v1_view}), 2 to
        see everything.
    @ivar keep: whether to keep the frames (not for crowds).
    """

    name: Optional[str] = None
    session_id: Optional[str] = None
    encrypted = False
    closing = False

    def __init__(self, room: Any = None, keep: bool = True, version: int = 1) -> None:
        self.version = version
        self.room = room
        self.keep = keep
        self.frames: List[bytes] = []
        self.replaced_count = 0
        self.fatal_codes: List[str] = []

    def send(self, message: Dict[str, Any]) -> None:
        self.send_frame(encode_frame(encode(message)))

    def send_frame(self, frame: bytes) -> None:
        if self.keep:
            self.frames.append(frame)

    def fatal(self, code: str, text: str) -> None:
        self.fatal_codes.append(code)
        if self.room is not None:
            self.room.leave(self, code)

    def replaced(self) -> None:
        self.replaced_count += 1
        if self.room is not None:
            self.room.leave(self, "replaced")  # as ChatProtocol does; harmless

    def messages(self) -> List[Dict[str, Any]]:
        """Every message received since the last call (the room's batch
        of this turn included)."""
        if self.room is not None:
            self.room.flush()
        data = b"".join(self.frames)
        self.frames = []
        messages = decode_frames(data)
        return v1_view(messages) if self.version == 1 else messages


class RoomTestCase(SynchronousTestCase):
    """A L{Room} (the memory chat) on a L{Clock} at L{T0}, and its L{FakeMember}s."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.room = Room(self.clock, history_size=50)

    def join(self, name: Any = None, room: Optional[Room] = None, **kwargs: Any) -> FakeMember:
        room = self.room if room is None else room
        member = FakeMember(room, version=kwargs.pop("version", 1))
        member.encrypted = kwargs.pop("encrypted", False)
        room.register(member, name=name, **kwargs)
        return member

    def joined(self, *names: str) -> List[FakeMember]:
        members = [self.join(name) for name in names]
        for m in members:
            m.messages()
        return members


class RecordingTransport(StringTransport):
    """
    A L{StringTransport} that records C{abortConnection}.

    @ivar aborted: whether C{abortConnection} was called.
    """

    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        StringTransport.abortConnection(self)


class PausingTransport(RecordingTransport):
    """
    A transport whose peer stopped reading: like a real one, it pauses its
    registered streaming producer once more than C{limit} bytes wait, and
    L{read_all} (the peer reading again) resumes it.
    """

    def __init__(self, limit: int = 65536, **kwargs: Any) -> None:
        RecordingTransport.__init__(self, **kwargs)
        self.limit = limit
        self.producer_paused = False

    def write(self, data: bytes) -> None:
        RecordingTransport.write(self, data)
        if (self.producer is not None and not self.producer_paused
                and len(self.io.getvalue()) > self.limit):
            self.producer_paused = True
            self.producer.pauseProducing()

    def read_all(self) -> bytes:
        """The peer takes everything; the producer may produce again."""
        data = self.value()
        self.clear()
        if self.producer is not None and self.producer_paused:
            self.producer_paused = False
            self.producer.resumeProducing()
        return data


@implementer(ILogObserver)
class LogCapture:
    """
    Collect every log event while installed on the global log publisher.

        logs = LogCapture.install(self)     # removed when the test ends
        ...
        logs.assert_no_failures(self)
    """

    def __init__(self) -> None:
        self.events: List[LogEvent] = []

    def __call__(self, event: LogEvent) -> None:
        self.events.append(event)

    @classmethod
    def install(cls, case: SynchronousTestCase) -> "LogCapture":
        capture = cls()
        globalLogPublisher.addObserver(capture)
        case.addCleanup(globalLogPublisher.removeObserver, capture)
        return capture

    def failures(self) -> List[LogEvent]:
        return [e for e in self.events if "log_failure" in e]

    def assert_no_failures(self, case: SynchronousTestCase) -> None:
        failures = self.failures()
        case.assertEqual(
            failures, [], "a traceback was logged: " +
            "; ".join(str(e["log_failure"].getErrorMessage()) for e in failures)
        )
