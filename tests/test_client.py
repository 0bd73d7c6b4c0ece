"""
Tests for L{chatsvc.client}: the package's public names, and
L{chatsvc.client.app}: the controller over C{StringTransport}s and a fake
endpoint, driven by a C{Clock}; the encrypted path with the real wrapper in
memory (iosim); stdin; main.

The pure layers and the endpoints have their own modules:
tests.test_client_args, test_client_commands, test_client_session,
test_client_endpoints and test_client_protocol.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
from typing import Any, List, Tuple

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost, DNSLookupError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

import chatsvc.client
from chatsvc.client import (
    ChatClient,
    LineInput,
    RoundRobinEndpoint,
    TokenBucket,
    TransportOutput,
    main,
    parse_args,
    run,
)
from chatsvc.client import stdio as client_stdio
from chatsvc.client.view import LineView
from chatsvc.wire.errors import RemoteProtocolError
from chatsvc.wire.framing import encode_frame
from chatsvc.wire.messages import decode, encode, error

from .client_helpers import (
    FakeEncryptingFactory,
    FakeOutput,
    FakeProducer,
    Harness,
    ServerEnd,
    frame,
    public,
    welcome,
)

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PackageTests(SynchronousTestCase):
    def test_public_names(self) -> None:
        """Every name in __all__ is there; chat-client's entry point is
        chatsvc.client:main, the one in chatsvc.client.app."""
        for name in chatsvc.client.__all__:
            self.assertTrue(hasattr(chatsvc.client, name), name)
        self.assertIs(chatsvc.client.main, client_stdio.main)


# ---------------------------------------------------------------------------
# The client over fake connections


class FirstConnectionTests(SynchronousTestCase):
    def test_hello(self) -> None:
        """The first hello carries only the name, in compact JSON."""
        h = Harness()
        h.client.start()
        server = h.fake.accept()
        self.assertEqual(server.raw(), frame(b'{"type":"hello","name":"alice"}'))

    def test_welcome_and_motd(self) -> None:
        h = Harness()
        h.connect(motd="welcome!")
        self.assertEqual(h.output.lines(), ["* connected as alice", "* motd: welcome!"])

    def test_frames_byte_by_byte(self) -> None:
        h = Harness()
        h.client.start()
        server = h.fake.accept()
        server.send(welcome(), bytewise=True)
        self.assertEqual(h.output.lines(), ["* connected as alice"])

    def test_refused(self) -> None:
        """A refused first connection: one line, exit status 1, no retry."""
        h = Harness()
        h.client.start()
        h.fake.refuse()
        h.clock.advance(0)
        self.assertEqual(h.errors, ["chat-client: cannot connect to server:1: connection refused"])
        self.assertEqual((h.results, h.output.lines()), ([1], []))
        h.clock.advance(60)
        self.assertEqual(h.fake.pending, [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_fails_at_once(self) -> None:
        """An endpoint that fails synchronously is a failed first attempt too."""
        @implementer(IStreamClientEndpoint)
        class Failing:
            def connect(self, factory: Any) -> Deferred:
                return fail(DNSLookupError("nowhere.invalid"))

        clock, errors, results = Clock(), [], []
        client = ChatClient(clock, RoundRobinEndpoint([("nowhere.invalid:1", Failing())]),
                            FakeOutput(), name="alice", errors=errors.append)
        client.done.addCallback(results.append)
        client.start()
        clock.advance(0)
        self.assertEqual(errors, ["chat-client: cannot connect to nowhere.invalid:1: host not found"])
        self.assertEqual(results, [1])

    def test_all_refused(self) -> None:
        h = Harness(endpoints=2)
        h.client.start()
        h.fakes[0].refuse()
        h.fakes[1].refuse()
        h.clock.advance(0)
        self.assertEqual(
            h.errors,
            ["chat-client: cannot connect to server:1: connection refused; server:2: connection refused"],
        )
        self.assertEqual(h.results, [1])

    def test_refused_by_server(self) -> None:
        """A fatal error before welcome: one line with the server's reason."""
        h = Harness()
        h.client.start()
        server = h.fake.accept()
        server.send({"type": "error", "code": "encryption-required",
                     "text": "this server accepts encrypted clients only", "fatal": True})
        server.close()
        self.assertEqual(h.errors, ["chat-client: cannot connect to server:1: encryption-required:"
                                    " this server accepts encrypted clients only"])
        self.assertEqual((h.results, h.output.lines()), ([1], []))

    def test_handshake_failed(self) -> None:
        """The wrapper's handshake failure ends the first connection: one line."""
        h = Harness(psk=b"k" * 32, encrypted=True, encrypting_factory=FakeEncryptingFactory)
        h.client.start()
        server = h.fake.accept()
        server.close(RemoteProtocolError("handshake-failed",
                                         "the server failed authentication (wrong key?)"))
        self.assertEqual(h.errors, ["chat-client: cannot connect to server:1: handshake-failed:"
                                    " the server failed authentication (wrong key?)"])
        self.assertEqual(h.results, [1])

    def test_closed_before_welcome(self) -> None:
        h = Harness()
        h.client.start()
        h.fake.accept().close()
        self.assertEqual(h.errors, ["chat-client: cannot connect to server:1: the server closed the connection"])
        self.assertEqual(h.results, [1])

    def test_lines_wait_for_welcome(self) -> None:
        """Lines typed (or piped) before welcome are sent after it, in order."""
        h = Harness()
        h.client.start()
        server = h.fake.accept()
        server.received()
        h.type("one", "/who", "quit")
        self.assertEqual(server.raw(), b"")
        server.send(welcome())
        self.assertEqual(server.received(), [{"type": "say", "text": "one"}, {"type": "who"},
                                             {"type": "quit"}])

    def test_bad_name_from_server(self) -> None:
        """A refused name: the client says so and registers as a guest."""
        h = Harness()
        h.client.start()
        server = h.fake.accept()
        server.received()
        server.send({"type": "error", "code": "bad-name", "text": "no", "fatal": False})
        self.assertEqual(server.received(), [{"type": "hello"}])
        server.send(welcome(name="guest_1"))
        self.assertEqual(h.output.lines(), ["! bad-name: no", "* connected as guest_1"])


