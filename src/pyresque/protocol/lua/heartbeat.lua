-- A worker's heartbeat, once a second: renew its lease, stay registered, write
-- Ruby Resque's heartbeat, collect commands sent to it (`pyresque ctl`), and
-- report workers whose lease has expired so their jobs can be recovered, and read the
-- jobs marked cancelled (Resque.cancel: a job the worker runs or starts among them stops),
-- and read Ruby's pause-all-workers flag, which the worker holds until the next beat (its
-- claims then read no key per job).
--
-- The worker id is Resque's host:pid:queues: with thousands of queues it is 100 kB or
-- more, and each time it enters the script or a command Redis copies and hashes it. So
-- a beat carries it once (ARGV[1]) and writes it three times (lease, workers, Ruby's
-- heartbeat); the keys named after it come only when needed: the started key when the
-- worker registers, the control list when a command may be waiting, the paused marker
-- when it changes or must be renewed (heartbeat.py decides).
--
-- KEYS[1] leases zset   KEYS[2] workers set   KEYS[3] workers:heartbeat hash
-- KEYS[4] cancels zset
-- KEYS[5] pause-all-workers (Ruby's flag; on Cluster in the home slot, where the dashboard reads it)
-- then, each when its ARGV says so: the worker's control list, worker:<id>:started,
-- the worker's paused marker (shown by `pyresque workers`)
-- ARGV[1] worker id   ARGV[2] lease length (ms)
-- ARGV[3] start time text, when registering (worker:<id>:started is written if unset), else ''
-- ARGV[4] paused marker: '1' set it (with the lease's TTL), '0' delete it, '' leave it
-- ARGV[5] '1' to read (and empty) the control list, else ''
-- Returns {commands, expired worker ids, keys replaced, ids marked cancelled (up to 1,000),
-- pause-all-workers' value (false when unset or not a string), 1 when the worker was not
-- registered (its first beat, a reap, a prune, a Redis that lost its data) else 0}.

local read_control = ARGV[5] == '1'
expect_keys(KEYS, 5 + given(ARGV[5]) + given(ARGV[3]) + given(ARGV[4]),
  'leases, workers, heartbeats, cancels, pause-all[, control list][, started][, paused marker]')
local n = 5
local control, started, marker
if read_control then
  n = n + 1
  control = KEYS[n]
end
if ARGV[3] ~= '' then
  n = n + 1
  started = KEYS[n]
end
if ARGV[4] ~= '' then
  n = n + 1
  marker = KEYS[n]
end

-- A key of the wrong type (written by hand, or hostile) would make every beat of
-- every worker fail: it is deleted, and reported, so the namespace goes on. (SET and
-- DEL of the paused marker take a key of any type.)
local replaced = {}
local function expect_type(key, want)
  if clear_foreign(key, want) then
    replaced[#replaced + 1] = key
  end
end
expect_type(KEYS[1], 'zset')
expect_type(KEYS[2], 'set')
expect_type(KEYS[3], 'hash')
expect_type(KEYS[4], 'zset')
if control then
  expect_type(control, 'list')
end
if started then
  expect_type(started, 'string')
end

local now = now_ms()
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
-- Re-register if a pruner removed us while we were stalled.
local again = redis.call('SADD', KEYS[2], ARGV[1])
if started then
  redis.call('SET', started, ARGV[3], 'NX')
end
redis.call('HSET', KEYS[3], ARGV[1], iso8601(math.floor(now / 1000)))
if ARGV[4] == '1' then
  redis.call('SET', marker, '1', 'PX', ARGV[2])
elseif ARGV[4] == '0' then
  redis.call('DEL', marker)
end
local commands = {}
if control then
  commands = redis.call('LRANGE', control, 0, -1)
  if #commands > 0 then
    redis.call('DEL', control)
  end
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 20)
local marked = redis.call('ZRANGEBYSCORE', KEYS[4], now, '+inf', 'LIMIT', 0, 1000)
-- Ruby's key, never replaced: a value of another type reads as unset.
local pause = redis.pcall('GET', KEYS[5])
if type(pause) ~= 'string' then
  pause = false
end
return {commands, expired, replaced, marked, pause, again}
