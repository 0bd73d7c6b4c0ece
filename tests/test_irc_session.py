"""
Tests for L{chatsvc.transports.irc.session} and its commands: IRC commands
to chat requests, and the chat's (version 2) messages to IRC, with crafted
messages and a fake host, no I/O.
"""

from __future__ import annotations

import base64
import json
from typing import Any, List

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from chatsvc.transports.irc.lines import parse
from chatsvc.transports.irc.outbound import ServerInfo, Translation
from chatsvc.transports.irc.session import IRCSession, ISessionHost
from chatsvc.wire.framing import encode_frame

KEY = bytes(range(32))
KEY_LINE = base64.urlsafe_b64encode(KEY).decode()
TS = "2026-11-22T02:50:00.123Z"


@implementer(ISessionHost)
class FakeHost:
    tls = False

    def __init__(self) -> None:
        self.requests: List[tuple] = []
        self.out: List[bytes] = []
        self.fatals: List[tuple] = []

    def request(self, message: Any, context: Any) -> None:
        self.requests.append((message, context))

    def reply(self, data: bytes) -> None:
        self.out.append(data)

    def charge(self) -> bool:
        return True

    def fatal(self, code: str, text: str) -> None:
        self.fatals.append((code, text))

    def lines(self) -> List[str]:
        data, self.out = b"".join(self.out), []
        return [line for line in data.decode().split("\r\n") if line]


def frames(*messages: Any) -> bytes:
    return b"".join(encode_frame(json.dumps(m).encode()) for m in messages)


class SessionTestCase(SynchronousTestCase):
    info = ServerInfo(name="irc.test")

    def setUp(self) -> None:
        self.host = FakeHost()
        self.session = IRCSession(self.info, self.host)

    def command(self, line: str) -> List[str]:
        self.session.line_received(parse(line.encode()))
        return self.host.lines()

    def chat(self, *messages: Any, context: Any = None) -> List[str]:
        if context is not None:
            self.session.context = context
        data = self.session.deliver(Translation(frames(*messages), self.info))
        return [line for line in data.decode().split("\r\n") if line]

    def register(self, nick: str = "me") -> None:
        self.command(f"NICK {nick}")
        self.command("USER u 0 * :real")
        self.host.requests.clear()
        self.chat({"type": "welcome", "name": nick, "rooms": [], "users": [nick]})


