-- depth: the messages waiting in a lane (CapacityGate.depth).
-- KEYS: the lane's depth keys (its lists and its fair state hash: keys.depth_keys).
-- ARGV: none.
-- Returns the depth.
-- include: lib/lane_depth.lua
return lane_depth(KEYS)
