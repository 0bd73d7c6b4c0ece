"""
The terminal client under faults (issue #3, part 6):

  - the server is killed (-9) and restarted while others talk: the client
    process reconnects, keeps its name, prints what it missed once, and
    says the catch-up was complete;
  - the server has another key: one clear line, exit status 1;
  - a server that accepts the connection but never answers the handshake
    (or the hello): the client gives up with a clear line;
  - a half-open connection (a proxy that silently stops forwarding): the
    keepalive notices, the client reconnects and catches up.

The last two run the client's own classes in the test's reactor, with its
keepalive shortened, over real TCP: the real timings (30 s + 30 s) are
too long for a test suite.
"""

from __future__ import annotations

import os
from typing import Any, List, Optional

from twisted.internet import defer, reactor
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from chatsvc.client.app import ChatClient
from chatsvc.client.endpoints import RoundRobinEndpoint
from chatsvc.client.protocol import ChatClientProtocol

from .hardening_procs import PSK, deadline, registered, shows_server_log, start_server
from .procs import DEMO_KEY, ChatClientProcess



class Output:
    """What the client prints, line by line, with waits."""

    def __init__(self) -> None:
        self.text = ""
        self._waiters: List[Any] = []

    def write(self, text: str) -> None:
        self.text += text
        for waiter in list(self._waiters):
            needle, d = waiter
            if needle in self.text:
                self._waiters.remove(waiter)
                d.callback(self.text)

    def wait_for(self, needle: str, timeout: float = 20) -> defer.Deferred:
        if needle in self.text:
            return defer.succeed(self.text)
        d: defer.Deferred = defer.Deferred()
        self._waiters.append((needle, d))
        return deadline(d, timeout, f"client output {needle!r}; got:\n{self.text}")


class Silent(Protocol):
    """A server that accepts, reads and never says anything."""

    def dataReceived(self, data: bytes) -> None:
        self.factory.received += len(data)


class Proxy(Protocol):
    """Forwards to the real server until the factory says to black-hole."""

    peer: Optional[Protocol] = None

    def connectionMade(self) -> None:
        self.buffer = b""
        self.factory.proxies.append(self)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.factory.port)
        self.upstream = Upstream(self)
        connectProtocol(endpoint, self.upstream)

    def dataReceived(self, data: bytes) -> None:
        if self.factory.blackhole:
            return  # dropped on the floor: no FIN, no RST, nothing
        if self.upstream.transport is None:
            self.buffer += data
        else:
            self.upstream.transport.write(data)

    def connectionLost(self, reason: Any) -> None:
        if self.upstream.transport is not None:
            self.upstream.transport.loseConnection()


class Upstream(Protocol):
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    def connectionMade(self) -> None:
        if self.proxy.buffer:
            self.transport.write(self.proxy.buffer)

    def dataReceived(self, data: bytes) -> None:
        if not self.proxy.factory.blackhole:
            self.proxy.transport.write(data)

    def connectionLost(self, reason: Any) -> None:
        if not self.proxy.factory.blackhole:
            self.proxy.transport.loseConnection()


