"""
The load generator: one process, one epoll loop, many non-blocking sockets.

    python -m bench.loadgen '{"kind": "chat", "port": 8000, "mode": "fanout", ...}'

It prints JSON lines on stdout: C{{"event": "window_start"}} when the
measurement window opens (the runner starts a profiler then), then one
C{{"event": "result", ...}} line, and then keeps its sockets open until its
standard input closes (so the runner can stop the server first and no
C{left} storm is measured or waited for).

Speaking four dialects (C{kind}):

  - C{chat}: chatsvc plaintext (hello / welcome / say / message frames);
  - C{chat-enc}: chatsvc through Noise records (L{chatsvc.wire.records});
  - C{relay}: the bare Int32 relay of L{bench.relay} (frames of raw text);
  - C{irc}: an IRC server (NICK/USER, JOIN #bench, PRIVMSG #bench);
  - C{irc-gw}: chatsvc's IRC gateway (NICK/USER, in #lobby at once);
  - C{chat-ws}, C{chat-ws-enc}: chatsvc over its WebSocket (L{bench.wsclient}),
    on C{ws_port}; with C{ws_share} below 1 only that share of the receivers
    use it and the others (and the senders) speak C{chat}/C{chat-enc} over
    TCP on C{port}, in the same room (a mixed run).

Every message text is 64 bytes, C{<Sxx>} (the sender), a 20-digit
C{time.perf_counter_ns()} stamp, and padding, so a delivery is counted in
any dialect by counting C{b"<S"} in the received bytes (C{bytes.count}, no
parsing), and a sampled receiver (a I{probe}) finds the send time of every
message it receives. Encrypted clients must decrypt: after the handshake
(done with the sans-IO record layer) they parse records and call AES-GCM
themselves, one call per record.

Modes (C{mode}):

  - C{fanout}: saturation. Every sender keeps C{window} messages in flight,
    a message counting as delivered when the I{tracker} (a receiver that
    registered last) has it; so the server always has work queued, yet no
    queue grows without bound (which would kill an IRC server's flooders).
    Measures deliveries/s over C{duration} seconds after C{warmup}.
  - C{overload}: like C{fanout} but open loop: senders write as fast as
    their sockets take data. Afterwards it checks that every receiver got
    every message, and counts receivers dropped (and those told C{slow}).
  - C{latency}: senders send C{rate} messages/s in all, evenly spaced;
    probes record receive time - send time.
  - C{memory}: register C{n} clients, wait for the server to go idle, read
    its RSS; the result is (RSS - RSS before any client) / n.
  - C{setup}: connect, register (encrypted: handshake + hello + welcome),
    disconnect, C{concurrency} at a time; measures completed set-ups/s.

Every loop is bounded by a deadline; the whole process by C{deadline}.
"""

from __future__ import annotations

import gc
import json
import os
import re
import select
import signal
import socket
import struct
import sys
import time
from typing import Any, Dict, List, Optional

from . import wsclient

RECV_SIZE = 1 << 18
MARK = b"<S"
TEXT_SIZE = 64
BATCH = 64  # messages per sender write at saturation

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT

# client roles
SINK, SENDER, TRACKER, PROBE = 0, 1, 2, 3
# registration states
CONNECTING, REGISTERING, READY, CLOSED = 0, 1, 2, 3

_BUF = bytearray(1 << 20)
_VIEW = memoryview(_BUF)
_TS = re.compile(rb"<S\d\d>(\d{20})")
_pack_len = struct.Struct(">I").pack
_pack_nonce = struct.Struct(">4xQ").pack  # Noise's AES-GCM nonce
_perf_ns = time.perf_counter_ns


def _stamp_texts(sender: int, k: int, pad: bytes) -> List[bytes]:
    head = b"<S%02d>" % sender
    ts = b"%020d" % _perf_ns()
    text = head + ts + pad
    return [text] * k


def proc_cpu_ns(pid: Optional[int]) -> int:
    """CPU time of a process (all threads), in ns, from /proc schedstat."""
    path = "/proc/self/schedstat" if pid is None else f"/proc/{pid}/schedstat"
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        if pid is None:
            return time.process_time_ns()
        return 0


def proc_rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_jiffies() -> Dict[str, List[int]]:
    """Per CPU: [busy, total] jiffies from /proc/stat (to see other processes' load)."""
    out: Dict[str, List[int]] = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                if not line.startswith("cpu") or line.startswith("cpu "):
                    continue
                name, *vals = line.split()
                v = [int(x) for x in vals[:8]]
                idle = v[3] + v[4]
                out[name[3:]] = [sum(v) - idle, sum(v)]
    except (OSError, ValueError):
        pass
    return out


def busy_between(a: Dict[str, List[int]], b: Dict[str, List[int]]) -> Dict[str, float]:
    return {cpu: (b[cpu][0] - a[cpu][0]) / max(1, b[cpu][1] - a[cpu][1]) for cpu in a if cpu in b}


class LoadError(Exception):
    pass


