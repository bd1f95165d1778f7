-- room: the capacity check of a DLQ replay batch (CapacityGate.room). The replay's MOVE script
-- counts each job it pushes as enqueued, so only a refusal is counted here.
-- KEYS: the lane's depth keys (keys.depth_keys)..., the overflow hash.
-- ARGV: capacity, priority label.
-- Returns the lane's depth, or -(depth + 1) when it is full (the refusal counted as overflow).
-- include: lib/admission.lua
local n = #KEYS - 1
return check_capacity({unpack(KEYS, 1, n)}, ARGV[1], KEYS[n + 1], ARGV[2])
