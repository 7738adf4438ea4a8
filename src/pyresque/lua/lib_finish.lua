-- Record the end of a job in one atomic step: release its in-flight record,
-- clear Resque's "working on" record, count it, store the failure record if it
-- failed, and update its status.
--
-- Fencing: if the in-flight record is gone, the worker lost its lease and the
-- job was handed to someone else; nothing is written and 0 is returned.
--
-- k[1] in-flight hash   k[2] worker:<id>   k[3] stat:processed   k[4] stat:processed:<id>
-- k[5] stat:failed   k[6] stat:failed:<id>   k[7] failed list
-- k[8] status key (only for jobs with an id)
-- a[1] claim token   a[2] 'ok' or 'failed'   a[3] result (JSON)
-- a[4] failure record (JSON, when failed)
-- Returns 1 when recorded, 0 when fenced.
local function finish(k, a)
  if redis.call('HDEL', k[1], a[1]) == 0 then
    return 0
  end
  redis.call('DEL', k[2])
  redis.call('INCR', k[3])
  redis.call('INCR', k[4])
  local code = 4
  if a[2] == 'failed' then
    code = 3
    redis.call('INCR', k[5])
    redis.call('INCR', k[6])
    redis.call('RPUSH', k[7], a[4])
  end
  if k[8] then
    set_status(k[8], code, a[3], math.floor(now_ms() / 1000))
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
