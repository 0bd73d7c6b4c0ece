"""
The Redis backend's scripts on a real Redis Cluster of 3 masters, started by
the test (C{redis-server --cluster-enabled yes}, C{redis-cli --cluster
create}): each script runs on the node that owns its keys' slot and never
meets C{CROSSSLOT} or C{MOVED}, through a whole session (hello, rooms,
messages, rename, part, reconciliation, leave); a chat's rooms spread over
the nodes.

This tests the key layout and the scripts only: L{RedisChat}'s connection
and stream reader speak to one Redis (docs/scaling.md, "Redis Cluster").
"""

from __future__ import annotations

from typing import Any, Dict, List

from twisted.trial.unittest import TestCase

from chatsvc.chat.redis.admin import topic_parts
from chatsvc.chat.redis.entries import GUEST_DIGITS, message_head, private_parts
from chatsvc.chat.redis.keys import ChatKeys, RoomKeys, hash_slot
from chatsvc.chat.redis.scripts import SCRIPTS, script_sha

from .rediscluster import RedisCluster, RespConnection, RespError
from .scaleout import wait_until

TS = "2026-12-06T04:30:00.000Z"
EV, ROOM_EV = 100_000, 10_000


class Router:
    """Sends each script to the master that owns its keys' slot."""

    def __init__(self, cluster: RedisCluster) -> None:
        self.connections = {n.port: RespConnection(n.port) for n in cluster.nodes}
        first = next(iter(self.connections.values()))
        self.slots: List[tuple] = [(int(r[0]), int(r[1]), int(r[2][1])) for r in
                                   first("CLUSTER", "SLOTS")]
        for connection in self.connections.values():
            for _, text in SCRIPTS.values():
                connection("SCRIPT", "LOAD", text)

    def port_of(self, key: str) -> int:
        slot = hash_slot(key)
        for start, end, port in self.slots:
            if start <= slot <= end:
                return port
        raise AssertionError(f"no node serves slot {slot}")

    def __call__(self, script: str, keys: List[str], *args: Any) -> Any:
        scope, text = SCRIPTS[script]
        self.check_scope(scope, keys)
        return self.connections[self.port_of(keys[0])]("EVALSHA", script_sha(text), len(keys),
                                                       *keys, *args)

    @staticmethod
    def check_scope(scope: str, keys: List[str]) -> None:
        assert len(keys) == (10 if scope == "chat" else 4), (scope, keys)

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()


