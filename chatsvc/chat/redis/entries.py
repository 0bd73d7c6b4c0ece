# -*- test-case-name: tests.test_redisscripts -*-
"""
What goes in and out of the scripts (pure: no I/O): stream entries, name
holders and room members as Redis stores them, the message bodies the
scripts complete, and the answers built from their replies (C{room},
C{history}, C{users}, C{rooms}), split over frames where needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ...wire.framing import MAX_FRAME
from ...wire.names import look_alike_key, name_keys, with_suffix
from ..common import json_str, split_list_frames

_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

MAX_NAME_BYTES = 32 * 4
"""The longest name in UTF-8 bytes (32 code points)."""

MAX_SEQ_DIGITS = 20


def _str(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


# -- stored values ---------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """Who holds a name: a server, its session, the resume token, plaintext, the spelling."""

    server: str
    session: str
    token: str
    plaintext: bool
    name: str

    def encode(self) -> str:
        return f"{self.server}|{self.session}|{self.token}|{int(self.plaintext)}|{self.name}"

    @classmethod
    def decode(cls, value: Any) -> "Holder":
        server, session, token, p, name = _str(value).split("|", 4)
        return cls(server, session, token, p == "1", name)


def names_from_hash(flat: Sequence[Any]) -> Dict[str, Tuple[str, bool]]:
    """C{HGETALL names} (flat key, holder, ...) as name key -> (name, plaintext)."""
    result: Dict[str, Tuple[str, bool]] = {}
    for i in range(0, len(flat) - 1, 2):
        holder = Holder.decode(flat[i + 1])
        result[_str(flat[i])] = (holder.name, holder.plaintext)
    return result


def parse_member(value: Any) -> Tuple[str, bool]:
    """C{(name, plaintext)} of a room member's value C{server|p|name}."""
    _, p, name = _str(value).split("|", 2)
    return name, p == "1"


def parse_gone(flat: Sequence[Any]) -> List[Tuple[str, str, List[str], str]]:
    """C{(session, server, room keys, name)} of the C{gone} entries a C{beat} returns."""
    result = []
    for i in range(0, len(flat) - 1, 2):
        server, rest = _str(flat[i + 1]).split("|", 1)
        rooms, name = rest.rsplit("|", 1)
        result.append((_str(flat[i]), server, [r for r in rooms.split(",") if r], name))
    return result


def split_rooms(value: Any) -> List[str]:
    """Room keys stored C{,}-joined."""
    return [r for r in _str(value or b"").split(",") if r]


