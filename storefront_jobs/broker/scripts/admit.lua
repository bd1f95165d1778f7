-- admit: the capacity check of a job published without storefront-jobs' transport
-- (CapacityGate.admit); kombu's own publish follows it.
-- KEYS: the lane's depth keys (keys.depth_keys)..., the overflow hash, the enqueued hash.
-- ARGV: capacity, priority label, enqueued-counter field.
-- Returns the depth before the job (the job counted as enqueued), or -(depth + 1) when the lane
-- is full (the refusal counted as overflow). Counting here costs no round trip of its own.
-- include: lib/admission.lua
local n = #KEYS - 2
return admit({unpack(KEYS, 1, n)}, ARGV[1], KEYS[n + 1], ARGV[2], KEYS[n + 2], ARGV[3])
