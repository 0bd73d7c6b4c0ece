# -*- test-case-name: tests.test_bench_smoke -*-
"""
The runner's part for the scenarios of protocol version 2 (issue 9): their
options, their runs, and the I{baseline}: the same chatsvc scenarios served
by another version of chatsvc (a git revision or a directory), in the same
run, so that "today's" figures are measured beside the new ones.

  - C{register}: register 2,500 / 5,000 / 10,000 clients into the default
    room (L{bench.rooms}, mode C{register}); chatsvc plaintext and encrypted,
    and the baseline's two when C{--baseline} is given.
  - C{rooms}: for each layout of C{--rooms-layouts}, I{R}xI{M}: 100x10 is
    1,000 clients in 100 rooms of 10 (each also in the default room), one
    sender per room at saturation; 1x1000 the single-room fan-out (1,000
    clients, C{--senders} senders) issue 9 compares it with, and 1x10 one
    room as large (10 clients, all senders), in the same repetition.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

from .servers import REPO, ServerSpec

ROOMS_LOADGEN = "bench.rooms"

SCENARIO_SERVERS = {
    "register": ["chatsvc", "chatsvc-enc", "chatsvc-base", "chatsvc-base-enc"],
    "rooms": ["chatsvc", "chatsvc-enc"],
}
SMOKE_SERVERS = {
    "register": ["chatsvc", "chatsvc-enc"],
    "rooms": ["chatsvc", "chatsvc-enc"],
}
BASELINE_SERVERS = ["chatsvc-base", "chatsvc-base-enc"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--register-clients", default="2500,5000,10000",
                   help="register: clients registered into the default room, comma-separated")
    p.add_argument("--register-concurrency", type=int, default=64,
                   help="register: clients connecting and registering at once")
    p.add_argument("--rooms-layouts", default="100x10,1x1000,1x10",
                   help="rooms: RxM is R rooms of M members, one sender per room (R <= 100); "
                        "1xN is the single-room fan-out of N clients with --senders senders "
                        "(1x1000: as many clients as 100x10; 1x10: one room as large)")
    p.add_argument("--baseline", metavar="REV_OR_DIR",
                   help="also run chatsvc from this git revision (exported with git archive) or "
                        "directory, as the servers chatsvc-base and chatsvc-base-enc (added to "
                        "--servers; they take part in the register scenario)")


def shrink_for_smoke(args: argparse.Namespace) -> None:
    args.register_clients = "40,80"
    args.rooms_layouts = "4x10,1x40,1x10"


def plan(scenario: str, args: argparse.Namespace, names: List[str], rep: int,
         add: Callable[..., None], first_only: bool = False) -> None:
    """
    Add the runs of one repetition of C{scenario} (C{add} as in
    L{runner.build_plan}); C{first_only}: of the first rooms layout only.
    """
    common = {"loadgen": ROOMS_LOADGEN}
    if scenario == "register":
        for n in [int(x) for x in args.register_clients.split(",") if x.strip()]:
            for name in names:
                add("register", name, rep, clients=n, concurrency=args.register_concurrency,
                    deadline=120 + n / 10, **common)
        return
    layouts = parse_layouts(args.rooms_layouts)
    for layout in layouts[:1] if first_only else layouts:
        rooms, size = layout
        n = rooms * size
        traffic = dict(window=args.window, duration=args.duration, warmup=args.warmup,
                       drain=20.0, deadline=120 + n / 50, concurrency=32,
                       layout=f"{rooms}x{size}", clients=n, **common)
        for name in names:
            if rooms == 1:
                add("rooms", name, rep, senders=args.senders, submode="fanout", **traffic)
            else:
                add("rooms", name, rep, rooms=rooms, **traffic)


def parse_layouts(text: str) -> List[Tuple[int, int]]:
    """C{"100x10,1x1000"}: [(100, 10), (1, 1000)]."""
    out = []
    for part in text.split(","):
        if part.strip():
            rooms, _, size = part.strip().partition("x")
            out.append((int(rooms), int(size)))
    return out


def job_mode(opts: Dict[str, Any]) -> str:
    """The load generator's mode of a run of these scenarios."""
    return opts.get("submode") or opts["mode"]


def baseline_tree(rev_or_dir: str, workdir: str) -> str:
    """A directory holding chatsvc as of C{rev_or_dir} (exported there if a revision)."""
    if os.path.isdir(rev_or_dir):
        return os.path.abspath(rev_or_dir)
    sha = subprocess.run(["git", "rev-parse", "--verify", rev_or_dir + "^{commit}"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.strip()
    tree = tempfile.mkdtemp(prefix=f"chatsvc-base-{sha[:7]}-", dir=workdir)
    archive = subprocess.Popen(["git", "archive", sha, "chatsvc", "twisted", "keys"],
                               cwd=REPO, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", tree], stdin=archive.stdout, check=True)
    archive.stdout.close()
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {sha} failed")
    return tree


def baseline_label(rev_or_dir: str) -> str:
    if os.path.isdir(rev_or_dir):
        return os.path.basename(os.path.abspath(rev_or_dir))
    try:
        return subprocess.run(["git", "rev-parse", "--short", rev_or_dir], cwd=REPO,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return rev_or_dir


def baseline_specs(rev_or_dir: Optional[str], tree: Optional[str]) -> Dict[str, ServerSpec]:
    """chatsvc-base and chatsvc-base-enc: available when a baseline was given."""
    label = baseline_label(rev_or_dir) if rev_or_dir else "?"
    given = rev_or_dir is not None  # the tree is exported once the run starts
    note = "" if given else "no --baseline given; skipped"
    return {
        "chatsvc-base": ServerSpec("chatsvc-base", "chat", f"chatsvc {label} (plaintext)",
                                   available=given, note=note, tree=tree),
        "chatsvc-base-enc": ServerSpec("chatsvc-base-enc", "chat-enc",
                                       f"chatsvc {label} (encrypted)", encrypted=True,
                                       available=given, note=note, tree=tree),
    }


def one_line(run: Any, cpus: str) -> str:
    r = run.result
    if run.scenario == "register":
        return (f"v{r['protocol']}: registered in {r['registration_seconds']:.1f} s, server "
                f"{r['server_cpu_s']:.1f} CPU-s to idle ({r['server_ms_per_client']:.2f} ms/client), "
                f"loadgen {r['loadgen_cpu_s']:.1f} CPU-s, {r['kib_per_client']:.2f} KiB/client"
                f" ({run.wall_seconds:.0f} s)")
    layout = run.opts.get("layout", "?")
    per = r.get("deliveries_per_cpu_s")
    per_text = f"{per:,.0f}" if per is not None else "–"
    return (f"{layout}: {r['deliveries_per_s']:,.0f} deliveries/s, {per_text} per server CPU-s"
            f"{cpus} short={r['clients_short']} slow={r['slow_drops']} ({run.wall_seconds:.0f} s)")
