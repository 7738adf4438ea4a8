-- The last step of removing failure records in bulk (failure_sweep.py): the sweep
-- has copied, chunk by chunk, every record it keeps to a new list; this replaces
-- `failed` by that list in one step, carrying over the records that arrived at the
-- tail since the sweep read them. Until then readers see the list unchanged, so
-- resque-web's index-based pages and buttons never see a half-removed list.
--
-- KEYS[1] failed list   KEYS[2] the rebuilt list (has a TTL while it is built)
-- KEYS[3] where the old list goes, for the caller to free a chunk at a time
-- ARGV[1] how many records the sweep read   ARGV[2] the last of them, as read
-- ARGV[3] the most records to carry over in this call
-- Returns 1 when replaced; 0 when more than ARGV[3] records arrived since (read on,
-- then call again); -1 when the records read are no longer where they were (a
-- record before them was removed, or the list was trimmed): nothing is changed.
expect_keys(KEYS, 3, 'failed, rebuilt list, old list')

local read = tonumber(ARGV[1])
local length = redis.call('LLEN', KEYS[1])
if length < read or (read > 0 and redis.call('LINDEX', KEYS[1], read - 1) ~= ARGV[2]) then
  return -1
end
if length - read > tonumber(ARGV[3]) then
  return 0
end
if length > read then
  redis.call('RPUSH', KEYS[2], unpack(redis.call('LRANGE', KEYS[1], read, -1)))
end
-- Freeing a big list takes long (UNLINK does it at once in a script): the old
-- list moves aside, and the caller trims it away in chunks.
redis.call('RENAME', KEYS[1], KEYS[3])
redis.call('EXPIRE', KEYS[3], 3600)
if redis.call('EXISTS', KEYS[2]) == 1 then -- absent when no record was kept
  redis.call('RENAME', KEYS[2], KEYS[1])
  redis.call('PERSIST', KEYS[1])
end
return 1
