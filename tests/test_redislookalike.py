"""
Look-alike names (PROTOCOL.md 4.3, v2) in the Redis backend, against a real
C{redis-server}: the same rules as the single-process chat's
L{NameTable <chatsvc.chat.common.NameTable>}, across servers. A name whose
look-alike key is held by another name counts as in use (C{hello} gets a
suffix, C{nick} gets C{name-taken}); a C{nick} to a look-alike of one's
own name is allowed; C{msg} and C{find} go by the name key only; the
look-alike key goes with the name (leave, reap, rename) and comes back with
it when a server restores an emptied Redis.
"""

from __future__ import annotations

from typing import Dict

from twisted.trial.unittest import TestCase

from chatsvc.chat.redis.room import RedisChat
from chatsvc.wire.errors import RemoteProtocolError

from .redischat import RedisChatTestsMixin
from .scaleout import wait_until

CYRILLIC_ALICE = "\u0430lice"  # the first letter is U+0430, CYRILLIC SMALL LETTER A


class RedisLookAlikeTests(RedisChatTestsMixin, TestCase):
    timeout = 30

    async def alike(self, chat: RedisChat) -> Dict[str, str]:
        """The chat's look-alike hash: look-alike key -> name key."""
        flat = await chat.commands.command("HGETALL", chat.keys.all[9])
        return {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}

    async def test_hello_across_servers_gets_a_suffix(self) -> None:
        """C{аlice} on server B while C{alice} is on server A gets C{аlice_2}."""
        a, b = await self.server(), await self.server()
        alice = await self.join(a, "alice")
        other = await self.join(b, CYRILLIC_ALICE)
        self.assertEqual(other.name, CYRILLIC_ALICE + "_2")
        self.assertEqual(other.messages[0]["name"], CYRILLIC_ALICE + "_2")
        capital = await self.join(b, "ALICE")  # the same name as alice (version 1)...
        self.assertEqual(capital.name, "ALICE_2")  # ...though ALICE_2 looks like allce_2
        paypal = await self.join(a, "paypal")
        fake = await self.join(b, "PayPaI")  # a capital i looks like an l
        self.assertEqual((paypal.name, fake.name), ("paypal", "PayPaI_2"))
        await self.settle([a, b])
        self.assertEqual(sorted(a.names()), sorted(b.names()))
        self.assertEqual(alice.name, "alice")
        self.assertEqual(await self.alike(a), {
            "alice": "alice", "alice_2": CYRILLIC_ALICE + "_2", "allce_2": "alice_2",
            "paypal": "paypal", "paypal_2": "paypai_2"})

    async def test_nick(self) -> None:
        """
        C{nick} to a look-alike of someone else's name is C{name-taken}, on
        any server; to a look-alike of one's own, allowed. C{msg} goes by
        the name key: to a look-alike of a name, nobody.
        """
        a, b = await self.server(), await self.server()
        alice = await self.join(a, "alice")
        bob = await self.join(b, "bob")
        with self.assertRaises(RemoteProtocolError) as e:
            await b.rename(bob, CYRILLIC_ALICE)
        self.assertEqual(e.exception.code, "name-taken")
        self.assertEqual(bob.name, "bob")
        self.assertEqual(await a.rename(alice, CYRILLIC_ALICE), CYRILLIC_ALICE)
        await self.settle([a, b])
        self.assertEqual(sorted(b.names()), sorted([CYRILLIC_ALICE, "bob"]))
        self.assertIs(a.find(CYRILLIC_ALICE), alice)
        self.assertIsNone(a.find("alice"))
        with self.assertRaises(RemoteProtocolError) as e:
            b.private(bob, "alice", "psst")
        self.assertEqual(e.exception.code, "no-such-user")
        await b.private(bob, CYRILLIC_ALICE, "psst")
        # The look-alike key went with the name: plain alice still looks like it.
        latin = await self.join(b, "alice")
        self.assertEqual(latin.name, "alice_2")
        # Back to the Latin spelling (a look-alike of her own name again): allowed.
        self.assertEqual(await a.rename(alice, "Alice"), "Alice")
        with self.assertRaises(RemoteProtocolError) as e:
            await a.rename(alice, "bob")
        self.assertEqual(e.exception.code, "name-taken")
        self.assertEqual(await self.alike(a), {"alice": "alice", "bob": "bob",
                                               "alice_2": "alice_2"})

    async def test_released_with_the_name(self) -> None:
        """Leaving frees the look-alike key: the look-alike then gets its own spelling."""
        a, b = await self.server(), await self.server()
        alice = await self.join(a, "alice")
        a.leave(alice, "quit")
        await wait_until(lambda: "alice" not in b.names(), 10, "alice to go")
        self.assertEqual(await self.alike(b), {})
        other = await self.join(b, CYRILLIC_ALICE)
        self.assertEqual(other.name, CYRILLIC_ALICE)

    async def test_reaped_with_the_name(self) -> None:
        """The names of a dead server go with their look-alike keys."""
        a = await self.server(lease=1.0)
        b = await self.server(lease=1.0)
        await self.join(a, "alice")
        await self.join(a, "guest_l")  # looks like guest_1
        await self.join(b, "bob")
        await a.stop()  # no leave: reaped when its lease runs out
        await wait_until(lambda: "alice" not in b.names(), 10, "the dead server's names to go")
        self.assertEqual(await self.alike(b), {"bob": "bob"})
        other = await self.join(b, CYRILLIC_ALICE)
        self.assertEqual(other.name, CYRILLIC_ALICE)

    async def test_guest_names(self) -> None:
        """A guest name is skipped if a name that looks like it is in use (1 looks like l)."""
        a = await self.server()
        lookalike = await self.join(a, "guest_l")
        guest = await self.join(a)
        self.assertEqual((lookalike.name, guest.name), ("guest_l", "guest_2"))
        second = await self.join(a, "GUEST_2")
        self.assertEqual(second.name, "GUEST_2_2")
        third = await self.join(a, "guest_Z")
        self.assertEqual(third.name, "guest_Z")
        fourth = await self.join(a, "guest_o")  # no guest_0 is ever given
        self.assertEqual(fourth.name, "guest_o")

    async def test_restored_after_redis_lost_its_data(self) -> None:
        """A server gives an emptied Redis back its names with their look-alike keys."""
        a = await self.server()
        await self.join(a, "alice")
        self.redis.command("FLUSHALL")
        self.redis.stop()
        await wait_until(lambda: not a.available, 10, "the loss to be noticed")
        self.redis.run()
        await wait_until(lambda: a.available, 10, "reconnection")
        await wait_until(lambda: a.names() == ["alice"], 10, "names restored")
        self.assertEqual(await self.alike(a), {"alice": "alice"})
        b = await self.server()
        other = await self.join(b, CYRILLIC_ALICE)
        self.assertEqual(other.name, CYRILLIC_ALICE + "_2")

    async def test_stale_look_alike_key_is_free(self) -> None:
        """
        A look-alike key left pointing at a name nobody holds (a server of
        an older version released the name without it) does not block it.
        """
        a = await self.server()
        await a.commands.command("HSET", a.keys.all[9], "alice", "ghost")
        alice = await self.join(a, CYRILLIC_ALICE)
        self.assertEqual(alice.name, CYRILLIC_ALICE)
        self.assertEqual(await self.alike(a), {"alice": CYRILLIC_ALICE})
