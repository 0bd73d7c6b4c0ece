"""
A real irssi, in tmux, against a real C{twistd chat --irc}: it connects,
is in #lobby, talks with a chat client (the tests' raw frame client), sees
an action, a private message and a rename, acts itself, and quits; in
plaintext, and over TLS with the chat's key as the server password.

irssi's own logs (autolog) are read to see what it showed: they hold
exactly the lines of its windows, without the screen's layout. Every wait
polls for a condition with a deadline (FIELD-NOTES: irssi shows a line
before it is sent, so delivery is checked on the other side).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Any, Callable, List, Optional

from twisted.internet import defer, reactor, task, utils
from twisted.trial.unittest import TestCase

from chatsvc.keys import load_key

from .support.frameclient import registered
from .support.processes import DEMO_KEY, ChatServer
from .support.web import self_signed

WAIT = 30.0


def _need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise AssertionError(f"{program} is not installed: the IRC gateway's irssi test needs "
                             f"irssi and tmux (apt-get install irssi tmux; scripts/test-deps)")
    return path


@defer.inlineCallbacks
def poll(condition: Callable[[], Any], what: str, timeout: float = WAIT):
    """
    Fire with C{condition()}'s first true value (it may return a Deferred),
    checked every 0.1 s, or fail after C{timeout}.
    """
    end = reactor.seconds() + timeout
    while True:
        value = yield defer.maybeDeferred(condition)
        if value:
            return value
        if reactor.seconds() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        yield task.deferLater(reactor, 0.1, lambda: None)


class Irssi:
    """irssi in a tmux session of its own, configured to join #lobby and log."""

    def __init__(self, test: TestCase, home: str, port: int, nick: str,
                 tls: bool = False, password: Optional[str] = None) -> None:
        self.tmux = _need("tmux")
        self.irssi = _need("irssi")
        self.home = home
        self.logs = os.path.join(home, "logs")
        os.makedirs(self.logs)
        self.socket = f"chatsvc-irc-test-{os.getpid()}-{port}"
        server = ['address = "127.0.0.1"', 'chatnet = "local"', f'port = "{port}"',
                  'autoconnect = "yes"', f'use_tls = "{"yes" if tls else "no"}"', 'tls_verify = "no"']
        if password is not None:
            server.append(f'password = "{password}"')
        with open(os.path.join(home, "config"), "w") as f:
            f.write(
                "servers = ( { " + "; ".join(server) + "; } );\n"
                'chatnets = { local = { type = "IRC"; }; };\n'
                'channels = ( { name = "#lobby"; chatnet = "local"; autojoin = "yes"; } );\n'
                "settings = {\n"
                f'  core = {{ real_name = "irssi test"; user_name = "{nick}"; nick = "{nick}"; }};\n'
                '  "irc/core" = { cmd_queue_speed = "0"; };\n'
                '  "fe-text" = { paste_detect_time = "0"; };\n'
                f'  "fe-common/core" = {{ autolog = "yes"; autolog_path = "{self.logs}/$0.log"; }};\n'
                "};\n")
        test.addCleanup(self.stop)

    def run(self, *args: str) -> defer.Deferred:
        return utils.getProcessOutputAndValue(self.tmux, ["-L", self.socket] + list(args),
                                              env=dict(os.environ, TERM="xterm"))

    @defer.inlineCallbacks
    def start(self):
        out, err, code = yield self.run("new-session", "-d", "-s", "irssi", "-x", "160", "-y", "50",
                                        f"{self.irssi} --home={self.home}")
        if code:
            raise AssertionError(f"tmux could not start irssi: {err!r}")

    def type(self, line: str) -> defer.Deferred:
        return self.run("send-keys", "-t", "irssi", "-l", line).addCallback(
            lambda _: self.run("send-keys", "-t", "irssi", "Enter"))

    def log(self, target: str) -> str:
        try:
            with open(os.path.join(self.logs, f"{target}.log"), encoding="utf-8") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, target: str, pattern: str) -> defer.Deferred:
        found = re.compile(pattern)
        return poll(lambda: found.search(self.log(target)), f"irssi's {target} log to show {pattern!r}; "
                    f"it holds:\n{self.log(target)[-2000:]}")

    @defer.inlineCallbacks
    def screen(self):
        out, _, _ = yield self.run("capture-pane", "-p", "-t", "irssi")
        return out.decode("utf-8", "replace")

    def stop(self) -> defer.Deferred:
        return self.run("kill-server")


