"""
Hold the IRC gateway to what a real IRC server answers: every scenario of
L{bench.ircgate_compare} is sent to ngIRCd and to the gateway, and the
replies (commands and numerics, in order) must be the same, except where
L{bench.ircgate_compare.KNOWN} (and docs/irc.md) says why they differ.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bench import ircgate_compare


class NgircdComparisonTests(SynchronousTestCase):
    def test_same_replies_as_ngircd(self) -> None:
        if ircgate_compare.ngircd_path() is None:
            self.fail("ngircd is not installed: the IRC gateway is compared with it "
                      "(apt-get install ngircd; scripts/test-deps)")
        servers = ircgate_compare.start_servers()
        self.addCleanup(servers.stop)
        results = ircgate_compare.compare(servers)
        self.assertEqual(len(results), len(ircgate_compare.SCENARIOS) + 1)
        unexpected = {name: lines for name, lines, same in results
                      if not same and name not in ircgate_compare.KNOWN}
        self.assertEqual(unexpected, {})
        # A kept difference that went away should leave KNOWN (and docs/irc.md).
        stale = [name for name, _, same in results if same and name in ircgate_compare.KNOWN]
        self.assertEqual(stale, [])
