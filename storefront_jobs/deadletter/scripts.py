"""The Lua scripts of the Redis DLQ store: each one operation, atomic on the server.

Every script that changes the DLQ keeps the records, the indexes, the counts
and the counters consistent in one step, so a client killed at any point
leaves either the whole change or none of it. Index and count keys are built
inside the scripts from prefixes passed in ARGV (``keys.DLQ_INDEX_PREFIX``,
``keys.DLQ_COUNT_PREFIX``): storefront-jobs runs on one Redis (the broker),
not a cluster. Layout: :mod:`storefront_jobs.broker.keys`.
"""

from __future__ import annotations

# Shared by the scripts that remove entries. KEYS[1..3] = records, meta, timeline;
# ARGV[1], ARGV[2] = index prefix, count prefix.
_REMOVE = """
local function remove(id)
  local meta = redis.call('HGET', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  if not meta then return false end
  for field, value in pairs(cjson.decode(meta)) do
    redis.call('ZREM', ARGV[1] .. field .. ':' .. value, id)
    if redis.call('HINCRBY', ARGV[2] .. field, value, -1) <= 0 then
      redis.call('HDEL', ARGV[2] .. field, value)
    end
  end
  redis.call('HDEL', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  return true
end
"""

# Removes entries older than the retention, then the oldest beyond max entries,
# at most ARGV[5] of each per call. KEYS[4] = stats.
# ARGV[3] = cutoff score, ARGV[4] = max entries, ARGV[5] = limit. Returns {expired, trimmed}.
_TRIM = """
local function trim()
  local limit = tonumber(ARGV[5])
  local expired = 0
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[3], 'LIMIT', 0, limit)) do
    if remove(id) then expired = expired + 1 end
  end
  local trimmed = 0
  local excess = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[4])
  if excess > 0 then
    for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, math.min(excess, limit) - 1)) do
      if remove(id) then trimmed = trimmed + 1 end
    end
  end
  if expired > 0 then redis.call('HINCRBY', KEYS[4], 'removed:expire', expired) end
  if trimmed > 0 then redis.call('HINCRBY', KEYS[4], 'removed:trim', trimmed) end
  return {expired, trimmed}
end
"""

TRIM = _REMOVE + _TRIM + "return trim()\n"

# Adds entries unless their execution id is there, then trims once.
# ARGV[6] = attempts-list prefix (an added entry's list is deleted: it is folded
# into the record), ARGV[7..] = quintuples (id, record JSON, index values JSON,
# score, stats counter to bump). Returns, per entry, 1 if added, else 0.
ADD = (
    _REMOVE
    + _TRIM
    + """
local out = {}
for i = 7, #ARGV, 5 do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], id) == 1 then
    out[#out + 1] = 0
  else
    local score = tonumber(ARGV[i + 3])
    -- Scores are unique so that a score alone is an exact cursor.
    while #redis.call('ZRANGEBYSCORE', KEYS[3], score, score, 'LIMIT', 0, 1) > 0 do
      score = score + 0.000001
    end
    redis.call('HSET', KEYS[1], id, ARGV[i + 1])
    redis.call('HSET', KEYS[2], id, ARGV[i + 2])
    redis.call('ZADD', KEYS[3], score, id)
    for field, value in pairs(cjson.decode(ARGV[i + 2])) do
      redis.call('ZADD', ARGV[1] .. field .. ':' .. value, score, id)
      redis.call('HINCRBY', ARGV[2] .. field, value, 1)
    end
    redis.call('HINCRBY', KEYS[4], ARGV[i + 4], 1)
    redis.call('DEL', ARGV[6] .. id)
    out[#out + 1] = 1
  end
end
trim()
return out
"""
)

