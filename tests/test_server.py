"""
Tests for L{chatsvc.server.factory}: L{ServerConfig} defaults, connection limits
(C{server-full}, C{too-many-connections}), the keepalive sweep, and
C{shutdown}.
"""

from __future__ import annotations

from typing import List

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase

from chatsvc.server.protocol import ChatProtocol
from chatsvc.chat.memory import Room
from chatsvc.server.factory import ChatFactory, ServerConfig, exempt_from_per_address, address_key

from .support.fakes import LogCapture
from .support.protocol import FakeClient, make_factory, only
from .support.wire import decode_frames


class ServerConfigTests(SynchronousTestCase):
    def test_defaults_match_the_protocol(self) -> None:
        """PROTOCOL.md section 6."""
        c = ServerConfig()
        self.assertEqual(
            (c.max_text, c.rate_burst, c.rate_per_second, c.flood_factor, c.flood_window,
             c.sendq, c.max_clients, c.max_per_ip, c.handshake_timeout, c.ping_interval,
             c.ping_timeout),
            (4096, 20, 2.0, 3, 30.0, 1 << 20, 10000, 16, 10.0, 60.0, 30.0),
        )

    def test_sweep_interval(self) -> None:
        self.assertEqual(ServerConfig().sweep_interval, 3.0)
        self.assertEqual(ServerConfig(ping_interval=0.1, ping_timeout=0.1).sweep_interval, 0.05)
        self.assertEqual(ServerConfig(ping_interval=600, ping_timeout=300).sweep_interval, 5.0)

    def test_frozen(self) -> None:
        self.assertRaises(Exception, setattr, ServerConfig(), "sendq", 1)


class FactoryTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.logs = LogCapture.install(self)

    def tearDown(self) -> None:
        self.logs.assert_no_failures(self)

    def assertRefused(self, client: FakeClient, code: str) -> None:
        [error] = client.received()
        self.assertEqual((error["type"], error["code"], error["fatal"]), ("error", code, True))
        self.assertTrue(client.closed)
        self.assertIsNone(client.transport.producer)


class FactoryTests(FactoryTestCase):
    def test_build_protocol(self) -> None:
        factory = make_factory()
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        self.assertIsInstance(proto, ChatProtocol)
        self.assertIs(proto.factory, factory)
        self.assertIs(proto.room, factory.room)

    def test_default_config(self) -> None:
        factory = ChatFactory(Room(Clock()), None, Clock())
        self.assertEqual(factory.config, ServerConfig())

    def test_sweeper(self) -> None:
        clock = Clock()
        factory = ChatFactory(Room(clock), ServerConfig(), clock)
        self.assertEqual(clock.getDelayedCalls(), [])
        factory.startFactory()
        [call] = clock.getDelayedCalls()
        self.assertEqual(call.getTime(), 3.0)
        factory.stopFactory()
        self.assertEqual(clock.getDelayedCalls(), [])
        factory.stopFactory()

    def test_registered_connections(self) -> None:
        factory = make_factory()
        c = FakeClient(factory)
        self.assertEqual(factory.registered_connections, set())
        c.hello("a")
        self.assertEqual(factory.registered_connections, {c.protocol})
        c.lose()
        self.assertEqual(factory.registered_connections, set())
        self.assertEqual(factory.connections, set())


class ServerFullTests(FactoryTestCase):
    def test_server_full(self) -> None:
        factory = make_factory(max_clients=2)
        a, b = FakeClient(factory), FakeClient(factory)
        a.hello("a")
        b.hello("b")
        a.received()
        c = FakeClient(factory)
        self.assertRefused(c, "server-full")
        self.assertEqual(a.received(), [])  # never registered, never announced
        c.send({"type": "hello", "name": "c"})
        self.assertEqual(c.received(), [])  # not read
        self.assertIsNone(factory.room.find("c"))
        c.lose()
        self.assertEqual(len(factory.connections), 2)
        a.lose()
        d = FakeClient(factory)
        self.assertEqual(d.hello("d")[0]["name"], "d")

    def test_unregistered_count(self) -> None:
        """The limit counts open connections, registered or not."""
        factory = make_factory(max_clients=1)
        FakeClient(factory)
        self.assertRefused(FakeClient(factory), "server-full")

    def test_no_limit(self) -> None:
        factory = make_factory(max_clients=0)
        clients = [FakeClient(factory) for _ in range(50)]
        self.assertFalse(any(c.closed for c in clients))


