"""
Overload (issue #3, part 4): bounded, self-stopping load against a real
C{twistd chat} process on 127.0.0.1, as IRC servers are tested against
their sendq/recvq and flood limits.

  - readers that stop reading among readers that read: every staller is
    dropped with C{slow}, every reader gets every message once and in
    order, and the server's RSS growth stays under L{rss_bound};
  - flooders among normal clients: flooders get C{rate-limited}, then the
    fatal C{flood}, have at most a burst delivered, and the normal clients'
    echo latency stays low;
  - a connect storm (closes at every stage, half-done handshakes
    included): file descriptors back to their baseline, memory too;
  - many registered clients chatting: everyone gets everything;
  - the total connection limit over TCP, the per-address one in memory
    (loopback, the only address these tests may use, is exempt).

The full sizes run by default (and in CI); C{CHATSVC_QUICK_TESTS=1} uses
smaller ones of the same tests.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List

from twisted.internet import defer, task
from twisted.internet.error import ConnectionLost
from twisted.trial.unittest import SynchronousTestCase, TestCase

from chatsvc.wire.framing import encode_frame
from chatsvc.wire.messages import encode

from .hardening_procs import (
    PSK,
    SLOW,
    RawClient,
    connect,
    fd_count,
    gather,
    pause,
    pid_of,
    registered,
    rss_kib,
    sanity_check,
    shows_server_log,
    start_server,
)
from .helpers import FakeClient, make_factory
from .procs import DEMO_KEY

KIB = 1024
MIB = 1024 * 1024

ECHO_DEADLINE = 10.0
"""Seconds a normal client's echo may take during a flood: a deadline for
the echo to come at all, not a latency target (bench/ measures those)."""


def rss_bound(stalled: int, sendq: int, base_slack: int = 24 * MIB) -> int:
    """
    The most the server's RSS may grow while C{stalled} clients stop
    reading: each holds at most its send queue (C{sendq}) plus the
    transport's own buffer (64 KiB before it pauses the queue) and one
    frame in flight (64 KiB), and the rest is a fixed allowance for the
    allocator and the fan-out of the readers.
    """
    return stalled * (sendq + 128 * KIB) + base_slack


@defer.inlineCallbacks
def settled_fd_count(pid: int, seconds: float = 15.0):
    """
    The process's open file count once it holds still (the same in two
    readings 0.1 s apart), waited for with a deadline of C{seconds}.
    """
    deadline_at = time.monotonic() + seconds
    last = fd_count(pid)
    while True:
        yield pause(0.1)
        now = fd_count(pid)
        if now == last:
            return now
        if time.monotonic() > deadline_at:
            raise AssertionError(f"the server's file count did not settle in {seconds} s")
        last = now


class Sampler:
    """Sample a process's RSS every 50 ms; remember the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = self.start = rss_kib(pid) * KIB
        self._loop = task.LoopingCall(self.sample)
        self._loop.start(0.05, now=False)

    def sample(self) -> None:
        try:
            self.peak = max(self.peak, rss_kib(self.pid) * KIB)
        except OSError:
            pass

    def stop(self) -> int:
        if self._loop.running:
            self._loop.stop()
        return self.peak - self.start


@defer.inlineCallbacks
def fleet(test: Any, port: int, names: List[str], psk_every: int = 0, batch: int = 50):
    """Register clients, C{batch} at a time; every C{psk_every}th one encrypted."""
    clients: List[RawClient] = []
    for start in range(0, len(names), batch):
        group = names[start:start + batch]
        d = [registered(test, port, name,
                        PSK if psk_every and (start + i) % psk_every == 0 else None)
             for i, name in enumerate(group)]
        clients += yield gather(d)
    return clients


