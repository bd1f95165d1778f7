-- depth: the messages waiting in a lane (CapacityGate.depth).
-- KEYS: the lane's lists.
-- ARGV: none.
-- Returns the depth.
-- include: lib/lane_depth.lua
return lane_depth(KEYS)
