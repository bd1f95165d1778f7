#!lua flags=allow-oom
-- fetch: the reliable fetch (storefront_jobs.broker.fetch). Takes the first message of the lists,
-- in the order given, and records it as unacknowledged in the same step, exactly as kombu's
-- QoS.append would: the unacked index scored with the fetch time (Redis's clock, TIME: the
-- restore sweep compares with the same clock, so a worker whose own clock drifts can neither be
-- robbed of its jobs nor rob another's; storefront_jobs.broker.qos), the unacked hash holding
-- [message, "", queue] (an empty exchange and the queue as routing key, which kombu's restore
-- resolves to that queue). The first lists are the lanes' plain lists, one per lane in lane order
-- (kombu's order: every lane at priority 0, then every lane at 3, ...); at a lane's plain list the
-- lane's tenant lists are taken too, in turn (tenants/lib/take.lua, storefront_jobs.broker.tenants),
-- and a job taken from one is returned and recorded as the lane's. Finding every list empty, it
-- deletes the lanes' doorbells, so stale wake-up tokens never pile up.
-- KEYS: the lists..., the unacked hash, the unacked index, the lanes' doorbells..., then per lane its
-- tenant ring, tenant counts and fair state.
-- ARGV: the number of lists, the queue of each list, then per lane the prefix of its tenant lists,
-- then (tenant, jobs per turn) pairs of the tenants whose weight is not 1.
-- Returns {list, message, 1 if recorded} or nil. A message without a delivery tag is not kombu's:
-- returned unrecorded, for the worker to dead-letter.
-- include: tenants/lib/take.lua
-- include: lib/redis_time.lua
local n = tonumber(ARGV[1])
local lanes = math.floor((#KEYS - n - 2) / 4)
local bells, fair, prefixes = n + 2, n + 2 + lanes, 1 + n
local weights = nil
local function weight_of(tenant)
  -- Built on first use only: most fetches never reach a tenant whose turn is over.
  if weights == nil then
    weights = {}
    for i = prefixes + lanes + 1, #ARGV, 2 do
      weights[ARGV[i]] = tonumber(ARGV[i + 1])
    end
  end
  return weights[tenant] or 1
end
for i = 1, n do
  local raw
  if i <= lanes then
    local f = fair + 3 * (i - 1)
    raw = tenant_take(KEYS[i], KEYS[f + 1], KEYS[f + 2], KEYS[f + 3], ARGV[prefixes + i], weight_of)
  else
    raw = redis.call('RPOP', KEYS[i])
  end
  if raw then
    local ok, message = pcall(cjson.decode, raw)
    local tag = nil
    if ok and type(message) == 'table' and type(message.properties) == 'table' then
      tag = message.properties.delivery_tag
    end
    if type(tag) ~= 'string' then
      return {KEYS[i], raw, 0}
    end
    redis.call('ZADD', KEYS[n + 2], redis_time(), tag)
    redis.call('HSET', KEYS[n + 1], tag, '[' .. raw .. ',"",' .. cjson.encode(ARGV[1 + i]) .. ']')
    return {KEYS[i], raw, 1}
  end
end
for i = bells + 1, bells + lanes do
  redis.call('DEL', KEYS[i])
end
return false
