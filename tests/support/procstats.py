"""
What a test reads of a running server process from outside (Linux
C{/proc}): its resident memory, open file descriptors and CPU time.
"""

from __future__ import annotations

import os
from typing import Any


def pid_of(server: Any) -> int:
    """The process id of a L{tests.support.processes.ChatServer}."""
    return server.transport.pid


def rss_kib(pid: int) -> int:
    """Resident memory of C{pid} in KiB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def fd_count(pid: int) -> int:
    """Open file descriptors of C{pid} (Linux /proc)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of C{pid} so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
