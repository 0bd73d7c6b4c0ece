"""
C{python -m bench}: start each server as a real process, drive it with the
load generator, interleave the runs, write the report.

    python -m bench                 # the full benchmark (about 20-30 minutes)
    python -m bench --smoke         # tiny numbers, seconds: CI runs this
    python -m bench --help

Runs are interleaved: repetition 1 of every (scenario, server, size), then
repetition 2, ..., so slow drift of the machine hits every server alike; the
report shows medians over repetitions. Each run gets a fresh server process
on a fresh port; the server is pinned to CPU 0 and the load generator to
CPU 1 (C{taskset}).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from . import profile as profiling
from . import rooms_plan
from .report import write_report
from .servers import (DEMO_KEY, LOADGEN_CPU, REPO, ngircd_path, pinned, server_specs,
                      start_server)

ALL_SERVERS = ["chatsvc", "chatsvc-enc", "chatsvc-log", "chatsvc-irc", "relay", "ngircd"]
ALL_SCENARIOS = ["fanout", "overload", "latency", "memory", "setup", "register", "rooms"]

# Which servers take part in which scenario (chatsvc-log only in fanout at
# the headline size; the relay and ngircd have no flow control to test).
SCENARIO_SERVERS = {
    "fanout": ["chatsvc", "chatsvc-enc", "chatsvc-irc", "relay", "ngircd", "chatsvc-ws",
               "chatsvc-ws-enc", "chatsvc-mixed", "chatsvc-mixed-enc"],
    "overload": ["chatsvc", "chatsvc-enc"],
    "latency": ["chatsvc", "chatsvc-enc", "relay", "ngircd"],
    # Not ngIRCd: every JOIN into the one channel is sent to every member,
    # so registering 10,000 clients outlasts the run's deadline (19 min; it
    # had 9,000 at 100% CPU when it ran out, in two runs).
    "memory": ["chatsvc", "chatsvc-enc", "relay", "chatsvc-ws", "chatsvc-ws-enc"],
    "setup": ["chatsvc", "chatsvc-enc", "ngircd"],
}
SCENARIO_SERVERS.update(rooms_plan.SCENARIO_SERVERS)  # issue 9: register, rooms


@dataclass
class Job:
    scenario: str
    server: str
    rep: int
    opts: Dict[str, Any]
    profile: bool = False


@dataclass
class Run:
    scenario: str
    server: str
    rep: int
    opts: Dict[str, Any]
    ok: bool
    result: Dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None
    wall_seconds: float = 0.0
    profile: Optional[str] = None


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.strip().splitlines()[0])
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes and short runs (CI): seconds, not minutes")
    p.add_argument("--out", help="results folder (default bench/results/<date-time>)")
    p.add_argument("--reps", type=int, default=3, help="repetitions of every run (default 3)")
    p.add_argument("--servers", default=",".join(ALL_SERVERS),
                   help="comma-separated subset of " + ",".join(ALL_SERVERS))
    p.add_argument("--scenarios", default=",".join(ALL_SCENARIOS),
                   help="comma-separated subset of " + ",".join(ALL_SCENARIOS))
    p.add_argument("--clients", default="100,1000,3000",
                   help="fan-out sizes (registered clients), comma-separated")
    p.add_argument("--headline-clients", type=int, default=1000,
                   help="the size for targets, the message-log and overload runs")
    p.add_argument("--senders", type=int, default=10)
    p.add_argument("--window", type=int, default=128,
                   help="fanout: messages in flight per sender (closed loop)")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--budget", type=int, default=2000,
                   help="overload: messages per sender, pushed open loop")
    p.add_argument("--rate", type=float, default=200.0, help="latency: messages/s offered")
    p.add_argument("--latency-seconds", type=float, default=10.0)
    p.add_argument("--probes", type=int, default=5, help="latency: sampled receivers")
    p.add_argument("--memory-clients", type=int, default=10000)
    p.add_argument("--memory-reps", type=int, default=1,
                   help="repetitions of the memory scenario (registering 10,000 encrypted "
                        "clients takes minutes; RSS varies little)")
    p.add_argument("--setup-concurrency", type=int, default=8,
                   help="setup: connections being set up at once (ngIRCd's listen backlog is 10)")
    p.add_argument("--sendq", type=int, default=1 << 20, help="chatsvc --sendq (bytes)")
    p.add_argument("--history", type=int, default=50, help="chatsvc --history")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before starting, wait up to SECONDS for other processes to leave "
                        "both CPUs under 10%% busy")
    p.add_argument("--no-profile", action="store_true",
                   help="skip the py-spy profiles of chatsvc (plaintext and encrypted fan-out)")
    rooms_plan.add_arguments(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.reps = 1
        args.clients = "30"
        args.headline_clients = 30
        args.senders = 3
        args.window = 16
        args.duration = 0.6
        args.warmup = 0.3
        args.budget = 100
        args.rate = 60.0
        args.latency_seconds = 0.6
        args.probes = 2
        args.memory_clients = 60
        args.no_profile = True
        rooms_plan.shrink_for_smoke(args)
    return args


def build_plan(args: argparse.Namespace, servers: List[str], scenarios: List[str]) -> List[Job]:
    sizes = [int(x) for x in args.clients.split(",") if x.strip()]
    head = args.headline_clients
    common = {"senders": args.senders, "psk": DEMO_KEY}
    jobs: List[Job] = []

    def add(scenario: str, server: str, rep: int, **opts: Any) -> None:
        if server in servers:
            jobs.append(Job(scenario, server, rep, dict(common, mode=scenario, **opts)))

    smoke = args.smoke
    for rep in range(args.reps):
        for scenario in scenarios:
            names = SCENARIO_SERVERS[scenario]
            if smoke:  # a few seconds: one run of everything that must not rot
                names = {"fanout": names, "overload": ["chatsvc"],
                         "latency": ["chatsvc", "chatsvc-enc"], "memory": ["chatsvc"],
                         "setup": ["chatsvc-enc"], **rooms_plan.SMOKE_SERVERS}[scenario]
            if scenario in rooms_plan.SCENARIO_SERVERS:
                rooms_plan.plan(scenario, args, names, rep, add)
            elif scenario == "fanout":
                for n in sizes:
                    for name in names + (["chatsvc-log"] if n == head else []):
                        add("fanout", name, rep, clients=n, window=args.window,
                            concurrency=8 if name == "ngircd" else 32,
                            duration=args.duration, warmup=args.warmup,
                            drain=20.0, deadline=120 + n / 50)
            elif scenario == "overload":
                for name in names:
                    add("overload", name, rep, clients=head, budget=args.budget,
                        duration=10.0, drain=60.0, deadline=150 + head / 50)
            elif scenario == "latency":
                for name in names:
                    add("latency", name, rep, clients=head, rate=args.rate,
                        concurrency=8 if name == "ngircd" else 32,
                        duration=args.latency_seconds, warmup=1.0 if not smoke else 0.2,
                        probes=args.probes, deadline=120 + head / 50)
            elif scenario == "memory":
                if rep >= args.memory_reps:
                    continue
                n = args.memory_clients
                for name in names:
                    # ngIRCd's listen backlog is 10: more connects at once means
                    # dropped SYNs and seconds of retransmission back-off
                    add("memory", name, rep, clients=n, concurrency=8 if name == "ngircd" else 64,
                        deadline=120 + n / 10)
            elif scenario == "setup":
                for name in names:
                    add("setup", name, rep, duration=args.duration if not smoke else 0.6,
                        warmup=0.5 if not smoke else 0.2,
                        concurrency=args.setup_concurrency, deadline=60)
    if not args.no_profile and profiling.py_spy():
        for name in ("chatsvc", "chatsvc-enc", "chatsvc-ws", "chatsvc-ws-enc", "chatsvc-mixed",
                     "chatsvc-mixed-enc"):
            if name in servers and "fanout" in scenarios:
                job = Job("fanout", name, -1, dict(common, mode="fanout", clients=head,
                                                    window=args.window, duration=args.duration,
                                                    warmup=args.warmup, drain=20.0,
                                                    deadline=120 + head / 50), profile=True)
                jobs.append(job)
        if "chatsvc" in servers and "rooms" in scenarios:
            # the first rooms layout: where rooms spend their time
            rooms_plan.plan("rooms", args, ["chatsvc"], -1,
                            lambda *a, **o: jobs.append(
                                Job(a[0], a[1], a[2], dict(common, mode=a[0], **o), profile=True)),
                            first_only=True)
    return jobs


def run_job(job: Job, args: argparse.Namespace, workdir: str, outdir: str,
            logdir: Optional[str] = None) -> Run:
    spec = all_specs(args)[job.server]
    t0 = time.monotonic()
    run = Run(job.scenario, job.server, job.rep, job.opts, ok=False)
    server = None
    loadgen = None
    recorder = None
    try:
        server = start_server(spec, workdir, args.sendq, args.history, logdir=logdir)
        opts = dict(job.opts, kind=spec.kind, port=server.port, server_pid=server.pid)
        if spec.web:
            opts.update(ws_port=server.web_port, ws_share=spec.ws_share)
        module = opts.get("loadgen", "bench.loadgen")
        argv = pinned([sys.executable, "-m", module, json.dumps(opts)], LOADGEN_CPU)
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
        loadgen = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=env)
        limit = time.monotonic() + float(opts.get("deadline", 120)) + 30
        result = None
        buf = b""
        while result is None:
            left = limit - time.monotonic()
            if left <= 0:
                raise RuntimeError("load generator did not report in time")
            r, _, _ = select.select([loadgen.stdout], [], [], min(left, 1.0))
            if not r:
                if loadgen.poll() is not None:
                    raise RuntimeError(f"load generator exited ({loadgen.returncode}): "
                                       f"{loadgen.stderr.read().decode(errors='replace')[-2000:]}")
                continue
            chunk = os.read(loadgen.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"load generator closed its output: "
                                   f"{loadgen.stderr.read().decode(errors='replace')[-2000:]}")
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                event = json.loads(line)
                if event.get("event") == "window_start" and job.profile:
                    path = os.path.join(outdir, f"profile-{job.server}-{job.scenario}.txt")
                    recorder = profiling.start_record(server.pid, event["seconds"] - 0.5, path,
                                                      cpu=LOADGEN_CPU)
                    run.profile = path
                elif event.get("event") == "result":
                    result = event
        if server.proc.poll() is not None:
            raise RuntimeError(f"{job.server} died during the run:\n{server.log_tail()}")
        run.result = result
        if result.get("slow_drops"):
            # Say why: the server's own lines about the dropped and the behind.
            try:
                with open(server.logfile, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
                result["server_says"] = [line for line in text.splitlines()
                                         if "slow" in line or "behind" in line or "caught up" in line][-40:]
            except OSError:
                pass
        run.ok = bool(result.get("ok"))
        if not run.ok:
            run.error = result.get("error")
    except Exception as e:  # one failed run must not stop the benchmark
        run.error = f"{type(e).__name__}: {e}"
    finally:
        if recorder is not None:
            try:
                recorder.wait(60)
            except subprocess.TimeoutExpired:
                recorder.kill()
        if server is not None:
            server.stop()
            if run.error:
                run.error += "\n--- server log ---\n" + server.log_tail(8)
        if loadgen is not None:
            try:
                loadgen.stdin.close()
            except OSError:
                pass
            try:
                loadgen.wait(15)
            except subprocess.TimeoutExpired:
                loadgen.kill()
                loadgen.wait()
    run.wall_seconds = time.monotonic() - t0
    return run


def all_specs(args: argparse.Namespace) -> Dict[str, Any]:
    """Every server, the baseline's included (L{rooms_plan.baseline_specs})."""
    specs: Dict[str, Any] = dict(server_specs())
    specs.update(rooms_plan.baseline_specs(args.baseline, getattr(args, "baseline_tree", None)))
    return specs


