# -*- test-case-name: tests.test_redisscripts -*-
"""
The Lua scripts of a chat (pure text), and the registry of every script.

Chat scripts take L{ChatKeys.all} as C{KEYS} (the chat's hash slot): names,
tokens, leases, sessions' room lists, the room index and the chat's own
event stream. Room scripts (L{chatsvc.chat.redis.room_scripts}) take one
room's keys. No script takes both, so on a Redis Cluster every script runs
on one shard::

    SCRIPTS["say"]        # ("room", Lua text)
    script_sha(SCRIPTS["say"][1])

Entries of the chat's event stream (field C{k}): C{j} registered, C{l} gone
(its name released), C{n} renamed, C{r} resumed, C{p} private message.
"""

from __future__ import annotations

import hashlib
from typing import Dict, Tuple

from .room_scripts import ROOM_PRELUDE, ROOM_SCRIPTS

EVENTS_KEPT = 100_000
"""About how many events the chat's event stream keeps."""

ROOM_EVENTS_KEPT = 10_000
"""About how many events each room's event stream keeps: a server whose
reader falls further behind in a room catches up from its history."""

_PRELUDE = r"""
local meta, names, tokens, servers, events, sessions, gone, rooms, roomsev =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- a name's holder: server, session, token, p ('1': plaintext), name
local function parse_holder(v)
  return string.match(v, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')
end

local function add_event(evmax, ...)
  local n = redis.call('HINCRBY', meta, 'ev', 1)
  redis.call('XADD', events, 'MAXLEN', '~', evmax, n .. '-0', ...)
  return n
end

local function split(s)
  local t = {}
  for k in string.gmatch(s or '', '[^,]+') do table.insert(t, k) end
  return t
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

-- rooms: old ones kept, new ones added within the limits; returns final,
-- refused, and which limit refused the first ('client' or 'chat')
local function choose(old, add, per, most)
  local final, refused, have, why = {}, {}, {}, nil
  local count = redis.call('HLEN', rooms)
  for _, k in ipairs(old) do
    if not have[k] then have[k] = true; table.insert(final, k) end
  end
  for _, k in ipairs(add) do
    if not have[k] then
      have[k] = true
      local new = redis.call('HEXISTS', rooms, k) == 0
      if #final >= per or (new and count >= most) then
        table.insert(refused, k)
        if not why then
          if #final >= per then why = 'client' else why = 'chat' end
        end
      else
        if new then count = count + 1 end
        table.insert(final, k)
      end
    end
  end
  return final, refused, why
end

-- a reaped session: its name goes now, its rooms are told later (gone)
local function bury(key, hsrv, hsid, htoken, hname, evmax)
  redis.call('HDEL', names, key)
  redis.call('HDEL', tokens, htoken)
  local list = redis.call('HGET', sessions, hsid) or ''
  redis.call('HDEL', sessions, hsid)
  redis.call('HSET', gone, hsid, hsrv .. '|' .. list .. '|' .. hname)
  add_event(evmax, 'k', 'l', 'key', key)
end

local function reap(evmax, now)
  local dead = redis.call('ZRANGEBYSCORE', servers, '-inf', '(' .. now)
  if #dead == 0 then return 0 end
  local isdead = {}
  for _, d in ipairs(dead) do
    isdead[d] = true
    redis.call('ZREM', servers, d)
    redis.call('HDEL', meta, 'applied:' .. d)
  end
  local reaped = 0
  local all = redis.call('HGETALL', names)
  for i = 1, #all, 2 do
    local hsrv, hsid, htoken, _, hname = parse_holder(all[i + 1])
    if isdead[hsrv] then
      bury(all[i], hsrv, hsid, htoken, hname, evmax)
      reaped = reaped + 1
    end
  end
  return reaped
end
"""

