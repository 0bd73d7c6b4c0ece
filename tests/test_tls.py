"""
TLS end to end: C{twistd chat --listen ssl:...} with a self-signed
certificate made here, and C{chat-client --connect tls:... --ca FILE}
trusting it; plus the pure parts of L{chatsvc.client.tls}.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from chatsvc.client.args import UsageError, parse_args
from chatsvc.client.endpoints import build_endpoint
from chatsvc.client.tls import tls_endpoint

from .hardening_procs import registered, shows_server_log, start_server
from .procs import DEMO_KEY, REPO, ChatClientProcess, child_env


def make_certificate(directory: str, name: str = "localhost") -> tuple:
    """A self-signed certificate for C{name} and 127.0.0.1: (key path, cert path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path = os.path.join(directory, "server.key")
    cert_path = os.path.join(directory, "server.pem")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


class TLSEndpointTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.key, self.cert = make_certificate(self.dir)

    def test_ca_needs_tls(self) -> None:
        self.assertRaises(UsageError, parse_args, ["--ca", self.cert])
        self.assertRaises(UsageError, parse_args,
                          ["--connect", "tcp:host=a:port=1", "--ca", self.cert])
        args = parse_args(["--connect", "tls:host=localhost:port=8443", "--ca", self.cert])
        self.assertEqual(args.ca, self.cert)
        build_endpoint(reactor, args)  # no error

    def test_bad_descriptions(self) -> None:
        for bad in ["tcp:host=a:port=1", "tls:host=a", "tls:port=1", "tls:host=a:port=x",
                    "tls:host=a:port=1:trustRoots=/etc"]:
            self.assertRaises(ValueError, tls_endpoint, reactor, bad, self.cert)
        tls_endpoint(reactor, "tls:localhost:8443", self.cert)  # positional host and port

    def test_bad_ca_file(self) -> None:
        with self.assertRaises(ValueError) as caught:
            tls_endpoint(reactor, "tls:host=a:port=1", self.key)
        self.assertIn("no PEM certificate", str(caught.exception))
        self.assertNotIn("BEGIN", str(caught.exception))
        self.assertRaises(ValueError, tls_endpoint, reactor, "tls:host=a:port=1",
                          self.cert + ".missing")


class TLSProcessTests(TestCase):
    """A real server on ssl:, real clients on tls:."""

    timeout = 120

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.key, self.cert = make_certificate(self.dir)

    @defer.inlineCallbacks
    def start(self, *options: str):
        listen = f"ssl:0:interface=127.0.0.1:privateKey={self.key}:certKey={self.cert}"
        server = yield start_server(self, "--listen", listen, *options)
        ports = []
        while len(ports) < 2:
            line = yield server.wait_for(re.compile(r"starting on \d+"), after=0 if not ports else
                                         server.lines.index(ports[-1][1]) + 1)
            ports.append((int(re.search(r"starting on (\d+)", line).group(1)), line))
        self.assertNotEqual(ports[1][0], server.port)
        return server, ports[1][0]

    def client(self, port: int, name: str, *options: str) -> ChatClientProcess:
        """C{chat-client --connect tls:...} as a child process (killed in cleanup)."""
        client = ChatClientProcess(name)
        args = [sys.executable, "-m", "chatsvc.client", "--connect",
                f"tls:host=localhost:port={port}", "--name", name, "--no-reconnect"] + list(options)
        reactor.spawnProcess(client, sys.executable, args, env=child_env(), path=REPO,
                             childFDs={0: "w", 1: "r", 2: "r"})

        def stop() -> defer.Deferred:
            if client.running:
                client.signal("KILL")
            return client.ended

        self.addCleanup(stop)
        return client

    @shows_server_log
    def test_tls_plaintext_chat(self):
        """Over TLS, a client that trusts the certificate chats with a TCP one."""
        server, tls_port = yield self.start()
        bob = yield registered(self, server.port, "bob")
        alice = self.client(tls_port, "alice", "--ca", self.cert)
        yield alice.wait_for("* connected as alice")
        alice.send("hello over tls")
        yield bob.wait_for(lambda m: m.get("text") == "hello over tls", what="alice's message")
        bob.say("hello from tcp")
        yield alice.wait_for("bob: hello from tcp")

    @shows_server_log
    def test_tls_and_psk(self):
        """TLS outside, Noise inside: both at once work."""
        server, tls_port = yield self.start("--encrypted", "--psk", DEMO_KEY)
        alice = self.client(tls_port, "alice", "--ca", self.cert, "--encrypted", "--psk", DEMO_KEY)
        bob = self.client(tls_port, "bob", "--ca", self.cert, "--encrypted", "--psk", DEMO_KEY)
        yield alice.wait_for("* connected as alice")
        yield bob.wait_for("* connected as bob")
        alice.send("both layers")
        yield bob.wait_for("alice: both layers")

    @shows_server_log
    def test_untrusted_certificate_refused(self):
        """Without --ca, the self-signed certificate is not trusted: no connection."""
        server, tls_port = yield self.start()
        alice = self.client(tls_port, "alice")
        code = yield alice.wait_exit()
        self.assertEqual(code, 1)
        self.assertNotIn("connected as alice", alice.output())
        self.assertRegex(alice.output().lower(), r"certificate|verif|ssl|tls")

    @shows_server_log
    def test_wrong_name_refused(self):
        """A certificate for another name is refused even when its file is trusted."""
        other = os.path.join(self.dir, "other")
        os.makedirs(other)
        _, other_cert = make_certificate(other, name="chat.example")
        server, tls_port = yield self.start()
        alice = self.client(tls_port, "alice", "--ca", other_cert)
        code = yield alice.wait_exit()
        self.assertEqual(code, 1)
        self.assertNotIn("connected as alice", alice.output())


class FastPathTests(SynchronousTestCase):
    def test_no_fast_path_under_tls(self) -> None:
        """
        The plaintext fan-out's direct send() is for a bare socket transport
        only: a TLS wrapper, which hands attribute look-ups on to the TCP
        transport under it, must not pass for one.
        """
        import socket

        from twisted.internet.abstract import FileDescriptor
        from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol

        from chatsvc.server.fastwrite import supports

        class Bare(FileDescriptor):
            connected = True

            def __init__(self) -> None:
                FileDescriptor.__init__(self, reactor)
                self.socket = socket.socket()

        bare = Bare()
        self.addCleanup(bare.socket.close)
        self.assertTrue(supports(bare))
        from twisted.internet.ssl import CertificateOptions

        wrapper = TLSMemoryBIOProtocol(TLSMemoryBIOFactory(CertificateOptions(), False, None), None)
        wrapper.transport = bare
        self.assertEqual(wrapper._tempDataLen, 0)  # delegated: looks like a socket transport
        self.assertFalse(supports(wrapper))
