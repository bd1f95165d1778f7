-- include: lib/ring_doorbell.lua

-- push(list, message, bell, last_index): a message onto one list of a lane exactly as kombu pushes
-- it (LPUSH: workers take from the right), and the lane's doorbell rung.
local function push(list, message, bell, last_index)
  redis.call('LPUSH', list, message)
  ring_doorbell(bell, last_index)
end