class NamePromptTests(SynchronousTestCase):
    def test_prompt(self) -> None:
        h = Harness(name=None)
        h.client.start()
        self.assertEqual(h.output.text, "Enter your username: ")
        self.assertEqual(h.fake.pending, [])
        h.type("bob\r")
        h.type("bob")
        server = h.fake.accept()
        self.assertEqual(server.raw(), frame(b'{"type":"hello","name":"bob"}'))

    def test_invalid_name(self) -> None:
        h = Harness(name=None)
        h.client.start()
        h.output.text = ""
        h.type("bad name!")
        self.assertEqual(h.output.text, "! invalid name: a name may hold only letters, digits,"
                                        " '_', '-' and '.'\nEnter your username: ")
        self.assertEqual(h.fake.pending, [])

    def test_empty_name(self) -> None:
        """An empty answer lets the server choose (guest_N)."""
        h = Harness(name=None)
        h.client.start()
        h.type("")
        self.assertEqual(h.fake.accept().raw(), frame(b'{"type":"hello"}'))

    def test_end_of_input(self) -> None:
        h = Harness(name=None)
        h.client.start()
        h.client.input_ended()
        self.assertEqual(h.errors, ["chat-client: no username given (end of input)"])
        self.assertEqual(h.results, [1])


class DisplayTests(SynchronousTestCase):
    """Every server message, as printed."""

    def setUp(self) -> None:
        self.h = Harness()
        self.server = self.h.connect()
        self.h.output.lines()

    def shows(self, message: dict, lines: List[str]) -> None:
        self.server.send(message)
        self.assertEqual(self.h.output.lines(), lines)

    def test_formats(self) -> None:
        self.shows(public(1, "hello"), ["bob: hello"])
        self.shows({"type": "private", "from": "bob", "to": "alice", "text": "psst", "seq": 2},
                   ["[private] bob: psst"])
        self.shows({"type": "private", "from": "alice", "to": "bob", "text": "psst", "seq": 3},
                   ["[private] -> bob: psst"])
        self.shows({"type": "joined", "name": "carol", "ts": "t"}, ["* carol joined"])
        self.shows({"type": "left", "name": "carol", "reason": "quit", "ts": "t"}, ["* carol left (quit)"])
        self.shows({"type": "left", "name": "dan", "reason": "quit", "text": "bye", "ts": "t"},
                   ["* dan left (quit: bye)"])
        self.shows({"type": "renamed", "old": "bob", "new": "rob", "ts": "t"}, ["* bob is now rob"])
        self.shows({"type": "users", "users": ["alice", "rob"]}, ["* users: alice, rob"])
        self.shows({"type": "error", "code": "no-such-user", "text": "no user zed", "fatal": False},
                   ["! no-such-user: no user zed"])
        self.shows({"type": "pong", "token": 1}, [])
        self.shows({"type": "something-new"}, [])

    def test_sanitised(self) -> None:
        self.shows(public(1, "\x1b[2J\x1b[31mred"), ["bob: \\x1b[2J\\x1b[31mred"])
        self.shows(public(2, "\u202eevil"), ["bob: \\u202eevil"])
        self.shows(public(3, "x\r* alice left (quit)"), ["bob: x\\x0d* alice left (quit)"])
        self.shows(public(4, "ok\nalice: send money"), ["bob: ok", "    alice: send money"])

    def test_bad_frames_ignored(self) -> None:
        """A body that is not a message is ignored; the connection stays."""
        self.server.protocol.dataReceived(frame(b"not json"))
        self.server.protocol.dataReceived(frame(b'{"no":"type"}'))
        self.shows(public(1), ["bob: hi"])
        self.assertFalse(self.server.transport.disconnecting)

    def test_frame_too_long(self) -> None:
        """A frame over 64 KiB closes the connection."""
        self.server.protocol.dataReceived(struct.pack(">I", 65537))
        self.assertTrue(self.server.transport.disconnecting)


class CommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = Harness()
        self.server = self.h.connect()
        self.h.output.lines()

    def sends(self, line: str, body: bytes) -> None:
        self.h.type(line)
        self.assertEqual(self.server.raw(), frame(body))

    def test_say(self) -> None:
        self.sends("hello, world", b'{"type":"say","text":"hello, world"}')

    def test_say_unicode(self) -> None:
        """Non-ASCII text goes out as UTF-8, not as \\u escapes."""
        self.sends("h\u00e9 \U0001f600", '{"type":"say","text":"h\u00e9 \U0001f600"}'.encode())

    def test_msg(self) -> None:
        self.sends("/msg bob hi there", b'{"type":"msg","to":"bob","text":"hi there"}')

    def test_nick(self) -> None:
        self.sends("/nick al", b'{"type":"nick","name":"al"}')

    def test_who(self) -> None:
        self.sends("/who", b'{"type":"who"}')

    def test_me(self) -> None:
        self.sends("/me waves", b'{"type":"say","text":"* alice waves"}')

    def test_me_after_rename(self) -> None:
        self.server.send({"type": "renamed", "old": "alice", "new": "al", "ts": "t"})
        self.sends("/me waves", b'{"type":"say","text":"* al waves"}')

    def test_slash_escape(self) -> None:
        self.sends("//shrug", b'{"type":"say","text":"/shrug"}')

    def test_empty_lines(self) -> None:
        self.h.type("", "   ")
        self.assertEqual((self.server.raw(), self.h.output.lines()), (b"", []))

    def test_unknown_command(self) -> None:
        self.h.type("/dance")
        self.assertEqual(self.h.output.lines(), ["! unknown command /dance; type /help for the list"])
        self.assertEqual(self.server.raw(), b"")

    def test_usage_hint(self) -> None:
        self.h.type("/msg bob")
        self.assertEqual(self.h.output.lines(), ["! usage: /msg NAME TEXT"])
        self.assertEqual(self.server.raw(), b"")

    def test_help(self) -> None:
        self.h.type("/help")
        lines = self.h.output.lines()
        self.assertEqual(lines[0], "* commands:")
        for command in ["/msg", "/me", "/nick", "/who", "/encrypt", "/quit", "/help"]:
            self.assertTrue(any(command in line for line in lines), command)
        self.assertEqual(self.server.raw(), b"")

    def test_too_long_for_a_frame(self) -> None:
        self.h.type("x" * 70000)
        self.assertEqual(self.server.raw(), b"")
        self.assertEqual(self.h.output.lines(), ["! too-long: not sent, a message must fit in 65536 bytes"])

    def test_encrypt_without_key(self) -> None:
        self.h.type("/encrypt on")
        self.assertEqual(self.h.output.lines(), ["! /encrypt on needs a key: start chat-client with --psk FILE"])
        self.assertEqual(self.h.fake.pending, [])

    def test_encrypt_off_already(self) -> None:
        self.h.type("/encrypt off")
        self.assertEqual(self.h.output.lines(), ["* already in plaintext mode"])
        self.assertEqual(self.h.fake.pending, [])


