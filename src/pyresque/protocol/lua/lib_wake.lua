-- A woken claim that took a job from a queue with more work waiting passes the wake-up
-- on to the next idle worker, if no token waits there already (a busy worker's claims
-- need not: no idle worker waits on a token it took).
local function pass_wake(k_queue, k_wake)
  if redis.call('LLEN', k_queue) > 0 and token_count(k_wake) == 0 then
    redis.call('RPUSH', k_wake, '1')
  end
end
