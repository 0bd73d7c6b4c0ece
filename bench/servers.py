"""
The servers under test, started as real processes on 127.0.0.1.

  - C{chatsvc}: C{twistd -n chat} in plaintext;
  - C{chatsvc-enc}: the same with C{--encrypted --psk keys/demo.key};
  - C{chatsvc-log}: plaintext with C{--log-messages} (a file in a temp dir);
  - C{chatsvc-irc}: plaintext chatsvc with its IRC gateway (C{--irc}); the
    load generator speaks IRC to the gateway's port, as it does to ngIRCd;
  - C{chatsvc-ws}, C{chatsvc-ws-enc}: the same with C{--web}, every client
    on the WebSocket; C{chatsvc-mixed}, C{chatsvc-mixed-enc}: half the
    receivers on the WebSocket, the others and the senders on TCP, one room;
  - C{relay}: the bare Twisted relay of L{bench.relay};
  - C{ngircd}: ngIRCd, if installed, from a config written into a temp dir
    (L{ngircd_config}: no flood penalties, no connection limits, no DNS or
    IDENT look-ups, an operator account so senders can set user mode C{+F}).

Every server is pinned to CPU 0 (C{taskset -c 0}) when the machine has two
CPUs or more; the load generator gets CPU 1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_KEY = os.path.join(REPO, "keys", "demo.key")

SERVER_CPU = "0"
LOADGEN_CPU = "1"


def pinned(argv: List[str], cpu: str) -> List[str]:
    """C{argv} run under C{taskset -c cpu}, when that is possible and useful."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", cpu] + argv
    return argv


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def twistd_argv() -> List[str]:
    """Run C{twistd} with this interpreter (the venv's, with chatsvc installed)."""
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def ngircd_path() -> Optional[str]:
    return shutil.which("ngircd") or (
        "/usr/sbin/ngircd" if os.access("/usr/sbin/ngircd", os.X_OK) else None
    )


def ngircd_config(port: int) -> str:
    """
    ngIRCd configured for a benchmark: every limit that could refuse or slow
    a load generator's clients is off, the rest is ngIRCd's defaults.
    """
    return f"""\
# Written by bench/servers.py for one benchmark run.
[Global]
\tName = bench.local
\tInfo = chatsvc benchmark baseline
\tAdminInfo1 = bench
\tAdminInfo2 = bench
\tAdminEMail = bench@bench.local
\tListen = 127.0.0.1
\tPorts = {port}
\tMotdPhrase = bench
[Limits]
\t# no limit on connections, none per IP address, unlimited channels
\tMaxConnections = 0
\tMaxConnectionsIP = 0
\tMaxJoins = 0
\t# no command penalties (the flood throttle's delays)
\tMaxPenaltyTime = 0
\t# the load generator's clients are silent: never ping them out
\tPingTimeout = 3600
\tPongTimeout = 3600
[Options]
\t# no reverse DNS, IDENT or PAM on each connection
\tDNS = no
\tIdent = no
\tPAM = no
\tOperCanUseMode = yes
[Operator]
\t# senders OPER and set user mode +F (relaxed flood protection: no
\t# throttling, 10 instead of 3 commands per read)
\tName = bench
\tPassword = bench
"""


@dataclass
class ServerSpec:
    name: str
    kind: str  # the load generator's dialect
    label: str
    encrypted: bool = False
    log_messages: bool = False
    available: bool = True
    note: str = ""
    tree: Optional[str] = None  # run chatsvc from this directory instead of REPO
    web: bool = False  # also serve --web (the load generator's ws_port)
    ws_share: float = 0.0  # the share of clients on the WebSocket


