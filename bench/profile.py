"""
Sampling profiles of a running server with py-spy, and a text summary.

    py-spy record --pid PID --duration S --format raw -o stacks.txt --nonblocking

writes collapsed stacks (C{frame;frame;frame COUNT}); L{summarize} turns
them into the functions with the most samples on top of the stack (self)
and anywhere on it (inclusive), which is what a report can name.

    python -m bench.profile stacks.txt      # print the summary
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from typing import List, Optional, Tuple

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> Optional[str]:
    found = shutil.which("py-spy")
    if found:
        return found
    candidate = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return candidate if os.access(candidate, os.X_OK) else None


def start_record(pid: int, seconds: float, out: str, cpu: Optional[str] = None,
                 rate: int = 250) -> Optional[subprocess.Popen]:
    exe = py_spy()
    if exe is None:
        return None
    argv = [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(round(seconds)))),
            "--rate", str(rate), "--format", "raw", "--nonblocking", "-o", out]
    if cpu is not None and (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        argv = ["taskset", "-c", cpu] + argv
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    parts = path.replace("\\", "/").split("/")
    for anchor in ("chatsvc", "twisted", "bench", "cryptography"):
        if anchor in parts:
            path = "/".join(parts[parts.index(anchor):])
            break
    else:
        path = parts[-1]
    return f"{m.group('func')} ({path})"


def parse(path: str) -> List[Tuple[List[str], int]]:
    stacks = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            try:
                n = int(count)
            except ValueError:
                continue
            stacks.append(([_short(fr) for fr in stack.split(";") if fr], n))
    return stacks


def summarize(path: str, top: int = 20) -> str:
    stacks = parse(path)
    total = sum(n for _, n in stacks) or 1
    own: Counter = Counter()
    incl: Counter = Counter()
    for frames, n in stacks:
        if not frames:
            continue
        # py-spy lists the root first; the last frame is on top (running).
        own[frames[-1]] += n
        for fr in set(frames):
            incl[fr] += n
    lines = [f"{total} samples", "", "self (top of stack):"]
    for fr, n in own.most_common(top):
        lines.append(f"  {100 * n / total:5.1f}%  {fr}")
    lines += ["", "inclusive (anywhere on the stack):"]
    for fr, n in incl.most_common(top + 10):
        lines.append(f"  {100 * n / total:5.1f}%  {fr}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 20))
