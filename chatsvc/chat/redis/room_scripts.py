# -*- test-case-name: tests.test_redisscripts -*-
"""
The Lua scripts of one room (pure text). Each takes L{RoomKeys.all} as
C{KEYS}, all in the room's hash slot, and never a key of the chat: a room's
scripts and the chat's (L{chatsvc.chat.redis.scripts}) run apart, in the
order L{chatsvc.chat.redis.room} sends them (docs/scaling.md says why that
order is safe).

Entries of a room's event stream (field C{k}): C{m} message, C{j} joined,
C{x} gone from the room (C{w}: C{p} part, C{l} left the chat, absent:
silent), C{t} topic, C{n} renamed, C{r} resumed here from another server,
C{a} joined again (a marker: its answer's place in the stream).

Names and room names hold only letters, digits, C{#}, C{_}, C{-} and C{.},
and timestamps only digits, C{-}, C{:}, C{.}, C{T} and C{Z}, so the scripts
put them between double quotes to build JSON without escaping anything.
"""

from __future__ import annotations

ADD_EVENT = r"""
-- the time (ms, Redis's clock) in every event: a reader's lag is measured from it
local event_ms
local function add_event(evmax, ...)
  if not event_ms then
    local t = redis.call('TIME')
    event_ms = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
  end
  local n = redis.call('HINCRBY', meta, 'ev', 1)
  redis.call('XADD', events, 'MAXLEN', '~', evmax, n .. '-0', 't', event_ms, ...)
  return n
end
"""
"""The Lua every script that writes an event shares (the chat's and a
room's alike): C{add_event(evmax, field, value, ...)} appends the next
numbered entry to C{events}, with Redis's time, and bumps C{meta}'s C{ev}.
It expects C{meta} and C{events} as locals."""

ROOM_PRELUDE = r"""
local meta, members, events, history = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
""" + ADD_EVENT + r"""
local function parse_member(v)
  return string.match(v, '^([^|]*)|([^|]*)|(.*)$')
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

local function joined_body(room, name, p, ts)
  local extra = ''
  if p == '1' then extra = ',"plaintext":true' end
  return '{"type":"joined","room":"' .. room .. '","name":"' .. name .. '","ts":"' .. ts ..
         '"' .. extra .. '}'
end

local function presence(count, limit)
  if count <= tonumber(limit) then return '1' end
  return '0'
end
"""

_JOIN = r"""
-- ARGV: 1 server, 2 session, 3 name, 4 p ('1': plaintext), 5 spelling,
--       6 since or '', 7 since + 1, 8 history size, 9 evmax, 10 presence
--       limit, 11 ts, 12 most users to list
-- returns {kind ('j', 'r' or 'a'), n, room, topic, count, newest seq,
--          dropped, history entries (newest first, at most size + 1),
--          members ('server|p|name', at most the users to list)}
local srv, sid, name, p = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local count = redis.call('HLEN', members)
local room = redis.call('HGET', meta, 'name')
local h = redis.call('HGET', members, sid)
local kind, n
redis.call('HSET', members, sid, srv .. '|' .. p .. '|' .. name)
if h then
  local osrv = parse_member(h)
  kind = 'a'
  if osrv ~= srv then kind = 'r' end
  n = add_event(ARGV[9], 'k', kind, 'v', srv, 'i', sid, 'ov', osrv)
else
  count = count + 1
  if count == 1 or not room then
    room = ARGV[5]
    redis.call('HSET', meta, 'name', room)
  end
  kind = 'j'
  n = add_event(ARGV[9], 'k', 'j', 'v', srv, 'i', sid, 'c', count,
                'pr', presence(count, ARGV[10]), 'b', joined_body(room, name, p, ARGV[11]))
end
local newest = tonumber(redis.call('HGET', meta, 'seq') or '0')
local dropped = tonumber(redis.call('HGET', meta, 'dropped') or '0')
local size = tonumber(ARGV[8])
if size > 0 and tonumber(redis.call('HGET', meta, 'pub') or '0') > redis.call('XLEN', history) then
  -- Some were trimmed: all of them older than the oldest one held.
  local first = redis.call('XRANGE', history, '-', '+', 'COUNT', 1)
  if first[1] then
    dropped = math.max(dropped, tonumber(string.match(first[1][1], '^(%d+)')) - 1)
  end
end
local items = {}
if size > 0 then
  if ARGV[6] ~= '' and tonumber(ARGV[6]) <= newest then
    items = redis.call('XREVRANGE', history, '+', ARGV[7], 'COUNT', size + 1)
  else
    items = redis.call('XREVRANGE', history, '+', '-', 'COUNT', size + 1)
  end
end
local most = tonumber(ARGV[12])
local users
if count <= most then
  users = redis.call('HVALS', members)
else
  users = {}
  local flat = redis.call('HSCAN', members, 0, 'COUNT', most)[2]
  for i = 2, #flat, 2 do table.insert(users, flat[i]) end
end
return {kind, n, room, redis.call('HGET', meta, 'topic') or '', count, newest, dropped,
        items, users}
"""

