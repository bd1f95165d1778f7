-- tenant_job_left(ring, counts, state, tenant): the accounting of a job that left its tenant's list
-- other than by the fetch (aging moved it up a lane): one job fewer waiting in the lane's tenant lists
-- and in the tenant's count; a tenant left with nothing waiting leaves the ring, and the turn in
-- progress starts over (a few jobs of the next tenant's turn at most); the last tenant to leave
-- resets the lane's fair state, as the fetch does.
local function tenant_job_left(ring, counts, state, tenant)
  redis.call('HINCRBY', state, 'waiting', -1)
  if tonumber(redis.call('ZINCRBY', counts, -1, tenant)) <= 0 then
    redis.call('ZREM', counts, tenant)
    redis.call('LREM', ring, 0, tenant)
    if redis.call('LLEN', ring) == 0 then
      redis.call('DEL', state)
    else
      redis.call('HSET', state, 'taken', 0)
    end
  end
end