class RegistrationTests(SessionTestCase):
    def test_fake_host(self) -> None:
        self.assertTrue(verifyObject(ISessionHost, self.host))

    def test_hello(self) -> None:
        self.command("NICK j^doe")
        self.assertEqual(self.host.requests, [])
        self.command("USER u 0 * :real")
        self.assertEqual(self.host.requests, [({"type": "hello", "name": "j.doe"}, ("NICK", "j^doe"))])

    def test_version_2_welcome_waits_for_room(self) -> None:
        self.register()
        lines = self.chat({"type": "room", "room": "#lobby", "topic": "Welcome!", "count": 2,
                           "users": ["me", "1st"], "plaintext": [], "presence": True})
        self.assertEqual(lines, [":me!chat@chatsvc JOIN #lobby",
                                 ":irc.test 332 me #lobby :Welcome!",
                                 ":irc.test 353 me = #lobby :me `1st",
                                 ":irc.test 366 me #lobby :End of NAMES list"])
        self.assertEqual(self.command("TOPIC #LOBBY"), [":irc.test 332 me #lobby :Welcome!"])

    def test_room_in_parts(self) -> None:
        self.register()
        first = self.chat({"type": "room", "room": "#big", "topic": "", "users": ["a"], "more": True})
        second = self.chat({"type": "room", "room": "#big", "topic": "", "users": ["b"]})
        self.assertEqual(first, [":me!chat@chatsvc JOIN #big", ":irc.test 353 me = #big :a"])
        self.assertEqual(second, [":irc.test 353 me = #big :b", ":irc.test 366 me #big :End of NAMES list"])

    def _key_session(self, tls: bool, require: bool = True) -> None:
        self.host.tls = tls
        self.session = IRCSession(ServerInfo(name="irc.test", has_key=True), self.host, KEY, require)

    def test_plaintext_marked_where_there_is_a_key(self) -> None:
        self._key_session(tls=False, require=False)
        self.command("NICK k")
        self.command("USER u 0 * :r")
        lines = self.chat({"type": "welcome", "name": "k", "rooms": ["#lobby"], "users": ["k"]})
        self.assertIn(":irc.test NOTICE k :*** You are connected without encryption: anyone on the "
                      "network can read what you send and receive (give the key as the server "
                      "password, over TLS)", lines)
        lines = self.chat({"type": "room", "room": "#lobby", "topic": "", "users": ["k", "e"],
                           "plaintext": ["k"]})
        self.assertEqual(lines[-1], ":irc.test NOTICE #lobby :*** Connected without encryption "
                                    "(anyone on the network can read them): k")

    def test_key_as_pass_over_tls(self) -> None:
        self._key_session(tls=True)
        self.command(f"PASS {KEY_LINE}")
        self.command("NICK k")
        self.command("USER u 0 * :r")
        self.assertTrue(self.session.encrypted)
        self.assertEqual(self.host.requests[0][0]["type"], "hello")

    def test_wrong_pass(self) -> None:
        self._key_session(tls=True)
        self.command("PASS " + base64.urlsafe_b64encode(b"x" * 32).decode())
        self.command("NICK k")
        self.assertEqual(self.command("USER u 0 * :r"), [":irc.test 464 * :Password incorrect"])
        self.assertEqual([code for code, _ in self.host.fatals], ["handshake-failed"])
        self.assertEqual(self.host.requests, [])

    def test_no_pass_where_encryption_is_required(self) -> None:
        self._key_session(tls=True)
        self.command("NICK k")
        self.command("USER u 0 * :r")
        self.assertEqual([code for code, _ in self.host.fatals], ["encryption-required"])

    def test_pass_over_plain_tcp(self) -> None:
        """The key never counts when it crossed the network in clear."""
        self._key_session(tls=False, require=False)
        self.command(f"PASS {KEY_LINE}")
        self.command("NICK k")
        self.command("USER u 0 * :r")
        self.assertEqual([code for code, _ in self.host.fatals], ["encryption-required"])
        self.assertFalse(self.session.encrypted)

    def test_plaintext_member_where_allowed(self) -> None:
        self._key_session(tls=False, require=False)
        self.command("NICK k")
        self.command("USER u 0 * :r")
        self.assertEqual(self.host.fatals, [])
        self.assertFalse(self.session.encrypted)
        self.assertEqual(self.host.requests[0][0]["type"], "hello")


