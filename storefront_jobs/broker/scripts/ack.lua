#!lua flags=allow-oom
-- ack: a worker is done with a message (storefront_jobs.broker.qos): its unacknowledged record goes,
-- and, when the worker's fetch waits with lower lanes closed, a wake token ends that wait. Allowed on
-- a full Redis (allow-oom): it frees memory, and a refused acknowledgement would run the job again.
-- (kombu's own is a MULTI, which a Redis over maxmemory refuses whatever the commands in it.)
-- KEYS: the unacked hash, the unacked index[, the wake list].
-- ARGV: the delivery tag[, the wake list's time to live in seconds].
-- Returns 1 if the message was held, 0 if not.
redis.call('ZREM', KEYS[2], ARGV[1])
local held = redis.call('HDEL', KEYS[1], ARGV[1])
if KEYS[3] then
  redis.call('LPUSH', KEYS[3], 1)
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
return held
