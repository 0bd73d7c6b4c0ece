# -*- test-case-name: tests.test_bench_smoke -*-
"""
The load generator's scenarios for protocol version 2 (rooms, the presence
limit), on top of L{bench.loadgen}:

    python -m bench.rooms '{"kind": "chat", "port": 8000, "mode": "rooms", ...}'

It speaks chatsvc only (C{kind} C{chat} or C{chat-enc}) and prints the same
JSON lines as L{bench.loadgen}. Modes (C{mode}):

  - C{register}: register C{clients} clients into the default room (a
    version 1 C{hello}, no C{rooms}), C{concurrency} at a time. Measures the
    time from the first connect to the last C{welcome}, the server's CPU
    over that time and until it is idle again (the C{joined} storm it still
    has to write included), the load generator's CPU, and the server's RSS
    per client once idle. With the presence limit of version 2 the cost per
    client is flat past the limit; without it (version 1) it grows with the
    number of members.
  - C{rooms}: C{clients} clients in C{rooms} rooms C{#r0} ... of equal size,
    each also in the default room (C{hello} with C{rooms}), where nobody
    speaks. Client I{i} is in room I{i mod rooms}; the first C{rooms}
    clients are the senders, one per room, each saying into its room with
    C{window} messages in flight, acknowledged when the member of its room
    that registered last has them (closed loop, like C{fanout}). Measured
    like C{fanout}: deliveries/s and deliveries per server CPU-second.
  - anything else: as L{bench.loadgen} (C{fanout} is the single-room
    comparison the runner puts into the same run).

Every message text is still 64 bytes starting C{<Sxx>} with C{xx} the
sender's room, so deliveries are counted as in L{bench.loadgen}: the trackers
are plain receivers whose count is the acknowledgement, as every message a
room member receives is its room's sender's.
"""

from __future__ import annotations

import struct
import sys
import time
from typing import Any, Dict, List, Optional

from .loadgen import main as loadgen_main
from .loadgen import (SENDER, SINK, TEXT_SIZE, ChatDialect, Client, EncChatDialect, LoadError,
                      LoadGen, busy_between, cpu_jiffies, proc_cpu_ns, proc_rss_kib)

_pack_len = struct.Struct(">I").pack
MAX_ROOMS = 100  # the sender tag <Sxx> has two digits


class _RoomsSpeaker:
    """
    What a room-aware chatsvc client says: C{hello} with C{rooms} (when the
    run has rooms), C{say} with C{room}; and it notes whether the server
    answered with a version 2 C{welcome} (one with an C{epoch}).
    """

    rooms = 0
    default_room = "#lobby"
    pad = b""
    saw_v1 = False
    saw_v2 = False

    def setup_rooms(self, opts: Dict[str, Any]) -> None:
        self.rooms = int(opts.get("rooms", 0))
        self.default_room = str(opts.get("default_room", "#lobby"))
        self.pad = b"." * (TEXT_SIZE - 5 - 20)

    def room_name(self, room: int) -> bytes:
        return b"#r%d" % room

    def hello(self, c: Client) -> bytes:
        if not self.rooms:
            body = b'{"type":"hello","name":"%s"}' % c.name.encode()
        else:
            body = (b'{"type":"hello","name":"%s","rooms":["%s","%s"]}'
                    % (c.name.encode(), self.default_room.encode(),
                       self.room_name(c.idx % self.rooms)))
        return _pack_len(len(body)) + body

    def _welcome(self, c: Client, plain: bytes) -> bool:
        seen = c.reg + plain
        if b'"type":"error"' in seen:
            raise LoadError(f"{c.name}: hello refused: {seen[-300:]!r}")
        done = super()._welcome(c, plain)  # type: ignore[misc]
        if done:
            if b'"epoch"' in seen:
                self.saw_v2 = True
            else:
                self.saw_v1 = True
        return done

    def messages(self, sender: int, k: int) -> bytes:
        if not self.rooms:
            return super().messages(sender, k)  # type: ignore[misc]
        head = (b'{"type":"say","room":"' + self.room_name(sender) + b'","text":"<S%02d>' % sender
                + b"%020d" % time.perf_counter_ns() + self.pad + b'"}')
        return (_pack_len(len(head)) + head) * k


class RoomsChatDialect(_RoomsSpeaker, ChatDialect):
    def __init__(self, opts: Dict[str, Any]) -> None:
        ChatDialect.__init__(self, opts)
        self.setup_rooms(opts)


class RoomsEncChatDialect(_RoomsSpeaker, EncChatDialect):
    def __init__(self, opts: Dict[str, Any]) -> None:
        EncChatDialect.__init__(self, opts)
        self.setup_rooms(opts)


ROOM_DIALECTS = {"chat": RoomsChatDialect, "chat-enc": RoomsEncChatDialect}


