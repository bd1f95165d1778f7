-- tenants/purge: deletes every job waiting in a lane's tenant lists, with the lane's ring, tenant
-- counts and fair state, in one step (the transport's _purge, which `celery purge` reaches, after
-- kombu deleted the lane's own lists).
-- KEYS: the lane's tenant ring, tenant counts, fair state.
-- ARGV: the prefix of the lane's tenant lists.
-- Returns the number of jobs deleted.
local deleted = 0
for _, tenant in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local list = ARGV[1] .. tenant
  deleted = deleted + redis.call('LLEN', list)
  redis.call('DEL', list)
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return deleted
