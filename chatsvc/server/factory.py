# -*- test-case-name: tests.test_server -*-
"""
L{ChatFactory}: owns the room and the server's limits, builds one
L{ChatProtocol} per connection, counts connections, runs the keepalive sweep
and shuts everything down cleanly.

    room = Room(reactor, history_size=50)
    factory = ChatFactory(room, ServerConfig(), reactor)
    endpoint.listen(EncryptingFactory(factory, psk))    # see chatsvc.tap
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Dict, Optional, Set, Tuple

from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from ..metrics import NO_METRICS
from ..wire.framing import encode_frame
from ..wire.messages import encode, error
from .interfaces import IServerConnection, IWrappedFactory
from .protocol import ChatProtocol
from .sendq import SendQueue
from .turns import end_of_turn

_log = Logger()


@dataclass(frozen=True)
class ServerConfig:
    """Every limit of PROTOCOL.md section 6, with its default."""

    max_text: int = 4096
    max_topic: int = 390
    rate_burst: int = 20
    rate_per_second: float = 2.0
    flood_factor: int = 3
    flood_window: float = 30.0
    ping_burst: int = 10
    ping_per_second: float = 1.0
    sendq: int = 1 << 20
    sendq_soft: int = 1 << 16
    turn_budget: int = 1 << 16
    throttle_share: float = 0.05
    stall_timeout: float = 5.0
    max_clients: int = 10000
    max_per_ip: int = 16
    handshake_timeout: float = 10.0
    ping_interval: float = 60.0
    ping_timeout: float = 30.0
    close_timeout: float = 5.0
    shutdown_timeout: float = 3.0

    @property
    def sweep_interval(self) -> float:
        return max(0.05, min(5.0, min(self.ping_interval, self.ping_timeout) / 10))


def _ip(host: str) -> Optional[Any]:
    """C{host} as an IP address, an IPv4-mapped IPv6 one as its IPv4 address."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_key(host: str) -> str:
    """
    What the per-address limit and the flood penalty count a peer under
    (PROTOCOL.md section 6): its IPv4 address, or its IPv6 /64 (an
    IPv4-mapped IPv6 address counts as its IPv4 address); anything else
    (a UNIX socket) as itself.
    """
    address = _ip(host)
    if address is None:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def exempt_from_per_address(host: str) -> bool:
    """
    Whether the per-address limit spares this peer: loopback (an IPv4
    loopback address seen by a dual-stack IPv6 socket as C{::ffff:127.0.0.1}
    too), and peers that have no IP address at all (UNIX sockets).
    """
    address = _ip(host)
    return address is None or address.is_loopback


