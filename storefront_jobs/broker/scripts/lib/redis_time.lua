-- redis_time(): Redis's clock (TIME) as the decimal string of seconds since the epoch, to the
-- microsecond: the score of a message in kombu's unacked index, which the restore sweep compares
-- with the same clock (storefront_jobs.broker.qos), never a worker's.
local function redis_time()
  local now = redis.call('TIME')
  return now[1] .. '.' .. string.format('%06d', tonumber(now[2]))
end
