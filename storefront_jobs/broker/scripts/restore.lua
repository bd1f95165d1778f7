#!lua flags=allow-oom
-- restore: gives a held message back to its queue (storefront_jobs.broker.qos): the visibility
-- timeout's sweep, a warm shutdown, a requeue. The push and the removal of the record are one step,
-- and a message no longer held (acknowledged, or restored by another sweeper meanwhile) is not
-- pushed. Allowed on a full Redis (allow-oom): it moves a message, it adds none, and a refused
-- restore would leave a dead worker's jobs held. The worker marks the message redelivered and
-- resolves its lists as kombu's restore does.
-- KEYS: the unacked hash, the unacked index, the lists to push onto..., the lanes' doorbells...
-- ARGV: the delivery tag, the message (JSON), the number of lists, "1" to push where the queue is
--       read last (kombu's leftmost), the last doorbell index kept.
-- Returns 1 if restored, 0 if the message was no longer held.
-- include: lib/ring_doorbell.lua
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
local lists = tonumber(ARGV[3])
for i = 3, 2 + lists do
  if ARGV[4] == '1' then
    redis.call('LPUSH', KEYS[i], ARGV[2])
  else
    redis.call('RPUSH', KEYS[i], ARGV[2])
  end
end
for i = 3 + lists, #KEYS do
  ring_doorbell(KEYS[i], ARGV[5])
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
