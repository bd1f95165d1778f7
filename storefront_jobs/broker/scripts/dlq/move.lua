-- dlq/move: replays entries (DeadLetterStore.move). For each entry still in the DLQ, in one step:
-- pushes its message onto the lane exactly as kombu would and rings the lane's doorbell so an idle
-- worker takes it at once, removes the entry, remembers the new id, and counts the enqueue in the
-- hash the capacity check counts every enqueue in.
-- KEYS: records, meta, timeline, stats, the audit entry hash (or ''), the enqueued-counter hash.
-- ARGV: index prefix, count prefix, replayed-marker prefix, marker TTL (s), last doorbell index
-- kept, then sextuples (id, lane list, message, new id, enqueued-counter field, lane doorbell).
-- Returns, per entry, the new id, or '' when it was no longer there.
-- include: lib/count.lua
-- include: lib/push.lua
-- include: dlq/lib/remove.lua
-- include: dlq/lib/count_removed.lua
local out = {}
local n = 0
for i = 6, #ARGV, 6 do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], id) == 1 then
    push(ARGV[i + 1], ARGV[i + 2], ARGV[i + 5], ARGV[5])
    remove(id)
    redis.call('SET', ARGV[3] .. id, ARGV[i + 3], 'EX', tonumber(ARGV[4]))
    count(KEYS[6], ARGV[i + 4])
    n = n + 1
    out[#out + 1] = ARGV[i + 3]
  else
    out[#out + 1] = ''
  end
end
count_removed(KEYS[4], KEYS[5], 'replay', n)
return out