class SlowReaderTests(TestCase):
    timeout = 300

    @shows_server_log
    def test_stalled_readers_dropped_readers_get_everything(self):
        """With the soft send queue (the default): dropped after the stall timeout."""
        yield self.stalled_readers()

    @shows_server_log
    def test_stalled_readers_hard_limit(self):
        """Without it (--sendq-soft 0): dropped when their 1 MiB queue overflows."""
        yield self.stalled_readers("--sendq-soft", "0")

    @defer.inlineCallbacks
    def stalled_readers(self, *options: str):
        readers_n, stalled_n = 80, 20
        sendq = MIB
        text = "x" * 1000
        senders_n, per_sender = 20, 100  # 2,000 messages of ~1.1 KB: 2.2 MB for each client
        server = yield start_server(self, "--psk", DEMO_KEY, "--allow-plaintext", "--rate", "0", "--sendq", str(sendq),
                                    *options)
        pid = pid_of(server)
        readers = yield fleet(self, server.port, [f"r{i}" for i in range(readers_n)], psk_every=8)
        # Half of them encrypted: their queues hold ciphertext of their own.
        stallers = yield fleet(self, server.port, [f"z{i}" for i in range(stalled_n)], psk_every=2)
        for client in stallers:
            client.transport.pauseProducing()  # stop reading: the kernel buffers fill, then the sendq
        sampler = Sampler(pid)
        started = time.monotonic()
        total = senders_n * per_sender
        # Each sender keeps 4 messages in flight.
        sent = {i: 0 for i in range(senders_n)}

        def next_message(i: int) -> None:
            if sent[i] < per_sender:
                readers[i].say(f"{i}/{sent[i]} {text}")
                sent[i] += 1

        for i in range(senders_n):
            original = readers[i]._inner

            def inner(data: bytes, i: int = i, original: Any = original) -> None:
                before = len(readers[i].messages)
                original(data)
                for m in readers[i].messages[before:]:
                    if m["type"] == "message" and m["from"] == readers[i].name:
                        next_message(i)

            readers[i]._inner = inner
            for _ in range(4):
                next_message(i)
        watcher = readers[-1]
        yield watcher.wait_for(lambda m: m["type"] == "message" and m["seq"] == total,
                               timeout=120, what="the last message")
        elapsed = time.monotonic() - started
        for name in [c.name for c in stallers]:
            yield watcher.wait_for(lambda m, name=name: m["type"] == "left" and m["name"] == name,
                                   timeout=30, what=f"{name} to leave")
        growth = sampler.stop()
        # The stallers read again: each finds the slow error at the end of
        # what the kernel held for it (or was aborted if it came too late).
        for client in stallers:
            client.transport.resumeProducing()
        reasons = yield gather([c.wait_lost(30) for c in stallers])

        lefts = {m["name"]: m["reason"] for m in watcher.messages if m["type"] == "left"}
        self.assertEqual({lefts.get(c.name) for c in stallers}, {"slow"}, lefts)
        # Each staller read the slow error last, or (too late to read it)
        # was aborted: never another error, never a clean close without it.
        got_error = 0
        for client, reason in zip(stallers, reasons):
            errors = [m.get("code") for m in client.messages if m["type"] == "error"]
            self.assertIn(errors, ([], ["slow"]), f"{client.name}: {errors}")
            if errors:
                got_error += 1
                self.assertEqual(client.messages[-1].get("code"), "slow", client.name)
            else:
                self.assertIsInstance(reason, ConnectionLost, f"{client.name}: closed, no error")
        # Every reader: every message once, in order; nobody else dropped.
        for client in readers:
            seqs = [m["seq"] for m in client.messages if m["type"] == "message"]
            self.assertEqual(seqs, list(range(1, total + 1)), f"{client.name} missed messages")
            self.assertTrue(client.connected, f"{client.name} was dropped")
        self.assertNotIn("slow", {lefts.get(c.name) for c in readers})
        # The drop point: message bytes sent to a staller before it was dropped.
        frame_size = len(encode_frame(encode({"type": "message", "from": "r10", "text": "10/10 " + text,
                                              "ts": "2026-11-22T02:50:00.123Z", "seq": 1000})))
        drop_points = []
        seq = 0
        for m in watcher.messages:
            if m["type"] == "message":
                seq = m["seq"]
            elif m["type"] == "left" and m["name"].startswith("z"):
                drop_points.append(seq * frame_size)
        self.assertEqual(len(drop_points), stalled_n)
        if "--sendq-soft" in options:
            # The hard limit alone: nobody is dropped before its queue could
            # hold the limit (ciphertext records are 21 bytes per frame more).
            self.assertGreaterEqual(min(drop_points), sendq * frame_size // (frame_size + 21),
                                    "a staller was dropped before its send queue was full")
        bound = rss_bound(stalled_n, sendq)
        self.assertLess(growth, bound, f"RSS grew {growth / MIB:.1f} MiB, bound {bound / MIB:.1f} MiB")
        self.assertEqual(server.tracebacks(), [])
        yield sanity_check(self, server.port, "after")
        print(f"\n  [slow readers{' ' + ' '.join(options) if options else ''}] {stalled_n} of {readers_n + stalled_n} stopped reading: all dropped "
              f"slow ({got_error} read the error), drop after {min(drop_points) / MIB:.2f}-"
              f"{max(drop_points) / MIB:.2f} MiB of messages; {total} messages to {readers_n} "
              f"readers in {elapsed:.1f} s; RSS +{growth / MIB:.1f} MiB (bound {bound / MIB:.1f})")


