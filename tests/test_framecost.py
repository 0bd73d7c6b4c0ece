"""
A smoke run of C{bench/framecost.py}, so that the per-frame CPU script
cannot rot: every case runs once in every mode and state, and each frame
is answered as PROTOCOL.md says. (The figures are the script's job, not
this test's: it asserts no time.)
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bench import framecost


class FrameCostSmokeTests(SynchronousTestCase):
    def test_every_case_runs(self) -> None:
        rows = framecost.run(reps=1, users=5)
        cases = framecost.bodies()
        per_state = {(r["mode"], r["state"]) for r in rows if r["wire_us"] is not None}
        self.assertEqual(per_state, set(framecost.COLUMNS))
        for mode, state in framecost.COLUMNS:
            names = {r["case"] for r in rows
                     if (r["mode"], r["state"]) == (mode, state) and r["wire_us"] is not None}
            skipped = (framecost.BEFORE_HELLO_ONLY if state == "registered"
                       else framecost.REGISTERED_ONLY)
            self.assertEqual(names, set(cases) - skipped, (mode, state))
        others = [r["case"] for r in rows if r["wire_us"] is None]
        self.assertIn("message 1 (48 bytes)", others)
        self.assertEqual(len(others), 5)
        table = framecost.table(rows)
        self.assertEqual(table.count("\n| ping, no token |"), 1)

    def test_bodies_fit_a_frame(self) -> None:
        for name, body in framecost.bodies().items():
            self.assertLessEqual(len(body), 65536, name)

    def test_answers(self) -> None:
        """The frames get the answers the table's names claim."""
        stack = framecost.Stack(encrypted=False)
        conn = stack.registered("speaker")
        stack.registered("listener")
        for name, code in (("ping, 64 KiB of [],[] (containers)", "bad-json"),
                           ("say, 64 KiB text (too-long)", "too-long"),
                           ("say, 4,095 bytes then ESC (bad-text)", "bad-text"),
                           ("msg, to nobody", "no-such-user"),
                           ("nick, taken", "name-taken"),
                           ("hello again (already-registered)", "already-registered")):
            conn.transport.clear()
            conn.feed(conn.wrap(framecost.encode_frame(framecost.bodies()[name])))
            self.assertIn(b'"code":"%s"' % code.encode(), conn.transport.value(), name)
