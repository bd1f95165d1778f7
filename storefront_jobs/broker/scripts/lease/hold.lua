#!lua flags=allow-oom
-- lease/hold: takes a lease that nobody holds, or renews one the caller already holds
-- (storefront_jobs.broker.lease). One step, so a lease that expired between a GET and a PEXPIRE can
-- never be renewed by its former holder while another process has taken it.
-- KEYS: the lease.
-- ARGV: the holder's name, the time to live in milliseconds.
-- Returns 1 when the caller holds the lease for the next time to live, 0 when another does.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