class FloodTests(TestCase):
    timeout = 300

    @defer.inlineCallbacks
    def latencies(self, clients: List[RawClient], seconds: float, tag: str):
        """Each client says something every second; echo round trips, in seconds."""
        results: List[float] = []
        waits = []
        rounds = int(seconds)
        for r in range(rounds):
            for client in clients:
                text = f"{tag} {client.name} {r}"
                sent_at = time.monotonic()
                client.say(text)
                d = client.wait_for(lambda m, text=text: m.get("text") == text, timeout=ECHO_DEADLINE,
                                    since=max(0, len(client.messages) - 1))
                d.addCallback(lambda _, sent_at=sent_at: results.append(time.monotonic() - sent_at))
                waits.append(d)
            yield pause(1.0)
        yield gather(waits)
        results.sort()
        return results

    @shows_server_log
    def test_flooders_refused_normal_traffic_unaffected(self):
        normal_n, flooders_n = (95, 5)
        server = yield start_server(self, "--psk", DEMO_KEY, "--allow-plaintext")  # the default limits: burst 20, 2/s, flood 3 x burst
        normal = yield fleet(self, server.port, [f"n{i}" for i in range(normal_n)], psk_every=5)
        # Only some of them talk, at 1 message a second each (the limit is 2).
        talkers = normal[:40]
        baseline = yield self.latencies(talkers, 3, "base")

        flood_stats: List[Dict[str, int]] = []
        stop = [False]

        @defer.inlineCallbacks
        def flooder(k: int):
            cycle = 0
            while not stop[0]:
                name = f"flood{k}_{cycle}"
                client = yield registered(self, server.port, name)
                frames = b"".join(encode_frame(encode({"type": "say", "text": f"{name} {i}"}))
                                  for i in range(500))
                client.send_raw(frames)
                yield client.wait_lost(30)
                errors = [m.get("code") for m in client.messages if m["type"] == "error"]
                mine = [m for m in client.messages
                        if m["type"] == "message" and m["from"] == name]
                flood_stats.append({"delivered": len(mine),
                                    "rate_limited": errors.count("rate-limited"),
                                    "flood": errors.count("flood"),
                                    "last": client.messages[-1].get("code")})
                cycle += 1

        runs = [flooder(k) for k in range(flooders_n)]
        during = yield self.latencies(talkers, 5, "flood")
        stop[0] = True
        yield gather(runs)

        def pct(values: List[float], p: float) -> float:
            return values[min(len(values) - 1, int(len(values) * p))]

        self.assertTrue(flood_stats)
        for stats in flood_stats:
            self.assertEqual(stats["last"], "flood", stats)
            self.assertEqual(stats["flood"], 1)
            self.assertLessEqual(stats["delivered"], 20 + 2, stats)  # the burst (+ refill)
            self.assertGreaterEqual(stats["rate_limited"], 50)
        # Every talker got every talker's messages: nothing normal was lost.
        everyone = {m["text"] for m in talkers[0].messages if m["type"] == "message"
                    and m["text"].startswith("flood n")}
        self.assertEqual(len(everyone), len(talkers) * 5)
        # The flooders' left reason, as the others see it.
        reasons = {m["reason"] for m in normal[-1].messages
                   if m["type"] == "left" and m["name"].startswith("flood")}
        self.assertEqual(reasons, {"flood"})
        p50b, p99b = pct(baseline, 0.5), pct(baseline, 0.99)
        p50f, p99f = pct(during, 0.5), pct(during, 0.99)
        # Normal traffic kept flowing: every echo came within ECHO_DEADLINE
        # (latencies waits for each with that deadline). How fast is a figure
        # for bench/, printed here, not a threshold a loaded machine can miss.
        self.assertEqual(len(during), len(talkers) * 5)
        self.assertEqual(server.tracebacks(), [])
        yield sanity_check(self, server.port, "after")
        print(f"\n  [flood] {len(flood_stats)} flood connections, each <= "
              f"{max(s['delivered'] for s in flood_stats)} delivered then flood; echo latency "
              f"p50/p99 {p50b * 1000:.1f}/{p99b * 1000:.1f} ms before, "
              f"{p50f * 1000:.1f}/{p99f * 1000:.1f} ms during")


