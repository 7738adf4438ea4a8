-- The busy claim of a worker of several queues that lands its jobs (worker/landing.py):
-- the head of the first non-empty queue, in priority order (Ruby Resque pops queue
-- after queue), moves onto that queue's landing list, which is the job's in-flight
-- record. No lease check (the worker's fencing, the lease lapse rule, gives back a job
-- that landed while its lease had lapsed), no in-flight hash, no cjson.
--
-- KEYS[1 .. n] queue lists, KEYS[n+1 .. 2n] the worker's landing lists of those queues,
-- then, only when ARGV[1] is '1', their n wake lists, then, only when ARGV[2] is '1',
-- the worker's registry of its landing lists (protocol/landings.py)
-- ARGV[1] '1' when the worker was woken by a wake-up token
-- ARGV[2] '1' when the lists are to be named in the registry first (before any move
--   onto them: a registry that is not a set fails the call before a move), and the
--   registry kept with no TTL
-- ARGV[3 .. n+2] queue names, then, only when ARGV[2] is '1', the registry's n members
--   that name their lists (protocol/landings.py: the queue's name, or a processor's)
-- Returns {queue name, payload}, or {} when every queue is empty; when queues of another
-- type were skipped, a last element {name, type, ...} names them (landing_claims.py).
local naming = ARGV[2] == '1'
local n = naming and (#ARGV - 2) / 2 or #ARGV - 2
local woken = ARGV[1] == '1'
expect_keys(KEYS, n * (woken and 3 or 2) + given(ARGV[2]),
  'queues, landing lists[, wake lists when woken][, registry]')
if naming and n > 0 then
  redis.call('SADD', KEYS[#KEYS], unpack(ARGV, n + 3, 2 * n + 2))
  redis.call('PERSIST', KEYS[#KEYS]) -- a reap of the worker stalled left it a TTL (reap.lua)
end
-- A queue of another type is skipped (from_queue, lib_types.lua), named in the reply.
local skipped = {}
for i = 1, n do
  local payload, found = from_queue(KEYS[i], 'LMOVE', KEYS[i], KEYS[n + i], 'LEFT', 'RIGHT')
  skipped[i] = found
  if payload then
    if woken then
      pass_wake(KEYS[i], KEYS[2 * n + i])
    end
    if next(skipped) then
      return {ARGV[2 + i], payload, skipped_reply(skipped, n, ARGV, 2)}
    end
    return {ARGV[2 + i], payload}
  end
end
-- Every queue is empty: a woken worker deletes their wake-up tokens, left over (as
-- lib_claim.lua does), so that it does not wake and claim again for each.
if woken and n > 0 then
  redis.call('DEL', unpack(KEYS, 2 * n + 1, 3 * n))
end
return next(skipped) and {skipped_reply(skipped, n, ARGV, 2)} or {}
