-- aging/promote: one waiting job promoted one lane up by aging (storefront_jobs.broker.aging). It
-- leaves its list and becomes the next job out of the lane above in one atomic step, so whatever
-- workers and other sweepers do meanwhile, it is never in two lanes, never lost, and never moved
-- twice: a job a worker took (or another sweeper moved) is no longer in its list, and is left alone.
-- KEYS: the target lane's depth keys (its lists and fair state, keys.depth_keys)..., the list the job
-- waits in, the target lane's plain list, the target lane's doorbell, the promoted hash, the blocked
-- hash; for a job waiting in a tenant list (a lane with a fair share per tenant) then the source
-- lane's tenant ring, tenant counts and fair state.
-- ARGV: the target lane's capacity, the counter field (<from>\t<to>), the message as it waits, the
-- promoted message, the last doorbell index kept, the number of depth keys; for a tenant list then the
-- tenant.
-- Returns 1 when promoted; 0 when the message was no longer in its list; -(depth + 1) when the
-- target lane is full: the job stays where it is, and the refusal is counted in the blocked hash.
-- include: lib/lane_depth.lua
-- include: lib/count.lua
-- include: lib/ring_doorbell.lua
-- include: tenants/lib/leave.lua
local n = tonumber(ARGV[6])
local source, target, bell = KEYS[n + 1], KEYS[n + 2], KEYS[n + 3]
local depth = lane_depth({unpack(KEYS, 1, n)})
if depth >= tonumber(ARGV[1]) then
  -- Count a refusal only for a job still waiting: one a worker took was not kept from anything.
  -- The oldest jobs wait at the right end, where LPOS with a negative rank starts looking.
  if not redis.call('LPOS', source, ARGV[3], 'RANK', -1) then
    return 0
  end
  count(KEYS[n + 5], ARGV[2])
  return -depth - 1
end
if redis.call('LREM', source, -1, ARGV[3]) == 0 then
  return 0
end
if ARGV[7] then
  -- Out of a tenant list: the source lane's depth and turns must not count it any longer.
  tenant_job_left(KEYS[n + 6], KEYS[n + 7], KEYS[n + 8], ARGV[7])
end
-- RPUSH, not kombu's LPUSH: workers take from the right, and this job has waited longest.
redis.call('RPUSH', target, ARGV[4])
ring_doorbell(bell, ARGV[5])
count(KEYS[n + 4], ARGV[2])
return 1
