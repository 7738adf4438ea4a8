-- On Redis Cluster: the queues whose slots have delayed jobs due by ARGV[1], each
-- with its generation as read in the same step (delayed_shards.py): a note after
-- this read changes the generation, so the scheduler's settle leaves that entry.
--
-- KEYS[1] delayed-queues (sorted set)   KEYS[2] delayed-gen (hash)
-- ARGV[1] now (epoch s)   ARGV[2] at most this many queues
-- Returns {queue, generation (or ''), ...}; nothing when a key is of another type
-- (the next note or sweep replaces it).

expect_keys(KEYS, 2, 'delayed-queues, delayed-gen')
if redis.call('TYPE', KEYS[1])['ok'] ~= 'zset' then
  return {}
end
local readable = redis.call('TYPE', KEYS[2])['ok'] == 'hash'
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[2])
local out = {}
for _, queue in ipairs(due) do
  out[#out + 1] = queue
  out[#out + 1] = readable and redis.call('HGET', KEYS[2], queue) or ''
end
return out
