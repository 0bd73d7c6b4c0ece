"""
The IRC gateway with Redis scale-out: an IRC user on server A and a chat
client on server B share the chat (real processes, a real redis-server).
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from .irc_helpers import LineClient
from .scaleout import ChatServerProcess, FrameClient, RedisServer, free_port


class IRCScaleOutTests(TestCase):
    timeout = 60

    async def test_irc_on_one_server_chat_on_another(self) -> None:
        redis = RedisServer.start(self.mktemp())
        self.addCleanup(redis.stop)
        irc_port = free_port()
        a = await ChatServerProcess.start(redis.port, "--chat", "irc",
                                          "--irc", f"tcp:{irc_port}:interface=127.0.0.1",
                                          "--irc-name", "irc.test")
        self.addCleanup(a.kill)
        b = await ChatServerProcess.start(redis.port, "--chat", "irc")
        self.addCleanup(b.kill)

        bob = await FrameClient.connect(b.port)
        self.addCleanup(bob.close)
        await bob.hello("bob")
        alice = await LineClient.connect(irc_port)
        self.addCleanup(alice.transport.loseConnection)
        alice.send("NICK alice")
        alice.send("USER alice 0 * :Alice")
        await alice.wait_for(r" 366 alice #lobby ")
        names = [line for line in alice.lines if " 353 " in line]
        self.assertIn("bob", names[0].split(":")[-1].split())

        alice.send("PRIVMSG #lobby :from irc on A")
        said = await bob.wait_for(lambda m: m["type"] == "message" and m["from"] == "alice",
                                  what="alice's message", start=0)
        self.assertEqual(said["text"], "from irc on A")

        start = len(alice.lines)
        bob.send({"type": "say", "text": "from B"})
        await alice.wait_for(r"^:bob!chat@chatsvc PRIVMSG #lobby :from B$", start)
        bob.send({"type": "msg", "to": "alice", "text": "psst"})
        await alice.wait_for(r"^:bob!chat@chatsvc PRIVMSG alice :psst$", start)
        alice.send("NICK alicia")
        renamed = await bob.wait_for(lambda m: m["type"] == "renamed", what="the rename", start=0)
        self.assertEqual((renamed["old"], renamed["new"]), ("alice", "alicia"))
        alice.send("QUIT :done")
        left = await bob.wait_for(lambda m: m["type"] == "left", what="alicia to leave", start=0)
        self.assertEqual((left["name"], left["reason"]), ("alicia", "quit"))
