"""
Tests for the IRC gateway as a whole: twisted.words' own IRC client (and
raw lines) against the chat in memory, beside chat clients speaking frames.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted.internet.task import Clock

from chatsvc.admin.bans import BanList
from chatsvc.admin.operator import LocalOperator
from chatsvc.keys import load_key
from chatsvc.metrics import ITransportLabel, transport_label
from chatsvc.server.interfaces import IChatTransport
from chatsvc.transports.irc.gateway import IRCGatewayProtocol
from chatsvc.transports.irc.session import ISessionHost

from .helpers import FakeClient, PausingTransport, only
from .irc_helpers import IRCPeer, RawIRC, make_gateway
from .procs import DEMO_KEY


class RegistrationTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.chat, self.gateway = make_gateway(motd="be nice")

    def test_sign_on_and_lobby(self) -> None:
        """IRCClient signs on, learns the ISUPPORT tokens and is in #lobby."""
        alice = IRCPeer.connect(self.gateway, "alice")
        client = alice.client
        self.assertEqual(client.of("signedOn"), [("signedOn",)])
        self.assertEqual(client.of("joined"), [("joined", "#lobby")])
        self.assertEqual(client.supported.getFeature("CHANTYPES"), ("#",))
        self.assertEqual(client.supported.getFeature("NETWORK"), "chatsvc")
        self.assertEqual(client.supported.getFeature("NICKLEN"), 33)
        self.assertTrue(client.supported.hasFeature("UTF8ONLY"))
        self.assertIn(":irc.test 372 alice :- be nice", client.lines)
        self.assertEqual(self.chat.room.names(), ["alice"])

    def test_ping_before_registration(self) -> None:
        raw = RawIRC(self.gateway)
        self.assertEqual(raw.send(b"PING :tok en\r\n"), [":irc.test PONG irc.test :tok en"])

    def test_cap_negotiation_holds_registration(self) -> None:
        raw = RawIRC(self.gateway)
        lines = raw.send(b"CAP LS 302\r\nNICK bob\r\nUSER b 0 * :Bob\r\n")
        self.assertEqual(lines, [":irc.test CAP * LS :batch draft/chathistory echo-message "
                                 "message-tags multi-prefix server-time standard-replies"])
        self.assertEqual(raw.send(b"CAP REQ :server-time bogus\r\n"),
                         [":irc.test CAP * NAK :server-time bogus"])
        self.assertEqual(raw.send(b"CAP REQ :server-time echo-message\r\n"),
                         [":irc.test CAP * ACK :server-time echo-message"])
        lines = raw.send(b"CAP END\r\n")
        self.assertEqual(lines[0], ":irc.test 001 bob :Welcome to the chatsvc IRC gateway, bob")
        self.assertIn(":bob!chat@chatsvc JOIN #lobby", lines)
        self.assertEqual(raw.send(b"CAP LIST\r\n"), [":irc.test CAP bob LIST :echo-message server-time"])

    def test_erroneous_nick_then_another(self) -> None:
        raw = RawIRC(self.gateway)
        lines = raw.register("1abc")
        self.assertEqual(lines, [":irc.test 432 * 1abc :Erroneous nickname"])
        lines = raw.send(b"NICK `1abc\r\n")
        self.assertEqual(lines[0], ":irc.test 001 `1abc :Welcome to the chatsvc IRC gateway, `1abc")
        self.assertEqual(self.chat.room.names(), ["1abc"])

    def test_commands_before_registration(self) -> None:
        raw = RawIRC(self.gateway)
        self.assertEqual(raw.send(b"JOIN #x\r\n"), [":irc.test 451 * :You have not registered"])

    def test_taken_nick_at_registration_gets_a_suffix(self) -> None:
        """As for every chat client: 001 names the nick the chat assigned."""
        FakeClient(self.chat).hello("carol")
        raw = RawIRC(self.gateway)
        self.assertIn(":irc.test 001 carol_2 :Welcome to the chatsvc IRC gateway, carol_2",
                      raw.register("carol"))

    def test_registration_timeout(self) -> None:
        raw = RawIRC(self.gateway)
        raw.send(b"NICK slow\r\n")
        self.gateway.clock.advance(11)
        self.assertEqual(raw.lines(), ["ERROR :Closing link (timeout: no handshake and hello in time)"])
        self.assertTrue(raw.transport.disconnecting)

    def test_session_host_interface(self) -> None:
        raw = RawIRC(self.gateway)
        self.assertIsInstance(raw.protocol, IRCGatewayProtocol)
        self.assertTrue(verifyObject(ISessionHost, raw.protocol))

    def test_metrics_label(self) -> None:
        """The metrics count an IRC user's connection as C{irc}, not C{tcp}."""
        raw = RawIRC(self.gateway)
        raw.register("eve")
        self.assertTrue(verifyObject(ITransportLabel, raw.protocol))
        self.assertEqual(transport_label(raw.protocol.wrappedProtocol.transport), "irc")


class TalkTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.chat, self.gateway = make_gateway()
        self.alice = IRCPeer.connect(self.gateway, "alice")
        self.bob = FakeClient(self.chat)
        self.bob.hello("bob")
        self.alice.pump()

    def test_channel_both_ways(self) -> None:
        self.assertEqual(self.alice.client.of("userJoined"), [("userJoined", "bob", "#lobby")])
        self.alice.client.say("#lobby", "hi \x02bob\x02")
        self.alice.pump()
        [message] = only(self.bob.received(), "message")
        self.assertEqual((message["from"], message["text"]), ("alice", "hi bob"))
        self.bob.send({"type": "say", "text": "hello alice"})
        self.alice.pump()
        self.assertEqual(self.alice.client.of("privmsg"), [("privmsg", "bob", "#lobby", "hello alice")])

    def test_private_both_ways(self) -> None:
        self.alice.client.msg("bob", "psst")
        self.alice.pump()
        [private] = only(self.bob.received(), "private")
        self.assertEqual((private["from"], private["to"], private["text"]), ("alice", "bob", "psst"))
        self.bob.send({"type": "msg", "to": "ALICE", "text": "yes?"})
        self.alice.pump()
        self.assertEqual(self.alice.client.of("privmsg"), [("privmsg", "bob", "alice", "yes?")])

    def test_rename_both_ways(self) -> None:
        self.bob.send({"type": "nick", "name": "robert"})
        self.alice.pump()
        self.assertEqual(self.alice.client.of("userRenamed"), [("userRenamed", "bob", "robert")])
        self.alice.client.setNick("alicia")
        self.alice.pump()
        self.assertEqual(self.alice.client.of("nickChanged"), [("nickChanged", "alicia")])
        renamed = only(self.bob.received(), "renamed")[-1]
        self.assertEqual((renamed["old"], renamed["new"]), ("alice", "alicia"))
        self.assertEqual(self.alice.server.session.nick, "alicia")

    def test_taken_nick(self) -> None:
        self.alice.send("NICK BOB")
        self.assertIn(":irc.test 433 alice BOB :Nickname is already in use",
                      self.alice.client.lines)
        self.assertEqual(self.chat.room.find("bob"), self.chat.room.find("BOB"))

    def test_quit_frees_the_nick_at_once(self) -> None:
        self.alice.client.quit("bye now")
        self.alice.pump()
        self.assertEqual(self.alice.client.lines[-1], "ERROR :Closing link (quit: bye now)")
        left = only(self.bob.received(), "left")
        self.assertEqual([(m["name"], m["reason"], m.get("text")) for m in left],
                         [("alice", "quit", "bye now")])
        again = IRCPeer.connect(self.gateway, "alice")
        self.assertEqual(again.client.of("signedOn"), [("signedOn",)])
        self.assertEqual(again.server.session.nick, "alice")

    def test_lost_connection_frees_the_nick(self) -> None:
        self.alice.server_transport.loseConnection()
        self.alice.pump()
        self.assertEqual([m["reason"] for m in only(self.bob.received(), "left")], ["disconnected"])
        self.assertNotIn("alice", self.chat.room.names())

    def test_others_quit(self) -> None:
        self.bob.send({"type": "quit", "reason": "later"})
        self.alice.pump()
        self.assertEqual(self.alice.client.of("userQuit"), [("userQuit", "bob", "Quit: later")])

    def test_long_message_split_not_truncated(self) -> None:
        text = ("word " * 800).strip()
        self.bob.send({"type": "say", "text": text})
        self.alice.pump()
        lines = [line for line in self.alice.client.lines if " PRIVMSG " in line]
        self.assertGreater(len(lines), 8)
        for line in lines:
            self.assertLessEqual(len(line.encode("utf-8")) + 2, 512)
        got = "".join(e[3] for e in self.alice.client.of("privmsg"))
        self.assertEqual(got, text)

    def test_own_messages_not_echoed(self) -> None:
        self.alice.client.say("#lobby", "mine")
        self.alice.pump()
        self.assertEqual(self.alice.client.of("privmsg"), [])

    def test_shutdown(self) -> None:
        self.chat.shutdown()
        self.alice.pump()
        self.assertEqual(self.alice.client.lines[-1], "ERROR :Closing link (shutdown: the server is stopping)")