class StormTests(TestCase):
    timeout = 600

    @shows_server_log
    def test_connect_storm(self):
        """Connect/close cycles that stop at every stage; fds and memory come back."""
        cycles = 1000 if SLOW else 200
        server = yield start_server(self, "--psk", DEMO_KEY, "--allow-plaintext")
        pid = pid_of(server)
        port = server.port
        yield sanity_check(self, port, "warmup", PSK)  # import everything lazy first
        fds0 = yield settled_fd_count(pid)
        rss0 = rss_kib(pid) * KIB
        kinds = ["close", "reset", "half-header", "half-frame", "message1", "handshake",
                 "hello", "hello-encrypted", "bad-frame", "half-record"]
        counts = {k: 0 for k in kinds}

        @defer.inlineCallbacks
        def one(i: int):
            kind = kinds[i % len(kinds)]
            counts[kind] += 1
            psk = PSK if kind in ("handshake", "hello-encrypted", "half-record") else None
            client = yield connect(self, port, psk, label=f"storm{i}",
                                   handshake=kind in ("handshake", "hello-encrypted", "half-record"))
            if kind == "half-header":
                client.send_raw(b"\x00\x00")
            elif kind == "half-frame":
                client.send_raw(b"\x00\x00\x00\x20{\"type\":")
            elif kind == "message1":
                client.send_raw(RawClient(PSK).session.initiate())
            elif kind == "bad-frame":
                client.send_raw(b"\x00\x00\x00\x00")
            elif kind in ("hello", "hello-encrypted"):
                yield client.hello(f"storm{i}")
            elif kind == "half-record":
                record = client.seal(encode_frame(b'{"type":"hello"}'))
                client.send_raw(record[:-5])
            if kind == "reset":
                client.abort()
            elif client.connected:
                if kind in ("close", "half-header", "half-frame", "message1", "half-record"):
                    client.transport.loseConnection()
                elif kind == "bad-frame":
                    yield client.wait_lost()
                else:
                    client.abort() if i % 2 else client.transport.loseConnection()
            yield client.wait_lost()

        started = time.monotonic()
        for start in range(0, cycles, 50):
            yield gather([one(i) for i in range(start, min(cycles, start + 50))])
        elapsed = time.monotonic() - started
        # Every close reaches the server within a moment: poll the fd count.
        deadline_at = time.monotonic() + 15
        while fd_count(pid) > fds0 and time.monotonic() < deadline_at:
            yield pause(0.1)
        fds1, rss1 = fd_count(pid), rss_kib(pid) * KIB
        self.assertEqual(fds1, fds0, "file descriptors leaked")
        self.assertLess(rss1 - rss0, 8 * MIB, "memory not back near its baseline")
        yield sanity_check(self, port, "after", PSK)
        self.assertEqual(server.tracebacks(), [])
        print(f"\n  [storm] {cycles} connect/close cycles ({', '.join(kinds)}) in {elapsed:.1f} s: "
              f"fds {fds0} -> {fds1}, RSS {rss0 / MIB:.1f} -> {rss1 / MIB:.1f} MiB")


