-- Wake jobs waiting for a rate limit's window: move as many as the window has
-- room for, oldest first, to the head of their queues, and note when it next has
-- room. The caller read the head of the waiting list to learn their queues; if
-- the list changed meanwhile, fewer move and the caller reads again.
-- A member stays in the rate-due set exactly while its list has jobs.
--
-- KEYS[1] the rate window zset   KEYS[2] rate-due zset   KEYS[3] waiting list
-- KEYS[4] queues set   KEYS[5] queues-changed; then 2 per item: queue:<name>, its wake list
-- ARGV[1] the limit   ARGV[2] the window (ms)   ARGV[3] rate-due member
-- then 3 per item, in list order: the item as read, its payload, its queue name
-- Returns {woken, ms until the next wake-up is due (-1: nobody waits any more)}.

expect_keys(KEYS, 5 + 2 * (#ARGV - 3) / 3,
  'window, rate-due, waiting, queues, queues-changed, then queue and wake list per item')
local now, window = now_ms(), tonumber(ARGV[2])
-- Not before the noted time: jobs woken earlier may not have started yet, so the
-- window may look freer than it is.
local noted = redis.call('ZSCORE', KEYS[2], ARGV[3])
if noted and tonumber(noted) > now then
  return {0, tonumber(noted) - now}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local free = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1])
-- The first `free` items, if they are still those the caller read, up to one whose
-- queue's key holds another type (lib_types.lua): it waits on, first in line.
local woken, blocked = 0, false
if free > 0 then
  for j, item in ipairs(redis.call('LRANGE', KEYS[3], 0, free - 1)) do
    if item ~= ARGV[3 * j + 1] then
      break
    end
    if foreign_type(KEYS[4 + 2 * j]) then
      blocked = true
      break
    end
    woken = j
  end
end
if woken > 0 then
  redis.call('LTRIM', KEYS[3], woken, -1)
  for j = woken, 1, -1 do -- the last first: pushed to the head, they keep their order
    local i, k = 3 * j + 1, 4 + 2 * j
    push_jobs(KEYS[4], KEYS[k], KEYS[k + 1], KEYS[5], ARGV[i + 2], 'head', {ARGV[i + 1]})
  end
end
if redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[3])
  return {woken, -1}
end
-- The window next has room when its oldest start leaves it. Jobs woken now start a
-- moment later: a wake-up that finds no room yet just sets the time again.
local due = now
if woken >= free then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  due = oldest[2] and tonumber(oldest[2]) + window or now + window
elseif blocked then -- tried again a window later, not at once
  due = now + window
end
redis.call('ZADD', KEYS[2], due, ARGV[3])
return {woken, due - now}
