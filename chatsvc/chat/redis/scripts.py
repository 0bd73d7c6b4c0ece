# -*- test-case-name: tests.test_redisscripts -*-
"""
The Lua scripts of a chat (pure text), and the registry of every script.

Chat scripts take L{ChatKeys.all} as C{KEYS} (the chat's hash slot): names
and their look-alike keys, tokens, leases, sessions' room lists, the room
index and the chat's own event stream; those that take or give up a name
(C{register}, C{rename}, C{leave}) are in L{chatsvc.chat.redis.name_scripts}. Room scripts (L{chatsvc.chat.redis.room_scripts}) take one
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

from .name_scripts import NAME_SCRIPTS
from .room_scripts import ADD_EVENT, ROOM_PRELUDE, ROOM_SCRIPTS

EVENTS_KEPT = 100_000
"""About how many events the chat's event stream keeps."""

ROOM_EVENTS_KEPT = 10_000
"""About how many events each room's event stream keeps: a server whose
reader falls further behind in a room catches up from its history."""

_PRELUDE = r"""
local meta, names, tokens, servers, events, sessions, gone, rooms, roomsev, alike =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- a name's holder: server, session, token, p ('1': plaintext), name
local function parse_holder(v)
  return string.match(v, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')
end
""" + ADD_EVENT + r"""
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

-- whether a name (its name key and look-alike key) is free for the holder
-- of the name key own ('': a newcomer): neither key held by someone else
-- (a look-alike key that points at a name nobody holds is stale: free)
local function name_free(key, a, own)
  if key ~= own and redis.call('HEXISTS', names, key) == 1 then return false end
  local h = redis.call('HGET', alike, a)
  return (not h) or h == own or redis.call('HEXISTS', names, h) == 0
end

-- the look-alike key the name key `key` holds, by one pass over the
-- look-alike hash (built once per script: only reaping needs it)
local alike_rev
local function alike_of(key)
  if not alike_rev then
    alike_rev = {}
    local all = redis.call('HGETALL', alike)
    for i = 1, #all, 2 do alike_rev[all[i + 1]] = all[i] end
  end
  return alike_rev[key]
end

-- the look-alike key a goes, if the name key `key` holds it
local function release_alike(a, key)
  if a and redis.call('HGET', alike, a) == key then redis.call('HDEL', alike, a) end
end

-- a reaped session: its name goes now, its rooms are told later (gone)
local function bury(key, hsrv, hsid, htoken, hname, evmax)
  redis.call('HDEL', names, key)
  release_alike(alike_of(key), key)
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
--       6 last private seq seen, 7... key, session, token, p, name, rooms,
--       look-alike key of each local member
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
for i = 7, #ARGV - 6, 7 do mine[ARGV[i + 1]] = true end
local all = redis.call('HGETALL', names)
for i = 1, #all, 2 do
  local hsrv, hsid, htoken, _, hname = parse_holder(all[i + 1])
  if hsrv == srv and not mine[hsid] then bury(all[i], hsrv, hsid, htoken, hname, evmax) end
end
local conflicts = {}
for i = 7, #ARGV - 6, 7 do
  local key, sid, token, p, name = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local a = ARGV[i + 6]
  local want = srv .. '|' .. sid .. '|' .. token .. '|' .. p .. '|' .. name
  local h = redis.call('HGET', names, key)
  local hsrv, hsid
  if h then hsrv, hsid = parse_holder(h) end
  local ah = redis.call('HGET', alike, a)
  if (not h or (hsrv == srv and hsid == sid))
     and (not ah or ah == key or redis.call('HEXISTS', names, ah) == 0) then
    redis.call('HSET', names, key, want)
    redis.call('HSET', alike, a, key)
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
-- returns {ev, epoch or false, names (flat hash), private seq, Redis's TIME}
return {tonumber(redis.call('HGET', meta, 'ev') or '0'), redis.call('HGET', meta, 'epoch'),
        redis.call('HGETALL', names), tonumber(redis.call('HGET', meta, 'pseq') or '0'),
        redis.call('TIME')}
"""

_ROOMS = r"""
-- returns the room index (flat: key, 'count|name|topic')
return redis.call('HGETALL', rooms)
"""

CHAT_SCRIPTS = {
    **NAME_SCRIPTS,
    "claim": _CLAIM,
    "unclaim": _UNCLAIM,
    "index": _INDEX,
    "private": _PRIVATE,
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
