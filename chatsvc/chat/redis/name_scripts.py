# -*- test-case-name: tests.test_redisscripts -*-
"""
The chat scripts that take or give up a name (pure text): C{register},
C{rename} and C{leave}. They run after the chat's prelude
(L{chatsvc.chat.redis.scripts}), whose C{name_free} applies PROTOCOL.md
4.3: a name is free for someone when neither its name key (in C{names}) nor
its look-alike key (in C{alike}) is held by another name. Lua cannot take a
TR39 skeleton, so the server sends both keys of every name it asks for
(L{chatsvc.wire.names.name_keys}).
"""

from __future__ import annotations

_REGISTER = r"""
-- ARGV: 1 server, 2 session, 3 token, 4 resume token or '', 5 p, 6 evmax,
--       7 '1' for a guest name, 8 rooms per client, 9 rooms per chat,
--       10 '1' if the hello named its rooms, 11 a new epoch, 12 G, 13 the
--       look-alike key of each digit 0-9 (one character each), then G room
--       keys, then candidates: name, name key, look-alike key, name, ...
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
for i = 14, 13 + g do table.insert(given, ARGV[i]) end
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
local name, key, a
if ARGV[7] == '1' then
  local digits = ARGV[13]
  local function alike_digit(d)
    local i = tonumber(d) + 1
    return string.sub(digits, i, i)
  end
  repeat
    local number = tostring(redis.call('HINCRBY', meta, 'guest', 1))
    name = 'guest_' .. number
    key = name
    a = 'guest_' .. string.gsub(number, '%d', alike_digit)
  until name_free(key, a, '')
else
  for i = 14 + g, #ARGV - 2, 3 do
    if name_free(ARGV[i + 1], ARGV[i + 2], '') then
      name, key, a = ARGV[i], ARGV[i + 1], ARGV[i + 2]
      break
    end
  end
  if not name then return {'more'} end
end
redis.call('HSET', names, key, srv .. '|' .. sid .. '|' .. token .. '|' .. p .. '|' .. name)
redis.call('HSET', alike, a, key)
redis.call('HSET', tokens, token, key)
redis.call('HSET', sessions, sid, table.concat(final, ','))
local n = add_event(ARGV[6], 'k', 'j', 'v', srv, 'i', sid, 'key', key, 'name', name, 'p', p)
return {'j', name, key, n, sid, epoch, final, refused}
"""

_RENAME = r"""
-- ARGV: 1 server, 2 session, 3 old key, 4 new key, 5 new name, 6 evmax,
--       7 token, 8 renamed body, 9 dedup id, 10 new look-alike key, 11 old
--       look-alike key
-- a look-alike of one's own name is allowed, as a change of case is
-- returns {'ok', rooms}, {'same', ''}, {'taken', ''} or {'gone', ''}
local h = redis.call('HGET', names, ARGV[3])
if not h then return {'gone', ''} end
local osrv, osid, otoken, op, oname = parse_holder(h)
if osrv ~= ARGV[1] or osid ~= ARGV[2] or otoken ~= ARGV[7] then return {'gone', ''} end
if oname == ARGV[5] then return {'same', ''} end
if not name_free(ARGV[4], ARGV[10], ARGV[3]) then return {'taken', ''} end
redis.call('HDEL', names, ARGV[3])
release_alike(ARGV[11], ARGV[3])
redis.call('HSET', alike, ARGV[10], ARGV[4])
redis.call('HSET', names, ARGV[4], osrv .. '|' .. osid .. '|' .. otoken .. '|' .. op .. '|' .. ARGV[5])
redis.call('HSET', tokens, otoken, ARGV[4])
add_event(ARGV[6], 'k', 'n', 'ok', ARGV[3], 'key', ARGV[4], 'name', ARGV[5],
          'v', ARGV[1], 'i', ARGV[2], 'd', ARGV[9], 'b', ARGV[8])
return {'ok', redis.call('HGET', sessions, osid) or ''}
"""

_LEAVE = r"""
-- ARGV: server, session, key, evmax, token, look-alike key
-- (the token tells a session from the one that resumed it on this server)
local h = redis.call('HGET', names, ARGV[3])
if not h then return 0 end
local osrv, osid, otoken = parse_holder(h)
if osrv ~= ARGV[1] or osid ~= ARGV[2] or otoken ~= ARGV[5] then return 0 end
redis.call('HDEL', names, ARGV[3])
release_alike(ARGV[6], ARGV[3])
redis.call('HDEL', tokens, otoken)
redis.call('HDEL', sessions, osid)
add_event(ARGV[4], 'k', 'l', 'key', ARGV[3])
return 1
"""

NAME_SCRIPTS = {
    "register": _REGISTER,
    "rename": _RENAME,
    "leave": _LEAVE,
}
"""The scripts of this module by name (the chat's prelude goes before each)."""
