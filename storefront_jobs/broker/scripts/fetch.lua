-- fetch: the reliable fetch (storefront_jobs.broker.fetch). Takes the first message of the lists,
-- in the order given, and records it as unacknowledged in the same step, exactly as kombu's
-- QoS.append would: the unacked index scored with the fetch time, the unacked hash holding
-- [message, "", queue] (an empty exchange and the queue as routing key, which kombu's restore
-- resolves to that queue). Finding every list empty, it deletes the lanes' doorbells, so stale
-- wake-up tokens never pile up.
-- KEYS: the lists..., the unacked hash, the unacked index, the doorbells...
-- ARGV: the time (the worker's clock: kombu's restore compares with it), the number of lists, the
-- queue of each list.
-- Returns {list, message, 1 if recorded} or nil. A message without a delivery tag is not kombu's:
-- returned unrecorded, for the worker to dead-letter.
local n = tonumber(ARGV[2])
for i = 1, n do
  local raw = redis.call('RPOP', KEYS[i])
  if raw then
    local ok, message = pcall(cjson.decode, raw)
    local tag = nil
    if ok and type(message) == 'table' and type(message.properties) == 'table' then
      tag = message.properties.delivery_tag
    end
    if type(tag) ~= 'string' then
      return {KEYS[i], raw, 0}
    end
    redis.call('ZADD', KEYS[n + 2], ARGV[1], tag)
    redis.call('HSET', KEYS[n + 1], tag, '[' .. raw .. ',"",' .. cjson.encode(ARGV[2 + i]) .. ']')
    return {KEYS[i], raw, 1}
  end
end
for i = n + 3, #KEYS do
  redis.call('DEL', KEYS[i])
end
return false
