-- Remove queued jobs (dequeue, the dashboard's remove-job) and
-- release the unique lock each removed job holds, in one atomic step: a job
-- that leaves its queue unrun must not keep equal jobs out until its TTL.
-- A lock is released only while this job's token holds it (release_lock), so
-- removing an old copy never frees a newer job's lock. A job a worker has
-- taken meanwhile is not found, and its lock stays with it.
--
-- KEYS[1] queue:<name>; then one lock key per item with a token, in order
-- ARGV: 2 per item: the item's bytes, its lock token or ''
-- Returns how many jobs were removed.

local nlocks = 0
for i = 2, #ARGV, 2 do
  nlocks = nlocks + given(ARGV[i])
end
expect_keys(KEYS, 1 + nlocks, 'queue, then a lock per item with a token')

local removed, k = 0, 2
for i = 1, #ARGV, 2 do
  local lock_key = ARGV[i + 1] ~= '' and KEYS[k] or nil
  if lock_key then
    k = k + 1
  end
  if redis.call('LREM', KEYS[1], 1, ARGV[i]) == 1 then
    removed = removed + 1
    if lock_key then
      release_lock(lock_key, ARGV[i + 1])
    end
  end
end
return removed