class ClientFaultTests(TestCase):
    timeout = 120

    def in_process_client(self, port: int, output: Output, encrypted: bool,
                          name: str = "alice", reconnect: bool = True) -> ChatClient:
        endpoint = RoundRobinEndpoint([(f"127.0.0.1:{port}",
                                        HostnameEndpoint(reactor, "127.0.0.1", port))])
        client = ChatClient(reactor, endpoint, output, name=name,
                            psk=PSK if encrypted else None, encrypted=encrypted,
                            reconnect=reconnect,
                            retry_policy=lambda attempt: 0.2)
        client.start()
        self.addCleanup(lambda: None if client.done.called else client.input_ended())
        return client

    def shorten_keepalive(self, ping_after: float = 0.5, give_up_after: float = 1.0,
                          answer_within: float = 1.0) -> None:
        self.patch(ChatClientProtocol, "PING_AFTER", ping_after)
        self.patch(ChatClientProtocol, "GIVE_UP_AFTER", give_up_after)
        self.patch(ChatClientProtocol, "ANSWER_WITHIN", answer_within)

    @shows_server_log
    def test_server_killed_and_restarted(self):
        log = os.path.abspath(self.mktemp())
        options = ("--psk", DEMO_KEY, "--allow-plaintext", "--log-messages", log)
        server = yield start_server(self, *options)
        port = server.port
        alice = ChatClientProcess.start(self, port, "--name", "alice", "--encrypted", "--psk",
                                        DEMO_KEY, label="alice")
        yield alice.wait_for("* connected as alice")
        bob = yield registered(self, port, "bob")
        bob.say("before the crash")
        yield alice.wait_for("bob: before the crash")

        server.signal("KILL")
        yield server.ended
        yield alice.wait_for("connection lost")
        server2 = yield start_server(self, *options, port=port)
        # Others talk before alice is back.
        carol = yield registered(self, server2.port, "carol")
        carol.say("while alice was away")
        mark = len(alice.lines)
        yield alice.wait_for("end of history (complete)", after=mark)
        yield alice.wait_for("carol: while alice was away", after=mark)
        alice.send("alice is back")
        yield carol.wait_for(lambda m: m.get("text") == "alice is back" and m["from"] == "alice")
        # (A plaintext sender's name has the ~ mark: count by the end of the line.)
        self.assertEqual(sum(line.endswith("bob: before the crash") for line in alice.lines), 1)
        self.assertEqual(sum(line.endswith("carol: while alice was away") for line in alice.lines), 1)
        self.assertFalse([line for line in alice.lines + alice.err_lines if "Traceback" in line])

    @shows_server_log
    def test_wrong_key(self):
        server = yield start_server(self, "--encrypted", "--psk", DEMO_KEY)
        key = os.path.abspath(self.mktemp())
        with open(key, "w") as f:
            f.write("A" * 42 + "E=\n")  # a valid key, not the server's (all zero is refused)
        os.chmod(key, 0o600)
        client = ChatClientProcess.start(self, server.port, "--name", "mallory", "--encrypted",
                                         "--psk", key, label="mallory")
        code = yield client.wait_exit(30)
        self.assertEqual(code, 1)
        output = client.output()
        self.assertIn("handshake-failed", output)
        self.assertFalse([line for line in output.splitlines() if "Traceback" in line])
        self.assertEqual(server.tracebacks(), [])

    @defer.inlineCallbacks
    def silent_server(self, encrypted: bool):
        factory = Factory.forProtocol(Silent)
        factory.received = 0
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.shorten_keepalive()
        output = Output()
        client = self.in_process_client(port.getHost().port, output, encrypted)
        code = yield deadline(client.done, 20, "the client to give up")
        self.assertEqual(code, 1)
        self.assertGreater(factory.received, 0)
        return output.text

    def test_server_never_answers_the_handshake(self):
        d = self.silent_server(encrypted=True)

        def check(text: str) -> None:
            self.assertIn("cannot connect to 127.0.0.1", text)
            self.assertIn("the server did not answer the handshake within 1 s", text)

        return d.addCallback(check)

    def test_server_never_answers_hello(self):
        d = self.silent_server(encrypted=False)
        d.addCallback(lambda text: self.assertIn(
            "the server did not answer the hello within 1 s", text, text))
        return d

    @shows_server_log
    def test_half_open_connection(self):
        server = yield start_server(self, "--psk", DEMO_KEY, "--allow-plaintext")
        factory = Factory.forProtocol(Proxy)
        factory.port = server.port
        factory.blackhole = False
        factory.proxies = []
        listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.shorten_keepalive()
        output = Output()
        client = self.in_process_client(listening.getHost().port, output, encrypted=True)
        yield output.wait_for("connected as alice")
        bob = yield registered(self, server.port, "bob")
        yield output.wait_for("bob joined")
        # The path goes dead: nothing arrives, nothing is closed.
        factory.blackhole = True
        bob.say("said into the void")
        yield output.wait_for("connection lost", timeout=20)
        factory.blackhole = False  # the network heals; the next connection works
        yield output.wait_for("end of history", timeout=20)
        yield output.wait_for("bob: said into the void", timeout=20)
        self.assertEqual(output.text.count("bob: said into the void"), 1)
        self.assertIn("connected as alice", output.text.split("connection lost", 1)[1])
        for proxy in factory.proxies:
            proxy.transport.abortConnection()
        client.input_ended()