class FanOutTests(SynchronousTestCase):
    def test_translated_once_for_every_recipient(self) -> None:
        chat, gateway = make_gateway()
        peers = [IRCPeer.connect(gateway, f"user{i}") for i in range(5)]
        bob = FakeClient(chat)
        bob.hello("bob")
        for peer in peers:
            peer.pump()
        before = gateway.cache.translated
        bob.send({"type": "say", "text": "to all"})
        gateway.clock.advance(0)
        self.assertEqual(gateway.cache.translated, before + 1)
        for peer in peers:
            peer.pump()
            self.assertEqual(peer.client.of("privmsg"), [("privmsg", "bob", "#lobby", "to all")])

    def test_echo_message_and_server_time(self) -> None:
        chat, gateway = make_gateway()
        raw = RawIRC(gateway)
        raw.send(b"CAP REQ :echo-message server-time\r\nCAP END\r\n")
        raw.register("eve")
        other = RawIRC(gateway)
        other.register("dan")
        raw.lines()
        lines = raw.send(b"PRIVMSG #lobby :hello\r\n")
        [line] = [line for line in lines if "PRIVMSG" in line]
        self.assertRegex(line, r"^@time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z :eve!chat@chatsvc PRIVMSG #lobby :hello$")
        self.assertEqual(other.lines()[-1], ":eve!chat@chatsvc PRIVMSG #lobby :hello")


class LimitTests(SynchronousTestCase):
    def test_rate_limit_and_flood(self) -> None:
        chat, gateway = make_gateway()
        raw = RawIRC(gateway)
        raw.register("fast")
        lines = raw.send(b"PRIVMSG #lobby :x\r\n" * 25)
        refusals = [line for line in lines if "rate-limited" in line]
        self.assertEqual(len(refusals), 25 - 19)  # the burst of 20 includes the hello
        self.assertEqual(refusals[0], ":irc.test NOTICE fast :*** PRIVMSG refused (rate-limited): "
                                      "too many messages; this one was not delivered")
        lines = raw.send(b"MODE #lobby\r\n" * 80)
        self.assertEqual(lines[-1], "ERROR :Closing link (flood: far over the message rate for too long)")
        self.assertTrue(raw.transport.disconnecting)

    def test_sendq(self) -> None:
        """A client that stops reading is dropped as slow, as any chat client."""
        chat, gateway = make_gateway(sendq=20000, sendq_soft=0, rate_burst=0)
        peer_transport = PausingTransport(limit=1000)
        protocol = gateway.buildProtocol(None)
        protocol.makeConnection(peer_transport)
        protocol.dataReceived(b"NICK sleepy\r\nUSER s 0 * :s\r\n")
        bob = FakeClient(chat)
        bob.hello("bob")
        for _ in range(60):
            bob.send({"type": "say", "text": "y" * 1000})
            gateway.clock.advance(0)
        gateway.clock.advance(0)
        self.assertIn(b"ERROR :Closing link (slow: you stopped reading; output queue full)",
                      peer_transport.value())
        self.assertNotIn("sleepy", chat.room.names())

    def test_bad_text_and_long_lines(self) -> None:
        chat, gateway = make_gateway()
        raw = RawIRC(gateway)
        raw.register("tx")
        self.assertEqual(raw.send(b"PRIVMSG #lobby :ring\x07\r\n"), [
            ":irc.test NOTICE tx :*** PRIVMSG refused (bad-text): text must not hold control "
            "characters (but tab and newline) or bidirectional overrides"])
        raw.send(b"CAP REQ standard-replies\r\n")
        [line] = raw.send(b"PRIVMSG #lobby :ring\x07\r\n")
        self.assertTrue(line.startswith(":irc.test FAIL PRIVMSG BAD_TEXT :"), line)
        self.assertEqual(raw.send(b"PRIVMSG #lobby :" + b"x" * 600 + b"\r\n"),
                         [":irc.test 417 tx :Input line was too long"])
        self.assertEqual(raw.send(b"FROB\r\n"), [":irc.test 421 tx FROB :Unknown command"])
        self.assertEqual(raw.send(b"PRIVMSG #lobby :\xff\r\n"), [
            ":irc.test FAIL * REFUSED :the line is not UTF-8 (this server is UTF8ONLY)"])

    def test_keepalive(self) -> None:
        chat, gateway = make_gateway(ping_interval=60, ping_timeout=30)
        raw = RawIRC(gateway)
        raw.register("idle")
        gateway.clock.advance(61)
        [ping] = raw.lines()
        self.assertRegex(ping, r"^PING :?\d+$")
        raw.send(b"PONG :" + ping.split()[1].lstrip(":").encode() + b"\r\n")
        gateway.clock.advance(40)
        self.assertFalse(raw.transport.disconnecting)
        gateway.clock.advance(100)
        self.assertEqual(raw.lines()[-1], "ERROR :Closing link (timeout: no answer to ping)")


