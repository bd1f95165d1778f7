#!lua flags=allow-oom
-- dlq/add: adds entries unless their execution id is there, then trims once (DeadLetterStore.add).
-- KEYS: records, meta, timeline, stats.
-- ARGV: index prefix, count prefix, cutoff score, max entries, trim limit (as dlq/trim), attempts-list
-- prefix (an added entry's list is deleted: it is folded into the record), then quintuples (id,
-- record JSON, index values JSON, score, stats counter to bump).
-- Returns, per entry, 1 if added, else 0.
-- include: lib/count.lua
-- include: dlq/lib/trim.lua
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
      count(ARGV[2] .. field, value)
    end
    count(KEYS[4], ARGV[i + 4])
    redis.call('DEL', ARGV[6] .. id)
    out[#out + 1] = 1
  end
end
trim()
return out
