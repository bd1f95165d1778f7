#!lua flags=allow-oom
-- dlq/delete: deletes the given entries (DeadLetterStore.delete).
-- KEYS: records, meta, timeline, stats, the audit entry hash (or '').
-- ARGV: index prefix, count prefix, then the execution ids.
-- Returns the number deleted.
-- include: dlq/lib/remove.lua
-- include: dlq/lib/count_removed.lua
local n = 0
for i = 3, #ARGV do
  if remove(ARGV[i]) then n = n + 1 end
end
count_removed(KEYS[4], KEYS[5], 'delete', n)
return n
