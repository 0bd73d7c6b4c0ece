# -*- test-case-name: tests.test_bench_smoke -*-
"""
The report's sections for the scenarios of protocol version 2 (issue 9):
registration into the default room (time, server CPU, growth with the number
of clients, against the baseline version) and rooms against the single-room
fan-out (deliveries per server CPU-second).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any, Dict, List, Optional, Tuple

ORDER = ["chatsvc", "chatsvc-enc", "chatsvc-base", "chatsvc-base-enc"]
REFERENCE_10K = {"chatsvc": 18.0, "chatsvc-enc": 55.0}  # issue 9: "today's" seconds (v1)


def _median(values: List[Optional[float]]) -> Optional[float]:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(v: Optional[float], spec: str = ",.0f", suffix: str = "") -> str:
    return "–" if v is None else format(v, spec) + suffix


def _pct(v: Optional[float]) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def _other(result: Dict[str, Any]) -> Optional[float]:
    busy = result.get("cpu_busy") or {}
    server, loadgen = result.get("server_cpu"), result.get("loadgen_cpu")
    if "0" not in busy or "1" not in busy or server is None or loadgen is None:
        return None
    return max(0.0, busy["0"] - server, busy["1"] - loadgen)


def _paired(a: Dict[int, float], b: Dict[int, float]) -> Optional[float]:
    """Median over repetitions of a/b, each repetition's runs paired."""
    return _median([a[k] / b[k] for k in a if k in b and b[k]])


def labels(env: Dict[str, Any]) -> Dict[str, str]:
    base = (env.get("args") or {}).get("baseline") or "baseline"
    base = env.get("baseline_label") or base
    return {"chatsvc": "chatsvc (plaintext)", "chatsvc-enc": "chatsvc (encrypted)",
            "chatsvc-base": f"chatsvc {base} (plaintext)",
            "chatsvc-base-enc": f"chatsvc {base} (encrypted)"}


def _runs(runs: List[Dict[str, Any]], scenario: str) -> List[Dict[str, Any]]:
    return [r for r in runs if r["scenario"] == scenario and r["ok"] and r["rep"] >= 0]


def _by(runs: List[Dict[str, Any]], key: str) -> Dict[Tuple[str, Any], List[Dict[str, Any]]]:
    groups: Dict[Tuple[str, Any], List[Dict[str, Any]]] = defaultdict(list)
    for r in runs:
        groups[(r["server"], r["opts"].get(key))].append(r)
    return groups


def _order(server: str) -> int:
    return ORDER.index(server) if server in ORDER else 99


def sections(runs: List[Dict[str, Any]], env: Dict[str, Any]) -> List[str]:
    """Markdown lines for the register and rooms scenarios (none if neither ran)."""
    return _register(runs, env) + _rooms(runs, env)


