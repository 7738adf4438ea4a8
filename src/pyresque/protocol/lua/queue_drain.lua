-- The next steps of removing a queue (queue_detach.lua): drop the first jobs of the
-- moved list, releasing the unique lock each holds (only while its token holds it)
-- and giving its status key the TTL of a finished job's, so nothing the removed
-- jobs held stays behind forever.
--
-- KEYS[1] the moved list; then per job, in order: its lock (when it has a token),
-- its status key (when it has one)
-- ARGV[1] how many jobs to drop from the head; then 2 per job: lock token or '',
-- '1' when it has a status key else ''
-- Returns how many jobs were dropped.
local count = 1
for i = 2, #ARGV, 2 do
  count = count + given(ARGV[i]) + given(ARGV[i + 1])
end
expect_keys(KEYS, count, 'moved list, then per job its lock and status key')

local k = 2
for i = 2, #ARGV, 2 do
  if ARGV[i] ~= '' then
    release_lock(KEYS[k], ARGV[i])
    k = k + 1
  end
  if ARGV[i + 1] ~= '' then
    expire_removed_status(KEYS[k])
    k = k + 1
  end
end
redis.call('LTRIM', KEYS[1], ARGV[1], -1)
return tonumber(ARGV[1])
