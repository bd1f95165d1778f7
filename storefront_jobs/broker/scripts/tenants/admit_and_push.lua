-- tenants/admit_and_push: a job's first publish into a lane with a fair share per tenant, for a job
-- with a tenantId (storefront_jobs.broker.transport): the capacity check over the whole lane (tenant
-- lists included), the enqueue count and the push onto the tenant's list in one atomic step, as
-- admit_and_push does for the lane's plain list.
-- KEYS: the lane's depth keys..., the overflow hash, the enqueued hash, the tenant's list, the lane's
-- doorbell, the lane's tenant ring, tenant counts and fair state.
-- ARGV: capacity, priority label, enqueued-counter field, message, last doorbell index kept, tenant id.
-- Returns the depth before the push, or -(depth + 1) when the lane is full (nothing pushed).
-- include: lib/admission.lua
-- include: tenants/lib/push.lua
local n = #KEYS - 7
local depth = admit({unpack(KEYS, 1, n)}, ARGV[1], KEYS[n + 1], ARGV[2], KEYS[n + 2], ARGV[3])
if depth >= 0 then
  tenant_push(KEYS[n + 3], ARGV[4], KEYS[n + 4], ARGV[5], KEYS[n + 5], KEYS[n + 6], KEYS[n + 7], ARGV[6])
end
return depth