class Client:
    __slots__ = (
        "idx", "role", "sock", "fd", "state", "count", "lt", "out", "reg",
        "session", "sent", "last", "closed_how", "pbuf", "stage",
        "name", "tags", "tagtails", "t_start", "fast", "recv_into",
        "decrypt", "nonce", "rbuf", "ws",
    )

    def __init__(self, idx: int, role: int, name: str) -> None:
        self.idx = idx
        self.role = role
        self.name = name
        self.sock: Optional[socket.socket] = None
        self.fd = -1
        self.state = CONNECTING
        self.count = 0
        self.lt = False  # the last byte received was b"<"
        self.fast = False  # a plain READY receiver: counted inline in pump()
        self.decrypt: Any = None  # an encrypted one: see LoadGen.count_records
        self.nonce = 0
        self.rbuf = b""
        self.recv_into: Any = None
        self.out = b""
        self.reg = b""
        self.session: Any = None
        self.sent = 0
        self.last = b""
        self.closed_how: Optional[str] = None
        self.pbuf = b""
        self.stage = 0
        self.tags: Optional[List[int]] = None
        self.tagtails: Optional[List[bytes]] = None
        self.t_start = 0.0
        self.ws = False  # speaks the WebSocket dialect (bench.wsclient)


# -- dialects ------------------------------------------------------------------


class Dialect:
    """How one kind of server is spoken to: registration and messages."""

    echo = True  # does a sender receive its own public messages?

    def __init__(self, opts: Dict[str, Any]) -> None:
        self.opts = opts

    def start(self, c: Client, setup_only: bool) -> bytes:
        raise NotImplementedError

    def registration(self, c: Client, data: bytes, setup_only: bool) -> tuple:
        """Feed registration bytes: return (done, bytes_to_send)."""
        raise NotImplementedError

    def messages(self, sender: int, k: int) -> bytes:
        raise NotImplementedError

    def wrap(self, c: Client, plain: bytes) -> bytes:
        return plain


class ChatDialect(Dialect):
    def __init__(self, opts: Dict[str, Any]) -> None:
        super().__init__(opts)
        self.pad = b"." * (TEXT_SIZE - 5 - 20)

    def hello(self, c: Client) -> bytes:
        body = b'{"type":"hello","name":"%s"}' % c.name.encode()
        return _pack_len(len(body)) + body

    def start(self, c: Client, setup_only: bool) -> bytes:
        return self.hello(c)

    def _welcome(self, c: Client, plain: bytes) -> bool:
        c.reg += plain
        if b'"type":"welcome"' in c.reg:
            c.reg = b""
            return True
        if b'"type":"error"' in c.reg and b'"fatal":true' in c.reg:
            raise LoadError(f"{c.name}: refused: {c.reg[-300:]!r}")
        if len(c.reg) > 1 << 20:
            raise LoadError(f"{c.name}: no welcome in 1 MiB")
        return False

    def registration(self, c: Client, data: bytes, setup_only: bool) -> tuple:
        return self._welcome(c, data), b""

    def messages(self, sender: int, k: int) -> bytes:
        parts = []
        for text in _stamp_texts(sender, k, self.pad):
            body = b'{"type":"say","text":"' + text + b'"}'
            parts.append(_pack_len(len(body)) + body)
        return b"".join(parts)


class EncChatDialect(ChatDialect):
    def __init__(self, opts: Dict[str, Any]) -> None:
        super().__init__(opts)
        from chatsvc.keys import load_key
        from chatsvc.wire import records

        self.records = records
        self.psk = load_key(opts["psk"])

    def start(self, c: Client, setup_only: bool) -> bytes:
        c.session = self.records.RecordSession(self.psk, initiator=True)
        return c.session.initiate()

    def registration(self, c: Client, data: bytes, setup_only: bool) -> tuple:
        session = c.session
        session.receive_data(data)
        out = b""
        done = False
        for event in session.events():
            if isinstance(event, self.records.HandshakeComplete):
                out += session.send(self.hello(c))
            elif isinstance(event, self.records.DataReceived):
                if not done:
                    done = self._welcome(c, event.data)
            elif isinstance(event, self.records.PlaintextFrame):
                raise LoadError(f"{c.name}: refused: {event.body[:300]!r}")
        return done, out

    def wrap(self, c: Client, plain: bytes) -> bytes:
        return c.session.send(plain)


class RelayDialect(Dialect):
    """The bare relay greets every connection with the frame C{W}."""

    def __init__(self, opts: Dict[str, Any]) -> None:
        super().__init__(opts)
        self.pad = b"." * (TEXT_SIZE - 5 - 20)

    def start(self, c: Client, setup_only: bool) -> bytes:
        return b""

    def registration(self, c: Client, data: bytes, setup_only: bool) -> tuple:
        c.reg += data
        return len(c.reg) >= 5, b""

    def messages(self, sender: int, k: int) -> bytes:
        prefix = _pack_len(TEXT_SIZE)
        return b"".join(prefix + text for text in _stamp_texts(sender, k, self.pad))