class RequestTests(SessionTestCase):
    def setUp(self) -> None:
        SessionTestCase.setUp(self)
        self.register()

    def requests(self, line: str) -> List[Any]:
        self.command(line)
        requests, self.host.requests = self.host.requests, []
        return requests

    def test_action_to_channel(self) -> None:
        self.assertEqual(self.requests("PRIVMSG #dev :\x01ACTION waves\x01"),
                         [({"type": "say", "room": "#dev", "text": "waves", "action": True},
                           ("PRIVMSG", "#dev"))])

    def test_private_to_mapped_nick(self) -> None:
        self.assertEqual(self.requests("NOTICE `42,#a :hi"), [
            ({"type": "msg", "to": "42", "text": "hi"}, ("NOTICE", "`42")),
            ({"type": "say", "room": "#a", "text": "hi"}, ("NOTICE", "#a"))])

    def test_other_ctcp_refused(self) -> None:
        self.assertEqual(self.command("PRIVMSG bob :\x01VERSION\x01"), [
            ":irc.test NOTICE me :*** PRIVMSG refused (refused): CTCP VERSION is not carried to the chat"])

    def test_join_several_and_already_in(self) -> None:
        self.chat({"type": "room", "room": "#a", "topic": "", "users": ["me"]})
        self.assertEqual(self.requests("JOIN #A,#b,c key1,key2"), [
            ({"type": "join", "room": "#b"}, ("JOIN", "#b"))])
        self.assertEqual(self.host.lines(), [])

    def test_part_topic_list_names_who(self) -> None:
        self.assertEqual(self.requests("PART #a,#b :gone"), [
            ({"type": "part", "room": "#a", "reason": "gone"}, ("PART", "#a")),
            ({"type": "part", "room": "#b", "reason": "gone"}, ("PART", "#b"))])
        self.assertEqual(self.requests("TOPIC #a :\x02new\x02 topic"), [
            ({"type": "topic", "room": "#a", "text": "new topic"}, ("TOPIC", "#a"))])
        self.assertEqual(self.requests("TOPIC #a :"), [
            ({"type": "topic", "room": "#a", "text": ""}, ("TOPIC", "#a"))])
        self.assertEqual(self.requests("LIST")[0][0], {"type": "rooms"})
        self.assertEqual(self.requests("NAMES #a")[0][0], {"type": "who", "room": "#a"})
        self.assertEqual(self.requests("WHO bob")[0][0], {"type": "who"})

    def test_missing_parameters(self) -> None:
        self.assertEqual(self.command("PRIVMSG"), [":irc.test 411 me :No recipient given (PRIVMSG)"])
        self.assertEqual(self.command("PRIVMSG #a"), [":irc.test 412 me :No text to send"])
        self.assertEqual(self.command("PRIVMSG #a :\x02\x02"), [":irc.test 412 me :No text to send"])
        self.assertEqual(self.command("JOIN"), [":irc.test 461 me JOIN :Not enough parameters"])
        self.assertEqual(self.command("PING"), [":irc.test 409 me :No origin specified"])
        self.assertEqual(self.command("USER a b c d"), [":irc.test 462 me :You may not reregister"])

    def test_modes_and_away(self) -> None:
        self.assertEqual(self.command("MODE #a"), [":irc.test 324 me #a +n"])
        self.assertEqual(self.command("MODE #a b"), [":irc.test 368 me #a :End of channel ban list"])
        self.assertEqual(self.command("MODE ME"), [":irc.test 221 me +"])
        self.assertEqual(self.command("MODE me +i"), [":me MODE me :+i"])
        self.assertEqual(self.command("MODE me"), [":irc.test 221 me +i"])
        self.assertEqual(self.command("MODE me +o"), [":irc.test 501 me :Unknown MODE flag (the only user mode is i)"])
        self.assertEqual(self.command("MODE other"), [":irc.test 502 me :Can't change mode for other users"])
        self.assertEqual(self.command("KICK #a bob"), [":irc.test 482 me #a :You're not channel operator (the chat has none)"])
        self.assertEqual(self.command("KICK #a"), [":irc.test 461 me KICK :Not enough parameters"])
        self.assertEqual(self.command("@+typing=active TAGMSG #a"), [])
        self.assertEqual(self.host.requests, [])
        self.assertEqual(self.command("AWAY :lunch"), [":irc.test 306 me :You have been marked as being away"])
        self.assertEqual(self.command("AWAY"), [":irc.test 305 me :You are no longer marked as being away"])


