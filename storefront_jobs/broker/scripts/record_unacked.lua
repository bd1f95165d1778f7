#!lua flags=allow-oom
-- record_unacked: records a message as unacknowledged as kombu's QoS.append does, scored with
-- Redis's clock (TIME) instead of the worker's (storefront_jobs.broker.qos).
-- KEYS: the unacked hash, the unacked index.
-- ARGV: the delivery tag, the record ([message, exchange, routing key] as JSON).
-- Returns 1.
-- include: lib/redis_time.lua
redis.call('ZADD', KEYS[2], redis_time(), ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
