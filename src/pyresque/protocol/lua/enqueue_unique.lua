-- Enqueue one unique job: take its lock and push it in one atomic step, so two
-- producers racing with the same arguments can never both enqueue.
--
-- KEYS[1] the unique lock   KEYS[2] queues set   KEYS[3] queue:<name>
-- KEYS[4] wake list of the queue   KEYS[5] queues-changed list
-- KEYS[6] status key (when ARGV[6] is not '')
-- ARGV[1] lock token   ARGV[2] lock TTL (ms)   ARGV[3] queue name
-- ARGV[4] 'head' or 'tail'   ARGV[5] payload   ARGV[6] WAITING status packet, '' when untracked
-- Returns 1 when enqueued, 0 when another job holds the lock, or (nothing written) a
-- WRONGTYPE error naming the queue's key when it holds another type (lib_types.lua).

expect_keys(KEYS, 5 + given(ARGV[6]), 'lock, queues, queue, wake, queues-changed[, status]')
local refused = refuse_foreign(KEYS[3])
if refused then
  return refused
end
if not take_lock(KEYS[1], ARGV[1], ARGV[2]) then
  return 0
end
if ARGV[6] ~= '' then
  redis.call('SET', KEYS[6], ARGV[6])
end
push_jobs(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[3], ARGV[4], {ARGV[5]})
return 1
