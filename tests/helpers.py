"""
Moved to L{tests.support} (L{tests.support.protocol}, L{tests.support.fakes},
L{tests.support.wire}); these names stay importable until the branches that
still import them have landed. New tests import from tests.support.
"""

from .support.fakes import LogCapture, PausingTransport, RecordingTransport  # noqa: F401
from .support.protocol import (  # noqa: F401
    LOOPBACK, FakeClient, ProtocolTestCase, make_factory, only, registered,
)
from .support.wire import V2_TYPES, decode_frames, frame, raw_frame, v1_view  # noqa: F401