class ClusterTests(TestCase):
    timeout = 60

    async def setUp(self) -> None:
        self.cluster = RedisCluster(self.mktemp())
        self.addCleanup(self.cluster.stop)
        self.cluster.start()
        await wait_until(self.cluster.ready, 30, "the cluster to be ready", every=0.1)
        self.call = Router(self.cluster)
        self.addCleanup(self.call.close)

    def test_a_cluster_refuses_keys_of_two_slots(self) -> None:
        """The control: a script over a chat's key and a room's key is refused."""
        chat, room = ChatKeys("c").all[0], RoomKeys("c", "#a").all[0]
        self.assertNotEqual(hash_slot(chat), hash_slot(room))
        connection = self.call.connections[self.call.port_of(chat)]
        with self.assertRaises(RespError) as e:
            connection("EVAL", "return 1", 2, chat, room)
        self.assertTrue(str(e.exception).startswith(("CROSSSLOT", "MOVED")), str(e.exception))

    def test_rooms_spread_over_the_nodes(self) -> None:
        ports = {self.call.port_of(RoomKeys("c", f"#room{n}").events) for n in range(12)}
        self.assertEqual(len(ports), 3)

    def test_a_whole_session(self) -> None:
        chat = ChatKeys("c").all
        rooms = {k: RoomKeys("c", k).all for k in ("#a", "#b", "#c", "#d")}
        call = self.call
        self.assertEqual(call("beat", chat, "s1", 10000, EV)[0], 0)
        reply = call("register", chat, "s1", "s1-1", "tok1", "", "0", EV, "0", 20, 10000, "1",
                     "epoch1", 3, GUEST_DIGITS, "#a", "#b", "#c", "alice", "alice", "alice")
        self.assertEqual(reply[0:3] + reply[4:], [b"j", b"alice", b"alice", b"s1-1", b"epoch1",
                                                  [b"#a", b"#b", b"#c"], []])
        for key in ("#a", "#b", "#c"):
            joined = call("join", rooms[key], "s1", "s1-1", "alice", "0", key, "", "", 50,
                          ROOM_EV, 1000, TS, 1000)
            self.assertEqual((joined[0], joined[2], joined[4]), (b"j", key.encode(), 1))
            call("index", chat, key, joined[1], 1, key, "", "1")
        head = message_head("#a", "alice", "hi", TS)
        self.assertEqual(call("say", rooms["#a"], "s1", 1, "s1-1", head, 50, ROOM_EV)[0], 1)
        self.assertEqual(call("topic", rooms["#b"], "s1-1", "tea", b"{}", ROOM_EV)[1:],
                         [1, b"#b"])
        self.assertEqual(call("claim", chat, "s1-1", "#d", 20, 10000), b"ok")
        call("join", rooms["#d"], "s1", "s1-1", "alice", "0", "#d", "", "", 50, ROOM_EV, 1000,
             TS, 1000)
        self.assertEqual(call("part", rooms["#d"], "s1", "s1-1", b"{}", ROOM_EV, 1000, "p",
                              "s1-1")[0], 1)
        self.assertEqual(call("unclaim", chat, "s1-1", "#d"), 1)
        part1, part2 = private_parts("alice", "psst", TS)
        self.assertEqual(call("private", chat, "s1", 2, "s1-1", "alice", part1, part2, EV)[0], 1)
        renamed = call("rename", chat, "s1", "s1-1", "alice", "alicia", "Alicia", EV, "tok1",
                       b"{}", "d1", "alicia", "alice")
        self.assertEqual(renamed, [b"ok", b"#a,#b,#c"])
        for key in ("#a", "#b", "#c"):
            self.assertEqual(call("rename_in", rooms[key], "s1-1", "Alicia", b"{}", "d1",
                                  ROOM_EV), 1)
        self.assertEqual(call("who", rooms["#a"])[3], [b"s1|0|Alicia"])
        index: Dict[bytes, bytes] = dict(zip(*[iter(call("rooms", chat))] * 2))
        self.assertEqual(sorted(index), [b"#a", b"#b", b"#c"])
        self.assertEqual(call("reconcile", chat, "s1", 10000, EV, "epoch2", 0, 0, "alicia",
                              "s1-1", "tok1", "0", "Alicia", "#a,#b,#c", "alicia"), [b"epoch1", []])
        for key in ("#a", "#b", "#c"):
            self.assertEqual(call("rejoin", rooms[key], "s1", ROOM_EV, TS, 1000, 0, 0,
                                  "s1-1", "0", "Alicia")[1], 1)
        caught = call("catch_up", rooms["#a"], 1)
        self.assertEqual((caught[1], len(caught[2])), (1, 1))
        head, tail = topic_parts("by the operator", TS)
        self.assertEqual(call("operator_topic", rooms["#b"], "by the operator", head, tail,
                              ROOM_EV)[1:], [1, b"#b"])
        self.assertEqual(call("clear", rooms["#a"]), 1)
        self.assertEqual(call("clear", rooms["#d"]), -1)  # no members
        self.assertEqual(call("sync", chat)[1], b"epoch1")
        for key in ("#a", "#b", "#c"):
            self.assertEqual(call("part", rooms[key], "s1", "s1-1", b"{}", ROOM_EV, 1000, "l",
                                  "s1-1")[0], 1)
        self.assertEqual(call("leave", chat, "s1", "s1-1", "alicia", EV, "tok1", "alicia"), 1)
        self.assertEqual(call("sync", chat)[2], [])
