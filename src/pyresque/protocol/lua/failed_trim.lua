-- Drop the oldest failure records (a retention policy: `pyresque failed trim`),
-- a chunk per call, only while the head is what the caller read: a list changed
-- meanwhile at its head is read again, never trimmed by a stale count.
--
-- KEYS[1] failed list
-- ARGV[1] how many records to drop from the head   ARGV[2] the first of them, as read
-- Returns how many were dropped (0 when the head changed).
expect_keys(KEYS, 1, 'failed')

if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[2] then
  return 0
end
redis.call('LTRIM', KEYS[1], ARGV[1], -1)
return tonumber(ARGV[1])
