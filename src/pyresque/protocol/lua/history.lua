-- Add a worker's buffered history counts (history.py): the rolling per-minute and
-- per-hour counters, each given its expiry when it is created, and the fields of
-- the per-class stats hash.
--
-- KEYS[1..n] counters   KEYS[n+1] the per-class stats hash
-- ARGV[1] n   ARGV[2..1+n] the counts   ARGV[2+n..1+2n] each counter's TTL (s)
-- then triples: 'i' (HINCRBY) or 'f' (HINCRBYFLOAT), field, increment
expect_keys(KEYS, tonumber(ARGV[1]) + 1, 'ARGV[1] counters, then the stats hash')
local n = tonumber(ARGV[1])
for i = 1, n do
  if redis.call('INCRBY', KEYS[i], ARGV[1 + i]) == tonumber(ARGV[1 + i]) then
    redis.call('EXPIRE', KEYS[i], ARGV[1 + n + i])  -- new: the count is all it holds
  end
end
for j = 2 + 2 * n, #ARGV, 3 do
  redis.call(ARGV[j] == 'f' and 'HINCRBYFLOAT' or 'HINCRBY', KEYS[n + 1], ARGV[j + 1], ARGV[j + 2])
end
return n
