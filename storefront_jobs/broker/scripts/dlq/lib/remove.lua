-- The DLQ scripts share one layout: KEYS[1..3] = records, meta, timeline (KEYS[4] = stats where a
-- script counts); ARGV[1], ARGV[2] = the index and count key prefixes (keys.DLQ_INDEX_PREFIX,
-- keys.DLQ_COUNT_PREFIX): index and count keys are built here from them, storefront-jobs runs on
-- one Redis (the broker), not a cluster.

-- remove(id): an entry out of the records, the timeline, its indexes and its counts. Returns
-- whether it had index values (meta), i.e. was a whole entry.
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
