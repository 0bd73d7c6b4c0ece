"""
chatsvc's IRC gateway beside ngIRCd: the same IRC lines to both, the
replies side by side.

    python -m bench.ircgate_compare                 # every scenario, a table
    python -m bench.ircgate_compare --only WHOIS    # scenarios whose name holds WHOIS
    python -m bench.ircgate_compare --markdown      # for docs/irc.md

Both servers run as real processes on 127.0.0.1 (ngIRCd from a config
written to a temp dir, C{PAM = no}). Each scenario registers fresh clients
C{a} and C{b} on each server (on ngIRCd they then C{JOIN #lobby}, where the
gateway puts every user), sends the scenario's lines, then C{PING} as a
fence, and keeps every line received up to the fence's C{PONG}. Lines are
compared by shape: command or numeric, and parameters with the server
name, nicks and hosts written the same way. L{compare} returns the
differences; L{KNOWN} lists the ones kept on purpose (docs/irc.md says why).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

SERVER = "irc.test"

# (name, [(client, line), ...]): what each scenario sends after registration;
# {a} and {b} are the two clients' nicks (new ones for every scenario, so
# that no scenario waits for a server to free the nicks of the one before).
SCENARIOS: List[Tuple[str, List[Tuple[str, str]]]] = [
    ("PRIVMSG channel", [("a", "PRIVMSG #lobby :hello")]),
    ("PRIVMSG nick", [("a", "PRIVMSG {b} :psst")]),
    ("PRIVMSG no such nick", [("a", "PRIVMSG nobody :x")]),
    ("PRIVMSG no text", [("a", "PRIVMSG #lobby")]),
    ("PRIVMSG no recipient", [("a", "PRIVMSG")]),
    ("NOTICE channel", [("a", "NOTICE #lobby :note")]),
    ("ACTION", [("a", "PRIVMSG #lobby :\x01ACTION waves\x01")]),
    ("NICK change", [("a", "NICK anna{n}")]),
    ("NICK taken", [("a", "NICK {b}")]),
    ("NICK erroneous", [("a", "NICK 1x")]),
    ("NICK none", [("a", "NICK")]),
    ("JOIN new channel", [("a", "JOIN #dev")]),
    ("JOIN already in", [("a", "JOIN #lobby")]),
    ("JOIN bad name", [("a", "JOIN dev")]),
    ("JOIN no params", [("a", "JOIN")]),
    ("PART", [("a", "JOIN #dev"), ("a", "PART #dev :bye")]),
    ("PART not on channel", [("a", "PART #nowhere")]),
    ("TOPIC query none", [("a", "TOPIC #lobby")]),
    ("TOPIC set", [("a", "TOPIC #lobby :new topic"), ("a", "TOPIC #lobby :")]),
    ("TOPIC not on channel", [("a", "TOPIC #nowhere")]),
    ("NAMES channel", [("a", "NAMES #lobby")]),
    ("NAMES no params", [("a", "NAMES")]),
    ("WHO channel", [("a", "WHO #lobby")]),
    ("WHO nick", [("a", "WHO {b}")]),
    ("WHOIS", [("a", "WHOIS {b}")]),
    ("WHOIS no such nick", [("a", "WHOIS nobody")]),
    ("LIST", [("a", "LIST")]),
    ("MODE channel", [("a", "MODE #lobby")]),
    ("MODE ban list", [("a", "MODE #lobby b")]),
    ("MODE self", [("a", "MODE {a}")]),
    ("MODE self +i", [("a", "MODE {a} +i")]),
    ("MODE other user", [("a", "MODE {b}")]),
    ("AWAY", [("a", "AWAY :lunch"), ("a", "AWAY")]),
    ("PING token", [("a", "PING :tok en")]),
    ("PING none", [("a", "PING")]),
    ("ISON", [("a", "ISON {b} nobody")]),
    ("USERHOST", [("a", "USERHOST {b}")]),
    ("MOTD", [("a", "MOTD")]),
    ("LUSERS", [("a", "LUSERS")]),
    ("KICK", [("a", "KICK #lobby {b}")]),
    ("unknown command", [("a", "FROBNICATE x")]),
    ("USER again", [("a", "USER a 0 * :again")]),
    ("QUIT", [("a", "QUIT :bye now")]),
]

KNOWN: Dict[str, str] = {
    "registration": "no LUSERS (251-255, 265, 266, 250) in the burst; the user is in #lobby at once",
    "NICK none": "431 ERR_NONICKNAMEGIVEN as RFC 2812 says; ngIRCd answers 461",
    "PART not on channel": "442 whether or not the channel exists: the chat says not-in-room for both",
    "LIST": "ngIRCd lists its own &SERVER channel too",
    "NAMES no params": "ngIRCd lists every channel; the gateway only ends the list",
    "WHOIS": "no 319 (channels) or 317 (idle): the chat does not tell; 671/320 say encrypted or not",
    "MODE channel": "the channel mode is +n (no messages from outside), and no 329 (creation time)",
    "QUIT": "no connection statistics NOTICE; ERROR says Closing link (quit: reason)",
    "KICK": "nobody is a channel operator in the chat (on ngIRCd the first to join is): 482",
    "LUSERS": "251 and 255 only: the chat counts users, not channels, operators or servers",
}
"""Scenarios whose differences are kept, with why in a few words (docs/irc.md has the rest)."""


def ngircd_path() -> Optional[str]:
    return shutil.which("ngircd") or ("/usr/sbin/ngircd" if os.access("/usr/sbin/ngircd", os.X_OK) else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ngircd_config(port: int) -> str:
    return (f"[Global]\n\tName = {SERVER}\n\tInfo = comparison\n\tListen = 127.0.0.1\n\tPorts = {port}\n"
            "\tMotdPhrase = hello\n[Limits]\n\tMaxPenaltyTime = 0\n\tMaxConnectionsIP = 0\n"
            "[Options]\n\tDNS = no\n\tIdent = no\n\tPAM = no\n")


@dataclass
class Servers:
    ngircd: subprocess.Popen
    chatsvc: subprocess.Popen
    ngircd_port: int
    chatsvc_port: int
    workdir: str

    def stop(self) -> None:
        for proc in (self.ngircd, self.chatsvc):
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _wait_listening(port: int, proc: subprocess.Popen, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on {port} within {timeout} s")
            time.sleep(0.05)


def start_servers() -> Servers:
    """ngIRCd and C{twistd chat --irc}, both on 127.0.0.1, named L{SERVER}."""
    ngircd = ngircd_path()
    if ngircd is None:
        raise RuntimeError("ngircd is not installed (apt-get install ngircd; scripts/test-deps)")
    workdir = tempfile.mkdtemp(prefix="ircgate-compare-")
    ng_port, chat_port, irc_port = free_port(), free_port(), free_port()
    conf = os.path.join(workdir, "ngircd.conf")
    with open(conf, "w") as f:
        f.write(_ngircd_config(ng_port))
    devnull = subprocess.DEVNULL
    ng = subprocess.Popen([ngircd, "--nodaemon", "--config", conf], stdin=devnull, stdout=devnull,
                          stderr=devnull)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""))
    chat = subprocess.Popen(
        [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
         "chat", "--listen", f"tcp:{chat_port}:interface=127.0.0.1",
         "--irc", f"tcp:{irc_port}:interface=127.0.0.1", "--irc-name", SERVER, "--motd", "hello"],
        cwd=workdir, stdin=devnull, stdout=devnull, stderr=devnull, env=env)
    servers = Servers(ng, chat, ng_port, irc_port, workdir)
    try:
        _wait_listening(ng_port, ng, "ngircd")
        _wait_listening(irc_port, chat, "chatsvc")
    except Exception:
        servers.stop()
        raise
    return servers


class Client:
    """A blocking IRC client for the comparison: lines out, lines in up to a fence."""

    def __init__(self, port: int, nick: str) -> None:
        self.nick = nick
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""
        self.fences = 0

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode("utf-8") + b"\r\n")

    def read_until(self, predicate, timeout: float = 10.0) -> List[str]:
        lines: List[str] = []
        deadline = time.monotonic() + timeout
        while True:
            while b"\r\n" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\r\n", 1)
                line = raw.decode("utf-8", "replace")
                lines.append(line)
                if predicate(line):
                    return lines
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"{self.nick}: no end in {timeout} s after {lines[-5:]}")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                return lines
            self.buffer += data

    def fence(self) -> List[str]:
        """Every line up to the answer of a PING sent now (the PONG left out)."""
        self.fences += 1
        token = f"fence{self.fences}"
        self.send(f"PING :{token}")
        lines = self.read_until(lambda line: line.endswith(token) and " PONG " in line)
        return lines[:-1] if lines and " PONG " in lines[-1] else lines

    def close(self) -> None:
        self.sock.close()


def register(port: int, nick: str, join: bool) -> Tuple[Client, List[str]]:
    client = Client(port, nick)
    client.send(f"NICK {nick}")
    client.send(f"USER {nick} 0 * :{nick}")
    lines = client.read_until(lambda line: re.search(r" (376|422) ", line) is not None)
    if join:
        client.send("JOIN #lobby")
    lines += client.fence()
    return client, lines


def normalise(line: str, nicks: Dict[str, str]) -> str:
    """A line with nicks, hosts, times and versions written the same way for both servers."""
    line = re.sub(r"^@\S+ ", "", line)
    for placeholder, nick in nicks.items():
        if placeholder != "n":
            line = re.sub(rf"\b{nick}\b", placeholder, line)
    line = re.sub(r"(\S+?)!\S+@\S+", r"\1!USER@HOST", line)
    line = re.sub(r"\b\d{9,}\b", "TIME", line)
    line = re.sub(r"(ngircd|chatsvc)-[^ ]+", "VERSION", line)
    return line


def shape(line: str) -> str:
    """The command or numeric of a line, with its source kind (server or user)."""
    parts = line.split(" ")
    if parts[0].startswith(":"):
        source = "server" if parts[0][1:] == SERVER else "user"
        return f"{source}:{parts[1]}"
    return parts[0]


_serial = [0]


def run_scenario(servers: Servers, steps: List[Tuple[str, str]]) -> Dict[str, List[str]]:
    """The lines client C{a} got from each server for C{steps}."""
    out: Dict[str, List[str]] = {}
    _serial[0] += 1
    n = _serial[0]
    nicks = {"a": f"a{n}", "b": f"b{n}", "n": str(n)}
    for name, port, join in (("ngircd", servers.ngircd_port, True), ("chatsvc", servers.chatsvc_port, False)):
        a, _ = register(port, nicks["a"], join)
        b, _ = register(port, nicks["b"], join)
        a.fence()
        try:
            for who, line in steps:
                (a if who == "a" else b).send(line.format(**nicks))
            try:
                lines = a.fence()
            except OSError:
                lines = a.read_until(lambda line: False, timeout=2)
            out[name] = [normalise(line, nicks) for line in lines]
        finally:
            a.close()
            b.close()
    return out


def registration(servers: Servers) -> Dict[str, List[str]]:
    out = {}
    for name, port in (("ngircd", servers.ngircd_port), ("chatsvc", servers.chatsvc_port)):
        client, lines = register(port, "r", join=False)
        client.close()
        out[name] = [normalise(line, {}) for line in lines]
    return out


def compare(servers: Servers, only: Optional[str] = None) -> List[Tuple[str, Dict[str, List[str]], bool]]:
    """(scenario, lines by server, same shape) for every scenario."""
    results = []
    if not only or only.lower() in "registration":
        regs = registration(servers)
        results.append(("registration", regs, _same(regs)))
    for name, steps in SCENARIOS:
        if only and only.lower() not in name.lower():
            continue
        lines = run_scenario(servers, steps)
        results.append((name, lines, _same(lines)))
    return results


def _same(lines: Dict[str, List[str]]) -> bool:
    return [shape(x) for x in lines["ngircd"]] == [shape(x) for x in lines["chatsvc"]]


def _print_text(results) -> int:
    unexpected = 0
    for name, lines, same in results:
        mark = "same" if same else ("kept: " + KNOWN[name] if name in KNOWN else "DIFFERENT")
        if not same and name not in KNOWN:
            unexpected += 1
        print(f"== {name}: {mark}")
        if not same:
            for server in ("ngircd", "chatsvc"):
                for line in lines[server]:
                    print(f"   {server:8} {line!r}")
    return unexpected


def _print_markdown(results) -> None:
    print("| scenario | ngIRCd | chatsvc | |")
    print("| --- | --- | --- | --- |")
    for name, lines, same in results:
        ng = "<br>".join(shape(x) for x in lines["ngircd"]) or "(nothing)"
        cs = "<br>".join(shape(x) for x in lines["chatsvc"]) or "(nothing)"
        print(f"| {name} | {ng} | {cs} | {'same' if same else KNOWN.get(name, '**different**')} |")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run the scenarios whose name holds this")
    parser.add_argument("--markdown", action="store_true", help="a table for docs/irc.md")
    args = parser.parse_args(argv)
    servers = start_servers()
    try:
        results = compare(servers, args.only)
    finally:
        servers.stop()
    if args.markdown:
        _print_markdown(results)
        return 0
    unexpected = _print_text(results)
    print(f"{len(results)} scenarios, {sum(1 for r in results if r[2])} the same, "
          f"{unexpected} different and not listed in KNOWN")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
