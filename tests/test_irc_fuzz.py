"""
Bad input of any kind never raises out of the IRC gateway and never
disturbs another user: random IRC lines (known commands with random
parameters, and random bytes) from one client, while another watches.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from .helpers import FakeClient, only
from .irc_helpers import RawIRC, make_gateway

COMMANDS = ["PRIVMSG", "NOTICE", "JOIN", "PART", "TOPIC", "NAMES", "WHO", "WHOIS", "LIST", "MODE",
            "NICK", "USER", "PASS", "CAP", "PING", "PONG", "AWAY", "ISON", "USERHOST", "MOTD",
            "QUIT", "OPER", "KICK", "CHATHISTORY", "TAGMSG", "BATCH"]

_word = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=" \r\n\x00"),
                max_size=12)
_line = st.one_of(
    st.builds(lambda tags, c, ws, t: (tags + c + "".join(" " + w for w in ws if w)
                                      + (" :" + t if t is not None else "")).encode("utf-8"),
              st.sampled_from(["", "@time=x;+a=b\\s ", "@ "]), st.sampled_from(COMMANDS),
              st.lists(_word, max_size=4), st.none() | st.text(max_size=40).map(
                  lambda t: t.replace("\r", "").replace("\n", "").replace("\x00", ""))),
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b"")),
)


class FuzzTests(SynchronousTestCase):
    @settings(max_examples=150, deadline=None)
    @given(st.lists(_line, min_size=1, max_size=12), st.booleans())
    def test_random_lines(self, lines, register_first: bool) -> None:
        chat, gateway = make_gateway(rate_burst=0)
        watcher = FakeClient(chat)
        watcher.hello("watcher")
        watcher.received()
        raw = RawIRC(gateway)
        if register_first:
            raw.register("fuzz")
        for line in lines:
            for reply in raw.send(line + b"\r\n"):
                self.assertLessEqual(len(reply.encode("utf-8")) + 2, 512 + 8191)
                self.assertNotIn("Traceback", reply)
        # The other user is still served, and saw nothing but chat messages.
        watcher.send({"type": "say", "text": "still here"})
        messages = watcher.received()
        self.assertEqual(only(messages, "message")[-1]["text"], "still here")
        self.assertEqual(only(messages, "error"), [])
