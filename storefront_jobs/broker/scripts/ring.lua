-- ring: rings one lane's doorbell after kombu pushed a message back (a restore); queued in kombu's
-- restore transaction (storefront_jobs.broker.fetch).
-- KEYS: the lane's doorbell.
-- ARGV: last doorbell index kept.
-- Returns nothing.
-- include: lib/ring_doorbell.lua
ring_doorbell(KEYS[1], ARGV[1])
