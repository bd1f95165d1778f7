-- ring_doorbell(bell, last_index): one wake-up token on a lane's doorbell for its idle workers
-- (storefront_jobs.broker.fetch blocks on it), the list kept to its newest last_index + 1 tokens.
local function ring_doorbell(bell, last_index)
  redis.call('LPUSH', bell, '1')
  redis.call('LTRIM', bell, 0, tonumber(last_index))
end
