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
-- Returns 1 when pushed, 0 when it was pushed before.
expect_keys(KEYS, 5, 'queues, queue, wake, queues-changed, wf:pushed (or 4 schedule keys)')
local now = now_ms()
local kind = redis.call('TYPE', KEYS[5]).ok
if kind ~= 'zset' and kind ~= 'none' then -- anyone may write Redis: not ours, replaced
  redis.call('DEL', KEYS[5])
end
if redis.call('ZSCORE', KEYS[5], ARGV[1]) then
  return 0
end
-- An id is kept 8 days: longer than a workflow record (7), after which nothing pushes it.
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - 8 * 86400000)
redis.call('ZADD', KEYS[5], now, ARGV[1])
if ARGV[3] == 'at' then
  redis.call('SET', KEYS[4], ARGV[2])
  redis.call('EXPIREAT', KEYS[4], ARGV[5])
  schedule_item(KEYS[1], KEYS[2], KEYS[3], ARGV[2], 'delayed:' .. ARGV[2], ARGV[4])
else
  push_jobs(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], ARGV[3], {ARGV[4]})
end
return 1
