-- The first step of a worker's heartbeat (protocol/beat.py): read the server's clock, the
-- workers whose lease has expired (so that their jobs can be recovered), the jobs marked
-- cancelled (Resque.cancel: a job the worker runs or starts among them stops) and Ruby's
-- pause-all-workers flag, which the worker holds until the next beat (its claims then
-- read no key per job); and delete a key of the wrong type that the second step writes.
--
-- The worker's id never enters this script: it is Resque's host:pid:queues, 120 kB over
-- 10,000 queues, and Redis copies it into Lua at ~1.2 ns a byte (~145 µs) each time it
-- enters a script, as an argument, a key's name or a reply. The second step writes it
-- with plain commands (the lease, `workers`, Ruby's heartbeat, the keys named after
-- it), ~30 µs each (a hash of the id), between which other clients' commands run.
--
-- KEYS[1] leases zset   KEYS[2] workers set   KEYS[3] workers:heartbeat hash
-- KEYS[4] cancels zset
-- KEYS[5] pause-all-workers (Ruby's flag; on Cluster in the home slot, where the dashboard reads it)
-- KEYS[6] worker:<id>:started, only when the worker registers (a key of another type
--   is replaced: the second step writes it with SET NX)
-- ARGV[1] '1' when the worker registers, else ''
-- Returns {now (ms), expired worker ids (20 at most), keys replaced, ids marked
-- cancelled (up to 1,000), pause-all-workers' value (false when unset or not a string)}.

expect_keys(KEYS, 5 + given(ARGV[1]), 'leases, workers, heartbeats, cancels, pause-all[, started]')

-- A key of the wrong type (written by hand, or hostile) would make every beat of
-- every worker fail: it is deleted, and reported, so the namespace goes on.
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
if ARGV[1] == '1' then
  expect_type(KEYS[6], 'string')
end

local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 20)
local marked = redis.call('ZRANGEBYSCORE', KEYS[4], now, '+inf', 'LIMIT', 0, 1000)
-- Ruby's key, never replaced: a value of another type reads as unset.
local pause = redis.pcall('GET', KEYS[5])
if type(pause) ~= 'string' then
  pause = false
end
return {now, expired, replaced, marked, pause}
