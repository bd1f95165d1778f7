-- include: lib/count.lua

-- count_removed(stats, audit, action, n): n entries removed by `action` (replay, delete, trim,
-- expire), counted in the DLQ's stats as removed:<action> and, unless audit is '', in the audited
-- operation's count.
local function count_removed(stats, audit, action, n)
  count(stats, 'removed:' .. action, n)
  if audit ~= '' then
    count(audit, 'count', n)
  end
end
