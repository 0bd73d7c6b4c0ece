"""
The report: C{results.md} (medians over repetitions, the issue's targets),
C{deliveries.png} (deliveries/s against clients) and C{latency_cdf.png},
from the runs the runner collected. Plots need matplotlib (the C{bench}
extra); without it the report says so and carries on.
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from typing import Any, Dict, List, Optional, Tuple

from .servers import server_specs

LABELS = {name: spec.label for name, spec in server_specs().items()}
ORDER = ["chatsvc", "chatsvc-enc", "chatsvc-log", "chatsvc-irc", "relay", "ngircd"]


def _median(values: List[float]) -> Optional[float]:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(v: Optional[float], spec: str = ",.0f", suffix: str = "") -> str:
    if v is None:
        return "–"
    return format(v, spec) + suffix


def _pct(v: Optional[float]) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def _spread(values: List[float], spec: str = ",.0f") -> str:
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return ""
    return f" ({format(min(values), spec)}–{format(max(values), spec)})"


def other_load(result: Dict[str, Any]) -> Optional[float]:
    """
    CPU used on the two benchmark CPUs by anything but the server and the
    load generator during the measured window (the larger of the two).
    """
    busy = result.get("cpu_busy") or {}
    server, loadgen = result.get("server_cpu"), result.get("loadgen_cpu")
    if "0" not in busy or "1" not in busy or server is None or loadgen is None:
        return None
    return max(0.0, busy["0"] - server, busy["1"] - loadgen)


def _other(results: List[Dict[str, Any]]) -> str:
    return _pct(_median([other_load(r) for r in results]))


def _group(runs: List[Dict[str, Any]], scenario: str) -> Dict[Tuple[str, int], List[Dict[str, Any]]]:
    groups: Dict[Tuple[str, int], List[Dict[str, Any]]] = defaultdict(list)
    for r in runs:
        if r["scenario"] == scenario and r["ok"] and r["rep"] >= 0:
            groups[(r["server"], int(r["opts"].get("clients", 0)))].append(r["result"])
    return groups


def _sorted_keys(groups: Dict[Tuple[str, int], Any]) -> List[Tuple[str, int]]:
    return sorted(groups, key=lambda k: (k[1], ORDER.index(k[0]) if k[0] in ORDER else 99))


def _col(results: List[Dict[str, Any]], key: str) -> List[float]:
    return [r.get(key) for r in results if r.get(key) is not None]


def _per_rep(runs: List[Dict[str, Any]], scenario: str, server: str,
             clients: Optional[int], key: str) -> Dict[int, float]:
    out = {}
    for r in runs:
        if (r["scenario"] == scenario and r["server"] == server and r["ok"] and r["rep"] >= 0
                and (clients is None or int(r["opts"].get("clients", 0)) == clients)):
            v = r["result"].get(key)
            if v is not None:
                out[r["rep"]] = v
    return out


def _ratio(a: Dict[int, float], b: Dict[int, float]) -> Optional[float]:
    """Median over repetitions of a/b, pairing the runs of the same repetition."""
    ratios = [a[k] / b[k] for k in a if k in b and b[k]]
    return _median(ratios)


def targets(runs: List[Dict[str, Any]], env: Dict[str, Any]) -> List[Tuple[str, str, str, str]]:
    head = int(env["args"]["headline_clients"])
    rows = []

    def verdict(ok: Optional[bool]) -> str:
        return "–" if ok is None else ("met" if ok else "**missed**")

    plain = _per_rep(runs, "fanout", "chatsvc", head, "deliveries_per_s")
    enc = _per_rep(runs, "fanout", "chatsvc-enc", head, "deliveries_per_s")
    log = _per_rep(runs, "fanout", "chatsvc-log", head, "deliveries_per_s")
    relay = _per_rep(runs, "fanout", "relay", head, "deliveries_per_s")
    ng = _per_rep(runs, "fanout", "ngircd", head, "deliveries_per_s")
    r_ng, r_relay = _ratio(plain, ng), _ratio(plain, relay)
    rows.append((
        "1", f"plaintext fan-out, {head:,} clients: >= 1.0x ngIRCd and >= 2x the relay",
        f"{_fmt(_median(list(plain.values())))} deliveries/s = "
        f"{_fmt(r_ng, '.2f', 'x')} ngIRCd, {_fmt(r_relay, '.2f', 'x')} relay",
        verdict(None if r_ng is None and r_relay is None else
                (r_ng is None or r_ng >= 1.0) and (r_relay is None or r_relay >= 2.0)),
    ))
    r_enc = _ratio(enc, plain)
    rows.append(("2", "encrypted fan-out >= 0.8x plaintext",
                 f"{_fmt(_median(list(enc.values())))} deliveries/s = {_fmt(r_enc, '.2f', 'x')}",
                 verdict(None if r_enc is None else r_enc >= 0.8)))
    lat_p = _median(list(_per_rep(runs, "latency", "chatsvc", None, "p99_ms").values()))
    lat_e = _median(list(_per_rep(runs, "latency", "chatsvc-enc", None, "p99_ms").values()))
    rate = env["args"]["rate"]
    rows.append(("3", f"p99 latency at {rate:.0f} msg/s into {head:,} clients: "
                      "<= 15 ms plaintext, <= 25 ms encrypted",
                 f"{_fmt(lat_p, '.1f', ' ms')} plaintext, {_fmt(lat_e, '.1f', ' ms')} encrypted",
                 verdict(None if lat_p is None and lat_e is None else
                         (lat_p is None or lat_p <= 15) and (lat_e is None or lat_e <= 25))))
    m = int(env["args"]["memory_clients"])
    mem_p = _median(list(_per_rep(runs, "memory", "chatsvc", None, "kib_per_client").values()))
    mem_e = _median(list(_per_rep(runs, "memory", "chatsvc-enc", None, "kib_per_client").values()))
    rows.append(("4", f"idle memory at {m:,} clients: <= 4 KiB/client plaintext, <= 6 encrypted",
                 f"{_fmt(mem_p, '.2f', ' KiB')} plaintext, {_fmt(mem_e, '.2f', ' KiB')} encrypted",
                 verdict(None if mem_p is None and mem_e is None else
                         (mem_p is None or mem_p <= 4) and (mem_e is None or mem_e <= 6))))
    setup = _median(list(_per_rep(runs, "setup", "chatsvc-enc", None, "setups_per_s").values()))
    rows.append(("5", "encrypted set-up (handshake + hello + welcome) >= 1,000/s",
                 f"{_fmt(setup, ',.0f', '/s')}", verdict(None if setup is None else setup >= 1000)))
    r_log = _ratio(log, plain)
    rows.append(("6", "message log on: <= 10% fewer deliveries than off",
                 f"{_fmt(r_log, '.2f', 'x')} of log-off",
                 verdict(None if r_log is None else r_log >= 0.9)))
    over = [r for r in runs if r["scenario"] == "overload" and r["ok"] and r["rep"] >= 0]
    if over:
        slow = sum(r["result"]["slow_drops"] for r in over)
        short = max(r["result"]["clients_short"] for r in over)
        frac = min(r["result"]["delivered_fraction"] for r in over)
        rows.append(("7", "overload: every client gets every message, no `slow` drops",
                     f"{slow} slow drops in {len(over)} runs; worst run: {short} clients short, "
                     f"{100 * frac:.1f}% of deliveries made",
                     verdict(slow == 0 and short == 0)))
    else:
        rows.append(("7", "overload: every client gets every message, no `slow` drops", "–", "–"))
    return rows


def write_report(outdir: str, env: Dict[str, Any], runs: List[Dict[str, Any]]) -> str:
    lines: List[str] = []
    add = lines.append
    args = env["args"]
    add(f"# chatsvc benchmark — {env['date']}")
    add("")
    add(f"`{env['command']}` — {args['reps']} interleaved repetition(s), medians shown "
        "(min–max in brackets). Server on CPU 0, load generator on CPU 1"
        + ("" if env.get("pinned") else " (**not pinned**: taskset missing or one CPU)") + ".")
    add("")
    add(f"Machine: {env['cpu']} ({env['cpus']} CPUs), Linux {env['kernel']}, Python "
        f"{env['python']}, Twisted {env['twisted']}, cryptography {env['cryptography']}, "
        f"{env['ngircd'] or 'ngIRCd absent'}. chatsvc at git {env['git']}"
        + (" **with uncommitted changes in chatsvc/**" if env.get("git_dirty_chatsvc") else "")
        + ".")
    add("")
    add(f"Server output (diagnostic log lines) goes to {env.get('server_output', '?')}; the "
        f"chatsvc message log (target 6) to a file in {env.get('message_log_dir', '?')} (disk).")
    for note in env.get("notes", []):
        add(f"\nNote: {note}")
    add("")
    add("## Targets (issue #4)")
    add("")
    add("| # | target | measured (median) | |")
    add("| --- | --- | --- | --- |")
    for row in targets(runs, env):
        add("| " + " | ".join(row) + " |")
    add("")

    noisy = [r for r in runs if r["ok"] and (other_load(r["result"]) or 0) > 0.10]
    if noisy:
        add(f"**Warning:** in {len(noisy)} of {sum(1 for r in runs if r['ok'])} runs, other "
            "processes used more than 10% of a benchmark CPU (column *other load*): the machine "
            "was not quiet, and those numbers are low.")
        add("")

    # -- fan-out
    groups = _group(runs, "fanout")
    if groups:
        add(f"## Fan-out at saturation (closed loop, {args['senders']} senders, 64-byte texts)")
        add("")
        add(f"Every sender keeps {args['window']} messages in flight (acknowledged when the "
            "last-registered client has them), so the server always has work but no queue grows "
            "without bound. *per server CPU-s* is deliveries/s divided by the server's CPU use: "
            "what one fully busy core would do.")
        add("")
        add("| server | clients | deliveries/s | server CPU | per server CPU-s | loadgen CPU | "
            "other load | all delivered | runs |")
        add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
        for key in _sorted_keys(groups):
            res = groups[key]
            d = _col(res, "deliveries_per_s")
            short = sum(r["clients_short"] for r in res)
            slow = sum(r["slow_drops"] for r in res)
            ok = "yes" if short == 0 and slow == 0 else f"no: {short} short, {slow} slow"
            add(f"| {LABELS.get(key[0], key[0])} | {key[1]:,} | {_fmt(_median(d))}{_spread(d)} | "
                f"{_pct(_median(_col(res, 'server_cpu')))} | "
                f"{_fmt(_median(_col(res, 'deliveries_per_cpu_s')))} | "
                f"{_pct(_median(_col(res, 'loadgen_cpu')))} | {_other(res)} | {ok} | {len(res)} |")
        add("")

    groups = _group(runs, "overload")
    if groups:
        add(f"## Overload (open loop: {args['senders']} senders push {args['budget']:,} messages "
            "each as fast as their sockets take them)")
        add("")
        add("| server | clients | sent | deliveries/s | slow drops | clients short | "
            "deliveries made | drain s | server CPU | loadgen CPU | other load | runs |")
        add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for key in _sorted_keys(groups):
            res = groups[key]
            add(f"| {LABELS.get(key[0], key[0])} | {key[1]:,} | "
                f"{_fmt(_median(_col(res, 'total_sent')))} | "
                f"{_fmt(_median(_col(res, 'deliveries_per_s')))} | "
                f"{_fmt(_median(_col(res, 'slow_drops')))} | "
                f"{_fmt(_median(_col(res, 'clients_short')))} | "
                f"{_fmt(_median(_col(res, 'delivered_fraction')), '.1%')} | "
                f"{_fmt(_median(_col(res, 'drain_seconds')), '.1f')} | "
                f"{_pct(_median(_col(res, 'server_cpu')))} | "
                f"{_pct(_median(_col(res, 'loadgen_cpu')))} | {_other(res)} | {len(res)} |")
        add("")

    groups = _group(runs, "latency")
    if groups:
        add(f"## Latency at {args['rate']:.0f} messages/s offered ({args['probes']} sampled "
            "receivers spread over the join order; send to receive, same clock)")
        add("")
        add("| server | clients | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | samples | "
            "server CPU | loadgen CPU | other load | runs |")
        add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for key in _sorted_keys(groups):
            res = groups[key]
            add(f"| {LABELS.get(key[0], key[0])} | {key[1]:,} | "
                + " | ".join(_fmt(_median(_col(res, k)), ".2f")
                             for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"))
                + f" | {_fmt(_median(_col(res, 'samples')))} | "
                f"{_pct(_median(_col(res, 'server_cpu')))} | "
                f"{_pct(_median(_col(res, 'loadgen_cpu')))} | {_other(res)} | {len(res)} |")
        add("")

    groups = _group(runs, "memory")
    if groups:
        add("## Idle memory (RSS after registering every client and going idle, less RSS before)")
        add("")
        add("| server | clients | RSS before MiB | RSS after MiB | KiB/client | registration s | runs |")
        add("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for key in _sorted_keys(groups):
            res = groups[key]
            k = _col(res, "kib_per_client")
            add(f"| {LABELS.get(key[0], key[0])} | {key[1]:,} | "
                f"{_fmt(_median(_col(res, 'rss_before_kib')) / 1024 if res else None, '.1f')} | "
                f"{_fmt(_median(_col(res, 'rss_after_kib')) / 1024 if res else None, '.1f')} | "
                f"{_fmt(_median(k), '.2f')}{_spread(k, '.2f')} | "
                f"{_fmt(_median(_col(res, 'registration_seconds')), '.1f')} | {len(res)} |")
        add("")

    groups = _group(runs, "setup")
    if groups:
        add(f"## Connection set-up (connect, [handshake,] register, disconnect; "
            f"{args['setup_concurrency']} at a time)")
        add("")
        add("| server | set-ups/s | server CPU | loadgen CPU | other load | runs |")
        add("| --- | ---: | ---: | ---: | ---: | ---: |")
        for key in _sorted_keys(groups):
            res = groups[key]
            s = _col(res, "setups_per_s")
            add(f"| {LABELS.get(key[0], key[0])} | {_fmt(_median(s))}{_spread(s)} | "
                f"{_pct(_median(_col(res, 'server_cpu')))} | "
                f"{_pct(_median(_col(res, 'loadgen_cpu')))} | {_other(res)} | {len(res)} |")
        add("")

    from .rooms_report import sections as rooms_sections

    lines.extend(rooms_sections(runs, env))  # issue 9: register, rooms

    profiles = [r for r in runs if r.get("profile") and os.path.exists(r["profile"])]
    if profiles:
        from .profile import summarize

        add("## Profiles (py-spy, chatsvc at saturation)")
        for r in profiles:
            res = r["result"] if r["ok"] else {}
            add("")
            where = (f", {r['scenario']} {r['opts']['layout']}" if r["opts"].get("layout")
                     else "")
            add(f"### {LABELS.get(r['server'], r['server'])}{where}: "
                f"{_fmt(res.get('deliveries_per_s'))} deliveries/s in the profiled run "
                f"(`{os.path.basename(r['profile'])}`)")
            add("")
            add("```")
            add(summarize(r["profile"], 15))
            add("```")
        add("")

    failed = [r for r in runs if not r["ok"]]
    if failed:
        add("## Failed runs")
        add("")
        for r in failed:
            first = (r.get("error") or "?").splitlines()[0]
            add(f"- {r['scenario']} {r['server']} rep {r['rep'] + 1}: {first}")
        add("")

    plots = _plots(outdir, runs)
    add("## Plots")
    add("")
    if plots:
        for name in plots:
            add(f"![{name}]({name})")
    else:
        add("matplotlib is not installed (`pip install -e .[bench]`): no plots.")
    add("")
    add(f"Raw data: `runs.json`. Wall time {env.get('wall_seconds', 0):.0f} s.")
    path = os.path.join(outdir, "results.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def _plots(outdir: str, runs: List[Dict[str, Any]]) -> List[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    groups = _group(runs, "fanout")
    if groups:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        by_server: Dict[str, List[Tuple[int, float, float, float]]] = defaultdict(list)
        for (server, n), res in groups.items():
            d = _col(res, "deliveries_per_s")
            by_server[server].append((n, _median(d), min(d), max(d)))
        for server in sorted(by_server, key=lambda s: ORDER.index(s) if s in ORDER else 99):
            pts = sorted(by_server[server])
            xs = [p[0] for p in pts]
            ys = [p[1] for p in pts]
            err = [[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=LABELS.get(server, server))
        ax.set_xscale("log")
        ax.set_xlabel("registered clients")
        ax.set_ylabel("deliveries / s")
        ax.set_title("Fan-out at saturation (median, min–max)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, "deliveries.png"), dpi=120)
        plt.close(fig)
        made.append("deliveries.png")
    lat: Dict[str, List[float]] = defaultdict(list)
    for r in runs:
        if r["scenario"] == "latency" and r["ok"] and r["rep"] >= 0 and r["result"].get("cdf_ms"):
            lat[r["server"]].append(r["result"]["cdf_ms"])
    if lat:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for server in sorted(lat, key=lambda s: ORDER.index(s) if s in ORDER else 99):
            # the median over repetitions of each quantile
            curves = lat[server]
            q = [statistics.median(c[i] for c in curves) for i in range(len(curves[0]))]
            ys = [i / (len(q) - 1) for i in range(len(q))]
            ax.plot(q, ys, label=LABELS.get(server, server))
        ax.set_xscale("log")
        ax.set_xlabel("latency, ms (send to receive)")
        ax.set_ylabel("fraction of deliveries")
        ax.set_title("Latency CDF")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, "latency_cdf.png"), dpi=120)
        plt.close(fig)
        made.append("latency_cdf.png")
    return made



