-- tenant_take(plain, ring, counts, state, prefix, weight_of): the next job of a lane by the fair
-- rule (storefront_jobs.broker.tenants), or nil when the lane has none; the fetch script records it.
-- The tenant at the right end of the ring has the turn: it takes weight_of(tenant) jobs in a row
-- (1 unless settings.tenant_fairness.weights says more), then goes to the left end (LMOVE), or leaves
-- the ring when its list is empty. The lane's plain list (`plain`: jobs without a tenant, restores,
-- replays, promotions, foreign producers) takes a turn of one job like one more tenant: once every
-- tenant on the ring had a turn since its last one (`turns` >= ring length). A lane whose ring is
-- empty (fairness off, or no tenant waiting) is taken exactly as before: the plain list only.
local function tenant_take(plain, ring, counts, state, prefix, weight_of)
  local members = redis.call('LLEN', ring)
  if members == 0 then
    return redis.call('RPOP', plain)
  end
  local turn = redis.call('HMGET', state, 'taken', 'turns')
  local taken, turns = tonumber(turn[1]) or 0, tonumber(turn[2]) or 0
  if taken == 0 and turns >= members then
    local raw = redis.call('RPOP', plain)
    if raw then
      redis.call('HSET', state, 'turns', 0)
      return raw
    end
  end
  -- Bounded: each pass returns a job or drops one ring entry whose list is gone.
  for _ = 1, members do
    local tenant = redis.call('LINDEX', ring, -1)
    local raw = redis.call('RPOP', prefix .. tenant)
    if raw then
      redis.call('HINCRBY', state, 'waiting', -1)
      taken = taken + 1
      if tonumber(redis.call('ZINCRBY', counts, -1, tenant)) <= 0 then
        redis.call('ZREM', counts, tenant)
        redis.call('RPOP', ring)
        if redis.call('LLEN', ring) == 0 then
          -- The last tenant left: no tenant job waits, so the count is 0 whatever it says (a list
          -- deleted by hand leaves it too high until then), and the turns start over.
          redis.call('DEL', state)
          return raw
        end
      elseif taken >= weight_of(tenant) then
        redis.call('LMOVE', ring, ring, 'RIGHT', 'LEFT')
      else
        redis.call('HSET', state, 'taken', taken)
        return raw
      end
      redis.call('HSET', state, 'taken', 0, 'turns', turns + 1)
      return raw
    end
    -- On the ring with an empty list: only a list deleted by hand does that. Off the ring with it.
    redis.call('RPOP', ring)
    redis.call('ZREM', counts, tenant)
    taken = 0
  end
  -- Every entry was stale, so no tenant job is left, whatever the count said.
  redis.call('DEL', state)
  return redis.call('RPOP', plain)
end
