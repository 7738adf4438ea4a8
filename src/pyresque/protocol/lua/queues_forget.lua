-- Forget idle queues (client/admin/idle_queues.py): take names out of Resque's
-- `queues` set when their queue has stayed empty, and no worker named them, for at
-- least ARGV[2] ms. Atomic per call, so a pyresque enqueue (whose SADD and RPUSH
-- run in one script) either comes first (the queue is not empty: kept) or after (its
-- SADD puts the name back). A name first seen empty is only marked (`idle` zset,
-- name -> when); a later call forgets it.
--
-- A Ruby producer sends SADD and RPUSH as two commands: a name forgotten between
-- them would leave a job on a queue missing from the set. So a forgotten name is
-- kept in the `forgotten` zset for ARGV[3] ms, and names given in `recheck` mode are
-- put back (with a token on `queues-changed`, as an enqueue does for a new queue)
-- when their queue holds a job. In `clean` mode, marks of names no longer in the
-- set (remove_queue, another client) are dropped.
--
-- KEYS[1] queues set   KEYS[2] idle zset   KEYS[3] forgotten zset
-- KEYS[4] queues-changed   KEYS[5..4+n] the queues
-- ARGV[1] 'sweep', 'recheck' or 'clean'   ARGV[2] idle ms   ARGV[3] memory ms   ARGV[4] n
-- ARGV[5..4+n] the names   ARGV[5+n..4+2n] '1' when a worker names it, else ''
-- Returns the names forgotten (sweep) or put back (recheck).
expect_keys(KEYS, 4 + tonumber(ARGV[4]), 'the sets, then ARGV[4] queues')
local n = tonumber(ARGV[4])
local now = now_ms()
local changed = {}
for i = 1, n do
  local name, k_queue = ARGV[4 + i], KEYS[4 + i]
  if ARGV[1] == 'recheck' then
    local since = redis.call('ZSCORE', KEYS[3], name)
    if since and redis.call('EXISTS', k_queue) == 1 then
      redis.call('ZREM', KEYS[3], name)
      if redis.call('SADD', KEYS[1], name) == 1 then
        changed[#changed + 1] = name
        if token_count(KEYS[4]) == 0 then redis.call('RPUSH', KEYS[4], '1') end
      end
    elseif since and now - tonumber(since) >= tonumber(ARGV[3]) then
      redis.call('ZREM', KEYS[3], name)
    end
  elseif ARGV[1] == 'clean' then
    if redis.call('SISMEMBER', KEYS[1], name) == 0 then redis.call('ZREM', KEYS[2], name) end
  elseif redis.call('SISMEMBER', KEYS[1], name) == 0
      or ARGV[4 + n + i] == '1' or redis.call('EXISTS', k_queue) == 1 then
    redis.call('ZREM', KEYS[2], name)  -- gone already, watched, or holds jobs
  else
    local since = redis.call('ZSCORE', KEYS[2], name)
    if not since then
      redis.call('ZADD', KEYS[2], now, name)
    elseif now - tonumber(since) >= tonumber(ARGV[2]) then
      redis.call('SREM', KEYS[1], name)
      redis.call('ZREM', KEYS[2], name)
      redis.call('ZADD', KEYS[3], now, name)
      changed[#changed + 1] = name
    end
  end
end
return changed
