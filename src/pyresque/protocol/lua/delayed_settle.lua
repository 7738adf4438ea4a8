-- On Redis Cluster: after a scheduler moved queue ARGV[1]'s due jobs (in the queue's
-- slot), set its index entry to the queue's next due second, or remove it when none
-- is left, unless a producer or a worker noted a job meanwhile (the generation read
-- by delayed_due.lua changed): then the entry, lowered by that note, stays.
--
-- KEYS[1] delayed-queues (sorted set)   KEYS[2] delayed-gen (hash)
-- ARGV[1] queue name   ARGV[2] generation as read ('' for none)
-- ARGV[3] the queue's next due second, or '' when its schedule is empty
-- Returns 1 when settled, 0 when left.

expect_keys(KEYS, 2, 'delayed-queues, delayed-gen')
local gens = redis.call('TYPE', KEYS[2])['ok']
if redis.call('TYPE', KEYS[1])['ok'] ~= 'zset' or (gens ~= 'hash' and gens ~= 'none') then
  return 0
end
-- Generations only grow (never deleted): a stale scheduler cannot see its old one again.
local gen = gens == 'hash' and redis.call('HGET', KEYS[2], ARGV[1])
if (gen or '') ~= ARGV[2] then
  return 0
end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
