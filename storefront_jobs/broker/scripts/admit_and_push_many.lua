-- admit_and_push_many: a chunk of first publishes into a lane's plain list (enqueue_many,
-- storefront_jobs.broker.lanepush): the capacity check over the whole chunk, the enqueue count and
-- the pushes in one atomic step. A chunk that does not fit is refused whole, so a caller knows
-- exactly which of its jobs are queued: those of the chunks before it.
-- KEYS: the lane's depth keys (keys.depth_keys)..., the overflow hash, the enqueued hash, the list
-- to push to, the lane's doorbell.
-- ARGV: capacity, priority label, enqueued-counter field, last doorbell index kept, message...
-- Returns the depth before the pushes, or -(depth + 1) when the chunk does not fit (nothing pushed,
-- every job of the chunk counted as refused).
-- include: lib/lane_depth.lua
-- include: lib/count.lua
-- include: lib/ring_doorbell.lua
local n = #KEYS - 4
local jobs = #ARGV - 4
local depth = lane_depth({unpack(KEYS, 1, n)})
if depth + jobs > tonumber(ARGV[1]) then
  count(KEYS[n + 1], ARGV[2], jobs)
  return -depth - 1
end
count(KEYS[n + 2], ARGV[3], jobs)
-- LPUSH takes many values at once; slices keep unpack within Lua's stack limit.
local first = 5
while first <= #ARGV do
  local last = math.min(first + 999, #ARGV)
  redis.call('LPUSH', KEYS[n + 3], unpack(ARGV, first, last))
  first = last + 1
end
ring_doorbell(KEYS[n + 4], ARGV[4])
return depth