def server_specs() -> Dict[str, ServerSpec]:
    ng = ngircd_path()
    return {
        "chatsvc": ServerSpec("chatsvc", "chat", "chatsvc (plaintext)"),
        "chatsvc-enc": ServerSpec("chatsvc-enc", "chat-enc", "chatsvc (encrypted)", encrypted=True),
        "chatsvc-log": ServerSpec("chatsvc-log", "chat", "chatsvc (plaintext, message log on)",
                                  log_messages=True),
        "chatsvc-irc": ServerSpec("chatsvc-irc", "irc-gw", "chatsvc IRC gateway (plaintext)"),
        "chatsvc-ws": ServerSpec("chatsvc-ws", "chat-ws", "chatsvc (plaintext, WebSocket)",
                                 web=True, ws_share=1.0),
        "chatsvc-ws-enc": ServerSpec("chatsvc-ws-enc", "chat-ws-enc", "chatsvc (encrypted, WebSocket)",
                                     encrypted=True, web=True, ws_share=1.0),
        "chatsvc-mixed": ServerSpec("chatsvc-mixed", "chat-ws", "chatsvc (plaintext, half WebSocket)",
                                    web=True, ws_share=0.5),
        "chatsvc-mixed-enc": ServerSpec("chatsvc-mixed-enc", "chat-ws-enc",
                                        "chatsvc (encrypted, half WebSocket)",
                                        encrypted=True, web=True, ws_share=0.5),
        "relay": ServerSpec("relay", "relay", "bare Twisted Int32 relay"),
        "ngircd": ServerSpec(
            "ngircd", "irc", "ngIRCd", available=ng is not None,
            note="" if ng else "ngircd is not installed (apt-get install ngircd); skipped",
        ),
    }


@dataclass
class RunningServer:
    spec: ServerSpec
    port: int
    proc: subprocess.Popen
    workdir: str
    logfile: str
    argv: List[str] = field(default_factory=list)
    web_port: int = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, n: int = 15) -> str:
        try:
            with open(self.logfile, "rb") as f:
                lines = f.read()[-20000:].decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Kill the server (SIGKILL: a benchmark does not wait for a clean shutdown)."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


def start_server(spec: ServerSpec, workdir: str, sendq: int, history: int,
                 timeout: float = 20.0, logdir: Optional[str] = None) -> RunningServer:
    """
    Start C{spec} on a free port. Its output goes to C{workdir} (the runner
    uses tmpfs, so that a disk's occasional multi-millisecond write() stall
    in a diagnostic log line is not measured); chatsvc's message log goes to
    C{logdir} (on disk: durability is its point).
    """
    port = free_port()
    logfile = os.path.join(workdir, f"{spec.name}-{port}.log")
    if spec.kind == "irc":
        conf = os.path.join(workdir, f"ngircd-{port}.conf")
        with open(conf, "w") as f:
            f.write(ngircd_config(port))
        argv = [ngircd_path() or "ngircd", "--nodaemon", "--config", conf]
    elif spec.kind == "relay":
        argv = [sys.executable, "-m", "bench.relay", "--port", str(port)]
    else:
        listen = port
        if spec.kind == "irc-gw":  # the load generator talks to the IRC port
            listen = free_port()
        argv = twistd_argv() + [
            "-n", "--pidfile=", "chat",
            "--listen", f"tcp:{listen}:interface=127.0.0.1",
            "--rate", "0", "--max-per-ip", "0", "--max-clients", "0",
            "--sendq", str(sendq), "--history", str(history),
            # silent load clients must not be pinged out during a long run
            "--ping-interval", "3600", "--ping-timeout", "3600",
            "--handshake-timeout", "60",
        ]
        if spec.encrypted:
            argv += ["--encrypted", "--psk", DEMO_KEY]
        if spec.kind == "irc-gw":
            argv += ["--irc", f"tcp:{port}:interface=127.0.0.1", "--irc-name", "bench.local"]
        if spec.web:
            web_port = free_port()
            argv += ["--web", f"tcp:{web_port}:interface=127.0.0.1"]
        if spec.log_messages:
            argv += ["--log-messages", os.path.join(logdir or workdir, f"messages-{port}.jsonl")]
    argv = pinned(argv, SERVER_CPU)
    env = dict(os.environ)
    env["PYTHONPATH"] = (spec.tree or REPO) + os.pathsep + env.get("PYTHONPATH", "")
    with open(logfile, "wb") as log:
        # the cwd is on sys.path first (python -c): the baseline's tree, if any
        proc = subprocess.Popen(argv, cwd=spec.tree or REPO, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env)
    server = RunningServer(spec, port, proc, workdir, logfile, argv,
                           web_port=web_port if spec.web else 0)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{spec.name} exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
            break
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"{spec.name} did not listen on {port} within {timeout:.0f} s:\n"
                                   f"{server.log_tail()}")
            time.sleep(0.05)
    time.sleep(0.2)  # let it forget the probe connection
    return server
