-- A job refused by a rate limit waits until the window has room: release its
-- claim and append it to the limit's waiting list (FIFO), and note in the
-- rate-due set when the window opens, to the millisecond (limit_rate_wake.lua
-- moves it back to the head of its queue then).
-- KEYS[1] in-flight hash   KEYS[2] worker:<id>   KEYS[3] the limit's waiting list
-- KEYS[4] rate-due zset
-- ARGV[1] claim token   ARGV[2] item (payload with its queue)   ARGV[3] rate-due member
-- ARGV[4] ms until the window has room
-- Returns 1 when deferred, 0 when fenced (the claim was gone).

expect_keys(KEYS, 4, 'in-flight, worker, waiting list, rate-due')
if not release_claim(KEYS[1], KEYS[2], ARGV[1]) then
  return 0
end
redis.call('RPUSH', KEYS[3], ARGV[2])
local due = now_ms() + tonumber(ARGV[4])
local current = redis.call('ZSCORE', KEYS[4], ARGV[3])
if not current or tonumber(current) > due then
  redis.call('ZADD', KEYS[4], due, ARGV[3])
end
return 1
