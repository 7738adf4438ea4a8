-- Claim the next job for a worker: pop the head of the first non-empty queue,
-- in priority order, and record it as in flight in the same atomic step, so a
-- job is never only in a worker's memory. If the worker dies, its expired lease
-- lets any other worker put the job back (recover.lua).
--
-- k[1] pause-all-workers   k[2] leases zset   k[3] the worker's in-flight hash
-- k[4] worker:<id> (Resque's "working on" record, read by resque-web)
-- k[5 .. 4+n] queue lists, k[5+n .. 4+2n] their wake lists
-- a[1] worker id   a[2] claim token   a[3] lease length (ms)   a[4 .. 3+n] queue names
-- Returns {queue name, payload}, {} when every queue is empty, or {'paused'}.
-- (claim_each, below, is what the scripts call.)
local function claim(k, a)
  -- Idempotent: if this token already holds a job (the client re-sent the call after
  -- losing the reply), return that job instead of taking another one.
  local held = redis.call('HGET', k[3], a[2])
  if held then
    local record = cjson.decode(held)
    return {record.queue, record.payload}
  end
  local pause = redis.call('GET', k[1])
  if pause and string.lower(string.match(pause, '^%s*(.-)%s*$')) == 'true' then
    return {'paused'}
  end
  local n = (#k - 4) / 2
  for i = 1, n do
    local payload = redis.call('LPOP', k[4 + i])
    if payload then
      local queue = a[3 + i]
      local now = now_ms()
      redis.call('HSET', k[3], a[2],
        cjson.encode({queue = queue, payload = payload, claimed_at = now}))
      redis.call('ZADD', k[2], now + tonumber(a[3]), a[1])
      -- resque-web expects `payload` to be an object; a malformed one is kept as a string.
      local ok, decoded = pcall(cjson.decode, payload)
      local shown = (ok and type(decoded) == 'table') and payload or cjson.encode(payload)
      redis.call('SET', k[4], '{"queue":' .. cjson.encode(queue) .. ',"run_at":"'
        .. iso8601(math.floor(now / 1000)) .. '","payload":' .. shown .. '}')
      -- More work waiting: pass the wake-up on to the next idle worker.
      if redis.call('LLEN', k[4 + i]) > 0 and redis.call('LLEN', k[4 + n + i]) == 0 then
        redis.call('RPUSH', k[4 + n + i], '1')
      end
      return {queue, payload}
    end
  end
  return {}
end

-- Check the keys of a claim_each(k, a) call: four, then a list and a wake list per queue.
local function expect_claim_keys(k, a)
  expect_keys(k, 4 + 2 * (#a - 3), 'pause-all, leases, in-flight, worker, then queues, then wake lists')
end

-- Claim a job for each of several tokens (a[2]: the tokens, separated by spaces):
-- the processors of a worker that are free right now, served in one call, each
-- job claimed exactly as `claim` does. Stops when every queue is empty.
-- Returns {queue, payload, queue, payload, ...} in token order, {} or {'paused'}.
local function claim_each(k, a)
  local out = {}
  local one = {unpack(a)}
  for token in string.gmatch(a[2], '%S+') do
    one[2] = token
    local got = claim(k, one)
    if got[1] == 'paused' then
      return got
    end
    if #got == 0 then
      break
    end
    out[#out + 1] = got[1]
    out[#out + 1] = got[2]
  end
  return out
end

