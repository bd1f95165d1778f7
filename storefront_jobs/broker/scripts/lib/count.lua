-- count(hash, field, n): adds n (1 when left out) to one field of a counter hash. Adding 0 writes
-- nothing, so a counter field appears with its first event and never as an empty 0.
local function count(hash, field, n)
  n = n or 1
  if n ~= 0 then
    redis.call('HINCRBY', hash, field, n)
  end
end
