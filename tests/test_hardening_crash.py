"""
Crashes and durability (issue #3, part 5), with a real C{twistd chat}
process and its message log:

  - C{kill -9} in the middle of a 1,000-message burst, then a restart: the
    log is exactly C{seq} 1..N once each (at most one torn final line), each
    sender's messages in it are a prefix of what it sent, every message any
    client received is in it, and history and C{seq} go on from N;
  - the same with log rotation on: the files together hold 1..N once each;
  - SIGTERM under load: every client gets every logged message, then
    C{shutdown}; exit status 0;
  - a log that cannot be written (C{/dev/full}): the sender gets
    C{unavailable}, nobody gets the message, the server goes on serving.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List, Tuple

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from .support.frameclient import FrameClient, registered
from .support.processes import shows_server_log, start_server
from .support.waiting import deadline, gather

SENDERS = 10
PER_SENDER = 100  # 1,000 messages in all
WINDOW = 8  # messages a sender has in flight: the burst lasts long enough to be cut


def read_log(paths: List[str]) -> Tuple[List[Dict[str, Any]], List[bytes]]:
    """
    Parse the log files (oldest first): the records, and the lines that are
    not records. Only the very last line of the newest file may be torn.
    """
    records: List[Dict[str, Any]] = []
    bad: List[bytes] = []
    for i, path in enumerate(paths):
        with open(path, "rb") as f:
            data = f.read()
        lines = data.split(b"\n")
        for j, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                last = i == len(paths) - 1 and j == len(lines) - 1
                bad.append(line)
                if not last:
                    raise AssertionError(f"a bad line that is not the torn last one: {line[:80]!r}")
    return records, bad


def log_files(path: str) -> List[str]:
    directory, base = os.path.split(path)
    rotated = sorted(int(n[len(base) + 1:]) for n in os.listdir(directory)
                     if n.startswith(base + ".") and n[len(base) + 1:].isdigit())
    return [f"{path}.{n}" for n in reversed(rotated)] + [path]


class Burst:
    """C{SENDERS} clients each saying C{PER_SENDER} numbered messages, windowed."""

    def __init__(self, senders: List[FrameClient]) -> None:
        self.senders = senders
        self.sent: Dict[str, List[str]] = {c.name: [] for c in senders}
        self.echoed: Dict[str, int] = {c.name: 0 for c in senders}

    def start(self) -> None:
        for client in self.senders:
            for _ in range(WINDOW):
                self._next(client)

            def echoed(message: Dict[str, Any], client: FrameClient = client) -> None:
                if message["type"] == "message" and message["from"] == client.name:
                    self._next(client)

            client.listen(echoed)

    def _next(self, client: FrameClient) -> None:
        sent = self.sent[client.name]
        if len(sent) < PER_SENDER and client.connected:
            text = f"{client.name} #{len(sent):03d}"
            sent.append(text)
            client.say(text)


class CrashTests(TestCase):
    timeout = 240

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.log = os.path.join(self.dir, "messages.jsonl")

    @defer.inlineCallbacks
    def clients(self, port: int, n: int, prefix: str):
        clients = []
        for i in range(n):
            client = yield registered(self, port, f"{prefix}{i}")
            clients.append(client)
        return clients

    @defer.inlineCallbacks
    def kill_mid_burst(self, *options: str):
        server = yield start_server(self, "--log-messages", self.log, "--rate", "0", *options)
        senders = yield self.clients(server.port, SENDERS, "s")
        observer = yield registered(self, server.port, "observer")
        burst = Burst(senders)
        burst.start()
        # Kill once about half the burst has gone by.
        yield observer.wait_for(lambda m: m.get("seq", 0) >= (SENDERS * PER_SENDER) // 2,
                                timeout=60, what="half the burst")
        server.signal("KILL")
        yield deadline(server.ended, 20, "the server to die")
        yield gather([c.wait_lost() for c in senders + [observer]])

        paths = log_files(self.log)
        records, torn = read_log(paths)
        self.assertLessEqual(len(torn), 1)
        seqs = [r["seq"] for r in records]
        n = len(seqs)
        self.assertEqual(seqs, list(range(1, n + 1)), "the log is not seq 1..N once each")
        self.assertLess(n, SENDERS * PER_SENDER, "the kill came after the burst: nothing was cut")
        self.assertGreaterEqual(n, (SENDERS * PER_SENDER) // 2)
        texts = [r["text"] for r in records]
        self.assertEqual(len(set(texts)), n, "a message is in the log twice")
        for name, sent in burst.sent.items():
            mine = [r["text"] for r in records if r["from"] == name]
            self.assertEqual(mine, sent[: len(mine)], f"{name}'s messages are not a prefix")
        logged = {r["seq"]: r["text"] for r in records}
        for client in senders + [observer]:
            for message in client.messages:
                if message["type"] == "message":
                    self.assertEqual(logged.get(message["seq"]), message["text"],
                                     f"{client.name} got a message that is not in the log")

        # Restart on the same log: history and seq go on from N.
        restarted_at = time.monotonic()
        server2 = yield start_server(self, "--log-messages", self.log, *options)
        recovery = time.monotonic() - restarted_at
        late = yield registered(self, server2.port, "late", since=n - 10)
        history = [m for part in late.of_type("history") for m in part["messages"]]
        self.assertEqual([m["seq"] for m in history], list(range(n - 9, n + 1)))
        self.assertEqual([m["text"] for m in history], texts[-10:])
        self.assertTrue(late.of_type("history")[-1]["complete"])
        fresh = yield registered(self, server2.port, "fresh")
        recent = [m["seq"] for part in fresh.of_type("history") for m in part["messages"]]
        self.assertEqual(recent, list(range(n - 49, n + 1)))
        self.assertFalse(fresh.of_type("history")[-1]["complete"])
        late.say("after the crash")
        echo = yield late.wait_for(lambda m: m.get("text") == "after the crash")
        self.assertEqual(echo["seq"], n + 1)
        self.assertEqual(server2.tracebacks(), [])
        print(f"\n  [kill -9] {n} of {SENDERS * PER_SENDER} logged, torn lines {len(torn)}, "
              f"{len(paths)} file(s); restart to serving in {recovery:.2f} s")
        return n, paths

    @shows_server_log
    def test_kill9_mid_burst(self):
        yield self.kill_mid_burst()

    @shows_server_log
    def test_kill9_mid_burst_with_rotation(self):
        n, paths = yield self.kill_mid_burst("--log-rotate-bytes", "8000", "--log-keep", "1000")
        self.assertGreater(len(paths), 3, "the log did not rotate")

    @shows_server_log
    def test_sigterm_under_load(self):
        server = yield start_server(self, "--log-messages", self.log, "--rate", "0")
        senders = yield self.clients(server.port, SENDERS, "s")
        observer = yield registered(self, server.port, "observer")
        burst = Burst(senders)
        burst.start()
        yield observer.wait_for(lambda m: m.get("seq", 0) >= (SENDERS * PER_SENDER) // 2,
                                timeout=60, what="half the burst")
        server.signal("TERM")
        code = yield server.wait_exit(30)
        self.assertEqual(code, 0)
        everyone = senders + [observer]
        yield gather([c.wait_lost() for c in everyone])
        records, torn = read_log([self.log])
        self.assertEqual(torn, [])
        n = len(records)
        self.assertEqual([r["seq"] for r in records], list(range(1, n + 1)))
        for client in everyone:
            last = client.messages[-1]
            self.assertEqual((last["type"], last.get("code"), last.get("fatal")),
                             ("error", "shutdown", True), client.name)
            got = [m["seq"] for m in client.messages if m["type"] == "message"]
            self.assertEqual(got, list(range(1, n + 1)),
                             f"{client.name} did not get every logged message before shutdown")
        for name, sent in burst.sent.items():
            echoed = [m["text"] for m in burst.senders[int(name[1:])].messages
                      if m["type"] == "message" and m["from"] == name]
            logged = [r["text"] for r in records if r["from"] == name]
            self.assertEqual(logged, echoed)
            self.assertEqual(logged, sent[: len(logged)])
        self.assertEqual(server.tracebacks(), [])
        print(f"\n  [SIGTERM] {n} logged and delivered to all {len(everyone)} clients, then shutdown")

    @shows_server_log
    def test_log_write_failure(self):
        """Disk full (/dev/full): unavailable to the sender, nothing delivered, still serving."""
        server = yield start_server(self, "--log-messages", "/dev/full")
        alice = yield registered(self, server.port, "alice")
        bob = yield registered(self, server.port, "bob")
        for message in ({"type": "say", "text": "lost"},
                        {"type": "msg", "to": "bob", "text": "lost too"}):
            start = len(alice.messages)
            alice.send(message)
            error = yield alice.wait_for(lambda m: m["type"] == "error", since=start)
            self.assertEqual((error["code"], error["fatal"]), ("unavailable", False))
        # Everything else still works, for alice and for newcomers.
        alice.send({"type": "nick", "name": "alicia"})
        yield bob.wait_for(lambda m: m["type"] == "renamed" and m["new"] == "alicia")
        carol = yield registered(self, server.port, "carol")
        carol.send({"type": "ping", "token": 7})
        yield carol.wait_for(lambda m: m["type"] == "pong" and m.get("token") == 7)
        self.assertEqual([m for m in bob.messages + carol.messages
                          if m["type"] in ("message", "private")], [])
        self.assertTrue(alice.connected and bob.connected)
        self.assertEqual(server.tracebacks(), [])
        self.assertTrue(any("message log write failed" in line for line in server.lines))
