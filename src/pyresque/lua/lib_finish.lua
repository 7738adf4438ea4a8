-- Record the end of a job in one atomic step: release its in-flight record,
-- clear Resque's "working on" record once nothing else is in flight, count it
-- (Resque's totals plus the dashboard's history), store the failure record if it
-- failed, and update its status.
--
-- Fencing: if the in-flight record is gone, the worker lost its lease and the
-- job was handed to someone else; nothing is written and 0 is returned.
--
-- k[1] in-flight hash   k[2] worker:<id>   k[3] stat:processed   k[4] stat:processed:<id>
-- k[5] stat:failed   k[6] stat:failed:<id>   k[7] failed list
-- k[8] processed this minute   k[9] processed this hour
-- k[10] failed this minute     k[11] failed this hour   k[12] per-class stats hash
-- k[13] status key (only for jobs with an id)
-- a[1] claim token   a[2] 'ok' or 'failed'   a[3] result (JSON)
-- a[4] failure record (JSON, when failed)   a[5] job class   a[6] duration (ms)
-- a[7] duration histogram bucket
-- Returns 1 when recorded, 0 when fenced.
local MINUTE_TTL = 2 * 86400    -- per-minute history: the last day (and some)
local HOUR_TTL = 32 * 86400     -- per-hour history: the last month

local function count(key, ttl)
  if redis.call('INCR', key) == 1 then
    redis.call('EXPIRE', key, ttl)
  end
end

local function finish(k, a)
  if redis.call('HDEL', k[1], a[1]) == 0 then
    return 0
  end
  if redis.call('HLEN', k[1]) == 0 then
    redis.call('DEL', k[2])
  end
  redis.call('INCR', k[3])
  redis.call('INCR', k[4])
  count(k[8], MINUTE_TTL)
  count(k[9], HOUR_TTL)
  redis.call('HINCRBY', k[12], a[5] .. ':processed', 1)
  redis.call('HINCRBYFLOAT', k[12], a[5] .. ':ms', a[6])
  redis.call('HINCRBY', k[12], a[5] .. ':le:' .. a[7], 1)
  local code = 4
  if a[2] == 'failed' then
    code = 3
    redis.call('INCR', k[5])
    redis.call('INCR', k[6])
    redis.call('RPUSH', k[7], a[4])
    count(k[10], MINUTE_TTL)
    count(k[11], HOUR_TTL)
    redis.call('HINCRBY', k[12], a[5] .. ':failed', 1)
  end
  if k[13] then
    set_status(k[13], code, a[3], math.floor(now_ms() / 1000))
  end
  return 1
end

-- KEYS[from .. to] (or ARGV) as a table, so each step reads its own part of a combined call.
local function slice(t, from, to)
  local out = {}
  for i = from, to do
    out[#out + 1] = t[i]
  end
  return out
end
