# -*- test-case-name: tests.test_metrics -*-
"""
L{PrometheusMetrics}: an L{IServerMetrics} kept in a C{prometheus_client}
registry (the C{metrics} extra), and L{metrics_site}, the Twisted web site
that serves it at C{/metrics}.

    metrics = PrometheusMetrics()
    factory.metrics = metrics             # chatsvc.tap does this for --metrics
    metrics.watch_chat(chat)              # history and rooms, read at scrape
    serverFromString(reactor, "tcp:9100").listen(metrics_site(metrics))

Counters move as things happen; what is true now (open connections by mode
and transport, queued output, history, rooms) is read when Prometheus
scrapes, from the connections this recorder was told about.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.twisted import MetricsResource
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer

from ..chat.interfaces import IChatMember, IChatStats
from ..server.interfaces import IConnectionState
from . import TRANSPORTS, IServerMetrics, transport_label
from .counting import CountingSendQueue

CLOSE_CODES = frozenset({
    "quit", "disconnected", "timeout", "slow", "flood", "kicked", "banned", "shutdown",
    "replaced", "server-full", "too-many-connections", "bad-frame", "frame-too-long",
    "encryption-required", "encryption-not-enabled", "handshake-failed", "decrypt-failed",
    "unavailable",
})
"""The values of the C{reason} and C{code} labels; any other code counts as C{other}."""

REQUEST_KINDS = frozenset({
    "hello", "say", "msg", "nick", "who", "ping", "pong", "quit", "join", "part", "topic",
    "rooms", "me",
})

OPERATOR_ACTIONS = frozenset({
    "list", "kick", "ban", "unban", "bans", "mute", "unmute", "notice", "topic", "rooms",
    "clear",
})

TURN_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                0.25, 0.5, 1.0)


def _code(code: Any, known: frozenset) -> str:
    return code if code in known else "other"


def _mode(connection: Any) -> str:
    member = IChatMember(connection, None)
    if member is None or member.name is None:
        return "pending"
    return "encrypted" if member.encrypted else "plaintext"


@implementer(IServerMetrics)
class PrometheusMetrics:
    """
    @param registry: where the metrics live (a new C{CollectorRegistry} by
        default, so that tests and several servers in one process do not
        share counts).
    """

    def __init__(self, registry: Optional[CollectorRegistry] = None) -> None:
        self.registry = registry = registry if registry is not None else CollectorRegistry()
        self._open: Dict[Any, str] = {}  # connection -> transport label
        self._bytes_in: Dict[str, int] = dict.fromkeys(TRANSPORTS, 0)  # of closed connections
        self._bytes_out: Dict[str, int] = dict.fromkeys(TRANSPORTS, 0)
        self._chat: Any = None
        self._throttled = False
        self.opened = Counter("chatsvc_connections_opened", "Connections accepted.",
                              ["transport"], registry=registry)
        self.closed = Counter("chatsvc_connections_closed",
                              "Connections ended, by the code they ended with (slow, flood,"
                              " timeout, quit, disconnected, ...).",
                              ["reason"], registry=registry)
        self.registrations = Counter("chatsvc_registrations", "Clients that said hello.",
                                     ["mode", "transport"], registry=registry)
        self.requests = Counter("chatsvc_requests", "Client requests handled, by type.",
                                ["type"], registry=registry)
        self.deliveries = Counter("chatsvc_deliveries",
                                  "Message frames handed to members by the fan-out.",
                                  registry=registry)
        self.refusals = Counter("chatsvc_refusals",
                                "Connections refused before reaching the chat, by code.",
                                ["code"], registry=registry)
        self.handshake_failures = Counter("chatsvc_handshake_failures",
                                          "Encrypted handshakes that failed.", registry=registry)
        self.rate_limited_frames = Counter("chatsvc_rate_limited",
                                           "Frames refused with rate-limited.", registry=registry)
        self.throttles = Counter("chatsvc_throttle_events",
                                 "Times the server stopped reading because many clients were"
                                 " behind.", registry=registry)
        self.turns = Histogram("chatsvc_turn_seconds",
                               "Duration of one end-of-turn pass (fan-out and encryption).",
                               buckets=TURN_BUCKETS, registry=registry)
        self.operator = Counter("chatsvc_operator_actions", "Operator actions, by action.",
                                ["action"], registry=registry)
        self.redis_rtt = Histogram("chatsvc_redis_roundtrip_seconds",
                                   "Round trip of one request to Redis (--redis).",
                                   buckets=TURN_BUCKETS, registry=registry)
        self.redis_lag = Gauge("chatsvc_redis_stream_lag_seconds",
                               "How far behind its Redis stream this server reads (--redis).",
                               registry=registry)
        registry.register(_Live(self))

    def watch_chat(self, chat: Any) -> None:
        """Report C{chat}'s history and rooms at each scrape (if it provides L{IChatStats})."""
        self._chat = chat if IChatStats.providedBy(chat) else None

    # -- IServerMetrics --------------------------------------------------

    def connection_opened(self, connection: Any) -> None:
        state = IConnectionState(connection, None)
        label = transport_label(state.transport if state is not None else None)
        self._open[connection] = label
        self.opened.labels(label).inc()

    def connection_closed(self, connection: Any) -> None:
        label = self._open.pop(connection, None)
        if label is None:
            return
        state = IConnectionState(connection, None)
        code = (state.close_code if state is not None else None) or "disconnected"
        self.closed.labels(_code(code, CLOSE_CODES)).inc()
        self._bytes_in[label] += _bytes_in(connection)
        self._bytes_out[label] += _bytes_out(connection)

    def registered(self, connection: Any) -> None:
        label = self._open.get(connection, "tcp")
        self.registrations.labels(_mode(connection), label).inc()

    def request(self, kind: str) -> None:
        self.requests.labels(_code(kind, REQUEST_KINDS)).inc()

    def delivered(self, count: int) -> None:
        self.deliveries.inc(count)

    def refused(self, code: str) -> None:
        self.refusals.labels(_code(code, CLOSE_CODES)).inc()
        if code == "handshake-failed":
            self.handshake_failures.inc()

    def rate_limited(self) -> None:
        self.rate_limited_frames.inc()

    def throttle(self, on: bool) -> None:
        if on and not self._throttled:
            self.throttles.inc()
        self._throttled = bool(on)

    def turn(self, seconds: float) -> None:
        self.turns.observe(seconds)

    def operator_action(self, action: str) -> None:
        self.operator.labels(_code(action, OPERATOR_ACTIONS)).inc()

    def redis_roundtrip(self, seconds: float) -> None:
        self.redis_rtt.observe(seconds)

    def redis_stream_lag(self, seconds: float) -> None:
        self.redis_lag.set(seconds)