class IrcDialect(Dialect):
    """NICK/USER, wait for 001; senders OPER and set +F (no flood throttle); JOIN #bench."""

    echo = False  # IRC does not echo a channel message to its sender

    def __init__(self, opts: Dict[str, Any]) -> None:
        super().__init__(opts)
        self.pad = b"." * (TEXT_SIZE - 5 - 20)

    def start(self, c: Client, setup_only: bool) -> bytes:
        n = c.name.encode()
        return b"NICK %s\r\nUSER %s 0 * :bench\r\n" % (n, n)

    def registration(self, c: Client, data: bytes, setup_only: bool) -> tuple:
        c.reg += data
        if b"ERROR :" in c.reg:
            raise LoadError(f"{c.name}: {c.reg[-300:]!r}")
        if c.stage == 0:
            if b" 001 " not in c.reg:
                return False, b""
            if setup_only:
                return True, b""
            c.stage = 1
            c.reg = c.reg[c.reg.index(b" 001 "):]
            n = c.name.encode()
            out = b""
            if c.role == SENDER:
                out += b"OPER bench bench\r\nMODE %s +F\r\n" % n
            return False, out + b"JOIN #bench\r\n"
        if b" 366 " in c.reg:
            if c.role == SENDER and b" 381 " not in c.reg:
                raise LoadError(f"{c.name}: OPER failed: {c.reg[-300:]!r}")
            c.reg = b""
            return True, b""
        if len(c.reg) > 1 << 22:
            raise LoadError(f"{c.name}: no end of NAMES in 4 MiB")
        return False, b""

    def messages(self, sender: int, k: int) -> bytes:
        return b"".join(
            b"PRIVMSG #bench :" + text + b"\r\n" for text in _stamp_texts(sender, k, self.pad)
        )


class IrcGatewayDialect(IrcDialect):
    """
    chatsvc's IRC gateway: NICK/USER, and the client is in the default room
    #lobby at once (its JOIN, NAMES and 366 come with the registration);
    no OPER (the gateway has none, and none is needed: --rate 0).
    """

    def registration(self, c: Client, data: bytes, setup_only: bool) -> tuple:
        c.reg += data
        if b"ERROR :" in c.reg:
            raise LoadError(f"{c.name}: {c.reg[-300:]!r}")
        if b" 001 " in c.reg and (setup_only or b" 366 " in c.reg):
            c.reg = b""
            return True, b""
        if len(c.reg) > 1 << 22:
            raise LoadError(f"{c.name}: no end of NAMES in 4 MiB")
        return False, b""

    def messages(self, sender: int, k: int) -> bytes:
        return b"".join(
            b"PRIVMSG #lobby :" + text + b"\r\n" for text in _stamp_texts(sender, k, self.pad)
        )


DIALECTS = {"chat": ChatDialect, "chat-enc": EncChatDialect, "relay": RelayDialect, "irc": IrcDialect,
            "irc-gw": IrcGatewayDialect}


# -- the generator -------------------------------------------------------------


