# -*- test-case-name: tests.test_metrics -*-
"""
C{--metrics ENDPOINT}: record the server's metrics in Prometheus form and
serve them at C{/metrics} on ENDPOINT (L{enable_metrics}, called by
L{chatsvc.tap}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

from . import IRedisBacked

if TYPE_CHECKING:
    from .prometheus import PrometheusMetrics

_log = Logger()


class _MetricsEndpointService(StreamServerEndpointService):
    """Logs where it listens (the port, when the description said 0)."""

    def privilegedStartService(self) -> None:
        StreamServerEndpointService.privilegedStartService(self)
        self._waitingForPort.addCallback(self._listening)

    def _listening(self, port: Any) -> Any:
        host = port.getHost()
        _log.info("metrics at /metrics on port {port}", port=getattr(host, "port", host))
        return port


def instrument(factory: Any, chat: Any, metrics: "PrometheusMetrics") -> None:
    """
    Make C{factory}, its connections (their send queues count bytes), C{chat}
    and the end-of-turn pass report to C{metrics}; before any connection.
    """
    from .counting import CountingSendQueue

    factory.metrics = metrics
    factory.send_queue = CountingSendQueue
    chat.metrics = metrics
    factory.end_of_turn.observer = metrics.turn
    metrics.watch_chat(chat)
    redis = IRedisBacked(chat, None)
    if redis is not None:
        redis.commands.observer = metrics.redis_roundtrip
        redis.reader.lag_observer = metrics.redis_stream_lag


def enable_metrics(description: str, reactor: Any, factory: Any, chat: Any,
                   parent: MultiService) -> Any:
    """
    Give C{factory}, its connections, C{chat} and the end-of-turn pass a
    L{PrometheusMetrics <chatsvc.metrics.prometheus.PrometheusMetrics>}, and
    serve it on C{description} under C{parent}. Returns the recorder.

    @raise SystemExit: without the C{metrics} extra, or for a bad endpoint.
    """
    try:
        from .prometheus import PrometheusMetrics, metrics_site
    except ImportError as e:
        raise SystemExit(f'chat: --metrics needs the metrics extra (pip install "chatsvc[metrics]"): {e}')
    try:
        endpoint = serverFromString(reactor, description)
    except (ValueError, TypeError, KeyError) as e:
        raise SystemExit(f"chat: bad --metrics endpoint {description!r}: {e}")
    from prometheus_client import disable_created_metrics

    disable_created_metrics()  # no *_created series: this process serves one chat
    metrics = PrometheusMetrics()
    instrument(factory, chat, metrics)
    _MetricsEndpointService(endpoint, metrics_site(metrics)).setServiceParent(parent)
    return metrics
