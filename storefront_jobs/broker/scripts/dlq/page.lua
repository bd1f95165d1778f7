-- dlq/page: one page of a filtered listing, newest first (DeadLetterStore.page, ids, count). Walks
-- the smallest set and checks membership in the others, so a page costs about (entries skipped +
-- page) lookups, never a scan of the whole DLQ.
-- KEYS: records, then the index sets of the filter (the timeline when there is none).
-- ARGV: max score, min score, limit, scan budget, mode ('json' | 'ids' | 'count').
-- Returns {cursor or '', n, items...}: cursor is the score of the last entry looked at when more
-- may follow.
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
