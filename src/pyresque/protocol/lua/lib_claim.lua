-- Claim the next job for a worker: pop the head of the first non-empty queue,
-- in priority order, and record it as in flight in the same atomic step, so a
-- job is never only in a worker's memory. If the worker dies, its expired lease
-- lets any other worker put the job back (recover.lua).
--
-- k[1] leases zset   k[2] the worker's in-flight hash
-- k[3 .. 2+n] queue lists, then, only when a[3] is '1', their n wake lists
-- a[1] worker id   a[2] claim tokens, separated by spaces   a[3] '1' when the worker
-- was woken by a wake-up token (it passes the wake-up on)   a[4 .. 3+n] queue names
--
-- Ruby's `pause-all-workers` is not read here: the worker's heartbeat reads it once a
-- second and the worker claims nothing while it is set (heartbeat.py), so a GET per
-- claim would only repeat it (on Cluster it read the queue's slot, where nothing sets it).
--
-- The lease is not renewed here (the heartbeat does it once a second), only checked:
-- a worker whose lease ran out (it stalled) may have had its jobs recovered already,
-- so it claims nothing until its heartbeat renews the lease. resque-web's
-- `worker:<id>` record is not written here either: RunningMarker (running.py) writes
-- it for a job still running a few milliseconds later (mark_running.lua).

-- The job a token already holds, as a claim reply, or nil: a call re-sent after its
-- reply was lost must return what the first one claimed, not take another job.
local function held(k_inflight, token)
  local record = redis.call('HGET', k_inflight, token)
  if record then
    local decoded = cjson.decode(record)
    return {decoded.queue, decoded.payload}
  end
  return nil
end

-- Claim one job for `token`: {queue name, payload}, or {} when every queue is empty.
-- A queue of another type is skipped, noted in `skipped` ({index = type}: lib_types.lua).
local function claim(k, a, n, token, now, skipped)
  for i = 1, n do
    local payload, found = false, skipped[i]
    if not found then
      payload, found = from_queue(k[2 + i], 'LPOP', k[2 + i])
      skipped[i] = found
    end
    if payload then
      local queue = a[3 + i]
      local record = cjson.encode({queue = queue, payload = payload, claimed_at = now})
      if redis.call('HSETNX', k[2], token, record) == 0 then
        redis.call('LPUSH', k[2 + i], payload) -- a re-sent call: the job goes back first in line
        return held(k[2], token)
      end
      if a[3] == '1' then
        pass_wake(k[2 + i], k[2 + n + i])
      end
      return {queue, payload}
    end
  end
  -- Every queue is empty: a woken worker deletes their wake-up tokens, which are left
  -- over (producers trim the lists now and then, not at each push: protocol/push.py),
  -- so that it does not wake and claim again for each. A job pushed from now on
  -- brings a token of its own.
  if a[3] == '1' and n > 0 then
    redis.call('DEL', unpack(k, 3 + n, 2 + 2 * n))
  end
  return held(k[2], token) or {}
end

-- Check the keys of a claim_each(k, a) call: two, then a list per queue, then a
-- wake list per queue when the worker was woken.
local function expect_claim_keys(k, a)
  expect_keys(k, 2 + (#a - 3) * (a[3] == '1' and 2 or 1),
    'leases, in-flight, then queues[, then wake lists when woken]')
end

-- The reply when the lease has expired, unless a re-sent call's tokens already hold
-- jobs: then those.
local function refuse(k, a)
  local out = {}
  for token in string.gmatch(a[2], '%S+') do
    local got = held(k[2], token)
    if not got then
      break
    end
    out[#out + 1] = got[1]
    out[#out + 1] = got[2]
  end
  return #out > 0 and out or {'lease'}
end

-- Claim a job for each of several tokens (a[2]): the processors of a worker that are
-- free right now, served in one call. Stops when every queue is empty.
-- Returns {queue, payload, queue, payload, ...} in token order, {}, or {'lease'} (the
-- worker's lease has expired); when queues of another type were skipped, a last
-- element {name, type, ...} names them (worker/fetch.py logs them).
local function claim_each(k, a)
  local now = now_ms()
  local expiry = redis.call('ZSCORE', k[1], a[1])
  if not expiry or tonumber(expiry) <= now then
    return refuse(k, a)
  end
  local n = #a - 3
  local out, skipped = {}, {}
  for token in string.gmatch(a[2], '%S+') do
    local got = claim(k, a, n, token, now, skipped)
    if #got == 0 then
      break
    end
    out[#out + 1] = got[1]
    out[#out + 1] = got[2]
  end
  if next(skipped) then
    out[#out + 1] = skipped_reply(skipped, n, a, 3)
  end
  return out
end