class PerAddressTests(FactoryTestCase):
    def test_too_many_connections(self) -> None:
        factory = make_factory(max_per_ip=2)
        a = FakeClient(factory, host="10.0.0.1")
        b = FakeClient(factory, host="10.0.0.1")
        c = FakeClient(factory, host="10.0.0.1")
        self.assertRefused(c, "too-many-connections")
        self.assertFalse(a.closed or b.closed)
        other = FakeClient(factory, host="10.0.0.2")
        self.assertFalse(other.closed)
        c.lose()
        a.lose()
        d = FakeClient(factory, host="10.0.0.1")
        self.assertFalse(d.closed)
        self.assertEqual(d.hello("d")[0]["name"], "d")
        self.assertRefused(FakeClient(factory, host="10.0.0.1"), "too-many-connections")

    def test_peer_address_from_transport(self) -> None:
        """The address is the transport's peer (as in the brief's example)."""
        from twisted.internet.testing import StringTransport

        factory = make_factory(max_per_ip=1)
        peer = IPv4Address("TCP", "10.0.0.1", 1234)
        FakeClient(factory, transport=StringTransport(peerAddress=peer), peer=peer)
        late = FakeClient(factory, transport=StringTransport(peerAddress=peer), peer=peer)
        self.assertEqual(decode_frames(late.transport.value())[0]["code"], "too-many-connections")

    def test_loopback_exempt(self) -> None:
        factory = make_factory(max_per_ip=2)
        clients = [FakeClient(factory, host="127.0.0.1") for _ in range(20)]
        clients += [FakeClient(factory, host="127.0.0.2") for _ in range(5)]
        clients += [FakeClient(factory, peer=IPv6Address("TCP", "::1", 5)) for _ in range(5)]
        self.assertFalse(any(c.closed for c in clients))

    def test_ipv4_mapped_loopback_exempt(self) -> None:
        """A dual-stack socket sees IPv4 loopback clients as ::ffff:127.0.0.1."""
        factory = make_factory(max_per_ip=2)
        clients = [FakeClient(factory, peer=IPv6Address("TCP", "::ffff:127.0.0.1", 5))
                   for _ in range(5)]
        self.assertFalse(any(c.closed for c in clients))
        mapped = [FakeClient(factory, peer=IPv6Address("TCP", "::ffff:10.0.0.1", 5))
                  for _ in range(3)]
        self.assertEqual([c.closed for c in mapped], [False, False, True])

    def test_ipv6(self) -> None:
        factory = make_factory(max_per_ip=1)
        FakeClient(factory, peer=IPv6Address("TCP", "2001:db8::1", 5))
        self.assertRefused(FakeClient(factory, peer=IPv6Address("TCP", "2001:db8::1", 6)),
                           "too-many-connections")

    def test_unix_socket_exempt(self) -> None:
        """A UNIX socket peer has no IP address to limit."""
        factory = make_factory(max_per_ip=2)
        clients = [FakeClient(factory, peer=UNIXAddress(None)) for _ in range(5)]
        self.assertFalse(any(c.closed for c in clients))

    def test_no_limit(self) -> None:
        factory = make_factory(max_per_ip=0)
        clients = [FakeClient(factory, host="10.0.0.1") for _ in range(30)]
        self.assertFalse(any(c.closed for c in clients))

    def test_exempt_function(self) -> None:
        for host in ("127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "::1%lo",
                     "UNIXAddress(None)"):
            self.assertTrue(exempt_from_per_address(host), host)
        for host in ("10.0.0.1", "192.168.1.1", "2001:db8::1", "::ffff:10.0.0.1", "fe80::1%eth0"):
            self.assertFalse(exempt_from_per_address(host), host)


