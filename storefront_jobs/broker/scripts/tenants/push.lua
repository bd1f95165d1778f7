#!lua flags=allow-oom
-- tenants/push: a message that needs no capacity check (a retry) onto its tenant's list in a lane with
-- a fair share per tenant, counted, the tenant on the ring, the lane's doorbell rung
-- (storefront_jobs.broker.transport, for a job with a tenantId; storefront_jobs.broker.tenants).
-- KEYS: the tenant's list, the lane's doorbell, the lane's tenant ring, tenant counts and fair state.
-- ARGV: message, last doorbell index kept, tenant id.
-- Returns nothing.
-- include: tenants/lib/push.lua
tenant_push(KEYS[1], ARGV[1], KEYS[2], ARGV[2], KEYS[3], KEYS[4], KEYS[5], ARGV[3])
