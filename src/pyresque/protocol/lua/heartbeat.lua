-- A worker's heartbeat, once a second: renew its lease, stay registered, write
-- Ruby Resque's heartbeat, collect commands sent to it (`pyresque ctl`), and
-- report workers whose lease has expired so their jobs can be recovered, and read the
-- jobs marked cancelled (Resque.cancel: a job the worker runs or starts among them stops),
-- and read Ruby's pause-all-workers flag, which the worker holds until the next beat (its
-- claims then read no key per job).
--
-- KEYS[1] leases zset   KEYS[2] workers set   KEYS[3] workers:heartbeat hash
-- KEYS[4] worker:<id>:started   KEYS[5] the worker's control list
-- KEYS[6] the worker's paused marker (shown by `pyresque workers`)   KEYS[7] cancels zset
-- KEYS[8] pause-all-workers (Ruby's flag; on Cluster in the home slot, where the dashboard reads it)
-- ARGV[1] worker id   ARGV[2] lease length (ms)   ARGV[3] start time text
-- ARGV[4] '1' while the worker is paused
-- Returns {commands, expired worker ids, keys replaced, ids marked cancelled (up to 1,000),
-- pause-all-workers' value (false when unset or not a string), 1 when the worker was not
-- registered (its first beat, a reap, a prune, a Redis that lost its data) else 0}.

-- A key of the wrong type (written by hand, or hostile) would make every beat of
-- every worker fail: it is deleted, and reported, so the namespace goes on.
expect_keys(KEYS, 8,
  'leases, workers, heartbeats, started, control list, paused marker, cancels, pause-all')
local replaced = {}
local want = {'zset', 'set', 'hash', 'string', 'list', 'string', 'zset'}
for i = 1, #want do
  local found = redis.call('TYPE', KEYS[i])['ok']
  if found ~= 'none' and found ~= want[i] then
    redis.call('DEL', KEYS[i])
    replaced[#replaced + 1] = KEYS[i]
  end
end

local now = now_ms()
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
-- Re-register if a pruner removed us while we were stalled.
local again = redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SET', KEYS[4], ARGV[3], 'NX')
redis.call('HSET', KEYS[3], ARGV[1], iso8601(math.floor(now / 1000)))
if ARGV[4] == '1' then
  redis.call('SET', KEYS[6], '1', 'PX', ARGV[2])
else
  redis.call('DEL', KEYS[6])
end
local commands = redis.call('LRANGE', KEYS[5], 0, -1)
if #commands > 0 then
  redis.call('DEL', KEYS[5])
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 20)
local marked = redis.call('ZRANGEBYSCORE', KEYS[7], now, '+inf', 'LIMIT', 0, 1000)
-- Ruby's key, never replaced: a value of another type reads as unset.
local pause = redis.pcall('GET', KEYS[8])
if type(pause) ~= 'string' then
  pause = false
end
return {commands, expired, replaced, marked, pause, again}
