-- Take what a job needs from its limits before it runs, all or nothing: a slot
-- of each concurrency limit and a place in each rate limit's window.
--
-- KEYS[1] leases zset; KEYS[2..] one key per limit (concurrency slots or rate window)
-- ARGV[1] slot member "<worker id>|<token>"   ARGV[2] claim token
-- then 3 per limit: 'concurrency' or 'rate', the limit, the rate window (ms)
-- Returns {0} when taken; {i, wait} when limit i refused: wait is -1 for a
-- concurrency limit (wait for a slot), else the ms until the window has room.

expect_keys(KEYS, 1 + (#ARGV - 2) / 3, 'leases, then one key per limit')
local now = now_ms()
for i = 2, #KEYS do
  local kind, limit, window = ARGV[3 * i - 3], tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1])
  if kind == 'concurrency' then
    if live_slots(KEYS[i], KEYS[1], now) >= limit then
      return {i - 1, -1}
    end
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
    if redis.call('ZCARD', KEYS[i]) >= limit then
      local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
      return {i - 1, tonumber(oldest[2]) + window - now}
    end
  end
end
for i = 2, #KEYS do
  if ARGV[3 * i - 3] == 'concurrency' then
    redis.call('ZADD', KEYS[i], now, ARGV[1])
  else
    redis.call('ZADD', KEYS[i], now, ARGV[2])
    redis.call('PEXPIRE', KEYS[i], ARGV[3 * i - 1])
  end
end
return {0}