# Deletes the given ids. KEYS[4] = stats, KEYS[5] = audit entry hash (or '').
# ARGV[3..] = ids. Returns the number deleted.
DELETE = (
    _REMOVE
    + """
local n = 0
for i = 3, #ARGV do
  if remove(ARGV[i]) then n = n + 1 end
end
if n > 0 then
  redis.call('HINCRBY', KEYS[4], 'removed:delete', n)
  if KEYS[5] ~= '' then redis.call('HINCRBY', KEYS[5], 'count', n) end
end
return n
"""
)

# Replays entries: for each (id, lane list, message, new id, enqueued-counter
# field, lane doorbell) still in the DLQ, pushes the message onto the lane
# exactly as kombu would (LPUSH), rings the lane's doorbell so an idle worker
# takes it at once (storefront_jobs.broker.fetch), removes the entry, remembers
# the new id and counts the enqueue (the hash the capacity gate counts every
# enqueue in), all in one step.
# KEYS[4] = stats, KEYS[5] = audit entry hash (or ''), KEYS[6] = enqueued-counter
# hash. ARGV[3] = replayed-marker prefix, ARGV[4] = marker TTL (s), ARGV[5] =
# last doorbell index kept, ARGV[6..] = sextuples. Returns, per entry, the new
# id, or '' when it was no longer there.
MOVE = (
    _REMOVE
    + """
local out = {}
local n = 0
for i = 6, #ARGV, 6 do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], id) == 1 then
    redis.call('LPUSH', ARGV[i + 1], ARGV[i + 2])
    redis.call('LPUSH', ARGV[i + 5], '1')
    redis.call('LTRIM', ARGV[i + 5], 0, tonumber(ARGV[5]))
    remove(id)
    redis.call('SET', ARGV[3] .. id, ARGV[i + 3], 'EX', tonumber(ARGV[4]))
    redis.call('HINCRBY', KEYS[6], ARGV[i + 4], 1)
    n = n + 1
    out[#out + 1] = ARGV[i + 3]
  else
    out[#out + 1] = ''
  end
end
if n > 0 then
  redis.call('HINCRBY', KEYS[4], 'removed:replay', n)
  if KEYS[5] ~= '' then redis.call('HINCRBY', KEYS[5], 'count', n) end
end
return out
"""
)

# One page of a filtered listing, newest first. KEYS[1] = records; KEYS[2..] =
# the index sets of the filter (the timeline when there is none). Walks the
# smallest set and checks membership in the others, so a page costs about
# (entries skipped + page) lookups, never a scan of the whole DLQ.
# ARGV: max score, min score, limit, scan budget, mode ('json' | 'ids' | 'count').
# Returns {cursor or '', n, items...}: cursor is the score of the last entry
# looked at when more may follow.
PAGE = """
local driver, smallest = 2, nil
for i = 2, #KEYS do
  local size = redis.call('ZCARD', KEYS[i])
  if smallest == nil or size < smallest then driver, smallest = i, size end
end
local upper, lower = ARGV[1], ARGV[2]
local limit, budget, mode = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
-- out[1] = cursor, out[2] = matches, out[3..] = items
local out, found, scanned, last, chunk = {'', 0}, 0, 0, '', 500
local function done(cursor)
  out[1], out[2] = cursor, found
  return out
end
while true do
  local batch = redis.call('ZREVRANGEBYSCORE', KEYS[driver], upper, lower, 'WITHSCORES', 'LIMIT', 0, chunk)
  for j = 1, #batch, 2 do
    local id = batch[j]
    last = batch[j + 1]
    scanned = scanned + 1
    local ok = true
    for i = 2, #KEYS do
      if i ~= driver and not redis.call('ZSCORE', KEYS[i], id) then ok = false; break end
    end
    if ok then
      found = found + 1
      if mode == 'json' then out[#out + 1] = redis.call('HGET', KEYS[1], id)
      elseif mode == 'ids' then out[#out + 1] = id end
      if found >= limit then return done(last) end
    end
    if scanned >= budget then return done(last) end
  end
  if #batch < chunk * 2 then return done('') end
  upper = '(' .. last
end
"""