class LoadGen:
    def __init__(self, opts: Dict[str, Any]) -> None:
        self.opts = opts
        self.addr = (opts.get("host", "127.0.0.1"), int(opts["port"]))
        self.kind = opts["kind"]
        self.ws_dialect: Any = None
        self.ws_share = 0.0
        if self.kind in wsclient.DIALECTS:
            self.ws_dialect = wsclient.DIALECTS[self.kind](opts)
            self.ws_addr = (opts.get("host", "127.0.0.1"), int(opts["ws_port"]))
            self.ws_share = float(opts.get("ws_share", 1.0))
        self.dialect: Dialect = DIALECTS[wsclient.BASE_KIND.get(self.kind, self.kind)](opts)
        self.encrypted = self.kind in ("chat-enc", "chat-ws-enc")
        self.server_pid = opts.get("server_pid")
        self.deadline = time.monotonic() + float(opts.get("deadline", 300))
        self.ep = select.epoll()
        self.pep = select.epoll()  # probes: polled first and often
        self.ep.register(self.pep.fileno(), EPOLLIN)
        self.by_fd: Dict[int, Client] = {}
        self.clients: List[Client] = []
        self.senders: List[Client] = []
        self.probes: List[Client] = []
        self.tracker: Optional[Client] = None
        self.tag_bytes: List[bytes] = []
        self.latencies: List[int] = []
        self.record_latency = False
        self.last_data = time.monotonic()
        self.closed_unexpected = 0
        self.errors: List[str] = []

    # -- helpers ------------------------------------------------------------

    def check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise LoadError("load generator deadline passed")

    def emit(self, obj: Dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def dialect_of(self, c: Client) -> Any:
        return self.ws_dialect if c.ws else self.dialect

    def wire(self, c: Client, k: int) -> bytes:
        """C{k} stamped messages from sender C{c}, as its socket carries them."""
        dialect = self.dialect_of(c)
        c.sent += k
        return dialect.wrap(c, dialect.messages(c.idx, k))

    def server_cpu(self) -> int:
        return proc_cpu_ns(self.server_pid) if self.server_pid else 0

    # -- connections -----------------------------------------------------------

    def open(self, c: Client) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            s.connect(self.ws_addr if c.ws else self.addr)
        except BlockingIOError:
            pass
        except OSError as e:
            s.close()
            raise LoadError(f"connect: {e}")
        c.sock = s
        c.recv_into = s.recv_into
        c.fd = s.fileno()
        c.state = CONNECTING
        c.t_start = time.monotonic()
        self.by_fd[c.fd] = c
        ep = self.pep if c.role == PROBE else self.ep
        ep.register(c.fd, EPOLLIN | EPOLLOUT)

    def close(self, c: Client, how: str, rst: bool = False) -> None:
        if c.sock is None:
            return
        ep = self.pep if c.role == PROBE else self.ep
        try:
            ep.unregister(c.fd)
        except OSError:
            pass
        self.by_fd.pop(c.fd, None)
        if rst:
            try:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        c.sock.close()
        c.sock = None
        c.recv_into = None
        c.fast = False
        c.decrypt = None
        c.state = CLOSED
        c.closed_how = how

    def set_out_interest(self, c: Client, want: bool) -> None:
        ep = self.pep if c.role == PROBE else self.ep
        try:
            ep.modify(c.fd, EPOLLIN | EPOLLOUT if want else EPOLLIN)
        except OSError:
            pass

    def write(self, c: Client, data: bytes) -> None:
        if c.out:
            c.out += data
            return
        try:
            n = c.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.lost(c)
            return
        if n < len(data):
            c.out = data[n:]
            self.set_out_interest(c, True)

    def flush(self, c: Client) -> None:
        if not c.out:
            self.set_out_interest(c, False)
            return
        try:
            n = c.sock.send(c.out)
        except BlockingIOError:
            return
        except OSError:
            self.lost(c)
            return
        c.out = c.out[n:]
        if not c.out:
            self.set_out_interest(c, False)

    def lost(self, c: Client) -> None:
        tail = bytes(c.last)
        if b'"code":"slow"' in tail:
            how = "slow"
        elif b"ERROR :" in tail:
            how = "error:" + tail[tail.rindex(b"ERROR :") + 7:].split(b"\r\n")[0].decode("latin-1")[:80]
        else:
            how = "closed"
        if c.state == READY:
            self.closed_unexpected += 1
        self.close(c, how)

    # -- events -------------------------------------------------------------

    def on_event(self, c: Client, ev: int) -> None:
        if c.state == CONNECTING:
            if not ev & (EPOLLOUT | select.EPOLLERR | select.EPOLLHUP):
                return
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err or ev & select.EPOLLHUP:
                raise LoadError(f"{c.name}: connect failed: {os.strerror(err) if err else 'hang-up'}")
            c.state = REGISTERING
            self.set_out_interest(c, False)
            first = self.dialect_of(c).start(c, self.setup_only)
            if first:
                self.write(c, first)
            if c.sock is None or not ev & EPOLLIN:
                return
        elif ev & EPOLLOUT:
            self.flush(c)
            if c.sock is None:
                return
        if ev & (EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
            self.on_readable(c)

    def on_readable(self, c: Client) -> None:
        if c.sock is None:
            return
        buf = _BUF
        try:
            n = c.recv_into(buf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            n = 0
        if not n:
            if c.state != READY:
                tail = (c.reg or c.last)[-300:]
                raise LoadError(f"{c.name}: closed during registration: {bytes(tail)!r}")
            self.lost(c)
            return
        self.last_data = time.monotonic()
        if c.state == REGISTERING:
            done, out = self.dialect_of(c).registration(c, bytes(_VIEW[:n]), self.setup_only)
            if out:
                self.write(c, out)
            if done:
                c.state = READY
                if c.session is not None:
                    self._decrypt_inline(c)
                elif c.role == SINK:
                    c.fast = True
                self.on_registered(c)
            return
        if c.decrypt is not None:
            self._records(c, n)
            return
        if c.session is not None:
            session = c.session
            session.receive_data(bytes(_VIEW[:n]))
            chunks = [event.data for event in session.events()]
            if not chunks:
                return
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            n = len(data)
            if not n:
                return
        else:
            data = buf
        self._account(c, data, n)

    def _account(self, c: Client, data: Any, n: int) -> None:
        """Count the deliveries in C{data[:n]} (and tags, or latencies)."""
        k = data.count(MARK, 0, n)
        if c.lt and data[0] == 83:  # b"S"
            k += 1
        c.lt = data[n - 1] == 60  # b"<"
        c.count += k
        c.last = data[n - 600 if n > 600 else 0:n]
        if c.role == TRACKER:
            tags = c.tags
            tails = c.tagtails
            head = bytes(data[:4])
            for s, tag in enumerate(self.tag_bytes):
                tags[s] += data.count(tag, 0, n) + (tails[s] + head).count(tag)
                tails[s] = bytes(data[n - 4 if n > 4 else 0:n])
        elif c.role == PROBE and self.record_latency:
            now = _perf_ns()
            chunk = bytes(data[:n]) if data is _BUF else data
            buf2 = c.pbuf + chunk
            lat = self.latencies
            for m in _TS.finditer(buf2):
                lat.append(now - int(m.group(1)))
            c.pbuf = buf2[-24:]

    def on_registered(self, c: Client) -> None:
        self.registered += 1

    def pump_probes(self) -> None:
        if not self.probes:
            return
        for fd, ev in self.pep.poll(0):
            c = self.by_fd.get(fd)
            if c is not None:
                self.on_event(c, ev)

    def pump(self, timeout: float) -> None:
        self.pump_probes()
        events = self.ep.poll(timeout, 8192)
        by_fd = self.by_fd
        pfd = self.pep.fileno()
        buf = _BUF
        i = 0
        got = False
        for fd, ev in events:
            i += 1
            if not i & 15:
                self.pump_probes()
            if fd == pfd:
                self.pump_probes()
                continue
            c = by_fd.get(fd)
            if c is None:
                continue
            if c.decrypt is not None and ev == EPOLLIN:
                # an encrypted receiver: records decrypted and counted here
                got = self.count_records(c) or got
                continue
            if c.fast and ev == EPOLLIN:
                # the hot path: a plaintext receiver, counted in place
                try:
                    n = c.recv_into(buf)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    n = 0
                if n:
                    k = buf.count(MARK, 0, n)
                    if c.lt and buf[0] == 83:
                        k += 1
                    c.lt = buf[n - 1] == 60
                    c.count += k
                    c.last = buf[n - 600 if n > 600 else 0:n]
                    got = True
                    continue
                self.lost(c)
                continue
            self.on_event(c, ev)
        if got:
            self.last_data = time.monotonic()

    def _decrypt_inline(self, c: Client) -> None:
        """
        From now on read C{c}'s records in L{_records}: one AES-GCM
        call and a C{bytes.count} per record, none of the sans-IO layer's
        per-record objects (which made the generator the bottleneck).
        """
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        session = c.session
        receiver = session._receiver  # the bench may look inside
        c.decrypt = AESGCM(receiver._key).decrypt
        c.nonce = receiver.nonce
        c.rbuf = wsclient.inline_state(c) if c.ws else bytes(session._decoder.buffered)

    def count_records(self, c: Client) -> bool:
        try:
            n = c.recv_into(_BUF)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            n = 0
        if not n:
            self.lost(c)
            return False
        self._records(c, n)
        return True

    def _records(self, c: Client, n: int) -> None:
        """Decrypt the records in C{c.rbuf} and C{_BUF[:n]}; count them."""
        if c.role != SINK and c.role != SENDER:
            # Trackers and probes look at the text: hand it over whole.
            plains = []
        else:
            plains = None
        data = c.rbuf + _VIEW[:n] if c.rbuf else bytes(_VIEW[:n])
        if c.ws:
            wsclient.ws_records(self, c, data, _pack_nonce, MARK)
            return
        view = memoryview(data)
        end = len(data)
        pos = 0
        decrypt = c.decrypt
        nonce = c.nonce
        count = 0
        lt = c.lt
        last = None
        while end - pos >= 4:
            size = int.from_bytes(data[pos:pos + 4], "big")
            stop = pos + 4 + size
            if stop > end:
                break
            if data[pos + 4] != 2:
                raise LoadError(f"{c.name}: record of type {data[pos + 4]} after the handshake")
            plain = decrypt(_pack_nonce(nonce), view[pos + 5:stop], b"")
            nonce += 1
            pos = stop
            if plains is not None:
                plains.append(plain)
            elif plain:
                count += plain.count(MARK)
                if lt and plain[0] == 83:
                    count += 1
                lt = plain[-1] == 60
                last = plain
        c.nonce = nonce
        c.rbuf = data[pos:] if pos < end else b""
        if plains is not None:
            text = b"".join(plains)
            if text:
                self._account(c, text, len(text))
            return
        c.lt = lt
        c.count += count
        if last is not None:
            c.last = last[-600:]

    # -- phases ---------------------------------------------------------------

    setup_only = False
    registered = 0

    def make_clients(self, n: int, senders: int, probes: int, tracker: bool) -> None:
        for i in range(n):
            role = SENDER if i < senders else SINK
            name = (f"s{i:02d}" if role == SENDER else f"c{i:05d}")
            self.clients.append(Client(i, role, name))
        self.senders = self.clients[:senders]
        if tracker and n > senders:
            self.tracker = self.clients[-1]
            self.tracker.role = TRACKER
            self.tracker.tags = [0] * senders
            self.tracker.tagtails = [b""] * senders
        self.tag_bytes = [b"<S%02d>" % s for s in range(senders)]
        if self.ws_share >= 1.0:
            for c in self.clients:
                c.ws = True
        elif self.ws_share > 0:
            # that share of the receivers (senders stay on TCP), the tracker included
            step = max(1, round(1 / self.ws_share))
            for c in self.clients[senders:]:
                c.ws = (c.idx - senders) % step == step - 1
        # probes: spread over the registration order, never the tracker
        pool = [c for c in self.clients if c.role == SINK]
        if probes and pool:
            step = max(1, len(pool) // probes)
            chosen = pool[::step][:probes]
            if pool[-1] not in chosen and len(chosen) == probes:
                chosen[-1] = pool[-1]
            for c in chosen:
                c.role = PROBE
            self.probes = chosen

    def connect_all(self, concurrency: int) -> float:
        """Connect and register every client, at most C{concurrency} at once."""
        t0 = time.monotonic()
        pending = [c for c in self.clients if c is not self.tracker]
        pending.reverse()
        inflight: List[Client] = []
        self.registered = 0
        target = len(self.clients)
        last_note = last_scan = t0
        while self.registered < target:
            self.check_deadline()
            while len(inflight) < concurrency and pending:
                c = pending.pop()
                self.open(c)
                inflight.append(c)
            if not pending and self.tracker is not None and self.tracker.sock is None \
                    and self.registered == target - 1:
                self.open(self.tracker)
                inflight.append(self.tracker)
            self.pump(0.05)
            inflight = [c for c in inflight if c.state != READY]
            now = time.monotonic()
            if now - last_scan > 0.5:
                last_scan = now
                for c in inflight:
                    if now - c.t_start > 30:
                        raise LoadError(f"{c.name}: no registration within 30 s "
                                        f"({self.registered}/{target} registered)")
            if now - last_note > 10:
                last_note = now
                sys.stderr.write(f"loadgen: {self.registered}/{target} registered\n")
                sys.stderr.flush()
        return time.monotonic() - t0

    def settle(self, quiet: float = 0.3, limit: float = 60.0) -> float:
        """Read until nothing arrives for C{quiet} seconds (the join storm is over)."""
        t0 = time.monotonic()
        while True:
            self.check_deadline()
            self.pump(0.05)
            now = time.monotonic()
            if now - self.last_data >= quiet:
                return now - t0
            if now - t0 > limit:
                return now - t0

    def wait_server_idle(self, limit: float = 60.0) -> None:
        """Keep reading until the server uses under 3% CPU for 0.5 s."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            c0 = self.server_cpu()
            t = time.monotonic()
            while time.monotonic() - t < 0.5:
                self.pump(0.05)
            if (self.server_cpu() - c0) / 0.5e9 < 0.03 and time.monotonic() - self.last_data > 0.4:
                return
            self.check_deadline()

    def feed_senders(self, window: int, batch: int) -> None:
        tracker = self.tracker
        acked = tracker.tags if (window and tracker is not None) else None
        for c in self.senders:
            if c.out or c.sock is None:
                continue
            k = batch
            if acked is not None:
                room = window - (c.sent - acked[c.idx])
                if room <= 0:
                    continue
                if room < k:
                    k = room
            self.write(c, self.wire(c, k))

    def total_count(self) -> int:
        return sum(c.count for c in self.clients)

    def expected_for(self, c: Client, total_sent: int) -> int:
        if c.role == SENDER and not self.dialect.echo:
            return total_sent - c.sent
        return total_sent

    # -- modes ----------------------------------------------------------------

    def _traffic_result(self, total_sent: int) -> Dict[str, Any]:
        short = [c for c in self.clients if c.count < self.expected_for(c, total_sent)]
        over = [c for c in self.clients if c.count > self.expected_for(c, total_sent)]
        closed = [c for c in self.clients if c.state == CLOSED]
        hows: Dict[str, int] = {}
        for c in closed:
            hows[c.closed_how or "?"] = hows.get(c.closed_how or "?", 0) + 1
        expected = sum(self.expected_for(c, total_sent) for c in self.clients)
        return {
            "clients": len(self.clients),
            "senders": len(self.senders),
            "total_sent": total_sent,
            "clients_short": len(short),
            "clients_over": len(over),  # must be 0: a counting check
            "clients_closed": len(closed),
            "closed_how": hows,
            "slow_drops": hows.get("slow", 0),
            "min_received_fraction": (
                min(c.count / max(1, self.expected_for(c, total_sent)) for c in self.clients)
                if total_sent else 1.0
            ),
            "delivered_fraction": self.total_count() / max(1, expected),
        }

    def drain(self, limit: float) -> float:
        """Flush the senders, then read until every receiver has every message."""
        t0 = time.monotonic()
        while any(c.out for c in self.senders if c.sock is not None):
            self.check_deadline()
            self.pump(0.01)
            if time.monotonic() - t0 > limit or time.monotonic() - self.last_data > 10:
                break
        total_sent = sum(c.sent for c in self.senders)
        while time.monotonic() - t0 < limit:
            self.check_deadline()
            self.pump(0.05)
            if all(c.count >= self.expected_for(c, total_sent)
                   for c in self.clients if c.sock is not None):
                break
            if time.monotonic() - self.last_data > 10:
                break  # nothing for 10 s: what is missing will not come
        return time.monotonic() - t0

    def run_fanout(self, window: int) -> Dict[str, Any]:
        """Closed loop: C{window} messages in flight per sender, acked by the tracker."""
        o = self.opts
        warmup = float(o.get("warmup", 2.0))
        duration = float(o.get("duration", 5.0))
        t0 = time.monotonic()
        snap = None
        t_end = t0 + warmup + duration
        while True:
            self.check_deadline()
            self.feed_senders(window, BATCH)
            self.pump(0.002)
            now = time.monotonic()
            if snap is None and now >= t0 + warmup:
                snap = (now, self.total_count(), self.server_cpu(), proc_cpu_ns(None),
                        sum(c.sent for c in self.senders))
                j0 = cpu_jiffies()
                self.emit({"event": "window_start", "seconds": duration})
            if now >= t_end:
                break
        end = (time.monotonic(), self.total_count(), self.server_cpu(), proc_cpu_ns(None),
               sum(c.sent for c in self.senders))
        busy = busy_between(j0, cpu_jiffies())
        elapsed = end[0] - snap[0]
        drain_s = self.drain(float(o.get("drain", 20.0)))
        result = self._traffic_result(sum(c.sent for c in self.senders))
        server_cpu = (end[2] - snap[2]) / 1e9 / elapsed if self.server_pid else None
        result.update({
            "cpu_busy": busy,
            "window": window,
            "seconds": elapsed,
            "deliveries": end[1] - snap[1],
            "deliveries_per_s": (end[1] - snap[1]) / elapsed,
            "deliveries_per_cpu_s": ((end[1] - snap[1]) / (end[2] - snap[2]) * 1e9
                                     if self.server_pid and end[2] > snap[2] else None),
            "sent_per_s": (end[4] - snap[4]) / elapsed,
            "server_cpu": server_cpu,
            "loadgen_cpu": (end[3] - snap[3]) / 1e9 / elapsed,
            "drain_seconds": drain_s,
        })
        return result

    def run_overload(self) -> Dict[str, Any]:
        """
        Open loop: senders write as fast as their sockets take data (a 64 KiB
        send buffer each, so the kernel does not hide a backlog) until each
        has sent C{budget} messages or C{duration} has passed; then every
        receiver must get every message.
        """
        o = self.opts
        duration = float(o.get("duration", 5.0))
        budget = int(o.get("budget", 2000))
        for c in self.senders:
            try:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            except OSError:
                pass
        t0 = time.monotonic()
        c0 = (self.total_count(), self.server_cpu(), proc_cpu_ns(None))
        j0 = cpu_jiffies()
        self.emit({"event": "window_start", "seconds": duration})
        while True:
            self.check_deadline()
            active = False
            for c in self.senders:
                if c.sock is None or c.sent >= budget:
                    continue
                active = True
                if c.out:
                    continue
                k = min(BATCH, budget - c.sent)
                self.write(c, self.wire(c, k))
            if not active or time.monotonic() - t0 >= duration:
                break
            blocked = all(c.out or c.sent >= budget for c in self.senders if c.sock is not None)
            self.pump(0.002 if blocked else 0)
        push_s = time.monotonic() - t0
        drain_s = self.drain(float(o.get("drain", 60.0)))
        t_last = max(self.last_data, t0 + 1e-3)
        elapsed = t_last - t0
        total_sent = sum(c.sent for c in self.senders)
        result = self._traffic_result(total_sent)
        result.update({
            "cpu_busy": busy_between(j0, cpu_jiffies()),
            "budget": budget,
            "push_seconds": push_s,
            "drain_seconds": drain_s,
            "seconds": elapsed,
            "deliveries": self.total_count() - c0[0],
            "deliveries_per_s": (self.total_count() - c0[0]) / elapsed,
            "server_cpu": (self.server_cpu() - c0[1]) / 1e9 / elapsed if self.server_pid else None,
            "loadgen_cpu": (proc_cpu_ns(None) - c0[2]) / 1e9 / elapsed,
        })
        return result

    def run_latency(self) -> Dict[str, Any]:
        o = self.opts
        rate = float(o.get("rate", 200.0))
        duration = float(o.get("duration", 10.0))
        warmup = float(o.get("warmup", 1.0))
        s = len(self.senders)
        interval = 1.0 / rate
        t0 = time.monotonic() + 0.05
        nxt = t0
        k = 0
        t_rec = t0 + warmup
        t_end = t_rec + duration
        snap = None
        while True:
            self.check_deadline()
            now = time.monotonic()
            if now >= nxt:
                if snap is None and now >= t_rec:
                    self.record_latency = True
                    snap = (now, self.server_cpu(), proc_cpu_ns(None), self.total_count())
                    j0 = cpu_jiffies()
                    self.emit({"event": "window_start", "seconds": duration})
                if now >= t_end:
                    break
                c = self.senders[k % s]
                k += 1
                nxt = t0 + k * interval
                if c.sock is not None:
                    self.write(c, self.wire(c, 1))
                continue
            self.pump(max(0.0, min(nxt - now, 0.01)))
        end = (time.monotonic(), self.server_cpu(), proc_cpu_ns(None), self.total_count())
        busy = busy_between(j0, cpu_jiffies())
        # collect the stragglers of the last messages
        t1 = time.monotonic()
        while time.monotonic() - t1 < float(o.get("tail", 1.0)):
            self.pump(0.01)
        self.record_latency = False
        lat = sorted(self.latencies)
        elapsed = end[0] - snap[0]
        return {
            "cpu_busy": busy,
            "clients": len(self.clients),
            "rate": rate,
            "seconds": elapsed,
            "samples": len(lat),
            "probes": len(self.probes),
            "p50_ms": _pct(lat, 50),
            "p90_ms": _pct(lat, 90),
            "p99_ms": _pct(lat, 99),
            "p999_ms": _pct(lat, 99.9),
            "max_ms": lat[-1] / 1e6 if lat else None,
            "cdf_ms": [_pct(lat, q / 10) for q in range(0, 1001)] if lat else [],
            "deliveries_per_s": (end[3] - snap[3]) / elapsed,
            "server_cpu": (end[1] - snap[1]) / 1e9 / elapsed if self.server_pid else None,
            "loadgen_cpu": (end[2] - snap[2]) / 1e9 / elapsed,
            "clients_closed": sum(1 for c in self.clients if c.state == CLOSED),
        }

    def run_setup(self) -> Dict[str, Any]:
        o = self.opts
        duration = float(o.get("duration", 3.0))
        warmup = float(o.get("warmup", 0.5))
        concurrency = int(o.get("concurrency", 16))
        self.setup_only = True
        done = 0
        seq = 0
        live: List[Client] = []
        orig = self.on_registered

        def registered(c: Client) -> None:
            nonlocal done
            done += 1
            self.close(c, "done", rst=True)

        self.on_registered = registered  # type: ignore[assignment]
        t0 = time.monotonic()
        t_rec = t0 + warmup
        t_end = t_rec + duration
        snap = None
        while True:
            self.check_deadline()
            live = [c for c in live if c.sock is not None]
            while len(live) < concurrency:
                c = Client(seq, SINK, f"u{seq % 100000:05d}")
                seq += 1
                self.open(c)
                live.append(c)
            self.pump(0.01)
            now = time.monotonic()
            for c in live:
                if c.sock is not None and now - c.t_start > 10:
                    raise LoadError(f"{c.name}: set-up took over 10 s")
            if snap is None and now >= t_rec:
                snap = (now, done, self.server_cpu(), proc_cpu_ns(None))
                j0 = cpu_jiffies()
                self.emit({"event": "window_start", "seconds": duration})
            if now >= t_end:
                break
        end = (time.monotonic(), done, self.server_cpu(), proc_cpu_ns(None))
        busy = busy_between(j0, cpu_jiffies())
        self.on_registered = orig  # type: ignore[assignment]
        for c in live:
            self.close(c, "end", rst=True)
        elapsed = end[0] - snap[0]
        return {
            "cpu_busy": busy,
            "concurrency": concurrency,
            "seconds": elapsed,
            "setups": end[1] - snap[1],
            "setups_per_s": (end[1] - snap[1]) / elapsed,
            "server_cpu": (end[2] - snap[2]) / 1e9 / elapsed if self.server_pid else None,
            "loadgen_cpu": (end[3] - snap[3]) / 1e9 / elapsed,
        }

    def run(self) -> Dict[str, Any]:
        o = self.opts
        mode = o["mode"]
        if mode == "setup":
            return self.run_setup()
        n = int(o["clients"])
        senders = 0 if mode == "memory" else min(int(o.get("senders", 10)), n)
        probes = int(o.get("probes", 5)) if mode == "latency" else 0
        tracker = mode in ("fanout", "overload")
        rss0 = proc_rss_kib(self.server_pid) if self.server_pid else 0
        self.make_clients(n, senders, probes, tracker)
        cpu0 = self.server_cpu()
        reg_s = self.connect_all(int(o.get("concurrency", 32)))
        reg_cpu = (self.server_cpu() - cpu0) / 1e9
        settle_s = self.settle()
        result: Dict[str, Any] = {"registration_seconds": reg_s, "registration_server_cpu_s": reg_cpu,
                                  "settle_seconds": settle_s}
        if mode == "memory":
            self.wait_server_idle()
            rss1 = proc_rss_kib(self.server_pid) if self.server_pid else 0
            result.update({
                "clients": n,
                "rss_before_kib": rss0,
                "rss_after_kib": rss1,
                "kib_per_client": (rss1 - rss0) / n,
                "clients_closed": sum(1 for c in self.clients if c.state == CLOSED),
            })
        elif mode == "fanout":
            result.update(self.run_fanout(int(o.get("window", 128))))
            if 0 < self.ws_share < 1:
                result["by_transport"] = self.by_transport()
        elif mode == "overload":
            result.update(self.run_overload())
        elif mode == "latency":
            result.update(self.run_latency())
        else:
            raise LoadError(f"unknown mode {mode!r}")
        return result


    def by_transport(self) -> Dict[str, Any]:
        """A mixed run: receivers per transport, and how many got every message."""
        out: Dict[str, Any] = {}
        total = sum(c.sent for c in self.senders)
        for label, ws in (("tcp", False), ("ws", True)):
            group = [c for c in self.clients if c.ws == ws and c.role != SENDER]
            out[label] = {"receivers": len(group),
                          "complete": sum(1 for c in group if c.count >= total),
                          "closed": sum(1 for c in group if c.state == CLOSED)}
        return out


def _pct(values: List[int], q: float) -> Optional[float]:
    if not values:
        return None
    i = min(len(values) - 1, max(0, int(round(q / 100 * (len(values) - 1)))))
    return values[i] / 1e6


def main(argv: Optional[List[str]] = None, generator: Any = None) -> int:
    """
    Run one load generator (L{LoadGen}, or C{generator}: another class of
    the same shape, such as L{bench.rooms.RoomsLoadGen}) with the JSON
    options in C{argv[0]}, and print its result as one JSON line.
    """
    argv = sys.argv[1:] if argv is None else argv
    opts = json.loads(argv[0])
    gc.disable()  # no collector pauses in the middle of a measurement
    limit = int(float(opts.get("deadline", 300))) + 30
    signal.signal(signal.SIGALRM, lambda *a: os._exit(3))
    signal.alarm(limit)  # a backstop beyond the loops' own deadlines
    try:
        result = (generator or LoadGen)(opts).run()
        result["ok"] = True
    except LoadError as e:
        result = {"ok": False, "error": str(e)}
    except Exception as e:  # report, do not hang the runner
        import traceback

        traceback.print_exc()
        result = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    result["event"] = "result"
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    # Hold the connections until the runner has stopped the server.
    try:
        r, _, _ = select.select([sys.stdin], [], [], 60)
        if r:
            sys.stdin.read()
    except (OSError, ValueError):
        pass
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
