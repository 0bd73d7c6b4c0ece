# -*- test-case-name: tests.test_bench_client_malicious -*-
"""
C{python -m bench.client_malicious} must not rot: run it at tiny sizes (a
real client process against its malicious server, a few seconds) and check
that every finding 7 check passed and the memory table was printed.
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import SkipTest, SynchronousTestCase

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 120  # about 6 s; leave room for a busy machine


class ClientMaliciousSmokeTests(SynchronousTestCase):
    def setUp(self) -> None:
        if not sys.platform.startswith("linux"):
            raise SkipTest("bench.client_malicious needs Linux (/proc)")

    def test_tiny_run(self) -> None:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "bench.client_malicious", "--frames", "2,4",
                 "--messages", "100"],
                cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT,
            )
        except subprocess.TimeoutExpired as e:
            self.fail(f"bench.client_malicious did not finish in {TIMEOUT} s:\n"
                      f"{(e.stdout or b'').decode(errors='replace')[-3000:]}")
        output = (proc.stdout + proc.stderr).decode(errors="replace")
        self.assertEqual(proc.returncode, 0, output[-4000:])
        self.assertIn("| 4 `history` parts, `more: true` |", output)
        self.assertIn("| 4 `users` parts, `more: true` |", output)
        self.assertIn("| 100 messages of 1 KB, stdout not read (none dropped) |", output)
        self.assertEqual(output.count("| ok |"), 3, output)
        self.assertIn("[unauthenticated: sent before the handshake]", output)
