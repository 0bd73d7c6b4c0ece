# -*- test-case-name: tests.test_lookalike -*-
"""
Tests for look-alike names (PROTOCOL.md 4.3, v2) in the single-process chat:
L{chatsvc.chat.common.NameTable} and L{chatsvc.chat.memory.MemoryChat}'s
C{hello}, C{nick}, C{msg} and suffixes, and the same through a connection.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from chatsvc.chat.common import NameTable
from chatsvc.wire.errors import RemoteProtocolError
from chatsvc.wire.names import look_alike_key, name_key, name_keys

from .helpers import ProtocolTestCase
from .test_room import RoomTestCase

CYRILLIC_ALICE = "\u0430lice"  # a Cyrillic a, then "lice"


class NameKeysTests(SynchronousTestCase):
    def test_both_keys(self) -> None:
        self.assertEqual(name_keys("PayPaI"), (name_key("PayPaI"), look_alike_key("PayPaI")))
        self.assertEqual(name_keys("PayPaI"), ("paypai", "paypal"))

    def test_one_string_when_equal(self) -> None:
        """Most names' two keys are one string: the table stores it once."""
        same, alike = name_keys("Alice")
        self.assertIs(same, alike)


class NameTableTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.table = NameTable()
        self.alice, self.bob = object(), object()
        self.table.add("alice", self.alice)

    def test_same_name_taken(self) -> None:
        self.assertFalse(self.table.free("ALICE"))
        self.assertIs(self.table.find("ALICE"), self.alice)

    def test_look_alike_taken_but_not_found(self) -> None:
        self.assertFalse(self.table.free(CYRILLIC_ALICE))
        self.assertFalse(self.table.free("aIice", self.bob))  # capital i
        self.assertIsNone(self.table.find(CYRILLIC_ALICE))

    def test_own_look_alike_free(self) -> None:
        self.assertTrue(self.table.free(CYRILLIC_ALICE, self.alice))
        self.assertTrue(self.table.free("Alice", self.alice))

    def test_both_keys_checked(self) -> None:
        """
        C{\u017fam} (long s) is the same name as C{sam} but looks like
        C{fam}: its holder may not take it while someone holds C{fam}, even
        though the same-name key is its own.
        """
        table, sam, fam = NameTable(), object(), object()
        table.add("sam", sam)
        table.add("fam", fam)
        self.assertFalse(table.free("\u017fam", sam))
        self.assertFalse(table.free("\u017fam", fam))

    def test_remove_frees_both(self) -> None:
        self.table.remove("alice")
        self.assertEqual(len(self.table), 0)
        self.assertTrue(self.table.free(CYRILLIC_ALICE))
        self.assertTrue(self.table.free("alice"))
        self.assertEqual(list(self.table.members()), [])

    def test_members_in_order(self) -> None:
        self.table.add("bob", self.bob)
        self.assertEqual(list(self.table.members()), [self.alice, self.bob])
        self.assertEqual(len(self.table), 2)


class HelloTests(RoomTestCase):
    def test_cyrillic_gets_suffix(self) -> None:
        self.joined("alice")
        self.assertEqual(self.join(CYRILLIC_ALICE).name, CYRILLIC_ALICE + "_2")

    def test_capital_i(self) -> None:
        self.joined("paypal")
        self.assertEqual(self.join("PayPaI").name, "PayPaI_2")

    def test_either_way_round(self) -> None:
        self.joined(CYRILLIC_ALICE)
        self.assertEqual(self.join("alice").name, "alice_2")

    def test_suffix_skips_look_alikes(self) -> None:
        """C{alice_2} looks like C{aIice_2} (capital i): the suffix goes on to C{_3}."""
        self.joined("alice", "aIice_2")
        self.assertEqual(self.join("alice").name, "alice_3")

    def test_guest_skips_look_alikes(self) -> None:
        self.join("guest_I")  # capital i, like guest_1
        self.assertEqual(self.join().name, "guest_2")

    def test_free_again_after_leave(self) -> None:
        [alice] = self.joined("alice")
        self.room.leave(alice, "quit")
        self.assertEqual(self.join(CYRILLIC_ALICE).name, CYRILLIC_ALICE)

    def test_resume_keeps_the_claim(self) -> None:
        alice = self.join("alice")
        token = alice.messages()[0]["resume"]
        again = self.join("bob", resume=token)
        self.assertEqual(again.name, "alice")
        self.assertEqual(self.join(CYRILLIC_ALICE).name, CYRILLIC_ALICE + "_2")
        self.room.leave(again, "quit")
        self.assertEqual(self.join(CYRILLIC_ALICE).name, CYRILLIC_ALICE)


class NickTests(RoomTestCase):
    def test_look_alike_taken(self) -> None:
        alice, bob = self.joined("alice", "bob")
        e = self.assertRaises(RemoteProtocolError, self.room.rename, bob, CYRILLIC_ALICE)
        self.assertEqual((e.code, e.fatal), ("name-taken", False))
        e = self.assertRaises(RemoteProtocolError, self.room.rename, bob, "aIice")
        self.assertEqual(e.code, "name-taken")
        self.assertEqual(bob.name, "bob")
        self.assertEqual(alice.frames, [])

    def test_own_look_alike_allowed(self) -> None:
        alice, bob = self.joined("alice", "bob")
        self.assertEqual(self.room.rename(alice, CYRILLIC_ALICE), CYRILLIC_ALICE)
        self.assertEqual(bob.messages()[0]["new"], CYRILLIC_ALICE)
        self.assertIs(self.room.find(CYRILLIC_ALICE), alice)
        self.assertIsNone(self.room.find("alice"))
        # the old name's look is still this member's: nobody else takes it
        self.assertEqual(self.join("alice").name, "alice_2")

    def test_rename_frees_the_old_look(self) -> None:
        alice, _ = self.joined("alice", "bob")
        self.room.rename(alice, "carol")
        self.assertEqual(self.join(CYRILLIC_ALICE).name, CYRILLIC_ALICE)


class MsgTests(RoomTestCase):
    def test_msg_to_look_alike_is_no_such_user(self) -> None:
        """C{msg}'s C{to} is matched by the same-name rule, not by looks."""
        alice, bob = self.joined("alice", "bob")
        e = self.assertRaises(RemoteProtocolError, self.room.private, bob, CYRILLIC_ALICE, "hi")
        self.assertEqual(e.code, "no-such-user")
        self.assertEqual(alice.messages(), [])
        self.room.private(bob, "ALICE", "hi")
        self.assertEqual(alice.messages()[0]["text"], "hi")


class OverTheWireTests(ProtocolTestCase):
    def test_hello_and_nick(self) -> None:
        alice, bob = self.clients("alice", "bob")
        c = self.connect()
        welcome = c.hello("PAYPAL")[0]
        self.assertEqual(welcome["name"], "PAYPAL")
        mallory = self.connect()
        self.assertEqual(mallory.hello("PayPaI")[0]["name"], "PayPaI_2")
        alice.received()
        bob.received()
        bob.send({"type": "nick", "name": CYRILLIC_ALICE})
        self.assertError(bob.received(), "name-taken", fatal=False)
        alice.send({"type": "nick", "name": CYRILLIC_ALICE})
        renamed = [m for m in alice.received() if m["type"] == "renamed"]
        self.assertEqual(renamed[0]["new"], CYRILLIC_ALICE)
