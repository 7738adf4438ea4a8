-- Schedule one job for later (resque-scheduler's layout, lib_delayed.lua),
-- atomically with its unique lock and its WAITING status when it has them.
--
-- KEYS[1] delayed_queue_schedule   KEYS[2] delayed:<ts>   KEYS[3] timestamps:<item>
-- KEYS[4] the unique lock (when ARGV[4] is not '')
-- then the status key (when ARGV[6] is not ''), then the job's id index (when
-- ARGV[7] is not ''): what `remove_delayed(job_id=...)` reads instead of every list
-- ARGV[1] timestamp   ARGV[2] 'delayed:<ts>'   ARGV[3] item JSON
-- ARGV[4] lock token or ''   ARGV[5] lock TTL (ms)   ARGV[6] WAITING packet or ''
-- ARGV[7] when the id index expires (epoch s: a day after the job is due) or ''
-- Returns 1 when scheduled, 0 when another job holds the unique lock.

expect_keys(KEYS, 3 + given(ARGV[4]) + given(ARGV[6]) + given(ARGV[7]),
  'schedule, delayed:<ts>, timestamps[, lock][, status][, id index]')
local next_key = 4
if ARGV[4] ~= '' then
  if not take_lock(KEYS[4], ARGV[4], ARGV[5]) then
    return 0
  end
  next_key = 5
end
if ARGV[6] ~= '' then
  redis.call('SET', KEYS[next_key], ARGV[6])
  next_key = next_key + 1
end
if given(ARGV[7]) == 1 then
  redis.call('SET', KEYS[next_key], ARGV[1])
  redis.call('EXPIREAT', KEYS[next_key], ARGV[7])
end
schedule_item(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])
return 1
