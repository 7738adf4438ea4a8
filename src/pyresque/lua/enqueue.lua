-- Push payloads onto a queue, atomically with everything that goes with them:
-- the queue's name in `queues`, a WAITING status for each tracked job, and a
-- wake-up token so an idle pyresque worker starts at once instead of polling.
--
-- KEYS[1] queues set        KEYS[2] queue:<name>      KEYS[3] wake list of the queue
-- KEYS[4] queues-changed list (wakes workers that serve globs when a queue is new)
-- KEYS[5..] status keys of the tracked jobs
-- ARGV[1] queue name        ARGV[2] WAITING status packet
-- ARGV[3] 'head' or 'tail'  ARGV[4..] payloads
-- Returns the queue's new length.

if redis.call('SADD', KEYS[1], ARGV[1]) == 1 and redis.call('LLEN', KEYS[4]) == 0 then
  redis.call('RPUSH', KEYS[4], '1')
end
for i = 5, #KEYS do
  redis.call('SET', KEYS[i], ARGV[2])
end
local push = ARGV[3] == 'head' and 'LPUSH' or 'RPUSH'
local length = redis.call(push, KEYS[2], unpack(ARGV, 4))
-- One token is enough: a worker that claims a job wakes the next one while
-- the queue is not empty (see claim.lua), so the list never grows.
if redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('RPUSH', KEYS[3], '1')
end
return length
