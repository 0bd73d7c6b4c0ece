# -*- test-case-name: tests.test_redisscripts -*-
"""
The pure half of the Redis-backed room: key names, the Lua scripts, the
stream entry format, name holders and the bodies the scripts complete. No
I/O, no Twisted, no Redis client: L{chatsvc.chat.redis.room} does the talking.

Every chat lives under one Redis hash tag, so that a Redis Cluster keeps a
chat on one shard (and shards by chat)::

    keys = ChatKeys("lobby")
    keys.all          # [meta, names, tokens, servers, events, history]
    SCRIPTS["say"]    # Lua text; EVALSHA script_sha(SCRIPTS["say"]) 6 *keys.all ...

The data, per chat C{C}:

  - C{chatsvc:{C}:meta} (hash): C{seq} (the global message counter), C{ev}
    (the event counter: entry C{n} of the event stream has the id C{n-0}),
    C{pub} (public messages so far), C{dropped} (a floor for the highest
    C{seq} of a public message no longer in the history: set when history
    is off, or when Redis lost its data), C{guest} (the C{guest_N} counter), C{epoch} (random, set once:
    it changes only if Redis lost its data), C{applied:SERVER} (the last
    request of that server that was applied, so that a request re-sent after
    a lost reply is not applied twice).
  - C{chatsvc:{C}:names} (hash): name key -> holder C{"server|session|token|name"}.
  - C{chatsvc:{C}:tokens} (hash): resume token -> name key.
  - C{chatsvc:{C}:servers} (sorted set): server id, scored with the time
    (ms) until which its lease runs; a server that stops renewing it is
    reaped: its names are released and everyone is told C{left}.
  - C{chatsvc:{C}:events} (stream): every event in the one global order
    (messages, private messages, joined, left, renamed, resumed); every
    server reads it and fans it out to its own clients. Trimmed to about
    C{EVENTS_KEPT} entries.
  - C{chatsvc:{C}:history} (stream): the recent public messages, with the
    ids C{seq-0}, trimmed to about the history size (at least that many are
    kept; C{meta} C{pub} counts them all, so that a reader knows whether
    older ones were trimmed: those are all older than the oldest one held).

Each script changes the state and appends the event that says so in one
atomic step, so the event stream is a complete, ordered log of the changes.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ...wire.names import name_key, with_suffix

EVENTS_KEPT = 100_000
"""About how many events the event stream keeps: a server whose reader falls
further behind than this resynchronises (and its clients get the missed
public messages from the history)."""

_CHAT_NAME = re.compile(r"\A[A-Za-z0-9_.-]{1,64}\Z")

_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def check_chat_name(chat: str) -> str:
    """
    Return C{chat} if it can name a chat in Redis keys.

    @raise ValueError: unless it is 1 to 64 ASCII letters, digits, C{_}, C{-}, C{.}.
    """
    if not _CHAT_NAME.match(chat):
        raise ValueError("a chat name is 1 to 64 ASCII letters, digits, '_', '-' or '.'")
    return chat


@dataclass(frozen=True)
class ChatKeys:
    """The Redis keys of one chat, all in the hash tag C{{chat}}."""

    chat: str

    def _key(self, part: str) -> str:
        return f"chatsvc:{{{self.chat}}}:{part}"

    @property
    def meta(self) -> str:
        return self._key("meta")

    @property
    def names(self) -> str:
        return self._key("names")

    @property
    def tokens(self) -> str:
        return self._key("tokens")

    @property
    def servers(self) -> str:
        return self._key("servers")

    @property
    def events(self) -> str:
        return self._key("events")

    @property
    def history(self) -> str:
        return self._key("history")

    @property
    def all(self) -> List[str]:
        """The C{KEYS} of every script, in this order."""
        return [self.meta, self.names, self.tokens, self.servers, self.events, self.history]


# -- Lua -----------------------------------------------------------------------
#
# Names hold only letters, digits, '_', '-' and '.', and timestamps only
# digits, '-', ':', '.', 'T' and 'Z', so the scripts may put them between
# double quotes to build JSON without escaping anything.

_PRELUDE = r"""
local meta, names, tokens, servers, events, history =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function parse_holder(v)
  return string.match(v, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
end

local function add_event(evmax, ...)
  local n = redis.call('HINCRBY', meta, 'ev', 1)
  redis.call('XADD', events, 'MAXLEN', '~', evmax, n .. '-0', ...)
  return n
end

local function left_body(name, ts)
  return '{"type":"left","name":"' .. name .. '","reason":"disconnected","ts":"' .. ts .. '"}'
end

local function joined_body(name, ts)
  return '{"type":"joined","name":"' .. name .. '","ts":"' .. ts .. '"}'
end

-- true if this request of this server was applied already; else records it
local function seen(srv, req)
  req = tonumber(req)
  if req <= 0 then return false end
  local field = 'applied:' .. srv
  if req <= tonumber(redis.call('HGET', meta, field) or '0') then return true end
  redis.call('HSET', meta, field, req)
  return false
end
"""

_SAY = r"""
-- ARGV: server, request, head (body up to '"seq":'), history size, evmax
if seen(ARGV[1], ARGV[2]) then return {0, 0} end
local seq = redis.call('HINCRBY', meta, 'seq', 1)
local body = ARGV[3] .. seq .. '}'
local n = add_event(ARGV[5], 'k', 'm', 's', seq, 'b', body)
local size = tonumber(ARGV[4])
if size > 0 then
  -- Approximate trimming (whole radix-tree nodes) is about half the cost of
  -- exact trimming; readers take the newest entries they need.
  redis.call('HINCRBY', meta, 'pub', 1)
  redis.call('XADD', history, 'MAXLEN', '~', size, seq .. '-0', 'b', body)
else
  redis.call('HSET', meta, 'dropped', seq)
end
return {seq, n}
"""

_PRIVATE = r"""
-- ARGV: server, request, session, recipient key, part1 (up to '"to":'),
--       part2 (from ',"text":' up to '"seq":'), evmax
-- returns {seq, n}, {0, 0} if applied already, {-1, 0} if nobody holds the name
if seen(ARGV[1], ARGV[2]) then return {0, 0} end
local h = redis.call('HGET', names, ARGV[4])
if not h then return {-1, 0} end
local tsrv, tsid, _, tname = parse_holder(h)
local lease = redis.call('ZSCORE', servers, tsrv)
if (not lease) or tonumber(lease) < now_ms() then return {-1, 0} end
local seq = redis.call('HINCRBY', meta, 'seq', 1)
local body = ARGV[5] .. '"' .. tname .. '"' .. ARGV[6] .. seq .. '}'
local n = add_event(ARGV[7], 'k', 'p', 's', seq, 'b', body,
                    'v', tsrv, 'i', tsid, 'fv', ARGV[1], 'fi', ARGV[3])
return {seq, n}
"""

_REGISTER = r"""
-- ARGV: 1 server, 2 session, 3 token, 4 resume token or '', 5 since or '',
--       6 since + 1, 7 history size, 8 evmax, 9 ts, 10 '1' for a guest name,
--       11... candidate name, key, name, key, ...
-- returns {'j' or 'r', name, key, n, newest seq, dropped, history entries
--          (newest first, at most size + 1), session}, or {'more'} if every
--          candidate is taken. A resumed session keeps its session id (the
--          old connection is told by the 'r' event, and the token tells the
--          two apart); 'pi' tells this server which hello it was.
local srv, sid, token = ARGV[1], ARGV[2], ARGV[3]
local newest = tonumber(redis.call('HGET', meta, 'seq') or '0')
local dropped = tonumber(redis.call('HGET', meta, 'dropped') or '0')
local size = tonumber(ARGV[7])
if size > 0 and tonumber(redis.call('HGET', meta, 'pub') or '0') > redis.call('XLEN', history) then
  -- Some were trimmed: all of them older than the oldest one held.
  local first = redis.call('XRANGE', history, '-', '+', 'COUNT', 1)
  if first[1] then
    dropped = math.max(dropped, tonumber(string.match(first[1][1], '^(%d+)')) - 1)
  end
end
local items = {}
if size > 0 then
  if ARGV[5] ~= '' and tonumber(ARGV[5]) <= newest then
    items = redis.call('XREVRANGE', history, '+', ARGV[6], 'COUNT', size + 1)
  else
    items = redis.call('XREVRANGE', history, '+', '-', 'COUNT', size + 1)
  end
end
local prefix = srv .. '|' .. sid .. '|' .. token .. '|'
if ARGV[4] ~= '' then
  local key = redis.call('HGET', tokens, ARGV[4])
  if key then
    local h = redis.call('HGET', names, key)
    if h then
      local osrv, osid, otoken, oname = parse_holder(h)
      if otoken == ARGV[4] then
        redis.call('HSET', names, key, srv .. '|' .. osid .. '|' .. token .. '|' .. oname)
        redis.call('HDEL', tokens, otoken)
        redis.call('HSET', tokens, token, key)
        local n = add_event(ARGV[8], 'k', 'r', 'ov', osrv, 'oi', osid,
                            'v', srv, 'i', osid, 'pi', sid, 'key', key, 'name', oname)
        return {'r', oname, key, n, newest, dropped, items, osid}
      end
    end
  end
end
local name, key
if ARGV[10] == '1' then
  repeat
    name = 'guest_' .. redis.call('HINCRBY', meta, 'guest', 1)
    key = name
  until redis.call('HEXISTS', names, key) == 0
else
  for i = 11, #ARGV - 1, 2 do
    if redis.call('HEXISTS', names, ARGV[i + 1]) == 0 then
      name, key = ARGV[i], ARGV[i + 1]
      break
    end
  end
  if not name then return {'more'} end
end
redis.call('HSET', names, key, prefix .. name)
redis.call('HSET', tokens, token, key)
local n = add_event(ARGV[8], 'k', 'j', 'b', joined_body(name, ARGV[9]),
                    'v', srv, 'i', sid, 'key', key, 'name', name)
return {'j', name, key, n, newest, dropped, items, sid}
"""

_RENAME = r"""
-- ARGV: server, session, old key, new key, new name, ts, evmax, token
-- returns 'ok', 'same', 'taken' or 'gone' (the session holds no name here)
local h = redis.call('HGET', names, ARGV[3])
if not h then return 'gone' end
local osrv, osid, otoken, oname = parse_holder(h)
if osrv ~= ARGV[1] or osid ~= ARGV[2] or otoken ~= ARGV[8] then return 'gone' end
if ARGV[4] ~= ARGV[3] then
  if redis.call('HEXISTS', names, ARGV[4]) == 1 then return 'taken' end
  redis.call('HDEL', names, ARGV[3])
end
if oname == ARGV[5] then return 'same' end
redis.call('HSET', names, ARGV[4], osrv .. '|' .. osid .. '|' .. otoken .. '|' .. ARGV[5])
redis.call('HSET', tokens, otoken, ARGV[4])
local body = '{"type":"renamed","old":"' .. oname .. '","new":"' .. ARGV[5] ..
             '","ts":"' .. ARGV[6] .. '"}'
add_event(ARGV[7], 'k', 'n', 'b', body, 'ok', ARGV[3], 'key', ARGV[4], 'name', ARGV[5],
          'v', ARGV[1], 'i', ARGV[2])
return 'ok'
"""

_LEAVE = r"""
-- ARGV: server, session, key, left body or '' (silent), evmax, token
-- (the token tells a session from the one that resumed it on this server)
local h = redis.call('HGET', names, ARGV[3])
if not h then return 0 end
local osrv, osid, otoken = parse_holder(h)
if osrv ~= ARGV[1] or osid ~= ARGV[2] or otoken ~= ARGV[6] then return 0 end
redis.call('HDEL', names, ARGV[3])
redis.call('HDEL', tokens, otoken)
if ARGV[4] ~= '' then
  add_event(ARGV[5], 'k', 'l', 'b', ARGV[4], 'key', ARGV[3])
end
return 1
"""

_REAP = r"""
local function reap(evmax, ts, now)
  local dead = redis.call('ZRANGEBYSCORE', servers, '-inf', '(' .. now)
  if #dead == 0 then return 0 end
  local gone = {}
  for _, d in ipairs(dead) do
    gone[d] = true
    redis.call('ZREM', servers, d)
    redis.call('HDEL', meta, 'applied:' .. d)
  end
  local reaped = 0
  local all = redis.call('HGETALL', names)
  for i = 1, #all, 2 do
    local hsrv, hsid, htoken, hname = parse_holder(all[i + 1])
    if gone[hsrv] then
      redis.call('HDEL', names, all[i])
      redis.call('HDEL', tokens, htoken)
      add_event(evmax, 'k', 'l', 'b', left_body(hname, ts), 'key', all[i])
      reaped = reaped + 1
    end
  end
  return reaped
end
"""

_BEAT = _REAP + r"""
-- ARGV: server, lease ms, ts, evmax
-- renews this server's lease and reaps the servers whose lease ran out;
-- returns {1 if this server still had a lease, names reaped}
local now = now_ms()
local had = redis.call('ZSCORE', servers, ARGV[1])
redis.call('ZADD', servers, now + tonumber(ARGV[2]), ARGV[1])
local reaped = reap(ARGV[4], ARGV[3], now)
if had then return {1, reaped} end
return {0, reaped}
"""

_RECONCILE = _REAP + r"""
-- ARGV: 1 server, 2 lease ms, 3 ts, 4 evmax, 5 a new epoch, 6 last event
--       seen, 7 last seq seen, 8... key, session, token, name of each local
--       member
-- After a (re)connection: makes Redis hold exactly this server's members.
-- Returns {epoch, sessions whose name someone else holds now}.
redis.call('HSETNX', meta, 'epoch', ARGV[5])
-- Redis lost its data: never hand out an id or a seq twice
if tonumber(redis.call('HGET', meta, 'ev') or '0') < tonumber(ARGV[6]) then
  redis.call('HSET', meta, 'ev', ARGV[6])
end
if tonumber(redis.call('HGET', meta, 'seq') or '0') < tonumber(ARGV[7]) then
  redis.call('HSET', meta, 'seq', ARGV[7])
  redis.call('HSET', meta, 'dropped', ARGV[7])
end
local srv, ts, evmax = ARGV[1], ARGV[3], ARGV[4]
local now = now_ms()
redis.call('ZADD', servers, now + tonumber(ARGV[2]), srv)
reap(evmax, ts, now)
local mine = {}
for i = 8, #ARGV - 3, 4 do mine[ARGV[i + 1]] = true end
local all = redis.call('HGETALL', names)
for i = 1, #all, 2 do
  local hsrv, hsid, htoken, hname = parse_holder(all[i + 1])
  if hsrv == srv and not mine[hsid] then
    redis.call('HDEL', names, all[i])
    redis.call('HDEL', tokens, htoken)
    add_event(evmax, 'k', 'l', 'b', left_body(hname, ts), 'key', all[i])
  end
end
local conflicts = {}
for i = 8, #ARGV - 3, 4 do
  local key, sid, token, name = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local want = srv .. '|' .. sid .. '|' .. token .. '|' .. name
  local h = redis.call('HGET', names, key)
  if h ~= want then
    local hsrv, hsid
    if h then hsrv, hsid = parse_holder(h) end
    if not h or (hsrv == srv and hsid == sid) then
      redis.call('HSET', names, key, want)
      redis.call('HSET', tokens, token, key)
      if not h then
        add_event(evmax, 'k', 'j', 'b', joined_body(name, ts),
                  'v', srv, 'i', sid, 'key', key, 'name', name)
      end
    else
      table.insert(conflicts, sid)
    end
  end
end
return {redis.call('HGET', meta, 'epoch'), conflicts}
"""

_SYNC = r"""
-- ARGV: since + 1 or '' (no history wanted)
-- returns {ev, seq, epoch or false, names (flat hash), history entries}
local items = {}
if ARGV[1] ~= '' then items = redis.call('XRANGE', history, ARGV[1], '+') end
return {tonumber(redis.call('HGET', meta, 'ev') or '0'),
        tonumber(redis.call('HGET', meta, 'seq') or '0'),
        redis.call('HGET', meta, 'epoch'),
        redis.call('HGETALL', names), items}
"""

SCRIPTS: Dict[str, str] = {
    name: _PRELUDE + body
    for name, body in {
        "say": _SAY,
        "private": _PRIVATE,
        "register": _REGISTER,
        "rename": _RENAME,
        "leave": _LEAVE,
        "beat": _BEAT,
        "reconcile": _RECONCILE,
        "sync": _SYNC,
    }.items()
}
"""Every Lua script, by name; each takes L{ChatKeys.all} as C{KEYS}."""


def script_sha(text: str) -> str:
    """The SHA1 that C{EVALSHA} knows C{text} by (what C{SCRIPT LOAD} returns)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


# -- name holders ----------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """Who holds a name: a server, its session, the resume token, the spelling."""

    server: str
    session: str
    token: str
    name: str

    def encode(self) -> str:
        return f"{self.server}|{self.session}|{self.token}|{self.name}"

    @classmethod
    def decode(cls, value: Any) -> "Holder":
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        server, session, token, name = value.split("|", 3)
        return cls(server, session, token, name)


def names_from_hash(flat: Sequence[Any]) -> Dict[str, str]:
    """C{HGETALL names} (flat key, holder, ...) as name key -> name."""
    result: Dict[str, str] = {}
    for i in range(0, len(flat) - 1, 2):
        key = flat[i].decode("utf-8") if isinstance(flat[i], bytes) else flat[i]
        result[key] = Holder.decode(flat[i + 1]).name
    return result


# -- stream entries ----------------------------------------------------------------

KINDS = {
    b"m": "message",
    b"p": "private",
    b"j": "joined",
    b"l": "left",
    b"n": "renamed",
    b"r": "resumed",
}


@dataclass(frozen=True)
class Entry:
    """
    One event-stream entry.

    @ivar n: its number (the id is C{n-0}).
    @ivar kind: a value of L{KINDS}.
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


def entry_number(entry_id: Any) -> int:
    """The C{n} of the stream id C{n-0} (also the C{seq} of a history id)."""
    if isinstance(entry_id, str):
        entry_id = entry_id.encode("ascii")
    return int(entry_id.split(b"-", 1)[0])


def parse_entry(entry_id: Any, flat: Sequence[bytes]) -> Entry:
    """Decode one C{[id, [field, value, ...]]} of an C{XREAD} or C{XRANGE} reply."""
    fields = {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}
    kind = KINDS.get(fields.pop(b"k", b""), "unknown")
    return Entry(entry_number(entry_id), kind, fields)


def parse_xread(reply: Any) -> List[Entry]:
    """The entries of an C{XREAD} reply on one stream (C{None}: none)."""
    if not reply:
        return []
    entries = reply[0][1]
    return [parse_entry(entry_id, flat) for entry_id, flat in entries]


def history_items(reply: Sequence[Any]) -> List[Tuple[int, bytes]]:
    """C{(seq, body)} of history-stream entries (as the scripts return them)."""
    items = []
    for entry_id, flat in reply:
        fields = {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}
        items.append((entry_number(entry_id), fields.get(b"b", b"")))
    return items


# -- what the scripts complete -------------------------------------------------------


def message_head(sender: str, text: str, ts: str) -> bytes:
    """A C{message} body up to its C{seq} value, which the C{say} script appends."""
    return (b'{"type":"message","from":' + _json(sender).encode("utf-8") + b',"text":'
            + _json(text).encode("utf-8") + b',"ts":' + _json(ts).encode("utf-8")
            + b',"seq":')


def private_parts(sender: str, text: str, ts: str) -> Tuple[bytes, bytes]:
    """
    A C{private} body cut where the script puts the recipient's name (as
    Redis spells it) and the C{seq}.
    """
    return (
        b'{"type":"private","from":' + _json(sender).encode("utf-8") + b',"to":',
        b',"text":' + _json(text).encode("utf-8") + b',"ts":' + _json(ts).encode("utf-8")
        + b',"seq":',
    )


MAX_NAME_BYTES = 32 * 4
"""The longest name in UTF-8 bytes (32 code points)."""

MAX_SEQ_DIGITS = 20


def name_candidates(wanted: str, start: int, count: int) -> List[Tuple[str, str]]:
    """
    C{(name, key)} for the names a C{hello} for C{wanted} may get, in order:
    C{wanted} itself (when C{start} is 1), then C{wanted_2}, C{wanted_3}, ...
    """
    result = []
    for n in range(start, start + count):
        name = wanted if n == 1 else with_suffix(wanted, n)
        result.append((name, name_key(name)))
    return result


def history_answer(
    items_newest_first: Sequence[Tuple[int, bytes]],
    since: Optional[int],
    newest: int,
    dropped: int,
    size: int,
) -> Tuple[List[bytes], bool]:
    """
    The C{history} a client gets and whether it is complete (PROTOCOL.md
    4.5), from what the C{register} script read: at most C{size + 1} of the
    newest public messages (after C{since} when C{since <= newest}), the
    newest C{seq} and the highest dropped C{seq}.

    The same rules as L{chatsvc.room.History.since}; the extra item tells
    that the history held more than this server shows (another server keeps
    a longer one), which makes the list incomplete too.
    """
    if size <= 0:
        bodies: List[bytes] = []
        cut = False
    else:
        cut = len(items_newest_first) > size
        bodies = [body for _, body in reversed(items_newest_first[:size])]
    if since is None:
        return bodies, dropped == 0 and not cut
    if since > newest:
        return bodies, False
    return bodies, dropped <= since and not cut