_REGISTER = r"""
-- ARGV: 1 server, 2 session, 3 token, 4 resume token or '', 5 p, 6 evmax,
--       7 '1' for a guest name, 8 rooms per client, 9 rooms per chat,
--       10 '1' if the hello named its rooms, 11 a new epoch, 12 G, then G
--       room keys, then candidate name, key, name, key, ...
-- returns {'j' or 'r', name, key, n, session, epoch, rooms, {}},
--         {'more'} if every candidate is taken, or {'too-many-rooms', room
--         key, 'client' or 'chat'} if the rooms would pass a limit (nothing
--         is claimed then)
local srv, sid, token, p = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
local per, most = tonumber(ARGV[8]), tonumber(ARGV[9])
redis.call('HSETNX', meta, 'epoch', ARGV[11])
local epoch = redis.call('HGET', meta, 'epoch')
local g = tonumber(ARGV[12])
local given = {}
for i = 13, 12 + g do table.insert(given, ARGV[i]) end
if ARGV[4] ~= '' then
  local key = redis.call('HGET', tokens, ARGV[4])
  local h = key and redis.call('HGET', names, key)
  if h then
    local osrv, osid, otoken, _, oname = parse_holder(h)
    if otoken == ARGV[4] then
      local add = {}
      if ARGV[10] == '1' then add = given end
      local final, refused, why = choose(split(redis.call('HGET', sessions, osid)), add, per, most)
      if #refused > 0 then return {'too-many-rooms', refused[1], why} end
      redis.call('HSET', names, key, srv .. '|' .. osid .. '|' .. token .. '|' .. p .. '|' .. oname)
      redis.call('HDEL', tokens, otoken)
      redis.call('HSET', tokens, token, key)
      redis.call('HSET', sessions, osid, table.concat(final, ','))
      local n = add_event(ARGV[6], 'k', 'r', 'ov', osrv, 'oi', osid, 'v', srv, 'i', osid,
                          'pi', sid, 'key', key, 'name', oname, 'p', p)
      return {'r', oname, key, n, osid, epoch, final, refused}
    end
  end
end
local final, refused, why = choose({}, given, per, most)
if #refused > 0 then return {'too-many-rooms', refused[1], why} end
local name, key
if ARGV[7] == '1' then
  repeat
    name = 'guest_' .. redis.call('HINCRBY', meta, 'guest', 1)
    key = name
  until redis.call('HEXISTS', names, key) == 0
else
  for i = 13 + g, #ARGV - 1, 2 do
    if redis.call('HEXISTS', names, ARGV[i + 1]) == 0 then
      name, key = ARGV[i], ARGV[i + 1]
      break
    end
  end
  if not name then return {'more'} end
end
redis.call('HSET', names, key, srv .. '|' .. sid .. '|' .. token .. '|' .. p .. '|' .. name)
redis.call('HSET', tokens, token, key)
redis.call('HSET', sessions, sid, table.concat(final, ','))
local n = add_event(ARGV[6], 'k', 'j', 'v', srv, 'i', sid, 'key', key, 'name', name, 'p', p)
return {'j', name, key, n, sid, epoch, final, refused}
"""

_CLAIM = r"""
-- ARGV: session, room key, rooms per client, rooms per chat
-- before a join: the room goes on the session's list (so that a resume on
-- another server knows it) if the limits allow
-- returns 'ok', 'full' (the client's limit), 'chat-full' or 'gone'
local cur = redis.call('HGET', sessions, ARGV[1])
if not cur then return 'gone' end
local list = split(cur)
for _, k in ipairs(list) do
  if k == ARGV[2] then return 'ok' end
end
if #list >= tonumber(ARGV[3]) then return 'full' end
if redis.call('HEXISTS', rooms, ARGV[2]) == 0 and
   redis.call('HLEN', rooms) >= tonumber(ARGV[4]) then
  return 'chat-full'
end
table.insert(list, ARGV[2])
redis.call('HSET', sessions, ARGV[1], table.concat(list, ','))
return 'ok'
"""

_UNCLAIM = r"""
-- ARGV: session, room key (after a part)
local cur = redis.call('HGET', sessions, ARGV[1])
if not cur then return 0 end
local kept = {}
for _, k in ipairs(split(cur)) do
  if k ~= ARGV[2] then table.insert(kept, k) end
end
redis.call('HSET', sessions, ARGV[1], table.concat(kept, ','))
return 1
"""