class QuitTests(SynchronousTestCase):
    def test_quit_server_closes(self) -> None:
        h = Harness()
        server = h.connect()
        h.type("quit")
        self.assertEqual(server.raw(), frame(b'{"type":"quit"}'))
        self.assertEqual(h.results, [])
        server.close()
        self.assertEqual(h.results, [0])
        self.assertEqual(h.output.lines()[-1], "* connected as alice")  # no "connection lost"

    def test_quit_reason(self) -> None:
        h = Harness()
        server = h.connect()
        h.type("/quit gotta go")
        self.assertEqual(server.raw(), frame(b'{"type":"quit","reason":"gotta go"}'))

    def test_quit_timeout(self) -> None:
        """A server that does not close: exit 0 after a short wait, closing."""
        h = Harness()
        server = h.connect()
        h.type("/quit")
        h.clock.advance(2.9)
        self.assertEqual(h.results, [])
        h.clock.advance(0.1)
        self.assertEqual(h.results, [0])
        self.assertTrue(server.transport.disconnecting)

    def test_nothing_after_quit(self) -> None:
        h = Harness()
        server = h.connect()
        h.type("quit", "more")
        self.assertEqual(server.received(), [{"type": "quit"}])

    def test_end_of_input(self) -> None:
        """The end of input quits after every line before it is sent."""
        h = Harness()
        h.client.start()
        server = h.fake.accept()
        server.received()
        h.type("a", "b")
        h.client.input_ended()
        server.send(welcome())
        self.assertEqual(server.received(), [{"type": "say", "text": "a"}, {"type": "say", "text": "b"},
                                             {"type": "quit"}])
        server.close()
        self.assertEqual(h.results, [0])

    def test_quit_while_reconnecting(self) -> None:
        h = Harness()
        h.connect().close()
        h.type("quit")
        self.assertEqual(h.results, [0])
        h.clock.advance(10)
        self.assertEqual(h.fake.pending, [])