class ManyClientsTests(TestCase):
    timeout = 600

    @shows_server_log
    def test_many_registered_clients_chatting(self):
        n = 1000 if SLOW else 200
        talkers = 1000 if SLOW else 50  # every client says one message under SLOW
        server = yield start_server(self, "--psk", DEMO_KEY, "--allow-plaintext", "--rate", "0")
        pid = pid_of(server)
        started = time.monotonic()
        clients = yield fleet(self, server.port, [f"c{i}" for i in range(n)], psk_every=10)
        connected = time.monotonic() - started
        rss_connected = rss_kib(pid) * KIB
        started = time.monotonic()
        for i in range(talkers):
            clients[i * (n // talkers)].say(f"hello from {i}")
        waits = [c.wait_for(lambda m: m["type"] == "message" and m["seq"] == talkers, timeout=120)
                 for c in clients]
        yield gather(waits)
        chatted = time.monotonic() - started
        for client in clients:
            seqs = [m["seq"] for m in client.messages if m["type"] == "message"]
            self.assertEqual(seqs, list(range(1, talkers + 1)), client.name)
        self.assertEqual(server.tracebacks(), [])
        print(f"\n  [many] {n} registered clients in {connected:.1f} s (RSS {rss_connected / MIB:.0f} MiB);"
              f" {talkers} messages to all ({n * talkers} deliveries) in {chatted:.1f} s")


class ConnectionLimitTests(TestCase):
    timeout = 120

    @shows_server_log
    def test_total_connection_limit(self):
        server = yield start_server(self, "--max-clients", "30")
        clients = []
        for i in range(30):
            client = yield connect(self, server.port, label=f"c{i}")
            clients.append(client)
        yield clients[-1].hello("last")
        extra = yield connect(self, server.port, label="extra")
        yield extra.wait_lost()
        self.assertEqual([(m["code"], m["fatal"]) for m in extra.messages], [("server-full", True)])
        for client in clients[:5]:
            client.transport.loseConnection()
            yield client.wait_lost()
        # Room again.
        again = yield registered(self, server.port, "again")
        self.assertTrue(again.connected)
        self.assertEqual(server.tracebacks(), [])


class PerAddressLimitTests(SynchronousTestCase):
    """Over the real factory in memory: only loopback may be used over TCP here."""

    def test_per_address_limit(self) -> None:
        factory = make_factory(max_per_ip=16)
        first = [FakeClient(factory, host="192.0.2.1") for _ in range(16)]
        self.assertFalse(any(c.closed for c in first))
        refused = FakeClient(factory, host="192.0.2.1")
        self.assertTrue(refused.closed)
        self.assertEqual(refused.received()[0]["code"], "too-many-connections")
        other = FakeClient(factory, host="192.0.2.2")
        self.assertFalse(other.closed)
        refused.lose()
        first[0].lose()
        self.assertFalse(FakeClient(factory, host="192.0.2.1").closed)
        loopback = [FakeClient(factory, host="127.0.0.1") for _ in range(40)]
        self.assertFalse(any(c.closed for c in loopback))


class ReconnectFloodTests(SynchronousTestCase):
    """A flooder that reconnects does not get a fresh burst each time."""

    def flood(self, client: FakeClient, n: int = 200) -> List[str]:
        for i in range(n):
            client.send({"type": "say", "text": f"f{i}"})
        client.protocol.factory.clock.advance(0)  # the end of the reactor turn
        return [m.get("code") or m["type"] for m in client.received()]

    def test_reconnect_after_flood_starts_empty(self) -> None:
        factory = make_factory(max_per_ip=0)
        clock = factory.clock
        flooder = FakeClient(factory, host="192.0.2.9")
        flooder.hello("flooder")
        first = self.flood(flooder)
        self.assertEqual(first.count("message"), 19)  # the burst (20) less the hello
        self.assertEqual(first[-1], "flood")
        flooder.lose()
        again = FakeClient(factory, host="192.0.2.9")
        again.hello("flooder")
        second = self.flood(again)
        self.assertEqual(second.count("message"), 0)  # one token: the hello
        self.assertEqual(second[-1], "flood")
        again.lose()
        # Someone else (another address) keeps a full burst.
        other = FakeClient(factory, host="192.0.2.10")
        other.hello("other")
        self.assertEqual(self.flood(other, 19).count("message"), 19)
        # After the flood window the address is forgiven.
        clock.advance(factory.config.flood_window + 1)
        later = FakeClient(factory, host="192.0.2.9")
        later.hello("later")
        self.assertEqual(self.flood(later, 19).count("message"), 19)

    def test_loopback_exempt(self) -> None:
        """Loopback (a local proxy, every user of this host) is not penalised."""
        factory = make_factory(max_per_ip=0)
        for name in ("a", "b"):
            client = FakeClient(factory, host="127.0.0.1")
            client.hello(name)
            self.assertEqual(self.flood(client).count("message"), 19)
            client.lose()
