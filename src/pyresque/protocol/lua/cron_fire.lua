-- Fire one tick of a recurring schedule: enqueue its job, exactly once.
--
-- The ticks hash is the per-tick idempotency record: a tick is handled only if
-- it is later than the last one handled, and handling it records it in the same
-- atomic step as the enqueue. So a new leader that takes over after a crash
-- fires every tick the old one did not (no gap) and none it did (no duplicate).
-- Only the current leader may fire (fencing against a leader that stalled past
-- its lease). A paused schedule's ticks are consumed without enqueueing, so
-- resuming it fires no backlog.
--
-- On Redis Cluster all the keys are in the queue's slot: the ticks hash there is the
-- idempotency record, and the leader (ARGV[1] '') and the paused set were checked in
-- the home slot before the call (scheduling/cron.py).
--
-- KEYS[1] leader key   KEYS[2] ticks hash   KEYS[3] state hash   KEYS[4] paused set
-- KEYS[5] queues set   KEYS[6] queue:<name>   KEYS[7] its wake list
-- KEYS[8] queues-changed list   KEYS[9] status key (when ARGV[8] is not '')
-- ARGV[1] scheduler id ('' on Cluster)   ARGV[2] schedule name   ARGV[3] tick (epoch s)
-- ARGV[4] payload ('' to consume the tick without enqueueing: a skipped misfire)
-- ARGV[5] queue name   ARGV[6] state when handled (JSON)   ARGV[7] state when paused
-- ARGV[8] WAITING status packet, '' when there is no status key
-- Returns 1 fired, 2 paused, 0 already handled, -1 not the leader; {3, type} when the
-- queue's key holds that type (lib_types.lua): the tick is consumed, as a paused one's,
-- and the caller says why (its push would fail after the tick was recorded).

expect_keys(KEYS, 8 + given(ARGV[8]),
  'leader, ticks, state, paused, queues, queue, wake, queues-changed[, status]')
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
-- An unreadable record (anyone may write the hash) counts as no tick handled; a key
-- of another type is replaced (on one Redis cron.py does that before; on Cluster the
-- queue's slot's record is read here only).
local read, value = pcall(redis.call, 'HGET', KEYS[2], ARGV[2])
if not read then
  redis.call('DEL', KEYS[2])
end
local last = read and tonumber(value or '') or nil
if last and last >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
-- The paused set and the state hash only inform: one of another type (anyone may
-- write them) must not stop the tick half-way, after it was recorded.
if redis.pcall('SISMEMBER', KEYS[4], ARGV[2]) == 1 then
  redis.pcall('HSET', KEYS[3], ARGV[2], ARGV[7])
  return 2
end
local foreign = ARGV[4] ~= '' and foreign_type(KEYS[6])
if foreign then
  return {3, foreign}
end
if ARGV[4] ~= '' then
  if ARGV[8] ~= '' then
    redis.call('SET', KEYS[9], ARGV[8])
  end
  push_jobs(KEYS[5], KEYS[6], KEYS[7], KEYS[8], ARGV[5], 'tail', {ARGV[4]})
end
redis.pcall('HSET', KEYS[3], ARGV[2], ARGV[6])
return 1