class ReconnectTests(SynchronousTestCase):
    def lose(self, h: Harness, server: ServerEnd) -> None:
        server.send(public(5, "five"))
        server.send({"type": "private", "from": "bob", "to": "alice", "text": "p", "seq": 6})
        h.output.lines()
        server.close(ConnectionLost())

    def test_hello_resumes(self) -> None:
        """One line when the connection goes; the new hello has resume and since:
        the seq of the last room message (private messages are numbered apart
        in version 2, PROTOCOL.md 4.2, so their seq is not a since)."""
        h = Harness()
        server = h.connect()
        self.lose(h, server)
        self.assertEqual(h.output.lines(), ["* connection lost; reconnecting..."])
        self.assertEqual(h.fake.pending, [])
        h.clock.advance(1)
        server2 = h.fake.accept()
        self.assertEqual(server2.raw(), frame(b'{"type":"hello","name":"alice","resume":"tok1","since":5}'))

    def test_catch_up(self) -> None:
        h = Harness()
        self.lose(h, h.connect())
        h.output.lines()
        h.clock.advance(1)
        server2 = h.fake.accept()
        server2.send(welcome(resume="tok2"))
        server2.send({"type": "history", "complete": True,
                      "messages": [public(5, "five"), public(7, "seven")]})
        self.assertEqual(h.output.lines(), ["* connected as alice", "-- history: 1 message --", "bob: seven",
                                            "-- end of history (complete) --"])
        server2.send(public(8, "live"))
        self.assertEqual(h.output.lines(), ["bob: live"])

    def test_catch_up_incomplete(self) -> None:
        h = Harness()
        self.lose(h, h.connect())
        h.output.lines()
        h.clock.advance(1)
        server2 = h.fake.accept()
        server2.send(welcome(resume="tok2"))
        server2.send({"type": "history", "complete": False, "messages": [public(90, "x")]})
        self.assertEqual(h.output.lines(), ["* connected as alice", "-- history: 1 message --", "bob: x",
                                            "-- end of history: some messages before these were missed --"])

    def test_one_line_per_outage(self) -> None:
        """Failed attempts during an outage print nothing more."""
        h = Harness()
        self.lose(h, h.connect())
        for _ in range(3):
            h.clock.advance(1)
            h.fake.refuse()
        h.clock.advance(1)
        h.fake.accept().close()
        h.clock.advance(1)
        server = h.fake.accept()
        server.send({"type": "error", "code": "server-full", "text": "full", "fatal": True})
        server.close()
        self.assertEqual(h.output.lines(), ["* connection lost; reconnecting..."])
        self.assertEqual((h.errors, h.results), ([], []))
        h.clock.advance(1)
        h.fake.accept().send(welcome())
        self.assertEqual(h.output.lines(), ["* connected as alice"])

    def test_typed_during_outage(self) -> None:
        h = Harness()
        self.lose(h, h.connect())
        h.type("are you there?")
        h.clock.advance(1)
        server2 = h.fake.accept()
        server2.received()
        server2.send(welcome())
        self.assertEqual(server2.received(), [{"type": "say", "text": "are you there?"}])

    def test_name_kept(self) -> None:
        """The hello after a rename asks for the new name."""
        h = Harness()
        server = h.connect()
        server.send({"type": "renamed", "old": "alice", "new": "al", "ts": "t"})
        server.close()
        h.clock.advance(1)
        self.assertEqual(h.fake.accept().received()[0]["name"], "al")

    def test_shutdown(self) -> None:
        """A server shutting down: the error, then a reconnection."""
        h = Harness()
        server = h.connect()
        h.output.lines()
        server.send({"type": "error", "code": "shutdown", "text": "the server is stopping", "fatal": True})
        server.close()
        self.assertEqual(h.output.lines(), ["! shutdown: the server is stopping",
                                            "* connection lost; reconnecting..."])
        h.clock.advance(1)
        self.assertEqual(len(h.fake.pending), 1)

    def test_replaced(self) -> None:
        """Another connection took our session: exit 1, no reconnection."""
        h = Harness()
        server = h.connect()
        h.output.lines()
        server.send({"type": "error", "code": "replaced", "text": "resumed elsewhere", "fatal": True})
        server.close()
        self.assertEqual(h.output.lines(), ["! replaced: resumed elsewhere"])
        self.assertEqual(h.results, [1])
        h.clock.advance(10)
        self.assertEqual(h.fake.pending, [])

    def test_handshake_failed_on_reconnect(self) -> None:
        h = Harness(psk=b"k" * 32, encrypted=True, encrypting_factory=FakeEncryptingFactory)
        server = h.connect()
        server.close()
        h.output.lines()
        h.clock.advance(1)
        h.fake.accept().close(RemoteProtocolError("handshake-failed", "the server failed authentication"))
        self.assertEqual(h.output.lines(), ["! handshake-failed: the server failed authentication"])
        self.assertEqual(h.results, [1])

    def test_no_reconnect(self) -> None:
        h = Harness(reconnect=False)
        server = h.connect()
        h.output.lines()
        server.close()
        self.assertEqual(h.output.lines(), ["* connection lost"])
        self.assertEqual(h.results, [1])
        h.clock.advance(10)
        self.assertEqual(h.fake.pending, [])

    def test_next_endpoint(self) -> None:
        """With several endpoints, a lost server's successor is tried first."""
        h = Harness(endpoints=2)
        server = h.connect()
        server.close()
        h.clock.advance(1)
        self.assertEqual((len(h.fakes[0].pending), len(h.fakes[1].pending)), (0, 1))
        h.fakes[1].refuse()
        self.assertEqual(len(h.fakes[0].pending), 1)
        h.fakes[0].accept()


class PacingTests(SynchronousTestCase):
    def test_rate(self) -> None:
        """A burst of 20 frames (the hello included), then 2 per second."""
        h = Harness()
        server = h.connect()
        h.type(*[f"line {i}" for i in range(25)])
        self.assertEqual(len(server.received()), 19)
        h.clock.advance(0.5)
        self.assertEqual(server.received(), [{"type": "say", "text": "line 19"}])
        h.clock.advance(2)
        self.assertEqual(len(server.received()), 4)
        h.clock.advance(0.5)
        self.assertEqual(server.received(), [{"type": "say", "text": "line 24"}])
        h.clock.advance(10)
        self.assertEqual(server.received(), [])

    def test_quit_waits_its_turn(self) -> None:
        h = Harness(bucket=TokenBucket(capacity=1, rate=1.0))
        server = h.connect()
        h.type("a", "b", "quit")
        self.assertEqual(server.received(), [])  # the hello used the only token
        h.clock.advance(1)
        self.assertEqual(server.received(), [{"type": "say", "text": "a"}])
        h.clock.advance(1)
        self.assertEqual(server.received(), [{"type": "say", "text": "b"}, {"type": "quit"}])

    def test_backpressure(self) -> None:
        """Input is paused while many lines wait, and resumed when they are sent."""
        h = Harness(bucket=TokenBucket(capacity=1000))
        producer = FakeProducer()
        h.client.attach_input(producer)
        h.client.start()
        server = h.fake.accept()
        h.type(*["x"] * 99)
        self.assertFalse(producer.paused)
        h.type("x")
        self.assertTrue(producer.paused)
        server.send(welcome())
        self.assertFalse(producer.paused)
        self.assertEqual(len(server.received()), 101)  # hello + 100


class SwitchTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = Harness(psk=b"k" * 32, encrypting_factory=FakeEncryptingFactory)
        self.old = self.h.connect()
        self.old.send(public(3))
        self.h.output.lines()

    def test_switch_on(self) -> None:
        h = self.h
        h.type("/encrypt on")
        self.assertEqual(h.output.lines(), ["* switching to encrypted mode..."])
        new = h.fake.accept()
        self.assertTrue(new.transport.encrypted)
        self.assertEqual(new.raw(), frame(b'{"type":"hello","name":"alice","resume":"tok1","since":3}'))
        # The server hands our session to the new connection.
        self.old.send({"type": "error", "code": "replaced", "text": "resumed", "fatal": True})
        self.old.close()
        new.send(welcome(resume="tok2", encrypted=True))
        new.send({"type": "history", "complete": True, "messages": [public(3)]})
        self.assertEqual(h.output.lines(), ["* connected as alice (encrypted)", "-- end of history (complete) --"])
        self.assertTrue(h.client.encrypted)
        h.type("secret")
        self.assertEqual(new.received(), [{"type": "say", "text": "secret"}])
        self.assertEqual(self.old.raw(), b"")
        self.assertEqual(h.results, [])

    def test_old_closed_after_switch(self) -> None:
        """Once the new connection is welcomed, the old one is closed."""
        h = self.h
        h.type("/encrypt on")
        new = h.fake.accept()
        new.send(welcome(resume="tok2"))
        self.assertTrue(self.old.transport.disconnecting)
        self.old.close()
        h.clock.advance(10)
        self.assertEqual((h.fake.pending, h.results), ([], []))
        self.assertFalse(new.transport.disconnecting)

    def test_lines_wait_during_switch(self) -> None:
        h = self.h
        h.type("/encrypt on", "after")
        new = h.fake.accept()
        new.received()
        self.assertEqual(self.old.raw(), b"")
        new.send(welcome())
        self.assertEqual(new.received(), [{"type": "say", "text": "after"}])

    def test_refused_by_server(self) -> None:
        """The server does not do encryption: stay in plaintext mode."""
        h = self.h
        h.type("/encrypt on")
        h.output.lines()
        new = h.fake.accept()
        new.send({"type": "error", "code": "encryption-not-enabled",
                  "text": "this server has no key", "fatal": True})
        new.close()
        self.assertEqual(h.output.lines(), ["! cannot switch to encrypted mode:"
                                            " encryption-not-enabled: this server has no key"])
        self.assertFalse(h.client.encrypted)
        h.type("still here")
        self.assertEqual(self.old.received(), [{"type": "say", "text": "still here"}])
        h.clock.advance(10)
        self.assertEqual(h.fake.pending, [])

    def test_cannot_connect(self) -> None:
        h = self.h
        h.type("/encrypt on")
        h.output.lines()
        h.fake.refuse()
        h.clock.advance(0)
        self.assertEqual(h.output.lines(), ["! cannot switch to encrypted mode: server:1: connection refused"])
        self.assertEqual(h.results, [])

    def test_already(self) -> None:
        h = self.h
        h.type("/encrypt on")
        new = h.fake.accept()
        new.send(welcome())
        h.output.lines()
        h.type("/encrypt on")
        self.assertEqual(h.output.lines(), ["* already encrypted"])
        h.type("/encrypt off")
        self.assertEqual(h.output.lines(), ["* switching to plaintext mode..."])
        self.assertFalse(getattr(h.fake.accept().transport, "encrypted"))

    def test_same_server(self) -> None:
        """The switch reconnects to the server in use, not the next one."""
        h = Harness(psk=b"k" * 32, encrypting_factory=FakeEncryptingFactory, endpoints=2)
        h.connect()
        h.type("/encrypt on")
        self.assertEqual((len(h.fakes[0].pending), len(h.fakes[1].pending)), (1, 0))

    def test_plaintext_before_handshake_ignored(self) -> None:
        """In encrypted mode, only an error can come before the handshake."""
        h = Harness(psk=b"k" * 32, encrypted=True, encrypting_factory=FakeEncryptingFactory)
        h.client.start()
        server = h.fake.accept()
        server.transport.encrypted = False
        server.send(welcome())
        server.send(public(1, "injected"))
        self.assertEqual(h.output.lines(), [])
        server.transport.encrypted = True
        server.send(welcome())
        self.assertEqual(h.output.lines(), ["* connected as alice (encrypted)"])