_SAY = r"""
-- ARGV: server, request, session, head (body up to '"seq":'), history size, evmax
-- returns {seq, n}; {0, 0} if applied already; {-2, 0} if not a member
if seen(ARGV[1], ARGV[2]) then return {0, 0} end
if redis.call('HEXISTS', members, ARGV[3]) == 0 then return {-2, 0} end
local seq = redis.call('HINCRBY', meta, 'seq', 1)
local body = ARGV[4] .. seq .. '}'
local n = add_event(ARGV[6], 'k', 'm', 's', seq, 'b', body)
local size = tonumber(ARGV[5])
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

_PART = r"""
-- ARGV: 1 server (the member's), 2 session, 3 body, 4 evmax, 5 presence
--       limit, 6 why ('p' part, 'l' left the chat, 's' silent), 7 dedup id
-- returns {1, n, count, room name} or {0, 0, count, ''} if it was not a
-- member (of that server)
local h = redis.call('HGET', members, ARGV[2])
if not h then return {0, 0, redis.call('HLEN', members), ''} end
if parse_member(h) ~= ARGV[1] then return {0, 0, redis.call('HLEN', members), ''} end
local before = redis.call('HLEN', members)
redis.call('HDEL', members, ARGV[2])
local n
if ARGV[6] == 's' then
  n = add_event(ARGV[4], 'k', 'x', 'i', ARGV[2], 'c', before - 1)
else
  n = add_event(ARGV[4], 'k', 'x', 'w', ARGV[6], 'v', ARGV[1], 'i', ARGV[2], 'c', before - 1,
                'pr', presence(before, ARGV[5]), 'd', ARGV[7], 'b', ARGV[3])
end
return {1, n, before - 1, redis.call('HGET', meta, 'name') or ''}
"""

_TOPIC = r"""
-- ARGV: session, topic text, body, evmax
-- returns {n, count, name}, or {-2, 0, ''} if not a member
if redis.call('HEXISTS', members, ARGV[1]) == 0 then return {-2, 0, ''} end
redis.call('HSET', meta, 'topic', ARGV[2])
local n = add_event(ARGV[4], 'k', 't', 'b', ARGV[3])
return {n, redis.call('HLEN', members), redis.call('HGET', meta, 'name') or ''}
"""

_RENAME_IN = r"""
-- ARGV: session, new name, body, dedup id, evmax
-- returns 1, or 0 if the session is not a member
local h = redis.call('HGET', members, ARGV[1])
if not h then return 0 end
local srv, p = parse_member(h)
redis.call('HSET', members, ARGV[1], srv .. '|' .. p .. '|' .. ARGV[2])
add_event(ARGV[5], 'k', 'n', 'i', ARGV[1], 'd', ARGV[4], 'b', ARGV[3])
return 1
"""

_WHO = r"""
-- returns {name or '', topic, ev, members ('server|p|name')}
return {redis.call('HGET', meta, 'name') or '', redis.call('HGET', meta, 'topic') or '',
        tonumber(redis.call('HGET', meta, 'ev') or '0'), redis.call('HVALS', members)}
"""

_REJOIN = r"""
-- ARGV: 1 server, 2 evmax, 3 ts, 4 presence limit, 5 last event seen,
--       6 last seq seen, 7... session, p, name of each local member
-- After a (re)connection: the room holds exactly this server's members
-- (joined again with 'joined' if Redis lost them); a Redis that lost its
-- data never hands out an event number or a seq twice.
-- returns {ev, count}
if tonumber(redis.call('HGET', meta, 'ev') or '0') < tonumber(ARGV[5]) then
  redis.call('HSET', meta, 'ev', ARGV[5])
end
if tonumber(redis.call('HGET', meta, 'seq') or '0') < tonumber(ARGV[6]) then
  redis.call('HSET', meta, 'seq', ARGV[6])
  redis.call('HSET', meta, 'dropped', ARGV[6])
end
local srv = ARGV[1]
local mine = {}
for i = 7, #ARGV - 2, 3 do mine[ARGV[i]] = true end
local all = redis.call('HGETALL', members)
for i = 1, #all, 2 do
  if parse_member(all[i + 1]) == srv and not mine[all[i]] then
    redis.call('HDEL', members, all[i])
    add_event(ARGV[2], 'k', 'x', 'i', all[i], 'c', redis.call('HLEN', members))
  end
end
local room = redis.call('HGET', meta, 'name') or ''
for i = 7, #ARGV - 2, 3 do
  local sid, p, name = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('HEXISTS', members, sid) == 0 then
    redis.call('HSET', members, sid, srv .. '|' .. p .. '|' .. name)
    local count = redis.call('HLEN', members)
    add_event(ARGV[2], 'k', 'j', 'v', srv, 'i', sid, 'c', count,
              'pr', presence(count, ARGV[4]), 'b', joined_body(room, name, p, ARGV[3]))
  end
end
return {tonumber(redis.call('HGET', meta, 'ev') or '0'), redis.call('HLEN', members)}
"""

_CATCH_UP = r"""
-- ARGV: the first seq wanted
-- returns {ev, seq, history entries from that seq}
return {tonumber(redis.call('HGET', meta, 'ev') or '0'),
        tonumber(redis.call('HGET', meta, 'seq') or '0'),
        redis.call('XRANGE', history, ARGV[1], '+')}
"""

_OPERATOR_TOPIC = r"""
-- ARGV: topic text, body up to the room's name, the rest of it, evmax
-- an operator sets the topic of a room with members (its name goes between
-- the two parts of the body, as the room spells it)
-- returns {n, count, name}, or {-1, 0, ''} if the room has no members
local count = redis.call('HLEN', members)
if count == 0 then return {-1, 0, ''} end
local room = redis.call('HGET', meta, 'name') or ''
redis.call('HSET', meta, 'topic', ARGV[1])
local n = add_event(ARGV[4], 'k', 't', 'b', ARGV[2] .. '"' .. room .. '"' .. ARGV[3])
return {n, count, room}
"""

_CLEAR = r"""
-- an operator forgets a room's history: its members stay, its seq goes on,
-- and a since before now is no longer complete (dropped)
-- returns the number of messages the history held, or -1 if the room has
-- no members
if redis.call('HLEN', members) == 0 then return -1 end
local held = redis.call('XLEN', history)
redis.call('DEL', history)
redis.call('HSET', meta, 'dropped', redis.call('HGET', meta, 'seq') or '0')
return held
"""

ROOM_SCRIPTS = {
    "join": _JOIN,
    "say": _SAY,
    "part": _PART,
    "topic": _TOPIC,
    "rename_in": _RENAME_IN,
    "who": _WHO,
    "rejoin": _REJOIN,
    "catch_up": _CATCH_UP,
    "operator_topic": _OPERATOR_TOPIC,
    "clear": _CLEAR,
}
"""The room scripts' bodies, by name (L{ROOM_PRELUDE} goes before each)."""
