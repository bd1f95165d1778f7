#!lua flags=allow-oom
-- heartbeat: a pool's beat into the hash of pools (storefront_jobs.worker.heartbeat). Allowed on a
-- full Redis (allow-oom): the pools that drain a full Redis must stay visible to /q/health, the
-- queues command and the worker metrics, or every lane would look abandoned. A beat replaces the
-- pool's last one, of about the same size, so it does not fill Redis; a new pool adds one field.
-- KEYS: the hash of pools.
-- ARGV: the pool's node name, its beat (JSON).
-- Returns 1 if the pool was new, 0 if it replaced its last beat.
return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
