-- Take items off one `delayed:<ts>` list: the scheduler moving due jobs to
-- their queues, "enqueue now", and cancelling all come through here.
--
-- Each item is removed by its exact bytes (LREM 1), so any number of
-- schedulers (pyresque's, Ruby's, PHP's) can race on the same list: an item
-- is moved only by the call that removed it, never twice. When the list is
-- empty it is deleted and its timestamp leaves the schedule, as
-- resque-scheduler's clean-up does.
--
-- KEYS[1] delayed_queue_schedule   KEYS[2] delayed:<ts>   KEYS[3] queues set
-- KEYS[4] queues-changed list; then for each item, in order:
--   timestamps:<item>; queue:<name> and its wake list when it goes to a queue,
--   or the failed list when it goes there; its unique lock when it has a token
-- ARGV[1] the schedule member (the timestamp)   ARGV[2] 'delayed:<ts>'; then 5 per item:
--   the item as read; where: 'tail', 'head', 'failed' or 'drop' (cancel);
--   queue name; what to push (a payload or a failure record); lock token or ''
-- Returns one 1 (taken), 0 (gone already) or 2 (left: its destination is not a
-- list) per item.
--
-- Anyone may have written the keys an item names, so nothing after the LREM may
-- fail (a script stops at an error but keeps what it wrote: the item would be
-- lost). The destination's type is checked first; the index and the lock are
-- only cleaned up, so an error there is ignored.

local count = 4
for i = 3, #ARGV, 5 do
  local where = ARGV[i + 1]
  count = count + 1 + given(ARGV[i + 4])
  if where == 'tail' or where == 'head' then
    count = count + 2
  elseif where == 'failed' then
    count = count + 1
  end
end
expect_keys(KEYS, count, 'schedule, delayed:<ts>, queues, queues-changed, then per item: '
  .. 'timestamps, queue and wake (or failed), lock')

local taken = {}
local k = 5
for i = 3, #ARGV, 5 do
  local item, where, queue, value, token = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local k_timestamps = KEYS[k]
  k = k + 1
  local k_dest, k_wake
  if where == 'tail' or where == 'head' then
    k_dest, k_wake, k = KEYS[k], KEYS[k + 1], k + 2
  elseif where == 'failed' then
    k_dest, k = KEYS[k], k + 1
  end
  local k_lock
  if token ~= '' then
    k_lock, k = KEYS[k], k + 1
  end
  local kind = k_dest and redis.call('TYPE', k_dest)['ok']
  local removed = 2
  if not kind or kind == 'list' or kind == 'none' then
    removed = redis.call('LREM', KEYS[2], 1, item)
  end
  if removed == 1 then
    redis.pcall('SREM', k_timestamps, ARGV[2])
    if k_wake then
      push_jobs(KEYS[3], k_dest, k_wake, KEYS[4], queue, where, {value})
    elseif k_dest then
      redis.call('RPUSH', k_dest, value)
    end
    if k_lock then
      pcall(release_lock, k_lock, token)
    end
  end
  taken[#taken + 1] = removed
end
if redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return taken
