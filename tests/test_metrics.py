"""
Tests for L{chatsvc.metrics}: the recorder interface, the Prometheus
recorder driven by a real factory on a Clock, and C{twistd chat --metrics}
scraped over HTTP while a scripted session runs.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Dict

from prometheus_client import generate_latest
from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, readBody
from zope.interface import implementer
from zope.interface.verify import verifyObject

from chatsvc.metrics import (NO_METRICS, IServerMetrics, ITransportLabel, NoMetrics,
                             transport_label)
from chatsvc.metrics.prometheus import PrometheusMetrics
from chatsvc.metrics.service import instrument
from chatsvc.server.interfaces import IConnectionState, IServerConnection
from chatsvc.server.turns import EndOfTurn

from .hardening_procs import WAIT, connect, registered, shows_server_log, start_server
from .helpers import FakeClient, make_factory
from .procs import REPO, deadline


def sample(metrics: PrometheusMetrics, name: str, **labels: str) -> float:
    """The current value of one sample (0 when it has not appeared)."""
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


class RecorderTests(SynchronousTestCase):
    def test_interfaces(self) -> None:
        """Both recorders provide L{IServerMetrics}."""
        verifyObject(IServerMetrics, NoMetrics())
        verifyObject(IServerMetrics, PrometheusMetrics())

    def test_default_is_no_metrics(self) -> None:
        """A factory and a chat record nothing unless given a recorder."""
        factory = make_factory(Clock())
        self.assertIs(factory.metrics, NO_METRICS)
        self.assertIs(factory.room.metrics, NO_METRICS)

    def test_prometheus_not_imported_without_metrics(self) -> None:
        """Building a server without --metrics never imports prometheus_client."""
        code = ("import sys; from chatsvc.tap import Options, makeService; o = Options(); "
                "o.parseOptions(['--listen', 'tcp:0:interface=127.0.0.1']); makeService(o); "
                "print('prometheus_client' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(out.stdout.strip().splitlines()[-1:], ["False"], out.stderr)

    def test_missing_extra_is_a_clear_error(self) -> None:
        """--metrics without prometheus_client: a message naming the extra, no traceback."""
        from chatsvc import tap

        saved = {name: sys.modules.pop(name) for name in list(sys.modules)
                 if name == "chatsvc.metrics.prometheus" or name.startswith("prometheus_client")}
        sys.modules["prometheus_client"] = None  # type: ignore[assignment]  # imports now fail

        def restore() -> None:
            del sys.modules["prometheus_client"]
            sys.modules.update(saved)

        self.addCleanup(restore)
        options = tap.Options()
        options.parseOptions(["--listen", "tcp:0:interface=127.0.0.1",
                              "--metrics", "tcp:0:interface=127.0.0.1"])
        with self.assertRaises(SystemExit) as caught:
            tap.makeService(options)
        self.assertIn('pip install "chatsvc[metrics]"', str(caught.exception))

    def test_transport_label(self) -> None:
        """The nearest wrapper that says its transport kind names it; TCP otherwise."""
        @implementer(ITransportLabel)
        class WebSocketish(StringTransport):
            transport_label = "websocket"

        inner = ProtocolWrapper(WrappingFactory(None), None)
        inner.transport = WebSocketish()
        self.assertEqual(transport_label(inner), "websocket")
        self.assertEqual(transport_label(StringTransport()), "tcp")
        self.assertEqual(transport_label(None), "tcp")

    def test_unknown_codes_are_other(self) -> None:
        """A code the server does not define never becomes a label value."""
        metrics = PrometheusMetrics()
        metrics.refused("alice's secret")
        metrics.request("x" * 100)
        self.assertEqual(sample(metrics, "chatsvc_refusals_total", code="other"), 1)
        self.assertEqual(sample(metrics, "chatsvc_requests_total", type="other"), 1)

    def test_handshake_failures_and_throttle(self) -> None:
        metrics = PrometheusMetrics()
        metrics.refused("handshake-failed")
        metrics.refused("encryption-required")
        metrics.throttle(True)
        metrics.throttle(True)
        metrics.throttle(False)
        metrics.throttle(True)
        self.assertEqual(sample(metrics, "chatsvc_handshake_failures_total"), 1)
        self.assertEqual(sample(metrics, "chatsvc_refusals_total", code="encryption-required"), 1)
        self.assertEqual(sample(metrics, "chatsvc_throttle_events_total"), 2)
        self.assertEqual(sample(metrics, "chatsvc_throttled"), 1)

    def test_turn_observer(self) -> None:
        """The end-of-turn pass reports how long it took when observed."""
        clock = Clock()
        turns = EndOfTurn(clock)
        seen = []
        turns.observer = seen.append
        turns.schedule(lambda: None)
        clock.advance(0)
        self.assertEqual(len(seen), 1)
        self.assertGreaterEqual(seen[0], 0.0)


class FactoryMetricsTests(SynchronousTestCase):
    """The hooks in the factory, the connections and the chat move the counts."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = make_factory(self.clock)
        self.metrics = PrometheusMetrics()
        instrument(self.factory, self.factory.room, self.metrics)

    def test_connection_state(self) -> None:
        """A connection provides what the metrics and an operator read of it."""
        client = FakeClient(self.factory)
        verifyObject(IConnectionState, client.protocol)

    def test_bare_connection(self) -> None:
        """A connection with only IServerConnection counts as a TCP one, closed disconnected."""
        @implementer(IServerConnection)
        class Bare:
            peer, closing, limiter, queue = "192.0.2.1", False, None, None

            def throttle(self, on): pass
            def fatal(self, code, text): pass
            def check_idle(self, now): pass
            def abort(self): pass

        bare = Bare()
        verifyObject(IServerConnection, bare)
        self.factory.connection_opened(bare)
        self.factory.connection_closed(bare)
        m = self.metrics
        self.assertEqual(sample(m, "chatsvc_connections_opened_total", transport="tcp"), 1)
        self.assertEqual(sample(m, "chatsvc_connections_closed_total", reason="disconnected"), 1)

    def test_session(self) -> None:
        alice, bob = FakeClient(self.factory), FakeClient(self.factory)
        self.assertEqual(sample(self.metrics, "chatsvc_connections", mode="pending",
                                transport="tcp"), 2)
        alice.hello("alice")
        bob.hello("bob")
        alice.send({"type": "say", "text": "hello"})
        alice.send({"type": "msg", "to": "bob", "text": "psst"})
        self.clock.advance(0)
        m = self.metrics
        self.assertEqual(sample(m, "chatsvc_connections_opened_total", transport="tcp"), 2)
        self.assertEqual(sample(m, "chatsvc_registrations_total", mode="plaintext",
                                transport="tcp"), 2)
        self.assertEqual(sample(m, "chatsvc_connections", mode="plaintext", transport="tcp"), 2)
        self.assertEqual(sample(m, "chatsvc_requests_total", type="say"), 1)
        self.assertEqual(sample(m, "chatsvc_requests_total", type="msg"), 1)
        # The fan-out's frames: bob's joined (to alice), alice's message (to
        # both). Private messages go straight to their two ends, not counted.
        self.assertEqual(sample(m, "chatsvc_deliveries_total"), 3)
        self.assertEqual(sample(m, "chatsvc_users"), 2)
        self.assertEqual(sample(m, "chatsvc_rooms"), 1)
        self.assertEqual(sample(m, "chatsvc_history_messages"), 1)
        received = sample(m, "chatsvc_bytes_received_total", transport="tcp")
        self.assertGreater(received, 60)
        alice.send({"type": "quit"})
        alice.lose()
        bob.lose()
        self.assertEqual(sample(m, "chatsvc_connections_closed_total", reason="quit"), 1)
        self.assertEqual(sample(m, "chatsvc_connections_closed_total", reason="disconnected"), 1)
        self.assertEqual(sample(m, "chatsvc_connections", mode="plaintext", transport="tcp"), 0)
        # Closed connections' bytes stay counted.
        self.assertGreater(sample(m, "chatsvc_bytes_received_total", transport="tcp"), received)
        self.assertGreater(sample(m, "chatsvc_bytes_sent_total", transport="tcp"), 200)

    def test_drops_by_reason(self) -> None:
        """A timeout and a flood count under their codes; rate-limited frames too."""
        factory = make_factory(self.clock, rate_burst=2, rate_per_second=0.001,
                               flood_factor=1, flood_window=60)
        instrument(factory, factory.room, self.metrics)
        idle = FakeClient(factory)
        self.clock.advance(factory.config.handshake_timeout)
        flooder = FakeClient(factory)
        flooder.hello("f")
        for _ in range(10):
            flooder.send({"type": "say", "text": "x"})
        idle.lose()
        flooder.lose()
        m = self.metrics
        self.assertEqual(sample(m, "chatsvc_connections_closed_total", reason="timeout"), 1)
        self.assertEqual(sample(m, "chatsvc_connections_closed_total", reason="flood"), 1)
        self.assertGreaterEqual(sample(m, "chatsvc_rate_limited_total"), 1)

    def test_no_names_or_text_in_labels(self) -> None:
        alice = FakeClient(self.factory)
        alice.hello("alice_zq")
        alice.send({"type": "say", "text": "secret-words"})
        self.clock.advance(0)
        scrape = generate_latest(self.metrics.registry).decode()
        self.assertNotIn("alice_zq", scrape)
        self.assertNotIn("secret-words", scrape)
        self.assertNotIn("127.0.0.1", scrape)


