-- admit_and_push: a job's first publish into a lane (storefront_jobs.broker.transport): the capacity
-- check, the enqueue count and the push in one atomic step, so a lane never holds more than its
-- capacity whatever the number of producers, and a refused job was never pushed.
-- KEYS: the lane's depth keys (keys.depth_keys)..., the overflow hash, the enqueued hash, the list
-- to push to, the lane's doorbell.
-- ARGV: capacity, priority label, enqueued-counter field, message, last doorbell index kept.
-- Returns the depth before the push, or -(depth + 1) when the lane is full (nothing pushed).
-- include: lib/admission.lua
-- include: lib/push.lua
local n = #KEYS - 4
local depth = admit({unpack(KEYS, 1, n)}, ARGV[1], KEYS[n + 1], ARGV[2], KEYS[n + 2], ARGV[3])
if depth >= 0 then
  push(KEYS[n + 3], ARGV[4], KEYS[n + 4], ARGV[5])
end
return depth