class KeyTests(SynchronousTestCase):
    """PROTOCOL.md 7.2: with a key, IRC only over TLS, with the key as PASS."""

    def setUp(self) -> None:
        with open(DEMO_KEY) as f:
            self.line = [x.strip() for x in f if x.strip() and not x.startswith("#")][0]
        self.psk = load_key(DEMO_KEY)

    def test_plain_tcp_refused_where_encryption_is_required(self) -> None:
        chat, gateway = make_gateway(psk=self.psk, require_encryption=True)
        raw = RawIRC(gateway)
        self.assertEqual(raw.lines(), [
            "ERROR :Closing link (encryption-required: IRC on this server is served over TLS only)"])
        self.assertTrue(raw.transport.disconnecting)

    def test_tls_and_key_make_an_encrypted_member(self) -> None:
        chat, gateway = make_gateway(psk=self.psk, require_encryption=True)
        raw = RawIRC(gateway, tls=True)
        lines = raw.send(b"PASS :" + self.line.encode() + b"\r\n" + b"NICK sec\r\nUSER s 0 * :s\r\n")
        self.assertIn(":sec!chat@chatsvc JOIN #lobby", lines)
        self.assertTrue(verifyObject(IChatTransport, raw.protocol))
        self.assertTrue(raw.protocol.encrypted)
        self.assertTrue(raw.protocol.wrappedProtocol.encrypted)

    def test_tls_with_a_wrong_key(self) -> None:
        chat, gateway = make_gateway(psk=self.psk, require_encryption=True)
        raw = RawIRC(gateway, tls=True)
        lines = raw.send(b"PASS nope\r\nNICK sec\r\nUSER s 0 * :s\r\n")
        self.assertEqual(lines, [":irc.test 464 * :Password incorrect",
                                 "ERROR :Closing link (handshake-failed: the server password is not "
                                 "this chat's key)"])
        self.assertEqual(chat.room.names(), [])

    def test_plaintext_member_where_plaintext_is_served(self) -> None:
        chat, gateway = make_gateway(psk=self.psk, require_encryption=False)
        raw = RawIRC(gateway)
        self.assertIn(":open!chat@chatsvc JOIN #lobby", raw.register("open"))
        self.assertFalse(raw.protocol.wrappedProtocol.encrypted)