def _register(runs: List[Dict[str, Any]], env: Dict[str, Any]) -> List[str]:
    reg = _runs(runs, "register")
    if not reg:
        return []
    names = labels(env)
    out = ["## Registration into the default room (issue 9)", "",
           "Clients register one after another (a version 1 `hello`, so into the default "
           f"room), {env['args'].get('register_concurrency', 64)} at a time. *server CPU-s* is "
           "the server's CPU from the first connect until it is idle again (the `joined` "
           "it still writes included); *ms/client* is that over the clients. Linear growth "
           "keeps ms/client flat; with presence for everyone (version 1) it grows with the "
           "number of members. *other load*: what other processes used during the "
           "registration.", "",
           "| server | clients | protocol | registration s | server CPU-s | ms/client | "
           "loadgen CPU-s | KiB/client | other load | runs |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    groups = _by(reg, "clients")
    for server, n in sorted(groups, key=lambda k: (_order(k[0]), k[1])):
        res = [r["result"] for r in groups[(server, n)]]
        out.append(
            f"| {names.get(server, server)} | {n:,} | {res[0].get('protocol', '?')} | "
            f"{_fmt(_median([x['registration_seconds'] for x in res]), '.1f')} | "
            f"{_fmt(_median([x['server_cpu_s'] for x in res]), '.1f')} | "
            f"{_fmt(_median([x['server_ms_per_client'] for x in res]), '.2f')} | "
            f"{_fmt(_median([x['loadgen_cpu_s'] for x in res]), '.1f')} | "
            f"{_fmt(_median([x['kib_per_client'] for x in res]), '.2f')} | "
            f"{_pct(_median([_other(x) for x in res]))} | {len(res)} |")
    out += ["", "Growth (ms/client at the largest size over ms/client at the smallest; 1.0 is "
            "linear, the ratio of the sizes is quadratic), and against the baseline at the "
            "same size (time and server CPU, each repetition paired):", ""]
    for server in sorted({s for s, _ in groups}, key=_order):
        sizes = sorted(n for s, n in groups if s == server)
        per = {n: _median([r["result"]["server_ms_per_client"] for r in groups[(server, n)]])
               for n in sizes}
        parts = []
        if len(sizes) > 1 and per[sizes[0]]:
            parts.append(f"{_fmt(per[sizes[-1]] / per[sizes[0]], '.2f', 'x')} from {sizes[0]:,} "
                         f"to {sizes[-1]:,} clients ({sizes[-1] / sizes[0]:.0f}x the clients)")
        base = {"chatsvc": "chatsvc-base", "chatsvc-enc": "chatsvc-base-enc"}.get(server)
        for n in sizes:
            if base and (base, n) in groups:
                t = _paired(*[{r["rep"]: r["result"]["registration_seconds"] for r in groups[k]}
                              for k in ((server, n), (base, n))])
                c = _paired(*[{r["rep"]: r["result"]["server_cpu_s"] for r in groups[k]}
                              for k in ((server, n), (base, n))])
                kib = [_median([r["result"]["kib_per_client"] for r in groups[k]])
                       for k in ((server, n), (base, n))]
                more = kib[0] - kib[1] if None not in kib else None
                parts.append(f"at {n:,}: {_fmt(t, '.2f', 'x')} the baseline's time, "
                             f"{_fmt(c, '.2f', 'x')} its server CPU, {_fmt(more, '+.2f')} "
                             "KiB/client")
        ref = REFERENCE_10K.get(server)
        if ref and (server, 10000) in groups:
            t = _median([r["result"]["registration_seconds"] for r in groups[(server, 10000)]])
            parts.append(f"10,000 in {_fmt(t, '.1f')} s against issue 9's {ref:.0f} s")
        if parts:
            out.append(f"- {names.get(server, server)}: " + "; ".join(parts))
    return out + [""]


def _layout(text: str) -> Tuple[int, int]:
    rooms, _, size = str(text).partition("x")
    return int(rooms), int(size)


def _rooms(runs: List[Dict[str, Any]], env: Dict[str, Any]) -> List[str]:
    rr = _runs(runs, "rooms")
    if not rr:
        return []
    names = labels(env)
    a = env["args"]
    out = ["## Rooms against one room (issue 9)", "",
           "Layout *R*x*M*: *R* rooms of *M* members. With rooms, one sender per room (client "
           "*i* in room *i* mod *R*, every client also in the default room, where nobody "
           f"speaks); in one room (1x*N*), {a.get('senders')} senders. Both closed loop, "
           f"{a.get('window')} messages in flight per sender, every layout in every repetition. "
           "*per server CPU-s* is deliveries/s over the server's CPU use; *µs/message* the "
           "server's CPU per message said, its fan-out included.", "",
           "| server | layout | deliveries/s | messages/s | server CPU | per server CPU-s | "
           "µs/message | loadgen CPU | other load | all delivered | runs |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    groups = _by(rr, "layout")
    for server, layout in sorted(groups, key=lambda k: (_order(k[0]), -_layout(k[1])[0],
                                                         _layout(k[1])[1])):
        res = [r["result"] for r in groups[(server, layout)]]
        us = [x["server_cpu"] / x["sent_per_s"] * 1e6 if x.get("sent_per_s") and
              x.get("server_cpu") is not None else None for x in res]
        short = sum(x["clients_short"] for x in res)
        slow = sum(x["slow_drops"] for x in res)
        ok = "yes" if short == 0 and slow == 0 else f"no: {short} short, {slow} slow"
        out.append(
            f"| {names.get(server, server)} | {layout} | "
            f"{_fmt(_median([x['deliveries_per_s'] for x in res]))} | "
            f"{_fmt(_median([x['sent_per_s'] for x in res]))} | "
            f"{_pct(_median([x.get('server_cpu') for x in res]))} | "
            f"{_fmt(_median([x.get('deliveries_per_cpu_s') for x in res]))} | "
            f"{_fmt(_median(us), '.1f')} | "
            f"{_pct(_median([x.get('loadgen_cpu') for x in res]))} | "
            f"{_pct(_median([_other(x) for x in res]))} | {ok} | {len(res)} |")
    out += ["", "Deliveries per server CPU-second, rooms over one room (each repetition "
            "paired); issue 9's target is >= 0.8x against one room of as many clients "
            "(which compares audiences of 10 and 1,000, see docs/bench/rooms.md); against "
            "one room *as large* it measures what rooms themselves cost:", ""]
    for server in sorted({s for s, _ in groups}, key=_order):
        have = {lay for s, lay in groups if s == server}
        for lay in sorted(have, key=lambda x: _layout(x)[0], reverse=True):
            rooms, size = _layout(lay)
            if rooms == 1:
                continue
            for other, what in ((f"1x{rooms * size}", "as many clients"),
                                (f"1x{size}", "rooms as large")):
                if other not in have:
                    continue
                per = [{r["rep"]: r["result"].get("deliveries_per_cpu_s") or 0
                        for r in groups[(server, x)]} for x in (lay, other)]
                ratio = _paired(*per)
                verdict = ""
                if what == "as many clients":
                    verdict = ": " + ("–" if ratio is None else
                                      ("met" if ratio >= 0.8 else "**missed**"))
                out.append(f"- {names.get(server, server)}: {lay} = {_fmt(ratio, '.2f', 'x')} "
                           f"{other} ({what}){verdict}")
    return out + [""]
