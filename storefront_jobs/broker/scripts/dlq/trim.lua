#!lua flags=allow-oom
-- dlq/trim: DeadLetterStore.trim, one batch.
-- KEYS: records, meta, timeline, stats.
-- ARGV: index prefix, count prefix, cutoff score, max entries, limit.
-- Returns {expired, trimmed}.
-- include: dlq/lib/trim.lua
return trim()