class RoomsLoadGen(LoadGen):
    """L{LoadGen} with the C{register} and C{rooms} modes."""

    def __init__(self, opts: Dict[str, Any]) -> None:
        if opts["kind"] not in ROOM_DIALECTS:
            raise LoadError(f"the rooms scenarios speak chatsvc only, not {opts['kind']!r}")
        if opts.get("submode"):  # the runner's scenario name is not the mode
            opts = dict(opts, mode=opts["submode"])
        LoadGen.__init__(self, opts)
        self.dialect = ROOM_DIALECTS[opts["kind"]](opts)
        self.n_rooms = 0
        self.room_trackers: List[Client] = []

    # -- rooms: who is where -------------------------------------------------

    def make_room_clients(self, n: int, rooms: int) -> None:
        """Client I{i} in room I{i mod rooms}; the first C{rooms} are the senders."""
        if not 1 <= rooms <= MAX_ROOMS or n < 2 * rooms:
            raise LoadError(f"rooms: need 1 to {MAX_ROOMS} rooms of 2 clients or more "
                            f"(got {n} clients in {rooms} rooms)")
        self.n_rooms = rooms
        for i in range(n):
            role = SENDER if i < rooms else SINK
            self.clients.append(Client(i, role, f"s{i:02d}" if role == SENDER else f"c{i:05d}"))
        self.senders = self.clients[:rooms]
        # the member of each room registered last (connect_all goes in order)
        last: Dict[int, Client] = {}
        for c in self.clients:
            last[c.idx % rooms] = c
        self.room_trackers = [last[r] for r in range(rooms)]

    def feed_senders(self, window: int, batch: int) -> None:
        if not self.n_rooms:
            LoadGen.feed_senders(self, window, batch)
            return
        dialect = self.dialect
        enc = self.encrypted
        trackers = self.room_trackers
        for c in self.senders:
            if c.out or c.sock is None:
                continue
            k = min(batch, window - (c.sent - trackers[c.idx].count))
            if k <= 0:
                continue
            plain = dialect.messages(c.idx, k)
            c.sent += k
            self.write(c, c.session.send(plain) if enc else plain)

    def expected_for(self, c: Client, total_sent: int) -> int:
        if not self.n_rooms:
            return LoadGen.expected_for(self, c, total_sent)
        return self.senders[c.idx % self.n_rooms].sent

    # -- modes ----------------------------------------------------------------

    def run(self) -> Dict[str, Any]:
        mode = self.opts["mode"]
        if mode == "register":
            return self.run_register()
        if mode == "rooms":
            return self.run_rooms()
        return LoadGen.run(self)

    def run_register(self) -> Dict[str, Any]:
        o = self.opts
        n = int(o["clients"])
        rss0 = proc_rss_kib(self.server_pid) if self.server_pid else 0
        self.make_clients(n, 0, 0, False)
        t0 = time.monotonic()
        cpu0, me0, j0 = self.server_cpu(), proc_cpu_ns(None), cpu_jiffies()
        reg_s = self.connect_all(int(o.get("concurrency", 64)))
        cpu1, me1, j1 = self.server_cpu(), proc_cpu_ns(None), cpu_jiffies()
        self.settle()
        self.wait_server_idle()
        idle_s = time.monotonic() - t0
        cpu2 = self.server_cpu()
        rss1 = proc_rss_kib(self.server_pid) if self.server_pid else 0
        server_s = (cpu2 - cpu0) / 1e9
        return {
            "clients": n,
            "protocol": 2 if self.dialect.saw_v2 and not self.dialect.saw_v1 else 1,
            "registration_seconds": reg_s,
            "registration_server_cpu_s": (cpu1 - cpu0) / 1e9,
            "server_cpu_s": server_s,  # first connect until idle again
            "server_ms_per_client": 1e3 * server_s / n,
            "seconds_to_idle": idle_s,
            "loadgen_cpu_s": (me1 - me0) / 1e9,
            # fractions over the registration, for the report's "other load"
            "server_cpu": (cpu1 - cpu0) / 1e9 / reg_s,
            "loadgen_cpu": (me1 - me0) / 1e9 / reg_s,
            "cpu_busy": busy_between(j0, j1),
            "rss_before_kib": rss0,
            "rss_after_kib": rss1,
            "kib_per_client": (rss1 - rss0) / n,
            "clients_closed": sum(1 for c in self.clients if c.sock is None),
        }

    def run_rooms(self) -> Dict[str, Any]:
        o = self.opts
        n = int(o["clients"])
        rooms = int(o.get("rooms", 100))
        self.make_room_clients(n, rooms)
        reg_s = self.connect_all(int(o.get("concurrency", 32)))
        if not self.dialect.saw_v2 or self.dialect.saw_v1:
            raise LoadError("the server answered with a version 1 welcome (no epoch): "
                            "the rooms scenario needs protocol version 2")
        settle_s = self.settle()
        result: Dict[str, Any] = {"registration_seconds": reg_s, "settle_seconds": settle_s,
                                  "rooms": rooms, "room_size": n // rooms}
        result.update(self.run_fanout(int(o.get("window", 128))))
        return result


def main(argv: Optional[List[str]] = None) -> int:
    """As L{bench.loadgen.main}, with L{RoomsLoadGen}."""
    return loadgen_main(argv, RoomsLoadGen)


if __name__ == "__main__":
    sys.exit(main())
