-- Record the end of a job in one atomic step: release its in-flight record,
-- clear Resque's "working on" record once nothing else is in flight, count it
-- (Resque's totals plus the dashboard's history), store the failure record if it
-- failed, update its status, schedule its next attempt when it is retried,
-- release its unique lock when it is done and give back its concurrency slots.
--
-- Fencing: if the in-flight record is gone, the worker lost its lease and the
-- job was handed to someone else; nothing is written and 0 is returned.
--
-- k[1] in-flight hash   k[2] worker:<id>   k[3] stat:processed   k[4] stat:processed:<id>
-- k[5] stat:failed   k[6] stat:failed:<id>   k[7] failed list
-- k[8] processed this minute   k[9] processed this hour
-- k[10] failed this minute     k[11] failed this hour   k[12] per-class stats hash
-- then, each only when its ARGV says so: the status key; delayed_queue_schedule,
-- delayed:<ts> and timestamps:<item> (a next attempt); the unique lock; and last,
-- the slots zsets of the job's concurrency limits
-- a[1] claim token
-- a[2] 'ok', 'failed' or 'retry' (counted as processed; runs again at a[9])
-- a[3] result (JSON)   a[4] failure record (JSON, when failed)   a[5] job class
-- a[6] duration (ms)   a[7] duration histogram bucket   a[8] '1' when a status key is given
-- a[9] timestamp of the next attempt or ''   a[10] 'delayed:<ts>'   a[11] its item (JSON)
-- a[12] unique lock token to release, or ''   a[13] slot member "<worker>|<token>", or ''
-- Returns 1 when recorded, 0 when fenced.
local MINUTE_TTL = 2 * 86400    -- per-minute history: the last day (and some)
local HOUR_TTL = 32 * 86400     -- per-hour history: the last month

local function count(key, ttl)
  if redis.call('INCR', key) == 1 then
    redis.call('EXPIRE', key, ttl)
  end
end

local function finish(k, a)
  -- The optional keys, in order: the status key, the next attempt's three keys,
  -- the unique lock, then the concurrency slots (all the rest).
  local status_key, retry_key, lock_key = nil, nil, nil
  local next_key = 13
  if a[8] == '1' then
    status_key, next_key = k[next_key], next_key + 1
  end
  if a[9] ~= '' then
    retry_key, next_key = next_key, next_key + 3
  end
  if a[12] ~= '' then
    lock_key, next_key = k[next_key], next_key + 1
  end
  -- Slots go back even when fenced: the job no longer runs here either way.
  for i = next_key, #k do
    redis.call('ZREM', k[i], a[13])
  end
  if not release_claim(k[1], k[2], a[1]) then
    return 0
  end
  local outcome = a[2]
  redis.call('INCR', k[3])
  redis.call('INCR', k[4])
  count(k[8], MINUTE_TTL)
  count(k[9], HOUR_TTL)
  redis.call('HINCRBY', k[12], a[5] .. ':processed', 1)
  redis.call('HINCRBYFLOAT', k[12], a[5] .. ':ms', a[6])
  redis.call('HINCRBY', k[12], a[5] .. ':le:' .. a[7], 1)
  local code = 4
  if outcome == 'failed' then
    code = 3
    redis.call('INCR', k[5])
    redis.call('INCR', k[6])
    redis.call('RPUSH', k[7], a[4])
    count(k[10], MINUTE_TTL)
    count(k[11], HOUR_TTL)
    redis.call('HINCRBY', k[12], a[5] .. ':failed', 1)
  elseif outcome == 'retry' then
    code = 1
  end
  if status_key then
    set_status(status_key, code, a[3])
  end
  if retry_key then
    schedule_item(k[retry_key], k[retry_key + 1], k[retry_key + 2], a[9], a[10], a[11])
  end
  if lock_key then
    release_lock(lock_key, a[12])
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
