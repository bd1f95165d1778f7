#!lua flags=allow-oom
-- push: a message that needs no capacity check (a retry, accepted once already) into its lane,
-- and the lane's doorbell rung (storefront_jobs.broker.transport).
-- KEYS: the list to push to, the lane's doorbell.
-- ARGV: message, last doorbell index kept.
-- Returns nothing.
-- include: lib/push.lua
push(KEYS[1], ARGV[1], KEYS[2], ARGV[2])