def parse_scrape(text: str) -> Dict[str, float]:
    """C{name{labels}} -> value, from Prometheus' text format."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            values[key] = float(value)
    return values


@defer.inlineCallbacks
def scrape(port: int):
    agent = Agent(reactor)
    response = yield deadline(agent.request(b"GET", f"http://127.0.0.1:{port}/metrics".encode()),
                              WAIT, "the metrics page")
    body = yield deadline(readBody(response), WAIT, "the metrics body")
    return response.code, parse_scrape(body.decode("utf-8"))


class ScrapeTests(TestCase):
    """C{twistd chat --metrics}: a real server scraped over HTTP."""

    timeout = 120

    @shows_server_log
    def test_counts_move(self):
        server = yield start_server(self, "--metrics", "tcp:0:interface=127.0.0.1")
        line = yield server.wait_for(re.compile(r"metrics at /metrics on port \d+"))
        port = int(re.search(r"port (\d+)", line).group(1))
        code, before = yield scrape(port)
        self.assertEqual(code, 200)
        self.assertEqual(before.get('chatsvc_connections_opened_total{transport="tcp"}', 0), 0)
        self.assertEqual(before['chatsvc_connections{mode="plaintext",transport="tcp"}'], 0)
        alice = yield registered(self, server.port, "alice")
        bob = yield registered(self, server.port, "bob")
        alice.say("hello there")
        yield bob.wait_for(lambda m: m.get("text") == "hello there", what="alice's message")
        bob.send({"type": "quit"})
        yield bob.wait_lost()
        _, after = yield scrape(port)
        self.assertEqual(after['chatsvc_connections_opened_total{transport="tcp"}'], 2)
        self.assertEqual(after['chatsvc_registrations_total{mode="plaintext",transport="tcp"}'], 2)
        self.assertEqual(after['chatsvc_requests_total{type="say"}'], 1)
        self.assertEqual(after['chatsvc_connections_closed_total{reason="quit"}'], 1)
        self.assertEqual(after['chatsvc_connections{mode="plaintext",transport="tcp"}'], 1)
        self.assertGreaterEqual(after["chatsvc_deliveries_total"], 3)
        self.assertGreater(after['chatsvc_bytes_received_total{transport="tcp"}'], 0)
        self.assertGreater(after["chatsvc_turn_seconds_count"], 0)
        self.assertEqual(after["chatsvc_users"], 1)
        self.assertEqual(after["chatsvc_history_messages"], 1)

    @shows_server_log
    def test_handshake_failure_counted(self):
        """A wrong key shows as a handshake failure; a right one as an encrypted connection."""
        from .procs import DEMO_KEY
        server = yield start_server(self, "--psk", DEMO_KEY, "--metrics",
                                    "tcp:0:interface=127.0.0.1")
        line = yield server.wait_for(re.compile(r"metrics at /metrics on port \d+"))
        port = int(re.search(r"port (\d+)", line).group(1))
        client = yield connect(self, server.port, psk=b"\x07" * 32, handshake=False)
        client.handshaken.addErrback(lambda failure: None)  # it fails: that is the test
        yield client.wait_lost()
        from chatsvc.keys import load_key
        yield registered(self, server.port, "enc", psk=load_key(DEMO_KEY))
        _, after = yield scrape(port)
        self.assertEqual(after["chatsvc_handshake_failures_total"], 1)
        self.assertEqual(after['chatsvc_connections_closed_total{reason="handshake-failed"}'], 1)
        self.assertEqual(after['chatsvc_registrations_total{mode="encrypted",transport="tcp"}'], 1)
        self.assertEqual(after['chatsvc_connections{mode="encrypted",transport="tcp"}'], 1)
        self.assertEqual(after['chatsvc_connections{mode="plaintext",transport="tcp"}'], 0)


class RedisScrapeTests(TestCase):
    """With --redis, each request's round trip to Redis is in the histogram."""

    timeout = 90

    @defer.inlineCallbacks
    def test_redis_roundtrip(self):
        from .scaleout import ChatServerProcess, FrameClient, RedisServer, wait_until

        redis = RedisServer.start(self.mktemp())
        self.addCleanup(redis.stop)
        server = yield ChatServerProcess.start(redis.port, "--chat", "metrics",
                                               "--metrics", "tcp:0:interface=127.0.0.1")
        self.addCleanup(server.kill)
        yield wait_until(lambda: server.logged("metrics at /metrics on port"), 20, "metrics")
        [line] = [text for text in server.output.lines if "metrics at /metrics on port" in text]
        port = int(re.search(r"port (\d+)", line).group(1))
        client = yield FrameClient.connect(server.port)
        self.addCleanup(client.close)
        yield client.hello("alice")
        client.send({"type": "say", "text": "through redis"})
        yield client.wait_for(lambda m: m.get("text") == "through redis", start=0)
        _, after = yield scrape(port)
        self.assertGreater(after["chatsvc_redis_roundtrip_seconds_count"], 0)
        self.assertEqual(after['chatsvc_requests_total{type="say"}'], 1)
