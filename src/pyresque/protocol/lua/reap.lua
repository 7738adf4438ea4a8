-- Unregister a worker and delete its keys, as Ruby Resque's unregister does.
-- A worker unregisters itself on exit; a live worker reaps a dead one, but only
-- once the dead one's lease has expired and its in-flight jobs were recovered.
-- A dead Ruby or PHP worker that was working leaves its job in worker:<id>; it
-- is moved to `failed` (Ruby's DirtyExit), never dropped.
--
-- KEYS[1] workers set   KEYS[2] worker:<id>   KEYS[3] worker:<id>:started
-- KEYS[4] workers:heartbeat   KEYS[5] stat:processed:<id>   KEYS[6] stat:failed:<id>
-- KEYS[7] leases zset   KEYS[8] in-flight hash   KEYS[9] failed list   KEYS[10] stat:failed
-- KEYS[11] landing list (jobs the worker's idle wait moved there, not yet adopted)
-- KEYS[12] the set of the queues of its other landing lists (protocol/landings.py)
-- KEYS[13 ..] those landing lists, as the caller read the set
-- ARGV[1] worker id   ARGV[2] '1' when the worker unregisters itself
-- ARGV[3] worker:<id> value as read   ARGV[4] failure record for that job, or ''
-- ARGV[5] how many landing lists follow KEYS[12] (none when not given)
-- ARGV[6] how many queues the registry (KEYS[12]) named when the caller read it (-1: not
--   a set), or none: a worker that stalled past its lease may name a new queue, and land
--   a job on its list, between that read and this call; the worker is then reaped later
-- Returns 1 when unregistered, 0 when the worker proved alive or busy.

expect_keys(KEYS, 12 + (tonumber(ARGV[5]) or 0), 'workers, worker, started, heartbeats, processed, failed, leases, in-flight, failed list, stat:failed, landing, landings[, ARGV[5] landing lists]')
if ARGV[2] ~= '1' then
  local expiry = redis.call('ZSCORE', KEYS[7], ARGV[1])
  if expiry and tonumber(expiry) > now_ms() then
    return 0
  end
  if redis.call('HLEN', KEYS[8]) > 0 or redis.call('LLEN', KEYS[11]) > 0 then
    return 0
  end
  for i = 13, #KEYS do
    if redis.call('LLEN', KEYS[i]) > 0 then
      return 0
    end
  end
  local named = tonumber(ARGV[6])
  if named then
    local size = redis.pcall('SCARD', KEYS[12])
    if (type(size) == 'number' and size or -1) ~= named then
      return 0
    end
  end
  if ARGV[4] ~= '' then
    if redis.call('GET', KEYS[2]) ~= ARGV[3] then
      return 0
    end
    redis.call('RPUSH', KEYS[9], ARGV[4])
    redis.call('INCR', KEYS[10])
  end
end
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[5], KEYS[6])
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[12])
else
  -- A dead worker's registry outlives it for a week: a worker reaped while it was only
  -- stalled goes on (its heartbeat registers it again) with lists the registry names,
  -- and names its queues again, with no TTL, once it sees the lapse (landing_claims.py).
  redis.call('EXPIRE', KEYS[12], 604800)
end
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[7], ARGV[1])
return 1
