-- lane_depth(keys): the messages waiting in a lane, over every key storefront_jobs.broker.keys.depth_keys
-- names: LLEN of each list (the plain list and kombu's priority sub-lists), plus the `waiting` field of
-- the lane's fair state hash (jobs in its tenant lists, storefront_jobs.broker.tenants), so the depth
-- stays a few O(1) reads however many tenants wait. The state hash is told by its prefix (keys.FAIR_PREFIX),
-- so a caller that passes only the lists (keys.lane_lists) still gets their sum.
local FAIR_KEY_PREFIX = 'storefront:fair:'

local function lane_depth(keys)
  local depth = 0
  for _, key in ipairs(keys) do
    if string.sub(key, 1, #FAIR_KEY_PREFIX) == FAIR_KEY_PREFIX then
      depth = depth + (tonumber(redis.call('HGET', key, 'waiting')) or 0)
    else
      depth = depth + redis.call('LLEN', key)
    end
  end
  return depth
end
