-- include: dlq/lib/remove.lua
-- include: dlq/lib/count_removed.lua

-- trim(): removes the entries older than the retention, then the oldest beyond max entries, at most
-- ARGV[5] of each per call. KEYS[4] = stats. ARGV[3] = cutoff score, ARGV[4] = max entries,
-- ARGV[5] = limit. Returns {expired, trimmed}.
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
  count_removed(KEYS[4], '', 'expire', expired)
  count_removed(KEYS[4], '', 'trim', trimmed)
  return {expired, trimmed}
end
