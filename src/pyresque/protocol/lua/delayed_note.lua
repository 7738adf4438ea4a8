-- On Redis Cluster: note that queue ARGV[1]'s slot has a delayed job due at ARGV[2],
-- once it is written there (delayed_shards.py). The index entry only goes down (LT),
-- and the queue's generation goes up, so a scheduler that read the index before this
-- note does not settle the entry above this job (delayed_settle.lua). The note is made
-- with two plain commands (delayed_shards.note); this script runs when they fail on
-- keys or values of another kind, and repairs them.
--
-- KEYS[1] delayed-queues (sorted set)   KEYS[2] delayed-gen (hash)
-- ARGV[1] queue name   ARGV[2] the job's due second
-- Anyone may write these keys: one of another type is deleted (the sweep rebuilds
-- the index), a generation that is not an integer starts again at 1.

expect_keys(KEYS, 2, 'delayed-queues, delayed-gen')
if redis.call('TYPE', KEYS[1])['ok'] ~= 'zset' then
  redis.call('DEL', KEYS[1])
end
if redis.call('TYPE', KEYS[2])['ok'] ~= 'hash' then
  redis.call('DEL', KEYS[2])
end
redis.call('ZADD', KEYS[1], 'LT', ARGV[2], ARGV[1])
local bumped = redis.pcall('HINCRBY', KEYS[2], ARGV[1], 1)
if type(bumped) == 'table' and bumped.err then
  redis.call('HSET', KEYS[2], ARGV[1], 1)
end
return 1