_INDEX = r"""
-- ARGV: room key, room event number, count, name, topic, '1' to set the topic
-- the newest word on a room wins, whichever server sends it first
local last = tonumber(redis.call('HGET', roomsev, ARGV[1]) or '0')
if tonumber(ARGV[2]) <= last then return 0 end
redis.call('HSET', roomsev, ARGV[1], ARGV[2])
if tonumber(ARGV[3]) <= 0 then
  redis.call('HDEL', rooms, ARGV[1])
  return 1
end
local topic = ARGV[5]
if ARGV[6] ~= '1' then
  local cur = redis.call('HGET', rooms, ARGV[1])
  topic = cur and string.match(cur, '^[^|]*|[^|]*|(.*)$') or ''
end
redis.call('HSET', rooms, ARGV[1], ARGV[3] .. '|' .. ARGV[4] .. '|' .. topic)
return 1
"""

_PRIVATE = r"""
-- ARGV: server, request, session, recipient key, part1 (up to '"to":'),
--       part2 (from ',"text":' up to '"seq":'), evmax
-- returns {seq, n}, {0, 0} if applied already, {-1, 0} if nobody holds the name
if seen(ARGV[1], ARGV[2]) then return {0, 0} end
local h = redis.call('HGET', names, ARGV[4])
if not h then return {-1, 0} end
local tsrv, tsid, _, _, tname = parse_holder(h)
local lease = redis.call('ZSCORE', servers, tsrv)
if (not lease) or tonumber(lease) < now_ms() then return {-1, 0} end
local seq = redis.call('HINCRBY', meta, 'pseq', 1)
local body = ARGV[5] .. '"' .. tname .. '"' .. ARGV[6] .. seq .. '}'
local n = add_event(ARGV[7], 'k', 'p', 's', seq, 'b', body,
                    'v', tsrv, 'i', tsid, 'fv', ARGV[1], 'fi', ARGV[3])
return {seq, n}
"""

_RENAME = r"""
-- ARGV: 1 server, 2 session, 3 old key, 4 new key, 5 new name, 6 evmax,
--       7 token, 8 renamed body, 9 dedup id
-- returns {'ok', rooms}, {'same', ''}, {'taken', ''} or {'gone', ''}
local h = redis.call('HGET', names, ARGV[3])
if not h then return {'gone', ''} end
local osrv, osid, otoken, op, oname = parse_holder(h)
if osrv ~= ARGV[1] or osid ~= ARGV[2] or otoken ~= ARGV[7] then return {'gone', ''} end
if ARGV[4] ~= ARGV[3] then
  if redis.call('HEXISTS', names, ARGV[4]) == 1 then return {'taken', ''} end
  redis.call('HDEL', names, ARGV[3])
end
if oname == ARGV[5] then return {'same', ''} end
redis.call('HSET', names, ARGV[4], osrv .. '|' .. osid .. '|' .. otoken .. '|' .. op .. '|' .. ARGV[5])
redis.call('HSET', tokens, otoken, ARGV[4])
add_event(ARGV[6], 'k', 'n', 'ok', ARGV[3], 'key', ARGV[4], 'name', ARGV[5],
          'v', ARGV[1], 'i', ARGV[2], 'd', ARGV[9], 'b', ARGV[8])
return {'ok', redis.call('HGET', sessions, osid) or ''}
"""

_LEAVE = r"""
-- ARGV: server, session, key, evmax, token
-- (the token tells a session from the one that resumed it on this server)
local h = redis.call('HGET', names, ARGV[3])
if not h then return 0 end
local osrv, osid, otoken = parse_holder(h)
if osrv ~= ARGV[1] or osid ~= ARGV[2] or otoken ~= ARGV[5] then return 0 end
redis.call('HDEL', names, ARGV[3])
redis.call('HDEL', tokens, otoken)
redis.call('HDEL', sessions, osid)
add_event(ARGV[4], 'k', 'l', 'key', ARGV[3])
return 1
"""

_BEAT = r"""
-- ARGV: server, lease ms, evmax
-- renews this server's lease and reaps the servers whose lease ran out;
-- returns {1 if this server still had a lease, names reaped, sessions
-- whose rooms are still to be told (flat: session, 'server|rooms|name')}
local now = now_ms()
local had = redis.call('ZSCORE', servers, ARGV[1])
redis.call('ZADD', servers, now + tonumber(ARGV[2]), ARGV[1])
local reaped = reap(ARGV[3], now)
local buried = redis.call('HSCAN', gone, 0, 'COUNT', 200)[2]
if had then return {1, reaped, buried} end
return {0, reaped, buried}
"""

