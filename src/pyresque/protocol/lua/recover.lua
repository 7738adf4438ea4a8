-- Put back one in-flight job of a worker that lost its lease (it died, or
-- stalled for longer than the lease), or of a worker that is shutting down.
-- The job goes to the head of its queue (lib_push.lua: an idle worker wakes), or
-- to `failed` when it is a poison job, or nowhere when a Resque worker's pruning
-- already failed it (peer_prune.py).
-- Many workers may race to recover the same job: the checks below let exactly
-- one of them do it.
--
-- KEYS[1] leases zset   KEYS[2] the owner's in-flight hash
-- KEYS[3] destination list (queue:<name>, or failed)
-- KEYS[4] counter to increment (stat:recovered, or stat:failed; a give-back only counts a failure)
-- KEYS[5] queues set    KEYS[6] wake list of the queue   KEYS[7] queues-changed list
-- then, each only when its ARGV says so: the status key, wf:outbox, the job's unique lock
-- ARGV[1] owner's worker id   ARGV[2] claim token   ARGV[3] in-flight record as read
-- ARGV[4] item to push        ARGV[6] queue name
-- ARGV[5] 'requeue', 'fail', or 'drop' (a Resque worker's pruning already failed it)
-- ARGV[7] '0': a dead owner's job (lease check, counted); '1': the owner itself gives
--   the job back (no lease check); '2': the owner gives back a job that crashed it
--   (no lease check, counted)
-- ARGV[8] the unique lock's token to release (a job that is done), or ''
-- ARGV[9] '1' when a status key is given, else ''
-- ARGV[10] '1' when KEYS[2] is the owner's landing list (a job its idle wait moved
--   there with BLMOVE and no processor adopted: landing.py); ARGV[3] is then the
--   payload as landed and ARGV[2] is unused
-- ARGV[11] the job's id when it is part of a workflow and goes to `failed` (or was
--   dropped), or '': its settle (wf_settle.lua) is recorded in the outbox, for the caller
--   to do just after, or a recovery pass if the caller dies first
-- ARGV[12] 'report' on Redis Cluster (the outbox is in another slot): the key given in
--   the outbox's place is the dead worker's reports hash in this slot, where the failure
--   is recorded as the worker's own finish would have (lib_finish.lua), for the recovery
--   pass to apply before it forgets the worker
-- Returns 1 when this call moved the job, 0 otherwise, or (with nothing written) the type
-- the queue's key holds when it is not a list: the user's key (protocol/foreign_queues.py)
-- cannot take the job back, and the caller fails it instead (recovery.py).
expect_keys(KEYS, 7 + given(ARGV[9]) + given(ARGV[11]) + given(ARGV[8]),
  'leases, in-flight, destination, counter, queues, wake, queues-changed[, status][, outbox][, lock]')

if ARGV[7] == '0' then
  local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if expiry and tonumber(expiry) > now_ms() then
    return 0 -- the owner is alive after all
  end
end
-- Checked before any write: a script stopped by the push's error keeps what it wrote
-- (the job taken off its in-flight record, pushed nowhere: lost).
local foreign = ARGV[5] == 'requeue' and foreign_type(KEYS[3])
if foreign then
  return foreign
end
if ARGV[10] == '1' then
  if redis.call('LREM', KEYS[2], 1, ARGV[3]) == 0 then
    return 0 -- already recovered, given back or adopted
  end
else
  if redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[3] then
    return 0 -- already recovered or finished
  end
  redis.call('HDEL', KEYS[2], ARGV[2])
end
local k_status = ARGV[9] == '1' and KEYS[8] or nil
if ARGV[8] ~= '' then
  release_lock(KEYS[#KEYS], ARGV[8])
end
if ARGV[5] ~= 'drop' and (ARGV[7] ~= '1' or ARGV[5] == 'fail') then
  redis.call('INCR', KEYS[4])
end
local code = 3
if ARGV[5] == 'requeue' then
  code = 1
  push_jobs(KEYS[5], KEYS[3], KEYS[6], KEYS[7], ARGV[6], 'head', {ARGV[4]})
elseif ARGV[5] == 'fail' then
  redis.call('RPUSH', KEYS[3], ARGV[4])
end
if k_status then
  set_status(k_status, code, 'null')
end
if ARGV[11] and ARGV[11] ~= '' and ARGV[12] == 'report' then
  redis.call('HSET', KEYS[8 + given(ARGV[9])], ARGV[11], '{"s":"failed","r":null}')
elseif ARGV[11] and ARGV[11] ~= '' then
  redis.call('ZADD', KEYS[8 + given(ARGV[9])], now_ms(), 'settle ' .. ARGV[11])
end
return 1