# -- stream entries ----------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """
    One event-stream entry.

    @ivar n: its number (the id is C{n-0}).
    @ivar kind: its C{k} field (C{"m"}, C{"j"}, ...).
    @ivar fields: the other fields, as bytes.
    """

    n: int
    kind: str
    fields: Dict[bytes, bytes]

    def get(self, field: bytes) -> Optional[str]:
        value = self.fields.get(field)
        return None if value is None else value.decode("utf-8")

    @property
    def body(self) -> bytes:
        return self.fields.get(b"b", b"")

    @property
    def seq(self) -> int:
        return int(self.fields.get(b"s", b"0"))

    @property
    def time(self) -> Optional[float]:
        """When Redis wrote it (seconds, by Redis's clock), or C{None} if it does not say."""
        value = self.fields.get(b"t")
        try:
            return int(value) / 1000 if value is not None else None
        except ValueError:
            return None

    @property
    def presence(self) -> bool:
        return self.fields.get(b"pr", b"1") == b"1"


def entry_number(entry_id: Any) -> int:
    """The C{n} of the stream id C{n-0} (also the C{seq} of a history id)."""
    if isinstance(entry_id, str):
        entry_id = entry_id.encode("ascii")
    return int(entry_id.split(b"-", 1)[0])


def parse_entry(entry_id: Any, flat: Sequence[bytes]) -> Entry:
    """Decode one C{[id, [field, value, ...]]} of an C{XREAD} or C{XRANGE} reply."""
    fields = {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}
    kind = fields.pop(b"k", b"?").decode("ascii", "replace")
    return Entry(entry_number(entry_id), kind, fields)


def parse_xread(reply: Any) -> List[Tuple[str, List[Entry]]]:
    """C{(stream key, entries)} of an C{XREAD} reply (C{None}: nothing)."""
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3 clients answer with a map
        reply = list(reply.items())
    return [(_str(stream), [parse_entry(i, flat) for i, flat in entries])
            for stream, entries in reply]


def history_items(reply: Sequence[Any]) -> List[Tuple[int, bytes]]:
    """C{(seq, body)} of history-stream entries (as the scripts return them)."""
    items = []
    for entry_id, flat in reply:
        fields = {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}
        items.append((entry_number(entry_id), fields.get(b"b", b"")))
    return items


def history_answer(
    items_newest_first: Sequence[Tuple[int, bytes]],
    since: Optional[int],
    newest: int,
    dropped: int,
    size: int,
    reset: bool = False,
) -> Tuple[List[bytes], bool]:
    """
    The C{history} a client gets for one room and whether it is complete
    (PROTOCOL.md 4.5), from what the C{join} script read: at most
    C{size + 1} of the newest messages (after C{since} when C{since <=
    newest}), the newest C{seq} and the highest dropped C{seq}. C{reset}
    (the client's epoch is not this chat's) makes it the newest messages,
    incomplete. The extra item tells that Redis held more than this server
    shows, which makes the list incomplete too.
    """
    if size <= 0:
        bodies: List[bytes] = []
        cut = False
    else:
        cut = len(items_newest_first) > size
        bodies = [body for _, body in reversed(items_newest_first[:size])]
    if reset:
        return bodies, False
    if since is None:
        return bodies, dropped == 0 and not cut
    if since > newest:
        return bodies, False
    return bodies, dropped <= since and not cut


def name_candidates(wanted: str, start: int, count: int) -> List[Tuple[str, str, str]]:
    """
    C{(name, name key, look-alike key)} for the names a C{hello} for
    C{wanted} may get, in order: C{wanted} itself (when C{start} is 1), then
    C{wanted_2}, C{wanted_3}, ...
    """
    result = []
    for n in range(start, start + count):
        name = wanted if n == 1 else with_suffix(wanted, n)
        result.append((name, *name_keys(name)))
    return result


def guest_digits() -> str:
    """
    The look-alike key of each digit 0-9, one character each: the
    C{register} script makes the look-alike key of C{guest_N} from them
    (C{guest_} is its own, and a name of ASCII characters looks like the
    look-alikes of its characters put together; the tests check both).
    """
    digits = "".join(look_alike_key(str(d)) for d in range(10))
    assert len(digits) == 10 and look_alike_key("guest_") == "guest_", digits
    return digits


GUEST_DIGITS = guest_digits()


# -- what the scripts complete -------------------------------------------------------


def message_head(room: str, sender: str, text: str, ts: str, action: bool = False) -> bytes:
    """A C{message} body up to its C{seq} value, which the C{say} script appends."""
    return (b'{"type":"message","room":' + json_str(room) + b',"from":' + json_str(sender)
            + b',"text":' + json_str(text) + b',"ts":' + json_str(ts)
            + (b',"action":true' if action else b"") + b',"seq":')


def private_parts(sender: str, text: str, ts: str, action: bool = False) -> Tuple[bytes, bytes]:
    """
    A C{private} body cut where the script puts the recipient's name (as
    Redis spells it) and the C{seq}.
    """
    return (
        b'{"type":"private","from":' + json_str(sender) + b',"to":',
        b',"text":' + json_str(text) + b',"ts":' + json_str(ts)
        + (b',"action":true' if action else b"") + b',"seq":',
    )


# -- answers split over frames ---------------------------------------------------------


def _with_plaintext(head: bytes, users: Sequence[Tuple[str, bool]], tail: bytes) -> List[bytes]:
    """
    Bodies C{head + "users":[...],"plaintext":[...] + tail}, split so that
    each fits a frame, each listing the plaintext ones of its own users,
    all but the last with C{"more":true}.
    """
    budget = MAX_FRAME - len(head) - len(tail) - 64
    bodies: List[bytes] = []
    part: List[bytes] = []
    plain: List[bytes] = []
    size = 0
    for name, plaintext in users:
        item = json_str(name)
        extra = (len(item) + 1) * (2 if plaintext else 1)
        if part and size + extra > budget:
            bodies.append(head + b'"users":[' + b",".join(part) + b'],"plaintext":['
                          + b",".join(plain) + b'],"more":true' + tail)
            part, plain, size = [], [], 0
        part.append(item)
        if plaintext:
            plain.append(item)
        size += extra
    bodies.append(head + b'"users":[' + b",".join(part) + b'],"plaintext":['
                  + b",".join(plain) + b"]" + tail)
    return bodies


def room_bodies(room: str, topic: str, count: int, users: Sequence[Tuple[str, bool]],
                presence: bool) -> List[bytes]:
    """The C{room} message(s) a member gets on joining (PROTOCOL.md 4.2)."""
    head = (b'{"type":"room","room":' + json_str(room) + b',"topic":' + json_str(topic)
            + b',"count":%d,"presence":%s,' % (count, b"true" if presence else b"false"))
    return _with_plaintext(head, users, b"}")


def users_bodies(room: Optional[str], users: Sequence[Tuple[str, bool]]) -> List[bytes]:
    """The C{users} answer to C{who} (for C{room}, or everyone online)."""
    head = b'{"type":"users",'
    if room is not None:
        head += b'"room":' + json_str(room) + b","
    return _with_plaintext(head, users, b"}")


_HISTORY_TAIL = b"]}"
_MORE_TAIL = b'],"more":true}'


def history_bodies(room: str, bodies: List[bytes], complete: bool) -> List[bytes]:
    """The C{history} message(s) of one room."""
    head = (b'{"type":"history","room":' + json_str(room) + b',"complete":'
            + (b"true" if complete else b"false") + b',"messages":[')
    return split_list_frames(head, bodies, _HISTORY_TAIL, _MORE_TAIL)


def history_head_size(room: str) -> int:
    """The bytes a C{history} frame spends around its messages."""
    return len(history_bodies(room, [], False)[0]) + len(_MORE_TAIL)


def rooms_bodies(flat: Sequence[Any]) -> List[bytes]:
    """The C{rooms} answer from the room index (flat: key, C{count|name|topic}), largest first."""
    rooms = []
    for i in range(0, len(flat) - 1, 2):
        count, name, topic = _str(flat[i + 1]).split("|", 2)
        rooms.append((int(count), name, topic))
    rooms.sort(key=lambda r: (-r[0], r[1]))
    items = [b'{"room":' + json_str(name) + b',"count":%d,"topic":' % count + json_str(topic)
             + b"}" for count, name, topic in rooms]
    return split_list_frames(b'{"type":"rooms","rooms":[', items, b"]}", b'],"more":true}')
