-- Record the end of a job in one atomic step: release its in-flight record,
-- clear Resque's "working on" record, count it, store the failure record if it
-- failed, and update its status.
--
-- Fencing: if the in-flight record is gone, the worker lost its lease and the
-- job was handed to someone else; nothing is written and 0 is returned.
--
-- KEYS[1] in-flight hash   KEYS[2] worker:<id>
-- KEYS[3] stat:processed   KEYS[4] stat:processed:<id>
-- KEYS[5] stat:failed      KEYS[6] stat:failed:<id>   KEYS[7] failed list
-- KEYS[8] status key (only for jobs with an id)
-- ARGV[1] claim token   ARGV[2] 'ok' or 'failed'   ARGV[3] result (JSON)
-- ARGV[4] failure record (JSON, when failed)
-- Returns 1 when recorded, 0 when fenced.

if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('DEL', KEYS[2])
redis.call('INCR', KEYS[3])
redis.call('INCR', KEYS[4])
local code = 4
if ARGV[2] == 'failed' then
  code = 3
  redis.call('INCR', KEYS[5])
  redis.call('INCR', KEYS[6])
  redis.call('RPUSH', KEYS[7], ARGV[4])
end
if KEYS[8] then
  set_status(KEYS[8], code, ARGV[3], math.floor(now_ms() / 1000))
end
return 1
