"""
Moved to L{tests.support} (L{tests.support.frameclient},
L{tests.support.processes}, L{tests.support.procstats},
L{tests.support.waiting}); these names stay importable until the branches
that still import them have landed. New tests import from tests.support.
"""

from .support.frameclient import PSK, WAIT, FrameClient, connect, registered, sanity_check  # noqa: F401
from .support.processes import SLOW, DEMO_KEY, ChatServer, shows_server_log, start_server  # noqa: F401
from .support.procstats import cpu_seconds, fd_count, pid_of, rss_kib  # noqa: F401
from .support.waiting import deadline, gather, pause  # noqa: F401

RawClient = FrameClient


def tracebacks(server: ChatServer) -> list:
    return server.tracebacks()