@implementer(IWrappedFactory)
class ChatFactory(Factory):
    """
    @ivar connections: every open connection.
    @ivar registered_connections: connections that said C{hello}.
    @ivar throttled: whether reading from clients is paused because many
        send queues are behind.

    Overload without casualties (the "soft sendq" of IRC servers): when
    senders push faster than the server or its readers can take, send queues
    grow everywhere at once. Rather than dropping healthy readers as C{slow},
    the factory then stops reading from every client until the queues have
    drained, which slows the senders down through TCP. A queue that stays
    behind without draining at all for C{stall_timeout} while the others
    drain is a reader that stopped on its own: it is dropped as C{slow}
    (as it is at the hard limit, with or without a throttle). The throttle
    ends when most queues have caught up and none left behind holds over half
    the hard limit.
    """

    protocol = ChatProtocol
    noisy = False
    metrics: Any = NO_METRICS
    """An L{IServerMetrics <chatsvc.metrics.IServerMetrics>} (C{--metrics})."""
    bans: Any = None
    """An L{IBanList <chatsvc.admin.interfaces.IBanList>} (C{--admin}), or C{None}."""
    send_queue: Any = SendQueue
    """The send queue class of each connection (C{--metrics} gives one that counts)."""

    def __init__(self, room: Any, config: Optional[ServerConfig], clock: Any) -> None:
        self.room = room
        self.config = config or ServerConfig()
        self.clock = clock
        self.end_of_turn = end_of_turn(clock)
        self.connections: Set[IServerConnection] = set()
        self._counted: Dict[IServerConnection, str] = {}  # -> its per-address key
        self.registered_connections: Set[IServerConnection] = set()
        self._per_ip: Dict[str, int] = {}
        self._flooded: Dict[str, float] = {}  # host -> when it was last dropped for flood
        self._sweeper: Optional[LoopingCall] = None
        self._closed_waiters: list = []
        self.throttled = False
        self._behind: Dict[IServerConnection, Tuple[int, float]] = {}  # drained, since
        self._stall_check: Optional[LoopingCall] = None

    def buildProtocol(self, addr: Any) -> ChatProtocol:
        return self.protocol(self)

    def refusal(self, code: str, text: str) -> bytes:
        """The fatal error frame the encrypting wrapper writes when it refuses."""
        self.metrics.refused(code)
        return encode_frame(encode(error(code, text, True)))

    def startFactory(self) -> None:
        self._sweeper = LoopingCall(self.sweep)
        self._sweeper.clock = self.clock
        self._sweeper.start(self.config.sweep_interval, now=False)

    def stopFactory(self) -> None:
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        self._set_throttle(False)

    # -- overload: slowing the senders down -----------------------------

    def queue_behind(self, proto: IServerConnection, behind: bool) -> None:
        """A connection's send queue passed its soft limit, or drained."""
        if behind:
            self._behind[proto] = (proto.queue.drained, self.clock.seconds())
        else:
            self._behind.pop(proto, None)
        self._update_throttle()

    def _update_throttle(self) -> None:
        config = self.config
        need = max(2, int(len(self.registered_connections) * config.throttle_share))
        count = len(self._behind)
        if not self.throttled and count >= need:
            self._set_throttle(True)
        elif self.throttled and count < max(1, need // 2) and not self._near_the_limit():
            self._set_throttle(False)

    def _near_the_limit(self) -> bool:
        """
        Whether a queue that is still behind holds over half the hard limit:
        letting the senders go now would push it over (its reader is slow
        but reading; one that stops is dropped by the stall check).
        """
        half = self.config.sendq // 2
        return bool(half) and any(proto.queue.queued > half for proto in self._behind)

    def _set_throttle(self, on: bool) -> None:
        if on == self.throttled:
            return
        self.throttled = on
        self.metrics.throttle(on)
        if on:
            _log.info("{n} clients are behind: reading paused until they catch up",
                      n=len(self._behind))
            check = self._stall_check = LoopingCall(self._drop_stalled)
            check.clock = self.clock
            check.start(max(0.1, self.config.stall_timeout / 5), now=False)
        else:
            _log.info("clients caught up: reading again")
            if self._stall_check is not None and self._stall_check.running:
                self._stall_check.stop()
            self._stall_check = None
        for proto in list(self.connections):
            proto.throttle(on)

    def _drop_stalled(self) -> None:
        """While throttled: a queue that has not drained a byte lately is stalled."""
        now = self.clock.seconds()
        timeout = self.config.stall_timeout
        for proto, (drained, since) in list(self._behind.items()):
            if proto.queue.drained != drained:
                self._behind[proto] = (proto.queue.drained, now)
            elif now - since >= timeout:
                proto.fatal("slow", "you stopped reading while the others caught up")

    # -- connection accounting -----------------------------------------

    def connection_opened(self, proto: IServerConnection) -> Optional[Tuple[str, str]]:
        """Count a new connection; return C{(code, text)} to refuse it."""
        config = self.config
        self.connections.add(proto)
        self.metrics.connection_opened(proto)
        if self.bans is not None and self.bans.banned(proto.peer):
            _log.warn("refusing {peer}: banned", peer=proto.peer)
            self.metrics.refused("banned")
            return ("banned", "your address is banned from this server")
        if config.max_clients and len(self.connections) > config.max_clients:
            _log.warn("refusing {peer}: server full", peer=proto.peer)
            return ("server-full", "the server is full; try again later")
        host = proto.peer
        key = address_key(host)
        count = self._per_ip.get(key, 0) + 1
        self._per_ip[key] = count
        self._counted[proto] = key
        if config.max_per_ip and count > config.max_per_ip and not exempt_from_per_address(host):
            _log.warn("refusing {peer}: too many connections from its address", peer=host)
            return ("too-many-connections", "too many connections from your address")
        if self.throttled:
            proto.throttle(True)
        limiter = proto.limiter
        if limiter is not None and self._flooded and self._recently_flooded(key):
            limiter.drain()
        return None

    def registered(self, proto: IServerConnection) -> None:
        self.registered_connections.add(proto)
        self.metrics.registered(proto)

    def _recently_flooded(self, host: str) -> bool:
        """
        Whether C{host} had a connection dropped for C{flood} within the
        flood window. Its new connections then start with one token (the
        C{hello}), then frames at the refill rate, no burst: otherwise a
        flooder that reconnects gets a fresh burst delivered every time.
        Addresses exempt from the per-address limit (loopback: a local
        proxy or every user of this machine) are exempt from this too.
        """
        since = self._flooded.get(host)
        if since is None:
            return False
        if self.clock.seconds() - since >= self.config.flood_window:
            del self._flooded[host]
            return False
        return True

    def connection_closed(self, proto: IServerConnection) -> None:
        limiter = proto.limiter
        if limiter is not None and limiter.flooded and not exempt_from_per_address(proto.peer):
            key = address_key(proto.peer)
            flooded = self._flooded
            flooded.pop(key, None)
            flooded[key] = self.clock.seconds()
            if len(flooded) > 65536:  # forget the oldest
                del flooded[next(iter(flooded))]
        self.connections.discard(proto)
        self.registered_connections.discard(proto)
        self.metrics.connection_closed(proto)
        if self._behind.pop(proto, None) is not None:
            self._update_throttle()
        key = self._counted.pop(proto, None)
        if key is not None:
            count = self._per_ip.get(key, 0) - 1
            if count > 0:
                self._per_ip[key] = count
            else:
                self._per_ip.pop(key, None)
        if not self.connections and self._closed_waiters:
            waiters, self._closed_waiters = self._closed_waiters, []
            for d in waiters:
                d.callback(None)

    # -- timers -------------------------------------------------------------

    def sweep(self) -> None:
        """Ping silent clients, time out the ones that stay silent."""
        now = self.clock.seconds()
        for proto in list(self.registered_connections):
            if not proto.closing:
                proto.check_idle(now)

    def shutdown(self) -> defer.Deferred:
        """
        Send every client the fatal C{shutdown} error and close; the result
        fires when every connection has closed (or aborted after the
        configured shutdown timeout).
        """
        for proto in list(self.connections):
            proto.fatal("shutdown", "the server is stopping")
        if not self.connections:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._closed_waiters.append(d)

        def abort_stragglers() -> None:
            for proto in list(self.connections):
                proto.abort()

        call = self.clock.callLater(self.config.shutdown_timeout, abort_stragglers)

        def done(result: Any) -> Any:
            if call.active():
                call.cancel()
            return result

        return d.addBoth(done)
