"""The server-side half of ``RedisStore``: four Lua functions, loaded as a Redis 7 Function library or,
where ``FUNCTION`` is missing or forbidden (Redis 6.2, some managed services), run as EVALSHA scripts.

Each runs atomically on the server, which is what makes one event's read-modify-write two round trips:

- ``acquire(KEYS = leases..., reads...; ARGV = token, lease ms, leases, decision first)``: if the first
  read is a decision that exists (``decision first`` = 1), return ``{2, decision}`` and take nothing (a
  repeated event id takes no lease). Else if any lease is held by another token, return ``{0, its ttl}``
  and take none (all-or-none: no deadlock). Else take every lease (``SET lease token PX ms``) and return
  ``{1, read...}``.
- ``commit(KEYS = leases..., written...; ARGV = token, leases, ops...)``: refuse with ``{0, index}`` unless
  every lease still holds this token (fencing: a replica paused past its lease writes nothing), else apply
  the writes (``S`` ttl value: SET, PX when ttl > 0; ``D``: DEL; ``A`` member: SADD; ``I``: INCR; ``X``
  length event id: XADD to the journal) and release the leases.
- ``release(KEYS = leases; ARGV = token)``: drop the leases this token still holds (a rolled-back event).
- ``publish(KEYS = epoch, lists; ARGV = name, entries)``: advance the lists' epoch and store the named
  list's new snapshot under it, as ``version:entries``.

Times (lease, TTL) are passed on to ``SET ... PX`` as the strings they arrived as: a Lua number is formatted
back into a string for each call (about 1.5 µs of the server's CPU a SET here).

Leases are neither written to the AOF nor sent to replicas (``redis.set_repl(redis.REPL_NONE)``): they
live for a second or two, and a server that restarts or fails over without them only refuses the commits of
the events in flight (their leases are gone), which become audited holds.
"""

from __future__ import annotations

from typing import Final

__all__ = ["FUNCTIONS", "LIBRARY", "NAMES", "SCRIPTS"]

# the library's name carries the protocol's version: replicas of two payguard versions can share a server
LIBRARY: Final = "payguard_1"
NAMES: Final = ("acquire", "commit", "release", "publish")

# one MGET or DEL for many keys, in slices that Lua's unpack can take (a bulk load names thousands)
_MANY: Final = """
local function many(command, keys, first, last, out)
  local i = first
  while i <= last do
    local j = math.min(i + 999, last)
    local got = redis.call(command, unpack(keys, i, j))
    if out then for k = 1, j - i + 1 do out[#out + 1] = got[k] end end
    i = j + 1
  end
  return out
end
"""

_BODIES: Final = {
    "acquire": _MANY
    + """
local token, lease, n = args[1], args[2], tonumber(args[3])
if args[4] == '1' then
  local found = redis.call('GET', keys[n + 1])
  if found then return {2, found} end
end
local holders = many('MGET', keys, 1, n, {})
for i = 1, n do
  local holder = holders[i]
  if holder and holder ~= token then return {0, redis.call('PTTL', keys[i]), i} end
end
redis.set_repl(redis.REPL_NONE)
for i = 1, n do redis.call('SET', keys[i], token, 'PX', lease) end
redis.set_repl(redis.REPL_ALL)
return many('MGET', keys, n + 1, #keys, {1})
""",
    "commit": _MANY
    + """
local token, n = args[1], tonumber(args[2])
local holders = many('MGET', keys, 1, n, {})
for i = 1, n do
  if holders[i] ~= token then return {0, i} end
end
local a = 3
for i = n + 1, #keys do
  local op = args[a]
  if op == 'S' then
    local ttl = args[a + 1]
    if tonumber(ttl) > 0 then redis.call('SET', keys[i], args[a + 2], 'PX', ttl)
    else redis.call('SET', keys[i], args[a + 2]) end
    a = a + 3
  elseif op == 'D' then redis.call('DEL', keys[i]); a = a + 1
  elseif op == 'A' then redis.call('SADD', keys[i], args[a + 1]); a = a + 2
  elseif op == 'I' then redis.call('INCR', keys[i]); a = a + 1
  elseif op == 'X' then
    redis.call('XADD', keys[i], 'MAXLEN', '~', args[a + 1], '*', 'e', args[a + 2]); a = a + 3
  else return redis.error_reply('payguard commit: unknown operation ' .. tostring(op)) end
end
redis.set_repl(redis.REPL_NONE)
many('DEL', keys, 1, n, nil)
return {1}
""",
    "release": """
redis.set_repl(redis.REPL_NONE)
for i = 1, #keys do
  if redis.call('GET', keys[i]) == args[1] then redis.call('DEL', keys[i]) end
end
return 1
""",
    "publish": """
local version = redis.call('INCR', keys[1])
redis.call('HSET', keys[2], args[1], version .. ':' .. args[2])
return version
""",
}

FUNCTIONS: Final = f"#!lua name={LIBRARY}\n" + "".join(
    f"\nredis.register_function('{LIBRARY}_{name}', function(keys, args)\n{body}end)\n"
    for name, body in _BODIES.items()
)
# as EVAL scripts: the same bodies over KEYS and ARGV
SCRIPTS: Final = {name: f"local keys, args = KEYS, ARGV\n{body}" for name, body in _BODIES.items()}
