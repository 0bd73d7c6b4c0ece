"""
Rerun the demo in docs/demo.md: three users chat through the recording relay
(python -m chatsvc.relay), once in plaintext and once encrypted, and the page
shows what each user saw and what crossed the wire.

    python scripts/demo.py            # rewrites docs/demo.md
    python scripts/demo.py OUT.md     # writes elsewhere

Needs the project installed (pip install -e .); uses only 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Callable, List

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from twisted.internet import defer, task  # noqa: E402

from tests.procs import DEMO_KEY, ChatClientProcess, ChatServer, LineProcess, _spawn  # noqa: E402


class Cleanups:
    """What tests.procs needs of a test case: somewhere to put cleanups."""

    def __init__(self) -> None:
        self._calls: List[Callable[[], Any]] = []

    def addCleanup(self, f: Callable[[], Any]) -> None:
        self._calls.append(f)

    @defer.inlineCallbacks
    def run(self):
        for f in reversed(self._calls):
            yield f()


@defer.inlineCallbacks
def conversation(server_options: List[str], client_options: List[str]):
    cleanups = Cleanups()
    try:
        server = yield ChatServer.start(cleanups, *server_options)
        relay = LineProcess("relay")
        _spawn(cleanups, relay, ["-m", "chatsvc.relay", "--listen", "tcp:0:interface=127.0.0.1",
                                 "--connect", f"tcp:host=127.0.0.1:port={server.port}"], stdin=False)
        line = yield relay.wait_for("listening on port")
        port = int(re.search(r"port (\d+)", line).group(1))
        users = {}
        for name in ("alice", "bob", "carol"):
            users[name] = ChatClientProcess.start(cleanups, port, "--name", name, *client_options,
                                                  label=name)
            yield users[name].wait_for(f"* connected as {name}")
        alice, bob, carol = users["alice"], users["bob"], users["carol"]
        yield alice.wait_for("* carol joined")
        script = [
            (alice, "hi bob, hi carol", "alice: hi bob, hi carol", [bob, carol]),
            (bob, "hello alice! naïve café ☕", "bob: hello alice! naïve café ☕", [alice, carol]),
            # (the client marks plaintext members: "[private] ~carol: ..."; /me is "* alice waves")
            (carol, "/msg alice lunch at noon?", "carol: lunch at noon?", [alice]),
            (alice, "/me waves", "alice waves", [bob, carol]),
            (bob, "/nick bobby", "* bob is now bobby", [alice, carol]),
            (carol, "/who", "* users:", [carol]),
        ]
        for who, line, expect, readers in script:
            who.send(line)
            for reader in readers:
                yield reader.wait_for(expect)
        carol.send("/quit")
        yield carol.wait_exit()
        yield alice.wait_for("* carol left (quit)")
        for who in (alice, bob):
            who.send("/quit")
            yield who.wait_exit()
        yield relay.wait_for("#2 client closed")
        return {name: list(p.lines) for name, p in users.items()}, list(relay.lines)
    finally:
        yield cleanups.run()


@defer.inlineCallbacks
def browser_conversation():
    """dana in Chromium (through the relay, --websocket) and alice in chat-client, encrypted."""
    from tests.web_support import Browser, start_web_server

    cleanups = Cleanups()
    try:
        server, _ = yield start_web_server(cleanups, "--encrypted", "--psk", DEMO_KEY)
        line = yield server.wait_for(re.compile(r"ChatSite starting on (\d+)"))
        web_port = int(re.search(r"on (\d+)", line).group(1))
        relay = LineProcess("relay")
        _spawn(cleanups, relay, ["-m", "chatsvc.relay", "--websocket", "--listen",
                                 "tcp:0:interface=127.0.0.1",
                                 "--connect", f"tcp:host=127.0.0.1:port={web_port}"], stdin=False)
        line = yield relay.wait_for("listening on port")
        port = int(re.search(r"port (\d+)", line).group(1))
        alice = ChatClientProcess.start(cleanups, server.port, "--name", "alice", "--encrypted",
                                        "--psk", DEMO_KEY, label="alice")
        yield alice.wait_for("* connected as alice")
        browser = yield Browser.start(cleanups)
        yield browser.call(browser.open, f"http://127.0.0.1:{port}/")
        with open(DEMO_KEY) as f:
            key_line = [k.strip() for k in f if k.strip() and not k.startswith("#")][0]
        yield browser.call(browser.login, "dana", key_line)
        yield browser.call(browser.wait_open)
        yield alice.wait_for("* dana joined")
        yield browser.call(browser.type, "hi alice, from a browser")
        yield alice.wait_for("dana: hi alice, from a browser")
        alice.send("hello dana! naïve café ☕")
        yield browser.call(browser.wait_text, "lines", "hello dana!")
        yield browser.call(browser.type, "/msg alice lunch at noon?")
        yield alice.wait_for("[private] dana: lunch at noon?")
        private = yield browser.call(browser.text_of, "lines")
        yield browser.call(browser.type, "/switch #lobby")
        alice.send("/quit")
        yield alice.wait_exit()
        yield browser.call(browser.wait_text, "lines", "alice quit")
        lobby = yield browser.call(browser.text_of, "lines")
        dana = lobby.splitlines() + ["", "(the conversation @alice)"] + private.splitlines()
        return {"dana": dana, "alice": list(alice.lines)}, list(relay.lines)
    finally:
        yield cleanups.run()


def browser_section(transcripts: dict, wire: List[str]) -> str:
    out = ["## A browser user (WebSocket, encrypted)", "", "Server and relay:", "", "```",
           "twistd -n chat --encrypted --psk keys/demo.key --web tcp:8080",
           "python -m chatsvc.relay --websocket --listen tcp:8081 "
           "--connect tcp:host=127.0.0.1:port=8080",
           "```", "",
           "**dana** opened the relay's address in Chromium, pasted the demo key's line and",
           "chatted with **alice** (`chat-client`, straight to the TCP port). The page ran",
           "the Noise handshake itself: the relay sees the same 48-byte handshake records",
           "and `data` records as on TCP, one per WebSocket message, and the page's own",
           "files going by.", ""]
    for name, lines in transcripts.items():
        out += [f"What **{name}** saw:", "", "```"] + lines + ["```", ""]
    out += ["What crossed the relay (the WebSocket's messages as frame bodies):", "", "```"]
    out += wire + ["```", ""]
    return "\n".join(out)


def section(title: str, command: str, transcripts: dict, wire: List[str]) -> str:
    out = [f"## {title}", "", "Server:", "", "```", command, "```", ""]
    for name, lines in transcripts.items():
        out += [f"What **{name}** saw (`chat-client --name {name}` typed the lines of the script):",
                "", "```"] + lines + ["```", ""]
    out += ["What crossed the wire, as the relay recorded it (`#N` is the connection, "
            "sizes are frame bodies):", "", "```"] + wire + ["```", ""]
    return "\n".join(out)


@defer.inlineCallbacks
def main(reactor: Any, output: str = os.path.join(REPO, "docs", "demo.md")):
    plain = yield conversation([], [])
    encrypted = yield conversation(["--encrypted", "--psk", DEMO_KEY],
                                   ["--encrypted", "--psk", DEMO_KEY])
    browser = yield browser_conversation()
    page = [
        "# chatsvc demo",
        "",
        "Three users, alice, bob and carol, chat through the recording relay",
        "(`python -m chatsvc.relay`), which forwards bytes untouched and prints every frame",
        "in both directions. The same script runs twice: in plaintext, and encrypted with",
        "the (public) demo key. Produced by `python scripts/demo.py`; rerun it to see it",
        "for yourself (timestamps, ids, resume tokens and ciphertexts change every run).",
        "",
        "The script: alice greets everyone; bob answers (with non-ASCII text); carol sends",
        "alice a private message; alice uses `/me`; bob renames himself; carol asks who is",
        "online and quits; then alice and bob quit.",
        "",
        "In plaintext the wire carries readable JSON: names, texts, the private message,",
        "the resume tokens. Encrypted, the wire carries one 48-byte handshake record each",
        "way, then only `data` records of ciphertext: not even the message types show,",
        "and several messages written in one reactor turn travel as one record.",
        "",
        section("Plaintext", "twistd -n chat", *plain),
        section("Encrypted", "twistd -n chat --encrypted --psk keys/demo.key", *encrypted),
        browser_section(*browser),
    ]
    with open(output, "w", encoding="utf-8") as f:
        f.write("\n".join(page))
    print(f"wrote {output}")


if __name__ == "__main__":
    task.react(main, sys.argv[1:2])
