#!lua flags=allow-oom
-- bind: records a queue's binding as kombu's queue_bind does (storefront_jobs.broker.transport): the
-- member in the exchange's table, and either in the exchange's set of permanent bindings (a lane) or,
-- for a queue that expires (a control reply queue), the table's deadline pushed to now + its time to
-- live. A script a full Redis still runs (allow-oom; kombu's is a MULTI or a script without the flag,
-- refused there), so a worker starts and answers control commands on a full Redis; the writes are a
-- few bytes, most already there.
-- KEYS: the exchange's binding table, then its permanent bindings (ARGV[2] "permanent") or the
--       binding deadlines (ARGV[2] "expires").
-- ARGV: the member (routing key, pattern and queue, joined by kombu's separator), the kind, the
--       exchange, the table's time to live in milliseconds (for "expires").
-- Returns 1.
redis.call('SADD', KEYS[1], ARGV[1])
if ARGV[2] == 'permanent' then
  redis.call('SADD', KEYS[2], ARGV[1])
else
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  redis.call('ZADD', KEYS[2], 'GT', now_ms + tonumber(ARGV[4]), ARGV[3])
end
return 1
