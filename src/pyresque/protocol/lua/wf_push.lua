-- Redis Cluster: push a workflow job that a call in the workflow slot released (its
-- record's `push`, lib_workflow.lua) onto its queue, in the queue's slot, once: the ids
-- pushed here are kept (`wf:pushed`, id -> when), so the same push done again (by a
-- recovery pass, after its first caller died before removing its outbox entry) is a no-op.
-- A dependable delayed job (ARGV[3] 'at') goes into its queue's schedule instead, as
-- schedule.lua puts one there, once the same way.
--
-- KEYS[1] queues set   KEYS[2] queue:<name>   KEYS[3] wake list   KEYS[4] queues-changed
-- KEYS[5] wf:pushed (this slot's)
-- ARGV[1] job id   ARGV[2] queue name   ARGV[3] 'head' or 'tail'   ARGV[4] payload
-- With ARGV[3] 'at': KEYS[1] delayed_queue_schedule   KEYS[2] delayed:<ts>
-- KEYS[3] timestamps:<item>   KEYS[4] the job's id index; ARGV[2] the timestamp,
-- ARGV[4] the delayed item, ARGV[5] when the id index expires (epoch s).
-- A queue whose key holds another type (the user's key, left as it is: lib_types.lua)
-- cannot take the job: the call returns that type, nothing written, and its caller calls
-- again with ARGV[6] the job's failure record (protocol/workflow.py), ARGV[7] '1' when
-- the job's status key is given, and KEYS[6] failed, KEYS[7] stat:failed[, KEYS[8] the
-- status key]: the record goes to `failed` in place of the push, once as a push is.
-- Returns 1 when pushed, 0 when it was pushed (or failed) before, 2 when failed.
expect_keys(KEYS, 5 + given(ARGV[6]) * (2 + given(ARGV[7])),
  'queues, queue, wake, queues-changed, wf:pushed (or 4 schedule keys)[, failed, stat:failed[, status]]')
local now = now_ms()
local kind = redis.call('TYPE', KEYS[5]).ok
if kind ~= 'zset' and kind ~= 'none' then -- anyone may write Redis: not ours, replaced
  redis.call('DEL', KEYS[5])
end
if redis.call('ZSCORE', KEYS[5], ARGV[1]) then
  return 0
end
local found = ARGV[3] ~= 'at' and foreign_type(KEYS[2])
if found and given(ARGV[6]) == 0 then
  return found
end
-- An id is kept 8 days: longer than a workflow record (7), after which nothing pushes it.
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - 8 * 86400000)
redis.call('ZADD', KEYS[5], now, ARGV[1])
if ARGV[3] == 'at' then
  redis.call('SET', KEYS[4], ARGV[2])
  redis.call('EXPIREAT', KEYS[4], ARGV[5])
  schedule_item(KEYS[1], KEYS[2], KEYS[3], ARGV[2], 'delayed:' .. ARGV[2], ARGV[4])
elseif found then
  redis.call('RPUSH', KEYS[6], ARGV[6])
  redis.call('INCR', KEYS[7])
  if ARGV[7] == '1' then
    set_status(KEYS[8], 3, 'null')
  end
  return 2
else
  push_jobs(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], ARGV[3], {ARGV[4]})
end
return 1