class ChatToIRCTests(SessionTestCase):
    def requests_of(self, line: str) -> List[Any]:
        self.command(line)
        requests, self.host.requests = self.host.requests, []
        return requests

    def setUp(self) -> None:
        SessionTestCase.setUp(self)
        self.register()
        self.chat({"type": "room", "room": "#dev", "topic": "", "users": ["me", "x.y"]})

    def test_events(self) -> None:
        lines = self.chat(
            {"type": "message", "room": "#dev", "from": "x.y", "text": "waves", "ts": TS, "seq": 3,
             "action": True},
            {"type": "joined", "room": "#dev", "name": "-z", "ts": TS},
            {"type": "topic", "room": "#dev", "text": "t", "by": "x.y", "ts": TS},
            {"type": "renamed", "old": "x.y", "new": "xy", "ts": TS},
            {"type": "left", "name": "xy", "reason": "timeout", "ts": TS},
            {"type": "parted", "room": "#dev", "name": "me", "reason": "part", "text": "bye", "ts": TS},
        )
        self.assertEqual(lines, [
            ":x^y!chat@chatsvc PRIVMSG #dev :\x01ACTION waves\x01",
            ":`-z!chat@chatsvc JOIN #dev",
            ":x^y!chat@chatsvc TOPIC #dev :t",
            ":x^y!chat@chatsvc NICK xy",
            ":xy!chat@chatsvc QUIT :Ping timeout",
            ":me!chat@chatsvc PART #dev :bye",
        ])
        self.assertIsNone(self.session.channel("#dev"))

    def test_plaintext_join_marked_where_there_is_a_key(self) -> None:
        self.info = ServerInfo(name="irc.test", has_key=True)
        lines = self.chat({"type": "joined", "room": "#dev", "name": "p", "ts": TS, "plaintext": True})
        self.assertEqual(lines[1], ":irc.test NOTICE #dev :*** p is connected without encryption: "
                                   "anyone on the network can read what it sends and receives")

    def test_server_time_tags(self) -> None:
        self.session.caps.add("server-time")
        [line] = self.chat({"type": "private", "from": "x.y", "to": "me", "text": "hi", "ts": TS, "seq": 1})
        self.assertEqual(line, f"@time={TS} :x^y!chat@chatsvc PRIVMSG me :hi")

    def test_history_in_a_batch(self) -> None:
        self.session.caps.update({"server-time", "batch"})
        message = {"type": "message", "room": "#dev", "from": "x.y", "text": "old", "ts": TS, "seq": 1}
        lines = self.chat({"type": "history", "room": "#dev", "messages": [message], "complete": True})
        self.assertEqual(lines, [":irc.test BATCH +h1 chathistory #dev",
                                 f"@batch=h1;time={TS} :x^y!chat@chatsvc PRIVMSG #dev :old",
                                 ":irc.test BATCH -h1"])

    def test_history_without_server_time(self) -> None:
        message = {"type": "message", "room": "#dev", "from": "x.y", "text": "old", "ts": TS, "seq": 1}
        lines = self.chat({"type": "history", "room": "#dev", "messages": [message], "complete": True})
        self.assertEqual(lines, [":x^y!chat@chatsvc PRIVMSG #dev :[2026-11-22 02:50:00] old"])

    def test_answers_by_context(self) -> None:
        users = {"type": "users", "room": "#dev", "users": ["me", "x.y"], "plaintext": ["x.y"]}
        self.assertEqual(self.chat(users, context=("NAMES", "#dev")), [
            ":irc.test 353 me = #dev :me x^y", ":irc.test 366 me #dev :End of NAMES list"])
        self.assertEqual(self.chat(users, context=("WHO", "#dev"))[-1], ":irc.test 315 me #dev :End of WHO list")
        self.assertEqual(self.chat(users, context=("WHOIS", "X^Y"))[0],
                         ":irc.test 311 me X^Y chat chatsvc * :chat user")
        self.assertEqual(self.chat(users, context=("WHOIS", "nobody")), [
            ":irc.test 401 me nobody :No such nick/channel", ":irc.test 318 me nobody :End of WHOIS list"])
        self.assertEqual(self.chat(users, context=("ISON", ["x^y", "zz"])), [":irc.test 303 me :x^y"])
        self.assertEqual(self.chat(users, context=("LUSERS", None)), [
            ":irc.test 251 me :There are 2 users and 0 invisible on 1 servers",
            ":irc.test 255 me :I have 2 clients and 1 servers"])
        rooms = {"type": "rooms", "rooms": [{"room": "#dev", "count": 2, "topic": "t"},
                                            {"room": "#lobby", "count": 5, "topic": ""}]}
        self.assertEqual(self.requests_of("TOPIC #lobby"), [({"type": "rooms"}, ("TOPIC?", "#lobby"))])
        self.assertEqual(self.chat(rooms, context=("TOPIC?", "#DEV")), [":irc.test 332 me #dev :t"])
        self.assertEqual(self.chat(rooms, context=("TOPIC?", "#lobby")), [":irc.test 331 me #lobby :No topic is set"])
        self.assertEqual(self.chat(rooms, context=("TOPIC?", "#none")), [":irc.test 403 me #none :No such channel"])
        self.assertEqual(self.chat(rooms, context=("LIST", {"#lobby"})), [
            ":irc.test 321 me Channel :Users  Name", ":irc.test 322 me #lobby 5 :",
            ":irc.test 323 me :End of LIST"])

    def test_errors_by_context(self) -> None:
        def error(code: str, context: Any) -> List[str]:
            return self.chat({"type": "error", "code": code, "text": "t", "fatal": False}, context=context)

        self.assertEqual(error("not-in-room", ("PRIVMSG", "#x")),
                         [":irc.test 404 me #x :Cannot send to channel (you are not in it)"])
        self.assertEqual(error("not-in-room", ("PART", "#x")), [":irc.test 442 me #x :You're not on that channel"])
        self.assertEqual(error("bad-room", ("JOIN", "#a|b")), [":irc.test 403 me #a|b :No such channel (t)"])
        self.assertEqual(error("too-many-rooms", ("JOIN", "#z")),
                         [":irc.test 405 me #z :You have joined too many channels"])
        self.assertEqual(error("no-such-room", ("NAMES", "#q")), [":irc.test 366 me #q :End of NAMES list"])
        self.assertEqual(error("no-such-user", ("PRIVMSG", "ghost")), [":irc.test 401 me ghost :No such nick/channel"])
        self.assertEqual(error("muted", ("PRIVMSG", "#dev")), [":irc.test NOTICE me :*** PRIVMSG refused (muted): t"])
        self.assertEqual(self.chat({"type": "error", "code": "kicked", "text": "by op", "fatal": True}),
                         ["ERROR :Closing link (kicked: by op)"])

    def test_own_message_left_out_without_echo_message(self) -> None:
        mine = {"type": "message", "room": "#dev", "from": "me", "text": "x", "ts": TS, "seq": 9}
        self.assertEqual(self.chat(mine), [])
        to_self = {"type": "private", "from": "me", "to": "me", "text": "note", "ts": TS, "seq": 2}
        self.assertEqual(self.chat(to_self), [":me!chat@chatsvc PRIVMSG me :note"])
        self.session.caps.add("echo-message")
        self.assertEqual(self.chat(mine), [":me!chat@chatsvc PRIVMSG #dev :x"])