# ---------------------------------------------------------------------------
# The real encrypting wrapper, in memory


class FakeChatServer(Int32StringReceiver):
    """Just enough of a server: records messages, welcomes a hello."""

    def __init__(self) -> None:
        self.messages: List[dict] = []

    def stringReceived(self, body: bytes) -> None:
        message = decode(body)
        self.messages.append(message)
        if message["type"] == "hello":
            self.sendString(encode(welcome(name=message["name"], encrypted=True)))


@implementer(IStreamClientEndpoint)
class MemoryEndpoint:
    """Connects each client protocol to a new server protocol over iosim."""

    def __init__(self, server_factory: Any, clock: Clock) -> None:
        self.server_factory = server_factory
        self.clock = clock
        self.pumps: List[iosim.IOPump] = []
        self.servers: List[Any] = []

    def connect(self, factory: Any) -> Deferred:
        client = factory.buildProtocol(None)
        server = self.server_factory.buildProtocol(None)
        self.servers.append(server)
        self.pumps.append(iosim.connect(server, iosim.makeFakeServer(server), client,
                                        iosim.makeFakeClient(client), greet=False, clock=self.clock))
        return succeed(client)


def _refusal(code: str, text: str) -> bytes:
    """The error frame the fake server's encrypting wrapper refuses with."""
    return encode_frame(encode(error(code, text, True)))


class EncryptedTests(SynchronousTestCase):
    def setUp(self) -> None:
        try:
            from chatsvc.server.encryption import EncryptingFactory
        except ImportError:  # pragma: no cover
            self.fail("chatsvc.server.encryption is needed")
        self.EncryptingFactory = EncryptingFactory
        self.clock = Clock()

    def client(self, server_psk: bytes, client_psk: bytes) -> Tuple[ChatClient, FakeOutput, List[str], MemoryEndpoint]:
        server_factory = self.EncryptingFactory(Factory.forProtocol(FakeChatServer), server_psk,
                                                clock=self.clock, refusal=_refusal)
        memory = MemoryEndpoint(server_factory, self.clock)
        output, errors = FakeOutput(), []
        client = ChatClient(self.clock, RoundRobinEndpoint([("memory", memory)]),
                            LineView(output, timestamps=False), name="alice", psk=client_psk, encrypted=True, errors=errors.append)
        client.start()
        for _ in range(5):
            memory.pumps[0].flush()
            self.clock.advance(0)
        return client, output, errors, memory

    def test_encrypted_session(self) -> None:
        client, output, errors, memory = self.client(b"k" * 32, b"k" * 32)
        self.assertEqual(output.lines(), ["* connected as alice (encrypted)"])
        client.line_received("secret")
        for _ in range(3):
            memory.pumps[0].flush()
            self.clock.advance(0)
        server = memory.servers[0].wrappedProtocol
        self.assertEqual(server.messages, [{"type": "hello", "name": "alice"},
                                           {"type": "say", "text": "secret"}])
        self.assertTrue(memory.servers[0].encrypted)
        self.assertEqual(errors, [])

    def test_wrong_key(self) -> None:
        """The server refuses our key: one line, exit status 1."""
        client, output, errors, memory = self.client(b"k" * 32, b"x" * 32)
        self.assertEqual(len(errors), 1)
        self.assertTrue(errors[0].startswith("chat-client: cannot connect to memory: handshake-failed: "),
                        errors[0])
        self.assertEqual(self.successResultOf(client.done), 1)
        self.assertEqual(output.lines(), [])


# ---------------------------------------------------------------------------
# stdin


class FakeLineClient:
    def __init__(self) -> None:
        self.events: List[Any] = []
        self.input: Any = None

    def attach_input(self, producer: Any) -> None:
        self.input = producer

    def line_received(self, line: str) -> None:
        self.events.append(line)

    def line_too_long(self, limit: int) -> None:
        self.events.append(("too long", limit))

    def input_ended(self) -> None:
        self.events.append("EOF")


class LineInputTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.client = FakeLineClient()
        self.input = LineInput()
        self.input.makeConnection(StringTransport())
        self.input.attach(self.client)

    def test_lines(self) -> None:
        """Lines end with \\n; a trailing \\r goes; bad UTF-8 becomes U+FFFD."""
        self.input.dataReceived(b"one\ntwo\r\nth")
        self.input.dataReceived(b"ree \xff\n\n")
        self.assertEqual(self.client.events, ["one", "two", "three \ufffd", ""])
        self.assertIs(self.client.input, self.input)

    def test_last_line_without_newline(self) -> None:
        self.input.dataReceived(b"a\nlast")
        self.input.readConnectionLost()
        self.assertEqual(self.client.events, ["a", "last", "EOF"])

    def test_end_waits_for_paused_lines(self) -> None:
        self.input.pauseProducing()
        self.input.dataReceived(b"a\nb\n")
        self.input.readConnectionLost()
        self.assertEqual(self.client.events, [])
        self.input.resumeProducing()
        self.assertEqual(self.client.events, ["a", "b", "EOF"])

    def test_too_long(self) -> None:
        """An over-long line is reported and dropped; the next lines survive."""
        self.input.dataReceived(b"x" * 70000 + b"\nafter\n")
        self.assertEqual(self.client.events, [("too long", 65536), "after"])

    def test_too_long_in_pieces(self) -> None:
        for _ in range(3):
            self.input.dataReceived(b"y" * 40000)
        self.input.dataReceived(b"yyy\nnext\n")
        self.assertEqual(self.client.events, [("too long", 65536), "next"])

    def test_stdout_gone(self) -> None:
        self.input.writeConnectionLost()
        self.assertEqual(self.client.events, ["EOF"])
        self.assertFalse(self.input.output_open)

    def test_closed(self) -> None:
        self.input.connectionLost(Failure(ConnectionDone()))
        self.assertIsNone(self.successResultOf(self.input.closed))

    def test_output(self) -> None:
        transport = StringTransport()
        TransportOutput(transport).write("h\u00e9\n")
        self.assertEqual(transport.value(), "h\u00e9\n".encode())


# ---------------------------------------------------------------------------
# main


class MainTests(SynchronousTestCase):
    def test_usage_error(self) -> None:
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        e = self.assertRaises(SystemExit, main, ["host", "notaport"])
        self.assertEqual(e.code, 2)
        self.assertEqual(stderr.getvalue(), "chat-client: PORT must be a number from 1 to 65535,"
                                            " not 'notaport' (see chat-client --help)\n")

    def test_bad_key(self) -> None:
        errors: List[str] = []
        missing = self.mktemp()
        d = Deferred.fromCoroutine(run(MemoryReactorClock(), parse_args(["--psk", missing]), errors.append))
        self.assertEqual(self.successResultOf(d), 2)
        self.assertEqual(len(errors), 1)
        self.assertTrue(errors[0].startswith(f"chat-client: {missing}: no such file"), errors[0])

    def test_bad_endpoint(self) -> None:
        errors: List[str] = []
        args = parse_args(["--connect", "nonsense:x"])
        d = Deferred.fromCoroutine(run(MemoryReactorClock(), args, errors.append))
        self.assertEqual(self.successResultOf(d), 2)
        self.assertEqual(errors, ["chat-client: bad --connect endpoint nonsense:x: Unknown endpoint type: 'nonsense'"])

    def test_module_runs(self) -> None:
        """python -m chatsvc.client works (here: --help, and a usage error)."""
        env = dict(os.environ, PYTHONPATH=HERE)
        done = subprocess.run([sys.executable, "-m", "chatsvc.client", "--help"],
                              capture_output=True, text=True, cwd=HERE, env=env, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("usage: chat-client", done.stdout)
        self.assertIn("--connect ENDPOINT", done.stdout)
        done = subprocess.run([sys.executable, "-m", "chatsvc.client", "--encrypted"],
                              capture_output=True, text=True, cwd=HERE, env=env, timeout=60)
        self.assertEqual((done.returncode, done.stdout), (2, ""))
        self.assertEqual(done.stderr, "chat-client: --encrypted needs --psk FILE (see chat-client --help)\n")
