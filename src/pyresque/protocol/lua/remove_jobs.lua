-- Remove queued jobs (dequeue, the dashboard's remove-job and remove-queue) and
-- release the unique lock each removed job holds, in one atomic step: a job
-- that leaves its queue unrun must not keep equal jobs out until its TTL.
-- A lock is released only while this job's token holds it (release_lock), so
-- removing an old copy never frees a newer job's lock. A job a worker has
-- taken meanwhile is not found, and its lock stays with it.
--
-- KEYS[1] queue:<name>   KEYS[2] queues set   KEYS[3] the queue's wake list
-- then one lock key per item with a token, in order
-- ARGV[1] 'items' (remove each item once) or 'queue' (remove the whole queue)
-- ARGV[2] queue name; then 2 per item: the item's bytes, its lock token or ''
--   ('queue' lists the items that mention "unique", as the caller read them)
-- Returns how many jobs were removed; -1 ('queue') when the queue holds an item
-- mentioning "unique" that the caller did not list: it arrived since, read again.

local nlocks = 0
for i = 4, #ARGV, 2 do
  nlocks = nlocks + given(ARGV[i])
end
expect_keys(KEYS, 3 + nlocks, 'queue, queues, wake, then a lock per item with a token')

local listed, locks = {}, {} -- item bytes -> true; item bytes -> {lock key, token}
local k = 4
for i = 3, #ARGV, 2 do
  listed[ARGV[i]] = true
  if ARGV[i + 1] ~= '' then
    locks[ARGV[i]] = {KEYS[k], ARGV[i + 1]}
    k = k + 1
  end
end

if ARGV[1] == 'items' then
  local removed = 0
  for i = 3, #ARGV, 2 do
    if redis.call('LREM', KEYS[1], 1, ARGV[i]) == 1 then
      removed = removed + 1
      local lock = locks[ARGV[i]]
      if lock then
        release_lock(lock[1], lock[2])
      end
    end
  end
  return removed
end

-- The whole queue: every job in it that carries a lock must have been listed.
local length = redis.call('LLEN', KEYS[1])
local held = {}
for start = 0, length - 1, 1000 do
  for _, item in ipairs(redis.call('LRANGE', KEYS[1], start, start + 999)) do
    if locks[item] then
      held[#held + 1] = locks[item]
    elseif not listed[item] and string.find(item, '"unique"', 1, true) then
      return -1
    end
  end
end
for _, lock in ipairs(held) do
  release_lock(lock[1], lock[2])
end
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('SREM', KEYS[2], ARGV[2])
return length
