-- Remove queued jobs (dequeue, the dashboard's remove-job) and
-- release the unique lock each removed job holds, in one atomic step: a job
-- that leaves its queue unrun must not keep equal jobs out until its TTL.
-- A lock is released only while this job's token holds it (release_lock), so
-- removing an old copy never frees a newer job's lock. A removed job's status
-- key (a tracked job) gets a finished job's TTL. A job a worker has taken
-- meanwhile is not found, and its lock and status stay with it.
--
-- KEYS[1] queue:<name>; then per item, in order: its lock (when it has a token),
-- its status key (when it has one)
-- ARGV: 3 per item: the item's bytes, its lock token or '', '1' when it has a
-- status key else ''
-- Returns a 1 (removed) or 0 (not found) per item: on Redis Cluster the caller
-- releases the removed jobs' locks (in slots of their own) just after.

local count = 1
for i = 2, #ARGV, 3 do
  count = count + given(ARGV[i]) + given(ARGV[i + 1])
end
expect_keys(KEYS, count, 'queue, then per item its lock and status key')

local removed, k = {}, 2
for i = 1, #ARGV, 3 do
  local lock_key = ARGV[i + 1] ~= '' and KEYS[k] or nil
  if lock_key then
    k = k + 1
  end
  local status_key = ARGV[i + 2] ~= '' and KEYS[k] or nil
  if status_key then
    k = k + 1
  end
  local found = redis.call('LREM', KEYS[1], 1, ARGV[i])
  removed[#removed + 1] = found
  if found == 1 then
    if lock_key then
      release_lock(lock_key, ARGV[i + 1])
    end
    if status_key then
      expire_removed_status(status_key)
    end
  end
end
return removed