def _old(n: int) -> dict:
    return {"type": "message", "room": "#dev", "from": "x.y", "text": f"m{n}",
            "ts": f"2026-11-22T02:50:{n:02d}.000Z", "seq": n}


class ChatHistoryTests(SessionTestCase):
    """draft/chathistory over the chat's held history (a join again)."""

    def setUp(self) -> None:
        SessionTestCase.setUp(self)
        self.register()
        self.chat({"type": "room", "room": "#dev", "topic": "", "users": ["me"]})

    def fetch(self, line: str) -> List[str]:
        self.assertEqual(self.command(line), [])
        [(message, context)] = self.host.requests
        self.host.requests.clear()
        self.assertEqual(message, {"type": "join", "room": "#dev"})
        self.session.context = context
        again = self.chat({"type": "room", "room": "#dev", "topic": "", "users": ["me"]})
        self.assertEqual(again, [])  # the join again shows nothing
        return self.chat({"type": "history", "room": "#dev", "messages": [_old(n) for n in range(1, 11)],
                          "complete": True})

    def texts(self, lines: List[str]) -> List[str]:
        return [line.rsplit(":", 1)[1] for line in lines if " PRIVMSG " in line]

    def test_latest(self) -> None:
        lines = self.fetch("CHATHISTORY LATEST #dev * 3")
        self.assertEqual(lines[0], ":irc.test BATCH +h1 chathistory #dev")
        self.assertEqual(lines[1], "@batch=h1;time=2026-11-22T02:50:08.000Z :x^y!chat@chatsvc PRIVMSG #dev :m8")
        self.assertEqual(self.texts(lines), ["m8", "m9", "m10"])
        self.assertEqual(lines[-1], ":irc.test BATCH -h1")

    def test_before_after_between(self) -> None:
        self.assertEqual(self.texts(self.fetch("CHATHISTORY BEFORE #dev timestamp=2026-11-22T02:50:05.000Z 2")),
                         ["m3", "m4"])
        self.assertEqual(self.texts(self.fetch("CHATHISTORY AFTER #dev timestamp=2026-11-22T02:50:05.000Z 2")),
                         ["m6", "m7"])
        self.assertEqual(self.texts(self.fetch(
            "CHATHISTORY BETWEEN #dev timestamp=2026-11-22T02:50:02.000Z timestamp=2026-11-22T02:50:05.000Z 10")),
            ["m3", "m4"])
        self.assertEqual(self.texts(self.fetch("CHATHISTORY AROUND #dev timestamp=2026-11-22T02:50:05.000Z 4")),
                         ["m3", "m4", "m5", "m6"])

    def test_refusals(self) -> None:
        self.assertEqual(self.command("CHATHISTORY LATEST #nowhere * 5"), [
            ":irc.test FAIL CHATHISTORY INVALID_TARGET LATEST #nowhere :you are not in that channel"])
        self.assertEqual(self.command("CHATHISTORY BEFORE #dev msgid=abc 5"), [
            ":irc.test FAIL CHATHISTORY INVALID_MSGREFTYPE BEFORE :messages are referred to by timestamp= only"])
        self.assertEqual(self.command("CHATHISTORY FROB #dev * 5"), [
            ":irc.test FAIL CHATHISTORY INVALID_PARAMS FROB :unknown subcommand 'FROB'"])
        self.assertEqual(self.command("CHATHISTORY LATEST bob * 5"), [
            ":irc.test BATCH +p chathistory bob", ":irc.test BATCH -p"])
        self.assertEqual(self.host.requests, [])
