"""
End to end: a real C{twistd -n chat} process and real C{chat-client}
processes over TCP on 127.0.0.1, in plaintext and encrypted mode, including a
server restart with reconnect and catch-up.
"""

from __future__ import annotations

import json
import os
import socket
import struct

from twisted.internet import defer, threads
from twisted.trial.unittest import TestCase

from .procs import DEMO_KEY, REPO, ChatClientProcess, ChatServer, LineProcess, _spawn, TWISTD


def raw_frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return struct.pack(">I", len(body)) + body


REPLY_DEADLINE = 20.0
"""Seconds a raw connection waits for the server's first frame."""


def _first_reply(port: int, data: bytes) -> dict:
    """
    Send C{data} on a new connection and return the first message of the
    reply (in a thread: the socket blocks).

    @raise AssertionError: if the server closes without a frame or sends
        nothing within L{REPLY_DEADLINE}.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=REPLY_DEADLINE) as s:
        s.sendall(data)
        reply = b""
        while len(reply) < 4 or len(reply) < 4 + struct.unpack(">I", reply[:4])[0]:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                raise AssertionError(f"no reply within {REPLY_DEADLINE} s to {data[:20]!r}")
            if not chunk:
                raise AssertionError(f"closed without an error frame: {data[:20]!r} got {reply!r}")
            reply += chunk
    return json.loads(reply[4 : 4 + struct.unpack(">I", reply[:4])[0]])


class ChatTests(TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def chat_three(self, server_options: tuple, client_options: tuple):
        server = yield ChatServer.start(self, *server_options)
        mode = " (encrypted)" if "--encrypted" in client_options else ""
        mark = "" if mode else "~"  # the client marks plaintext members (PROTOCOL.md 4.8)
        alice = ChatClientProcess.start(self, server.port, "--name", "alice", *client_options, label="alice")
        yield alice.wait_for(f"* connected as alice{mode}")
        bob = ChatClientProcess.start(self, server.port, "--name", "bob", *client_options, label="bob")
        yield bob.wait_for(f"* connected as bob{mode}")
        carol = ChatClientProcess.start(self, server.port, "--name", "carol", *client_options, label="carol")
        yield carol.wait_for(f"* connected as carol{mode}")
        yield alice.wait_for("* carol joined")

        alice.send("hello everyone")
        for who in (alice, bob, carol):
            yield who.wait_for("alice: hello everyone")
        bob.send("/msg carol psst, carol")
        yield carol.wait_for(f"[private] {mark}bob: psst, carol")
        yield bob.wait_for(f"[private] -> {mark}carol: psst, carol")
        carol.send("/nick caz")
        yield alice.wait_for("* carol is now caz")
        # The server sends to alice in order: had it sent her the private
        # message, it would have come before the rename.
        self.assertNotIn("psst", alice.output())
        bob.send("/who")
        yield bob.wait_for("* users:")
        users = [l for l in bob.lines if l.startswith("* users:")][-1]
        self.assertEqual(sorted(users[len("* users: "):].split(", ")),
                         [f"{mark}alice", f"{mark}bob", f"{mark}caz"])
        alice.send("evil \x1b[2J text")
        yield alice.wait_for("! bad-text")  # refused by the server: nobody gets it
        alice.send("after the escape")
        yield bob.wait_for("alice: after the escape")
        # Neither the raw ESC nor the client's printed form of it (the text
        # \x1b), nor the rest of the refused text, reached bob.
        self.assertNotIn("[2J", bob.output())
        self.assertNotIn("\x1b", bob.output())
        self.assertNotIn("\\x1b", bob.output())
        bob.send("/quit")
        code = yield bob.wait_exit()
        self.assertEqual(code, 0)
        yield alice.wait_for("* bob left (quit")
        alice.close_stdin()  # end of input is a quit too
        code = yield alice.wait_exit()
        self.assertEqual(code, 0)
        yield carol.wait_for("* alice left (quit")
        carol.send("quit")
        yield carol.wait_exit()
        self.assertEqual(server.tracebacks(), [])
        return server

    def test_plaintext(self):
        return self.chat_three((), ())

    def test_encrypted(self):
        return self.chat_three(("--encrypted", "--psk", DEMO_KEY),
                               ("--encrypted", "--psk", DEMO_KEY))

    @defer.inlineCallbacks
    def test_mixed_modes_share_one_chat(self):
        server = yield ChatServer.start(self, "--psk", DEMO_KEY, "--allow-plaintext")
        enc = ChatClientProcess.start(self, server.port, "--name", "enc", "--encrypted", "--psk", DEMO_KEY)
        yield enc.wait_for("* connected as enc (encrypted)")
        plain = ChatClientProcess.start(self, server.port, "--name", "plain")
        yield plain.wait_for("* connected as plain")
        plain.send("from the clear side")
        yield enc.wait_for("plain: from the clear side")
        enc.send("from the dark side")
        yield plain.wait_for("enc: from the dark side")
        yield server.wait_for("PLAINTEXT CLIENTS ARE SERVED BESIDE ENCRYPTED ONES")

    @defer.inlineCallbacks
    def test_refusals_are_one_line(self):
        server = yield ChatServer.start(self, "--encrypted", "--psk", DEMO_KEY)
        plain = ChatClientProcess.start(self, server.port, "--name", "p", "--no-reconnect")
        code = yield plain.wait_exit()
        self.assertNotEqual(code, 0)
        self.assertIn("encryption-required", plain.output())
        self.assertNotIn("Traceback", plain.output())

        key = os.path.abspath(self.mktemp())
        from chatsvc.keys import generate_key_file

        generate_key_file(key)
        wrong = ChatClientProcess.start(self, server.port, "--name", "w", "--encrypted", "--psk", key)
        code = yield wrong.wait_exit()
        self.assertNotEqual(code, 0)
        self.assertIn("handshake-failed", wrong.output())
        self.assertNotIn("Traceback", wrong.output())
        yield server.wait_for("handshake with 127.0.0.1 failed")

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        free_port = sock.getsockname()[1]
        sock.close()
        nobody = ChatClientProcess.start(self, free_port, "--name", "n")
        code = yield nobody.wait_exit()
        self.assertNotEqual(code, 0)
        self.assertEqual(len([l for l in nobody.err_lines if l.strip()]), 1, nobody.output())
        self.assertIn("cannot connect", nobody.output())

    @defer.inlineCallbacks
    def test_restart_reconnect_and_catch_up(self):
        log = os.path.abspath(self.mktemp())
        options = ("--encrypted", "--psk", DEMO_KEY, "--log-messages", log)
        client_options = ("--encrypted", "--psk", DEMO_KEY)
        server = yield ChatServer.start(self, *options)
        port = server.port
        alice = ChatClientProcess.start(self, port, "--name", "alice", *client_options, label="alice")
        bob = ChatClientProcess.start(self, port, "--name", "bob", *client_options, label="bob")
        yield alice.wait_for("* connected as alice")
        yield bob.wait_for("* connected as bob")
        alice.send("before the restart")
        yield bob.wait_for("alice: before the restart")

        server.signal("TERM")
        code = yield server.wait_exit()
        self.assertEqual(code, 0)
        yield alice.wait_for("shutdown")
        yield bob.wait_for("reconnecting")

        server2 = yield ChatServer.start(self, *options, port=port)
        yield server2.wait_for("seq 1")  # restored from the message log
        mark = len(bob.lines)
        yield alice.wait_for("end of history", after=0)
        yield bob.wait_for("end of history (complete)")
        alice.send("after the restart")
        yield bob.wait_for("alice: after the restart", after=mark)
        # Names were kept, and nothing was printed twice.
        self.assertEqual(bob.lines.count("alice: before the restart"), 1)
        self.assertFalse([l for l in bob.lines + alice.lines if "Traceback" in l])
        with open(log, "rb") as f:
            records = [json.loads(line) for line in f]
        self.assertEqual([(r["seq"], r["text"]) for r in records],
                         [(1, "before the restart"), (2, "after the restart")])


class ServerProcessTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_bad_input_never_a_traceback(self):
        """
        Each kind of junk gets its error frame (a hung or silent server
        fails), and the server goes on serving without a traceback.
        """
        server = yield ChatServer.start(self)
        junk = [
            (b"\x00\x00\x00\x00", "bad-frame"),
            (b"\xff\xff\xff\xff", "frame-too-long"),
            (b"\x00\x00\x00\x05hello", "bad-frame"),  # not "{", not a handshake record
            (raw_frame({"type": "hello", "name": "\ud800x"}), "bad-json"),  # a lone surrogate
            (b"\x00\x00\x00\x03{\xff}", "bad-json"),
            (b"\x00\x00\x00\x0c" + b"[" * 12, "bad-frame"),
            (raw_frame({"type": "ping", "token": [[]] * 70}), "bad-json"),  # over 64 containers
            (raw_frame({"type": 5}), "bad-json"),
            (b"GET / HTTP/1.0\r\n\r\n", "frame-too-long"),
        ]
        for data, code in junk:
            reply = yield threads.deferToThread(_first_reply, server.port, data)
            self.assertEqual((reply["type"], reply["code"]), ("error", code), repr(data))
        ok = ChatClientProcess.start(self, server.port, "--name", "sane")
        yield ok.wait_for("* connected as sane")
        self.assertEqual(server.tracebacks(), [])

    @defer.inlineCallbacks
    def test_tac(self):
        proto = LineProcess("tac")
        env_options = "--listen tcp:0:interface=127.0.0.1 --motd hi"
        old = os.environ.get("CHATSVC_OPTIONS")
        os.environ["CHATSVC_OPTIONS"] = env_options
        try:
            _spawn(self, proto, ["-c", TWISTD, "-ny", os.path.join(REPO, "chat.tac"), "--pidfile="], stdin=False)
        finally:
            if old is None:
                del os.environ["CHATSVC_OPTIONS"]
            else:
                os.environ["CHATSVC_OPTIONS"] = old
        line = yield proto.wait_for("starting on")
        port = int(line.rsplit(" ", 1)[1])
        client = ChatClientProcess.start(self, port, "--name", "t")
        yield client.wait_for("hi")
        proto.signal("TERM")
        code = yield proto.wait_exit()
        self.assertEqual(code, 0)