def background_load(seconds: float = 1.0) -> Dict[str, float]:
    from .loadgen import busy_between, cpu_jiffies

    a = cpu_jiffies()
    time.sleep(seconds)
    return busy_between(a, cpu_jiffies())


def environment(args: argparse.Namespace, argv: List[str]) -> Dict[str, Any]:
    def cmd(*c: str) -> str:
        try:
            return subprocess.run(c, capture_output=True, text=True, cwd=REPO,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ng = ngircd_path()
    versions = {}
    for mod in ("twisted", "cryptography"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            versions[mod] = "?"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench " + " ".join(argv),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "pinned": bool((os.cpu_count() or 1) >= 2 and shutil.which("taskset")),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "twisted": versions["twisted"],
        "cryptography": versions["cryptography"],
        "ngircd": (cmd(ng, "--version").splitlines() or ["?"])[0] if ng else None,
        "git": cmd("git", "rev-parse", "--short", "HEAD"),
        "git_dirty_chatsvc": bool(cmd("git", "status", "--porcelain", "--", "chatsvc")),
        "args": vars(args),
    }


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:  # keep the runner itself off the server's CPU
        if (os.cpu_count() or 1) >= 2:
            os.sched_setaffinity(0, {int(LOADGEN_CPU)})
    except (AttributeError, OSError):
        pass
    specs = all_specs(args)
    servers = [s for s in args.servers.split(",") if s]
    if args.baseline:
        servers += [s for s in rooms_plan.BASELINE_SERVERS if s not in servers]
    scenarios = [s for s in args.scenarios.split(",") if s]
    for name in servers:
        if name not in specs:
            sys.exit(f"unknown server {name!r}; choose from {', '.join(specs)}")
    for name in scenarios:
        if name not in SCENARIO_SERVERS:
            sys.exit(f"unknown scenario {name!r}; choose from {', '.join(ALL_SCENARIOS)}")
    notes = []
    for name in list(servers):
        if not specs[name].available:
            notes.append(f"{name}: {specs[name].note}")
            servers.remove(name)
    outdir = args.out or os.path.join(
        REPO, "bench", "results", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(outdir, exist_ok=True)
    jobs = build_plan(args, servers, scenarios)
    env = environment(args, argv)
    env["notes"] = notes
    load = background_load()
    deadline = time.monotonic() + args.wait_quiet
    while max(load.values() or [0]) > 0.10 and time.monotonic() < deadline:
        print(f"bench: waiting for a quiet machine: CPUs busy "
              f"{', '.join(f'{k}: {100 * v:.0f}%' for k, v in sorted(load.items()))}", flush=True)
        load = background_load(5.0)
    env["background_load_at_start"] = load
    if max(load.values() or [0]) > 0.10:
        print(f"bench: warning: the machine is busy before starting "
              f"({', '.join(f'CPU {k}: {100 * v:.0f}%' for k, v in sorted(load.items()))}); "
              "results will be low (see 'other load')", flush=True)
    print(f"bench: {len(jobs)} runs -> {outdir}", flush=True)
    for note in notes:
        print(f"bench: note: {note}", flush=True)
    runs: List[Run] = []
    t_start = time.monotonic()
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    disk = "/var/tmp" if os.access("/var/tmp", os.W_OK) else None
    env["server_output"] = "tmpfs (/dev/shm)" if shm else "the temp dir"
    env["message_log_dir"] = disk or "the temp dir"
    with tempfile.TemporaryDirectory(prefix="chatsvc-bench-", dir=shm) as workdir, \
            tempfile.TemporaryDirectory(prefix="chatsvc-bench-log-", dir=disk) as logdir:
        if args.baseline and any(s in rooms_plan.BASELINE_SERVERS for s in servers):
            args.baseline_tree = rooms_plan.baseline_tree(args.baseline, workdir)
            env["baseline_label"] = rooms_plan.baseline_label(args.baseline)
        for i, job in enumerate(jobs, 1):
            size = job.opts.get("clients", "")
            label = f"[{i}/{len(jobs)}] {job.scenario} {job.server} n={size} rep={job.rep + 1}"
            if job.profile:
                label = f"[{i}/{len(jobs)}] profile {job.scenario} {job.server} n={size}"
            print(label + " ...", end=" ", flush=True)
            run = run_job(job, args, workdir, outdir, logdir)
            runs.append(run)
            print(_one_line(run), flush=True)
            with open(os.path.join(outdir, "runs.json"), "w") as f:
                json.dump({"environment": env, "runs": [asdict(r) for r in runs]}, f, indent=1)
    env["wall_seconds"] = time.monotonic() - t_start
    report = write_report(outdir, env, [asdict(r) for r in runs])
    with open(os.path.join(outdir, "runs.json"), "w") as f:
        json.dump({"environment": env, "runs": [asdict(r) for r in runs]}, f, indent=1)
    print(f"bench: report {report} ({env['wall_seconds']:.0f} s)", flush=True)
    failed = [r for r in runs if not r.ok]
    for r in failed:
        print(f"bench: FAILED {r.scenario} {r.server} rep {r.rep + 1}: {r.error}", file=sys.stderr)
    chat_fanout = [r for r in runs if r.ok and r.scenario == "fanout" and r.server == "chatsvc"]
    if "fanout" in scenarios and "chatsvc" in servers and \
            not any(r.result.get("deliveries", 0) > 0 for r in chat_fanout):
        print("bench: chatsvc delivered nothing", file=sys.stderr)
        return 1
    return 1 if failed else 0


def _one_line(run: Run) -> str:
    from .report import other_load

    if not run.ok:
        return "FAILED: " + (run.error or "?").splitlines()[0][:200]
    r = run.result
    cpu = r.get("server_cpu")
    lg = r.get("loadgen_cpu")
    other = other_load(r)
    cpus = (f" server {100 * cpu:.0f}% loadgen {100 * lg:.0f}%"
            if cpu is not None and lg is not None else "")
    if other is not None:
        cpus += f" other {100 * other:.0f}%"
    if run.scenario == "fanout":
        return (f"{r['deliveries_per_s']:,.0f} deliveries/s{cpus}"
                f" short={r['clients_short']} slow={r['slow_drops']} ({run.wall_seconds:.0f} s)")
    if run.scenario == "overload":
        return (f"{r['deliveries_per_s']:,.0f} deliveries/s{cpus} sent={r['total_sent']}"
                f" short={r['clients_short']} slow={r['slow_drops']}"
                f" delivered={100 * r['delivered_fraction']:.1f}% ({run.wall_seconds:.0f} s)")
    if run.scenario == "latency":
        return (f"p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms ({r['samples']} samples)"
                f"{cpus} ({run.wall_seconds:.0f} s)")
    if run.scenario == "memory":
        return (f"{r['kib_per_client']:.2f} KiB/client (RSS {r['rss_before_kib'] / 1024:.0f} -> "
                f"{r['rss_after_kib'] / 1024:.0f} MiB, registration {r['registration_seconds']:.0f} s)"
                f" ({run.wall_seconds:.0f} s)")
    if run.scenario == "setup":
        return f"{r['setups_per_s']:,.0f} set-ups/s{cpus} ({run.wall_seconds:.0f} s)"
    if run.scenario in rooms_plan.SCENARIO_SERVERS:
        return rooms_plan.one_line(run, cpus)
    return "ok"
