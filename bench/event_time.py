"""
What Redis's time in every event (field C{t}, for the stream lag metric)
costs Redis: the C{say} script as it is, and the same script without the
field (the prelude's C{add_event} of before), run alternately on one fresh
C{redis-server} (C{appendonly yes}, C{appendfsync everysec}), N calls
pipelined on one connection per run; Redis's own accounting (C{INFO
commandstats}, C{EVALSHA} microseconds per call) is printed per run, then
the medians::

    python -m bench.event_time --calls 20000 --reps 5
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
from typing import Any, Dict, List

from chatsvc.chat.redis.entries import message_head
from chatsvc.chat.redis.keys import RoomKeys
from chatsvc.chat.redis.room_scripts import ADD_EVENT, ROOM_PRELUDE, ROOM_SCRIPTS
from chatsvc.chat.redis.scripts import script_sha

from .scaleout import HOST, Redis

_UNTIMED = """local function add_event(evmax, ...)
  local n = redis.call('HINCRBY', meta, 'ev', 1)
  redis.call('XADD', events, 'MAXLEN', '~', evmax, n .. '-0', ...)
  return n
end"""


def variants() -> Dict[str, str]:
    timed = ROOM_PRELUDE + ROOM_SCRIPTS["say"]
    if ADD_EVENT not in timed:
        raise SystemExit("bench.event_time: the room prelude no longer includes ADD_EVENT; update this bench")
    return {"with t": timed, "without t": timed.replace(ADD_EVENT, "\n" + _UNTIMED + "\n")}


def _resp(*args: Any) -> bytes:
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def run(redis: Redis, text: str, room: str, calls: int) -> float:
    """EVALSHA microseconds per call of C{calls} pipelined C{say}s of C{text} in C{room}."""
    keys = RoomKeys("bench", room).all
    redis.command("SCRIPT", "LOAD", text)
    redis.command("HSET", keys[1], "s1", "srv|0|alice")
    redis.command("CONFIG", "RESETSTAT")
    head = message_head(room, "alice", "x" * 40, "2026-12-06T05:00:00.000Z")
    call = _resp("EVALSHA", script_sha(text), len(keys), *keys, "srv", 0, "s1", head, 50, 10000)
    with socket.create_connection((HOST, redis.port), timeout=30) as s:
        s.sendall(call * calls)
        replies, carry = 0, b""
        while replies < calls:  # each reply is *2 :seq :n
            chunk = s.recv(1 << 20)
            if not chunk:
                raise SystemExit("bench.event_time: Redis closed the connection")
            data = carry + chunk
            replies += data.count(b"*2\r\n")
            carry = data[-3:] if not data.endswith(b"*2\r\n") else b""
    stats = redis.commandstats()["evalsha"]
    return stats["usec"] / stats["calls"]


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--reps", type=int, default=5)
    options = parser.parse_args(argv)
    results: Dict[str, List[float]] = {name: [] for name in variants()}
    with tempfile.TemporaryDirectory() as workdir:
        redis = Redis(workdir, "everysec")
        try:
            for rep in range(options.reps):
                for name, text in variants().items():
                    usec = run(redis, text, f"#r{rep}{len(name)}", options.calls)
                    results[name].append(usec)
                    print(f"{name:10} run {rep + 1}: {usec:.2f} us per say")
        finally:
            redis.proc.terminate()
            redis.proc.wait()
    for name, values in results.items():
        print(f"{name:10} median {statistics.median(values):.2f} us per say (Redis CPU, EVALSHA)")


if __name__ == "__main__":
    main()
