-- include: lib/ring_doorbell.lua

-- tenant_push(list, message, bell, last_index, ring, counts, state, tenant): a job onto its tenant's
-- list in a lane with a fair share per tenant (LPUSH, as kombu pushes a lane: workers take from the
-- right), counted in the lane's waiting jobs (the state hash, which the lane's depth reads) and in the
-- tenant's (the counts sorted set). A tenant that had nothing waiting joins the ring at the left end,
-- so its turn comes after every tenant already waiting: one turn each, never a whole backlog. The
-- lane's doorbell is rung as for any push, so an idle worker takes the job at once.
local function tenant_push(list, message, bell, last_index, ring, counts, state, tenant)
  redis.call('LPUSH', list, message)
  redis.call('HINCRBY', state, 'waiting', 1)
  if tonumber(redis.call('ZINCRBY', counts, 1, tenant)) == 1 then
    redis.call('LPUSH', ring, tenant)
  end
  ring_doorbell(bell, last_index)
end
