-- lane_depth(lists): the messages waiting in a lane, LLEN summed over every list of the lane (the
-- plain list and kombu's priority sub-lists, named by storefront_jobs.broker.keys.lane_lists).
local function lane_depth(lists)
  local depth = 0
  for _, list in ipairs(lists) do
    depth = depth + redis.call('LLEN', list)
  end
  return depth
end
