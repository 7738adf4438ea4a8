-- Drop a job's in-flight record, and Resque's "working on" record once nothing
-- else is in flight. Returns false when the record was gone: the worker lost its
-- lease and the job was handed to someone else (fencing).
local function release_claim(k_inflight, k_working, token)
  if redis.call('HDEL', k_inflight, token) == 0 then
    return false
  end
  if redis.call('HLEN', k_inflight) == 0 then
    redis.call('DEL', k_working)
  end
  return true
end
