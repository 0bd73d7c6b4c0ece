"""
A Redis Cluster for tests: C{count} masters on 127.0.0.1 made with
C{redis-server --cluster-enabled yes} and C{redis-cli --cluster create},
and a small blocking RESP connection to check things on each node::

    cluster = RedisCluster(self.mktemp())
    cluster.start()
    await wait_until(cluster.ready, 30, "the cluster")
    RespConnection(cluster.nodes[0].port)("CLUSTER", "SLOTS")
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from typing import Any, List

from .scaleout import INSTALL_HINT, LOOPBACK, RedisServer, find_redis_server


class RespError(Exception):
    """An error reply (C{-ERR ...}, C{-MOVED ...}, C{-CROSSSLOT ...})."""


def _read_reply(f: Any) -> Any:
    line = f.readline()
    if not line:
        raise ConnectionError("Redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RespError(rest.decode("utf-8", "replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = f.read(size + 2)
        return data[:-2]
    if kind == b"*":
        size = int(rest)
        return None if size < 0 else [_read_reply(f) for _ in range(size)]
    raise RespError(f"unexpected reply {line!r}")


class RespConnection:
    """A blocking RESP connection for checks: one command, one reply (errors raised)."""

    def __init__(self, port: int) -> None:
        self._socket = socket.create_connection((LOOPBACK, port), timeout=5)
        self._file = self._socket.makefile("rb")

    def __call__(self, *args: Any) -> Any:
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode("utf-8")
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self._socket.sendall(out)
        return _read_reply(self._file)

    def close(self) -> None:
        self._file.close()
        self._socket.close()


def cluster_port() -> int:
    """
    A free port for a Cluster node: at most 55535, with the port 10,000
    higher (the Cluster bus) free too.
    """
    for _ in range(200):
        port = random.randint(20000, 55535)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind((LOOPBACK, port))
                b.bind((LOOPBACK, port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of ports for a Redis Cluster node")


class RedisCluster:
    """
    A Redis Cluster of C{count} masters on 127.0.0.1 (no replicas), made
    with C{redis-server --cluster-enabled yes} and C{redis-cli --cluster
    create}. Wait for L{ready} (with a deadline) before use.
    """

    def __init__(self, directory: str, count: int = 3) -> None:
        self.nodes: List[RedisServer] = []
        for n in range(count):
            node_dir = os.path.join(directory, f"node{n}")
            os.makedirs(node_dir, exist_ok=True)
            self.nodes.append(_ClusterNode(node_dir, cluster_port(), persist=False))

    def start(self) -> None:
        for node in self.nodes:
            node.run()
        cli = shutil.which("redis-cli") or os.path.join(os.path.dirname(find_redis_server()),
                                                        "redis-cli")
        if not os.path.exists(cli):
            raise RuntimeError("the Cluster tests need redis-cli next to redis-server; "
                               + INSTALL_HINT)
        done = subprocess.run(
            [cli, "--cluster", "create", *(f"{LOOPBACK}:{n.port}" for n in self.nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout[-2000:]!r}")

    def ready(self) -> bool:
        """Every node says C{cluster_state:ok}."""
        for node in self.nodes:
            info = RespConnection(node.port)
            try:
                if b"cluster_state:ok" not in info("CLUSTER", "INFO"):
                    return False
            finally:
                info.close()
        return True

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class _ClusterNode(RedisServer):
    def __init__(self, directory: str, port: int, persist: bool = False) -> None:
        super().__init__(directory, port, persist)
        self.extra = ["--cluster-enabled", "yes", "--cluster-config-file",
                      "nodes.conf", "--cluster-node-timeout", "5000"]  # in --dir
