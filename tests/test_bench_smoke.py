"""
The benchmark must not rot: run C{python -m bench --smoke} (real server
processes on loopback, tiny sizes, seconds) and check that it produced a
report in which chatsvc delivered messages.

This is the one test that starts real processes; it is skipped where the
benchmark cannot run (not Linux: the load generator uses epoll and /proc).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from twisted.trial.unittest import SkipTest, SynchronousTestCase

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 180  # the smoke run takes about 40 s; leave room for a busy machine


class BenchSmokeTests(SynchronousTestCase):
    def setUp(self) -> None:
        if not sys.platform.startswith("linux"):
            raise SkipTest("the benchmark needs Linux (epoll, /proc)")

    def test_smoke_run_reports_chatsvc_deliveries(self) -> None:
        out = os.path.abspath(self.mktemp())
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "bench", "--smoke", "--out", out],
                cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT,
            )
        except subprocess.TimeoutExpired as e:
            self.fail(f"python -m bench --smoke did not finish in {TIMEOUT} s:\n"
                      f"{(e.stdout or b'').decode(errors='replace')[-3000:]}")
        output = (proc.stdout + proc.stderr).decode(errors="replace")
        self.assertEqual(proc.returncode, 0, output[-4000:])

        with open(os.path.join(out, "results.md"), encoding="utf-8") as f:
            report = f.read()
        self.assertIn("## Fan-out at saturation", report)
        self.assertIn("| chatsvc (plaintext) |", report)
        self.assertIn("| chatsvc (encrypted) |", report)

        with open(os.path.join(out, "runs.json"), encoding="utf-8") as f:
            runs = json.load(f)["runs"]
        failed = [(r["scenario"], r["server"], r["error"]) for r in runs if not r["ok"]]
        self.assertEqual(failed, [])
        for server in ("chatsvc", "chatsvc-enc"):
            fanout = [r["result"] for r in runs
                      if r["scenario"] == "fanout" and r["server"] == server]
            self.assertTrue(fanout, f"no fan-out run for {server}")
            for result in fanout:
                self.assertGreater(result["deliveries"], 0, server)
                self.assertEqual(result["clients_short"], 0, server)
                self.assertEqual(result["clients_over"], 0, f"{server}: counted too many")
        scenarios = {r["scenario"] for r in runs}
        self.assertEqual(scenarios, {"fanout", "overload", "latency", "memory", "setup",
                                     "register", "rooms"})
        self.check_issue9_scenarios(report, runs)

    def check_issue9_scenarios(self, report: str, runs: list) -> None:
        """The register and rooms scenarios ran against a version 2 server."""
        self.assertIn("## Registration into the default room", report)
        for server in ("chatsvc", "chatsvc-enc"):
            register = [r["result"] for r in runs
                        if r["scenario"] == "register" and r["server"] == server]
            self.assertEqual(sorted(r["clients"] for r in register), [40, 80], server)
            for result in register:
                self.assertEqual(result["clients_closed"], 0, server)
                self.assertGreater(result["server_cpu_s"], 0, server)
                self.assertGreater(result["rss_after_kib"], 0, server)
                self.assertEqual(result["protocol"], 2, server)

        self.assertIn("## Rooms against one room", report)
        for server in ("chatsvc", "chatsvc-enc"):
            rooms = {r["opts"]["layout"]: r["result"] for r in runs
                     if r["scenario"] == "rooms" and r["server"] == server}
            self.assertEqual(sorted(rooms), ["1x10", "1x40", "4x10"], server)
            for layout, result in rooms.items():
                self.assertGreater(result["deliveries"], 0, (server, layout))
                self.assertEqual(result["clients_short"], 0, (server, layout))
                self.assertEqual(result["clients_over"], 0, (server, layout))
            # a member of a room of 10 gets its room's messages and no others
            self.assertEqual(rooms["4x10"]["delivered_fraction"], 1.0, server)
        # both comparisons are in the report: as many clients, and rooms as large
        self.assertIn("4x10 = ", report)
        self.assertRegex(report, r"4x10 = [0-9.]+x 1x40 \(as many clients\)")
        self.assertRegex(report, r"4x10 = [0-9.]+x 1x10 \(rooms as large\)")

    def test_send_limit_probe(self) -> None:
        """C{python -m bench.sendlimit}: the machine's own send() rate."""
        from bench.sendlimit import measure

        result = measure(clients=4, seconds=0.2)
        self.assertEqual(result["clients"], 4)
        self.assertGreater(result["sends_per_cpu_s"], 0)
        self.assertGreater(result["us_per_send"], 0)
