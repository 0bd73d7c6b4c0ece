"""
Tests for L{chatsvc.client.editor} (the input line: editing, recall,
completion, UTF-8 typed a byte at a time) and L{chatsvc.client.layout}
(cells, wrapping, the status line, the input line's sideways scroll).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from chatsvc.client.editor import MAX_RECALL, LineEditor, Utf8Keys
from chatsvc.client.layout import cells, fit, input_row, name_colour, paint, status_row, wrap
from chatsvc.client.view import Status


class Utf8KeysTests(SynchronousTestCase):
    def test_byte_at_a_time(self) -> None:
        keys = Utf8Keys()
        out = ""
        for byte in "héllo 世界 🎉".encode():
            out += keys.feed(bytes([byte]))
        self.assertEqual(out, "héllo 世界 🎉")
        self.assertFalse(keys.pending)

    def test_bad_bytes(self) -> None:
        self.assertEqual(Utf8Keys().feed(b"a\xffb"), "a\ufffdb")
        keys = Utf8Keys()
        self.assertEqual(keys.feed(b"\xe4\xb8"), "")
        self.assertTrue(keys.pending)


class EditorTests(SynchronousTestCase):
    def typed(self, text: str) -> LineEditor:
        editor = LineEditor()
        editor.insert(text)
        return editor

    def test_insert_in_middle(self) -> None:
        editor = self.typed("hllo")
        editor.home()
        editor.right()
        editor.insert("é")
        self.assertEqual((editor.text, editor.cursor), ("héllo", 2))

    def test_controls_not_inserted(self) -> None:
        self.assertEqual(self.typed("a\x1b[2Jb\x07").text, "a[2Jb")

    def test_kills(self) -> None:
        editor = self.typed("one two  three")
        editor.kill_word()
        self.assertEqual(editor.text, "one two  ")
        editor.kill_word()
        self.assertEqual(editor.text, "one ")
        editor.home()
        editor.kill_to_end()
        self.assertEqual(editor.text, "")
        editor = self.typed("abc")
        editor.left()
        editor.kill_to_start()
        self.assertEqual((editor.text, editor.cursor), ("c", 0))

    def test_backspace_delete(self) -> None:
        editor = self.typed("abc")
        editor.backspace()
        editor.home()
        editor.delete()
        editor.backspace()
        self.assertEqual(editor.text, "b")

    def test_recall(self) -> None:
        editor = LineEditor()
        for line in ("one", "two", "two", "  "):
            editor.insert(line)
            editor.submit()
        self.assertEqual(editor.history, ["one", "two"])
        editor.insert("draft")
        editor.recall(-1)
        editor.recall(-1)
        editor.recall(-1)  # nothing older
        self.assertEqual(editor.text, "one")
        editor.recall(1)
        editor.recall(1)
        self.assertEqual(editor.text, "draft")

    def test_recall_bounded(self) -> None:
        editor = LineEditor()
        for i in range(MAX_RECALL + 50):
            editor.insert(str(i))
            editor.submit()
        self.assertEqual(len(editor.history), MAX_RECALL)

    def test_complete(self) -> None:
        editor = self.typed("ca")
        self.assertEqual(editor.complete(["carol", "bob"]), ["carol"])
        self.assertEqual(editor.text, "carol: ")
        editor = self.typed("hi BO")
        editor.complete(["bob", "bobby"])
        self.assertEqual(editor.text, "hi bob")
        editor = self.typed("/j")
        editor.complete(["/join", "/msg"])
        self.assertEqual(editor.text, "/join ")
        editor = self.typed("x")
        self.assertEqual(editor.complete(["bob"]), [])
        self.assertEqual(editor.text, "x")


class LayoutTests(SynchronousTestCase):
    def test_cells(self) -> None:
        self.assertEqual(cells("abc"), 3)
        self.assertEqual(cells("世界"), 4)
        self.assertEqual(cells("e\u0301"), 1)
        self.assertEqual(cells("🎉"), 2)
        self.assertEqual(fit("a世b", 2), "a")

    def test_wrap_wide(self) -> None:
        rows = wrap([("世界世界世界", "")], 8, indent=2)
        self.assertEqual(["".join(t for t, _ in row) for row in rows], ["世界世界", "  世界"])

    def test_paint(self) -> None:
        self.assertEqual(paint([("a", "31"), ("b", "")]), b"\x1b[31ma\x1b[0mb")
        self.assertEqual(paint([("a", "31"), ("b", "")], colour=False), b"ab")

    def test_name_colour_stable(self) -> None:
        self.assertEqual(name_colour("Alice"), name_colour("alice"))
        self.assertEqual(len({name_colour(n) for n in ["alice", "bob", "carol", "dave", "erin"]}) > 1, True)

    def test_status(self) -> None:
        status = Status(server="h:1", name="alice", encrypted=False, rooms=(("#a", 0), ("#b", 3)),
                        active="#a", members=4, plaintext=1, state="reconnecting", retry_at=13.2, queued=2)
        text = "".join(t for t, _ in status_row(status, now=10.0))
        self.assertEqual(text, " #a | #b (3) | alice | PLAINTEXT | 4 in room, 1 plaintext"
                               " | reconnecting in 4 s, 2 lines queued | h:1")

    def test_input_scrolls(self) -> None:
        text, column = input_row(list("abcdefghij"), 10, 8)
        self.assertEqual((text, column), ("> fghij", 7))  # the last column is for the cursor
        text, column = input_row(list("世界世界"), 0, 8)
        self.assertEqual((text, column), ("> 世界世", 2))
