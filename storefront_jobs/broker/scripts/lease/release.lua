#!lua flags=allow-oom
-- lease/release: gives a lease up, if the caller still holds it (storefront_jobs.broker.lease), so
-- that another process can take it at once instead of after its time to live.
-- KEYS: the lease.
-- ARGV: the holder's name.
-- Returns 1 when released, 0 when the caller did not hold it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
