-- Take a schedule entry whose `delayed:<ts>` key is not a list (anyone may have
-- written it) off the schedule, exactly once, and record why in `failed`. The
-- key itself is left as it is: it is not a delayed item, so not ours to delete.
--
-- KEYS[1] delayed_queue_schedule   KEYS[2] delayed:<ts>   KEYS[3] failed list
-- ARGV[1] the schedule member   ARGV[2] the failure record
-- Returns 1 when this call took the entry off, 0 otherwise.

expect_keys(KEYS, 3, 'schedule, delayed:<ts>, failed')
local kind = redis.call('TYPE', KEYS[2])['ok']
if kind == 'list' or kind == 'none' then
  return 0 -- it is a list again (or gone): the scheduler reads it as usual
end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[3], ARGV[2])
  return 1
end
return 0