class RoomTests(SynchronousTestCase):
    """Rooms (version 2) through the whole stack: the chat in memory, IRC lines."""

    def setUp(self) -> None:
        self.chat, self.gateway = make_gateway()
        self.bob = FakeClient(self.chat, version=2)
        self.bob.hello("bob", rooms=["#lobby", "#dev"])
        for text in ("one", "two"):
            self.bob.send({"type": "say", "room": "#dev", "text": text})
        self.bob.received()

    def test_history_replayed_in_a_batch(self) -> None:
        raw = RawIRC(self.gateway)
        raw.send(b"CAP REQ :batch server-time\r\nCAP END\r\n")
        raw.register("eve")
        lines = raw.send(b"JOIN #dev\r\n")
        self.assertEqual(lines[:3], [":eve!chat@chatsvc JOIN #dev", ":irc.test 353 eve = #dev :eve bob",
                                     ":irc.test 366 eve #dev :End of NAMES list"])
        self.assertEqual(lines[3], ":irc.test BATCH +h1 chathistory #dev")
        self.assertRegex(lines[4], r"^@batch=h1;time=\S+Z :bob!chat@chatsvc PRIVMSG #dev :one$")
        self.assertRegex(lines[5], r"^@batch=h1;time=\S+Z :bob!chat@chatsvc PRIVMSG #dev :two$")
        self.assertEqual(lines[6:], [":irc.test BATCH -h1"])
        joined = only(self.bob.received(), "joined")
        self.assertEqual([(m["room"], m["name"], m.get("plaintext")) for m in joined],
                         [("#lobby", "eve", True), ("#dev", "eve", True)])

    def test_part_topic_list(self) -> None:
        raw = RawIRC(self.gateway)
        raw.register("eve")
        raw.send(b"JOIN #dev\r\n")
        self.bob.received()
        self.assertEqual(raw.send(b"TOPIC #dev :plans\r\n"), [":eve!chat@chatsvc TOPIC #dev :plans"])
        self.assertEqual(raw.send(b"TOPIC #dev\r\n"), [":irc.test 332 eve #dev :plans"])
        self.assertEqual(raw.send(b"LIST #dev\r\n"), [
            ":irc.test 321 eve Channel :Users  Name", ":irc.test 322 eve #dev 2 :plans",
            ":irc.test 323 eve :End of LIST"])
        self.assertEqual(raw.send(b"PART #dev :later\r\n"), [":eve!chat@chatsvc PART #dev :later"])
        parted = only(self.bob.received(), "parted")
        self.assertEqual([(m["room"], m["name"], m.get("text")) for m in parted], [("#dev", "eve", "later")])
        self.assertEqual(raw.send(b"PRIVMSG #dev :hi\r\n"),
                         [":irc.test 404 eve #dev :Cannot send to channel (you are not in it)"])
        self.assertEqual(raw.send(b"TOPIC #dev\r\n"), [":irc.test 332 eve #dev :plans"])
        self.assertEqual(raw.send(b"JOIN #a|b\r\n")[0][:30], ":irc.test 403 eve #a|b :No suc")

    def test_operator_notice_and_topic(self) -> None:
        """An operator's notice is a NOTICE from the server; its topic is set by the server."""
        raw = RawIRC(self.gateway)
        raw.register("eve")
        clock = Clock()
        operator = LocalOperator(self.chat, self.chat.room, BanList(clock), clock)
        operator.notice("restart at 5", None)
        self.assertEqual(raw.lines(), [":irc.test NOTICE * :restart at 5"])
        operator.notice("dev only", "#lobby")
        self.assertEqual(raw.lines(), [":irc.test NOTICE #lobby :dev only"])
        self.chat.room.operator_topic("#lobby", "be nice")
        self.chat.room.flush()
        self.assertEqual(raw.lines(), [":irc.test TOPIC #lobby :be nice"])

    def test_action_both_ways(self) -> None:
        raw = RawIRC(self.gateway)
        raw.register("eve")
        raw.send(b"PRIVMSG #lobby :\x01ACTION waves\x01\r\n")
        [message] = only(self.bob.received(), "message")
        self.assertEqual((message["text"], message.get("action")), ("waves", True))
        self.bob.send({"type": "say", "text": "bows", "action": True})
        self.assertEqual(raw.lines(), [":bob!chat@chatsvc PRIVMSG #lobby :\x01ACTION bows\x01"])