def _bytes_in(connection: Any) -> int:
    state = IConnectionState(connection, None)
    return state.bytes_in if state is not None else 0


def _bytes_out(connection: Any) -> int:
    queue = connection.queue
    return queue.sent if isinstance(queue, CountingSendQueue) else 0


class _Live:
    """The scrape-time part of L{PrometheusMetrics}: what is true now."""

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list:
        return []  # computed at collect time; nothing to check at register time

    def collect(self) -> Iterator[Any]:
        m = self._metrics
        connections = GaugeMetricFamily("chatsvc_connections", "Open connections.",
                                        labels=["mode", "transport"])
        count: Dict[tuple, int] = {}
        bytes_in = dict(m._bytes_in)
        bytes_out = dict(m._bytes_out)
        queued = behind = 0
        for connection, label in m._open.items():
            key = (_mode(connection), label)
            count[key] = count.get(key, 0) + 1
            bytes_in[label] += _bytes_in(connection)
            bytes_out[label] += _bytes_out(connection)
            queue = connection.queue
            if queue is not None:
                queued += queue.queued
                behind += bool(queue.behind)
        for mode in ("pending", "plaintext", "encrypted"):
            for label in TRANSPORTS:
                connections.add_metric([mode, label], count.get((mode, label), 0))
        yield connections
        received = CounterMetricFamily("chatsvc_bytes_received",
                                       "Frame bytes read from clients.", labels=["transport"])
        sent = CounterMetricFamily("chatsvc_bytes_sent", "Frame bytes queued for clients.",
                                   labels=["transport"])
        for label in TRANSPORTS:
            received.add_metric([label], bytes_in[label])
            sent.add_metric([label], bytes_out[label])
        yield received
        yield sent
        yield GaugeMetricFamily("chatsvc_sendq_bytes",
                                "Output queued for clients that are not reading fast enough.",
                                value=queued)
        yield GaugeMetricFamily("chatsvc_sendq_behind",
                                "Clients whose queued output is past the soft limit.",
                                value=behind)
        yield GaugeMetricFamily("chatsvc_throttled",
                                "1 while reading from clients is paused.", value=int(m._throttled))
        chat = m._chat
        if chat is not None:
            stats = chat.stats()
            yield GaugeMetricFamily("chatsvc_users", "Registered users.",
                                    value=stats.get("users", 0))
            yield GaugeMetricFamily("chatsvc_rooms", "Rooms with members.",
                                    value=stats.get("rooms", 0))
            yield GaugeMetricFamily("chatsvc_history_messages",
                                    "Public messages kept for catching up, all rooms.",
                                    value=stats.get("history", 0))


def metrics_site(metrics: PrometheusMetrics) -> Site:
    """A web site serving C{metrics} at C{/metrics} (and nothing else)."""
    root = Resource()
    root.putChild(b"metrics", MetricsResource(registry=metrics.registry))
    site = Site(root)
    site.noisy = False
    site.displayTracebacks = False
    return site
