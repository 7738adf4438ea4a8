-- Wake the first job waiting for a concurrency slot, if a slot is free: move it
-- to the head of its queue. The caller read the head item to learn its queue;
-- if the list changed meanwhile, nothing happens and the caller reads again.
-- A key stays in the waiting-keys hash exactly while its list has jobs.
--
-- KEYS[1] slots zset   KEYS[2] leases   KEYS[3] waiting list   KEYS[4] waiting-keys hash
-- KEYS[5] queues set   KEYS[6] queue:<name>   KEYS[7] its wake list   KEYS[8] queues-changed
-- ARGV[1] the limit   ARGV[2] head item as read   ARGV[3] payload   ARGV[4] queue name
-- ARGV[5] the limit's key
-- Returns {result, free slots before}: result 1 woken, 0 no free slot, -1 the head changed;
-- {-2, free, type}: its queue's key holds that type, and the job waits on (lib_types.lua).

expect_keys(KEYS, 8, 'slots, leases, waiting, waiting-keys, queues, queue, wake, queues-changed')
local free = tonumber(ARGV[1]) - live_slots(KEYS[1], KEYS[2], now_ms())
if free <= 0 then
  return {0, free}
end
if redis.call('LINDEX', KEYS[3], 0) ~= ARGV[2] then
  return {-1, free}
end
local foreign = foreign_type(KEYS[6])
if foreign then
  return {-2, free, foreign}
end
redis.call('LPOP', KEYS[3])
if redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('HDEL', KEYS[4], ARGV[5])
end
push_jobs(KEYS[5], KEYS[6], KEYS[7], KEYS[8], ARGV[4], 'head', {ARGV[3]})
return {1, free}