_RECONCILE = r"""
-- ARGV: 1 server, 2 lease ms, 3 evmax, 4 a new epoch, 5 last event seen,
--       6 last private seq seen, 7... key, session, token, p, name, rooms
--       of each local member
-- After a (re)connection: makes Redis hold exactly this server's members.
-- Returns {epoch, sessions whose name someone else holds now}.
redis.call('HSETNX', meta, 'epoch', ARGV[4])
if tonumber(redis.call('HGET', meta, 'ev') or '0') < tonumber(ARGV[5]) then
  redis.call('HSET', meta, 'ev', ARGV[5])
end
if tonumber(redis.call('HGET', meta, 'pseq') or '0') < tonumber(ARGV[6]) then
  redis.call('HSET', meta, 'pseq', ARGV[6])
end
local srv, evmax = ARGV[1], ARGV[3]
local now = now_ms()
redis.call('ZADD', servers, now + tonumber(ARGV[2]), srv)
reap(evmax, now)
local mine = {}
for i = 7, #ARGV - 5, 6 do mine[ARGV[i + 1]] = true end
local all = redis.call('HGETALL', names)
for i = 1, #all, 2 do
  local hsrv, hsid, htoken, _, hname = parse_holder(all[i + 1])
  if hsrv == srv and not mine[hsid] then bury(all[i], hsrv, hsid, htoken, hname, evmax) end
end
local conflicts = {}
for i = 7, #ARGV - 5, 6 do
  local key, sid, token, p, name = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local want = srv .. '|' .. sid .. '|' .. token .. '|' .. p .. '|' .. name
  local h = redis.call('HGET', names, key)
  local hsrv, hsid
  if h then hsrv, hsid = parse_holder(h) end
  if not h or (hsrv == srv and hsid == sid) then
    redis.call('HSET', names, key, want)
    redis.call('HSET', tokens, token, key)
    redis.call('HSET', sessions, sid, ARGV[i + 5])
    if not h then
      add_event(evmax, 'k', 'j', 'v', srv, 'i', sid, 'key', key, 'name', name, 'p', p)
    end
  else
    table.insert(conflicts, sid)
  end
end
return {redis.call('HGET', meta, 'epoch'), conflicts}
"""

_SYNC = r"""
-- returns {ev, epoch or false, names (flat hash), private seq}
return {tonumber(redis.call('HGET', meta, 'ev') or '0'), redis.call('HGET', meta, 'epoch'),
        redis.call('HGETALL', names), tonumber(redis.call('HGET', meta, 'pseq') or '0')}
"""

_ROOMS = r"""
-- returns the room index (flat: key, 'count|name|topic')
return redis.call('HGETALL', rooms)
"""

CHAT_SCRIPTS = {
    "register": _REGISTER,
    "claim": _CLAIM,
    "unclaim": _UNCLAIM,
    "index": _INDEX,
    "private": _PRIVATE,
    "rename": _RENAME,
    "leave": _LEAVE,
    "beat": _BEAT,
    "reconcile": _RECONCILE,
    "sync": _SYNC,
    "rooms": _ROOMS,
}

SCRIPTS: Dict[str, Tuple[str, str]] = {}
"""Every script by name: C{(scope, Lua text)}, scope C{"chat"} (KEYS:
L{ChatKeys.all}) or C{"room"} (KEYS: L{RoomKeys.all})."""

for _name, _body in CHAT_SCRIPTS.items():
    SCRIPTS[_name] = ("chat", _PRELUDE + _body)
for _name, _body in ROOM_SCRIPTS.items():
    assert _name not in SCRIPTS, _name
    SCRIPTS[_name] = ("room", ROOM_PRELUDE + _body)


def script_sha(text: str) -> str:
    """The SHA1 that C{EVALSHA} knows C{text} by (what C{SCRIPT LOAD} returns)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()