class IrssiTests(TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def converse(self, server_options: List[str], irc_endpoint: str, tls: bool,
                 psk: Optional[bytes], password: Optional[str]):
        _need("irssi"), _need("tmux")
        server = yield ChatServer.start(self, "--irc", irc_endpoint, "--irc-name", "irc.test",
                                        "--motd", "irssi test", *server_options)
        line = yield server.wait_for(re.compile(r"IRCGatewayFactory\)( \(TLS\))? starting on (\d+)"))
        irc_port = int(re.search(r"starting on (\d+)", line).group(1))
        bob = yield registered(self, server.port, "bob", psk=psk)
        home = tempfile.mkdtemp(prefix="irssi-")
        self.addCleanup(shutil.rmtree, home, True)
        irssi = Irssi(self, home, irc_port, "irssi", tls=tls, password=password)
        yield irssi.start()

        joined = yield bob.wait_for(lambda m: m["type"] == "joined" and m["name"] == "irssi",
                                    what="irssi to join")
        yield poll(lambda: irssi.screen().addCallback(lambda s: "- irssi test" in s and "End of MOTD" in s),
                   "irssi to show the MOTD")
        yield irssi.wait_log("#lobby", r"Join to #lobby was synced")
        yield irssi.type("/window 2")
        yield irssi.type("hello from irssi")
        said = yield bob.wait_for(lambda m: m["type"] == "message" and m["from"] == "irssi",
                                  what="irssi's message")
        self.assertEqual(said["text"], "hello from irssi")

        bob.say("hello irssi")
        yield irssi.wait_log("#lobby", r"< ?bob> hello irssi")
        bob.send({"type": "say", "text": "waves", "action": True})
        yield irssi.wait_log("#lobby", r"\* bob waves")
        bob.send({"type": "msg", "to": "irssi", "text": "psst"})
        yield irssi.wait_log("bob", r"<bob> psst")
        bob.send({"type": "nick", "name": "robert"})
        yield irssi.wait_log("#lobby", r"bob is now known as robert")

        start = len(bob.messages)
        yield irssi.type("/me dances")
        acted = yield bob.wait_for(lambda m: m["type"] == "message" and m["from"] == "irssi",
                                   since=start, what="irssi's action")
        self.assertEqual((acted["text"], acted.get("action")), ("dances", True))

        yield irssi.type("/quit see you")
        left = yield bob.wait_for(lambda m: m["type"] == "left" and m["name"] == "irssi", what="irssi to quit")
        self.assertEqual((left["reason"], left.get("text")), ("quit", "see you"))
        self.assertEqual(server.tracebacks(), [])
        return joined

    @defer.inlineCallbacks
    def test_plaintext(self):
        """No key: IRC over plain TCP, and the irssi user is a plaintext member."""
        joined = yield self.converse([], "tcp:0:interface=127.0.0.1", tls=False, psk=None, password=None)
        self.assertTrue(joined.get("plaintext"), joined)

    @defer.inlineCallbacks
    def test_tls_with_the_key_as_password(self):
        """A server that requires encryption: irssi over TLS, the key line as its PASS."""
        directory = tempfile.mkdtemp(prefix="irc-tls-")
        self.addCleanup(shutil.rmtree, directory, True)
        key, cert = self_signed(directory, "127.0.0.1")
        with open(DEMO_KEY) as f:
            key_line = [x.strip() for x in f if x.strip() and not x.startswith("#")][0]
        joined = yield self.converse(
            ["--encrypted", "--psk", DEMO_KEY],
            f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}", tls=True,
            psk=load_key(DEMO_KEY), password=key_line)
        self.assertFalse(joined.get("plaintext"), joined)
