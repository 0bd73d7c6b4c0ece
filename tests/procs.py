"""
Moved to L{tests.support.processes} (and L{tests.support.waiting}); these
names stay importable until the branches that still import them have
landed. New tests import from tests.support.
"""

from .support.processes import (  # noqa: F401
    DEFAULT_TIMEOUT, DEMO_KEY, REPO, TWISTD, ChatClientProcess, ChatServer, LineProcess, child_env,
    spawn,
)
from .support.waiting import deadline  # noqa: F401

_spawn = spawn
