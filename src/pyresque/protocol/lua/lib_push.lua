-- Push payloads onto a queue together with what goes with them: the queue's
-- name in `queues` (plus a token on queues-changed when the name is new, which
-- wakes workers that serve globs), and a wake-up token so an idle pyresque
-- worker starts at once instead of polling (either list of another type is deleted:
-- lib_types.lua). `where` is 'head' or 'tail'.
-- Returns the queue's new length.
local function push_jobs(k_queues, k_queue, k_wake, k_changed, queue, where, payloads)
  if redis.call('SADD', k_queues, queue) == 1 and token_count(k_changed) == 0 then
    redis.call('RPUSH', k_changed, '1')
  end
  -- `payloads` is bounded: enqueue.lua's calls hold 1,000 at most, the workflow's one.
  local length = redis.call(where == 'head' and 'LPUSH' or 'RPUSH', k_queue, unpack(payloads))
  -- One token is enough: a worker that claims a job wakes the next one while
  -- the queue is not empty (see lib_claim.lua), so the list never grows.
  if token_count(k_wake) == 0 then
    redis.call('RPUSH', k_wake, '1')
  end
  return length
end
