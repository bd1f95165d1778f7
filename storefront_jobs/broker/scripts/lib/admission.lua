-- The capacity rule of a lane, for every script that lets a job into one: a lane holding
-- `capacity` or more waiting messages is full, and a refusal is counted per priority in Redis so
-- that every producer process adds to one number (storefront:overflow).
-- include: lib/lane_depth.lua
-- include: lib/count.lua

-- check_capacity(lists, capacity, overflow, label): the lane's depth, or -(depth + 1) when it is
-- full, the refusal counted under the priority `label` in the `overflow` hash.
local function check_capacity(lists, capacity, overflow, label)
  local depth = lane_depth(lists)
  if depth >= tonumber(capacity) then
    count(overflow, label)
    return -depth - 1
  end
  return depth
end

-- admit(lists, capacity, overflow, label, enqueued, field): check_capacity, and a job that gets in
-- counted under `field` (priority, job queue, task, producer host) in the `enqueued` hash.
local function admit(lists, capacity, overflow, label, enqueued, field)
  local depth = check_capacity(lists, capacity, overflow, label)
  if depth >= 0 then
    count(enqueued, field)
  end
  return depth
end