class ShutdownTests(FactoryTestCase):
    def test_shutdown(self) -> None:
        factory = make_factory()
        alice, bob = FakeClient(factory), FakeClient(factory)
        alice.hello("alice")
        bob.hello("bob")
        unregistered = FakeClient(factory)
        clients = [alice, bob, unregistered]
        for c in clients:
            c.received()
        d = factory.shutdown()
        for c in clients:
            [error] = c.received()  # no left for anybody
            self.assertEqual((error["type"], error["code"], error["fatal"]),
                             ("error", "shutdown", True))
            self.assertTrue(c.closed)
        self.assertNoResult(d)
        alice.lose()
        bob.lose()
        self.assertNoResult(d)
        unregistered.lose()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(len(factory.room), 0)
        for c in clients:
            self.assertEqual(c.received(), [])
            self.assertFalse(c.aborted)
        self.assertEqual(factory.clock.getDelayedCalls(), [factory._sweeper.call])

    def test_no_connections(self) -> None:
        factory = make_factory()
        self.assertIsNone(self.successResultOf(factory.shutdown()))

    def test_connections_that_close_at_once(self) -> None:
        factory = make_factory()
        for _ in range(3):
            transport = StringTransportWithDisconnection(
                peerAddress=IPv4Address("TCP", "127.0.0.1", 1))
            c = FakeClient(factory, transport=transport)
            transport.protocol = c.protocol
            c.hello()
        self.assertIsNone(self.successResultOf(factory.shutdown()))
        self.assertEqual(factory.connections, set())

    def test_stragglers_aborted(self) -> None:
        factory = make_factory(shutdown_timeout=3.0, close_timeout=10.0)
        alice, bob = FakeClient(factory), FakeClient(factory)
        alice.hello("alice")
        d = factory.shutdown()
        alice.lose()
        factory.clock.advance(2.9)
        self.assertFalse(bob.aborted)
        factory.clock.advance(0.1)
        self.assertTrue(bob.aborted)
        self.assertNoResult(d)
        bob.lose()  # the abort completes
        self.successResultOf(d)

    def test_client_already_closing(self) -> None:
        """A client that quit gets no shutdown error; the Deferred waits for it."""
        factory = make_factory()
        alice = FakeClient(factory)
        alice.hello("alice")
        alice.send({"type": "quit"})
        alice.received()
        d = factory.shutdown()
        self.assertEqual(alice.received(), [])
        self.assertNoResult(d)
        alice.lose()
        self.successResultOf(d)

    def test_shutdown_not_logged_as_failure(self) -> None:
        factory = make_factory()
        clients: List[FakeClient] = [FakeClient(factory) for _ in range(3)]
        factory.shutdown()
        for c in clients:
            c.lose()
        self.assertEqual(self.logs.failures(), [])
        self.assertEqual(only(decode_frames(clients[0].transport.value()), "error")[0]["code"],
                         "shutdown")


class AddressKeyTests(FactoryTestCase):
    """(v2) The per-address limit counts an IPv4 address or an IPv6 /64."""

    def test_keys(self) -> None:
        self.assertEqual(address_key("10.0.0.1"), "10.0.0.1")
        self.assertEqual(address_key("::ffff:10.0.0.1"), "10.0.0.1")
        self.assertEqual(address_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64")
        self.assertEqual(address_key("2001:db8:1:2:bbbb::9%eth0"), "2001:db8:1:2::/64")
        self.assertNotEqual(address_key("2001:db8:1:3::1"), address_key("2001:db8:1:2::1"))
        self.assertEqual(address_key("UNIXAddress(None)"), "UNIXAddress(None)")

    def test_one_ipv6_64_is_one_address(self) -> None:
        factory = make_factory(max_per_ip=2)
        a = FakeClient(factory, peer=IPv6Address("TCP", "2001:db8::1", 5))
        b = FakeClient(factory, peer=IPv6Address("TCP", "2001:db8::ffff:2", 5))
        refused = FakeClient(factory, peer=IPv6Address("TCP", "2001:db8::3:3", 5))
        self.assertRefused(refused, "too-many-connections")
        self.assertFalse(FakeClient(factory, peer=IPv6Address("TCP", "2001:db8:0:1::1", 5)).closed)
        refused.lose()
        a.lose()
        self.assertFalse(FakeClient(factory, peer=IPv6Address("TCP", "2001:db8::4", 5)).closed)
        self.assertFalse(b.closed)

    def test_mapped_and_plain_ipv4_share_a_count(self) -> None:
        factory = make_factory(max_per_ip=1)
        FakeClient(factory, host="10.0.0.1")
        self.assertRefused(FakeClient(factory, peer=IPv6Address("TCP", "::ffff:10.0.0.1", 5)),
                           "too-many-connections")

    def test_flood_penalty_keyed_by_the_64(self) -> None:
        factory = make_factory(rate_burst=2, flood_factor=1)
        flooder = FakeClient(factory, peer=IPv6Address("TCP", "2001:db8::1", 5))
        flooder.hello("f")
        for _ in range(5):
            flooder.send({"type": "say", "text": "x"})
        self.assertTrue(flooder.closed)
        flooder.lose()
        neighbour = FakeClient(factory, peer=IPv6Address("TCP", "2001:db8::2", 5))
        self.assertEqual(neighbour.protocol.limiter._tokens, 1.0, "starts with no burst")
