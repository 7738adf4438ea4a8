-- A job refused by a concurrency limit waits for a slot: release its claim and
-- append it to the limit's waiting list (FIFO), where a released slot wakes it
-- (limit_wake.lua). If a slot came free since the refusal, it goes straight back
-- to the head of its queue instead, so a wake-up can never be missed; not to a queue
-- whose key holds another type (lib_types.lua): it waits, for a wake-up to try again.
--
-- KEYS[1] in-flight hash   KEYS[2] worker:<id>   KEYS[3] slots zset   KEYS[4] leases
-- KEYS[5] waiting list   KEYS[6] waiting-keys hash   KEYS[7] queues set
-- KEYS[8] queue:<name>   KEYS[9] its wake list   KEYS[10] queues-changed list
-- ARGV[1] claim token   ARGV[2] the limit   ARGV[3] item (payload with its queue)
-- ARGV[4] payload   ARGV[5] queue name   ARGV[6] the limit's key
-- Returns 0 when fenced (the claim was gone), 1 when parked, 2 when requeued.

expect_keys(KEYS, 10, 'in-flight, worker, slots, leases, waiting, waiting-keys, queues, queue, wake, queues-changed')
if not release_claim(KEYS[1], KEYS[2], ARGV[1]) then
  return 0
end
if live_slots(KEYS[3], KEYS[4], now_ms()) < tonumber(ARGV[2]) and not foreign_type(KEYS[8]) then
  push_jobs(KEYS[7], KEYS[8], KEYS[9], KEYS[10], ARGV[5], 'head', {ARGV[4]})
  return 2
end
redis.call('RPUSH', KEYS[5], ARGV[3])
redis.call('HSET', KEYS[6], ARGV[6], ARGV[2])
return 1
