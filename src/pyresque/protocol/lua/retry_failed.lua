-- Retry one failure record, as resque-web's Retry button does: mark the record
-- with `retried_at` and push a fresh copy of its job onto its queue (lib_push.lua:
-- an idle worker wakes, and one serving globs learns of a queue that is new). The
-- record is addressed by index *and* content, so a concurrent removal that shifted
-- the list can never make us touch the wrong record.
--
-- KEYS[1] failed list   KEYS[2] queues set   KEYS[3] queue:<name>   KEYS[4] wake list
-- KEYS[5] queues-changed list   KEYS[6] status key (when ARGV[6] is not '')
-- then wf:jobs, wf:batches, wf:expiry and wf:outbox (when ARGV[7] is not '')
-- ARGV[1] index   ARGV[2] record as read   ARGV[3] record with retried_at
-- ARGV[4] payload to enqueue   ARGV[5] queue name   ARGV[6] WAITING status packet or ''
-- ARGV[7] the job's id when it is part of a workflow (its batches count it pending
--   again, and the jobs its failure cancelled wait for it again: lib_workflow.lua), or ''
-- Returns 1 when retried ({1, ids...} when the retry made cancelled jobs wait again: the
-- caller marks them waiting: the outbox's `waiting <id>`), 0 when the record changed
-- meanwhile, or (nothing written) the type its queue's key holds when it is not a list
-- (lib_types.lua: the push would fail after the record was marked retried).
expect_keys(KEYS, 5 + given(ARGV[6]) + 4 * given(ARGV[7]),
  'failed, queues, queue, wake, queues-changed[, status][, wf:jobs, wf:batches, wf:expiry, wf:outbox]')

if redis.call('LINDEX', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
local foreign = foreign_type(KEYS[3])
if foreign then
  return foreign
end
redis.call('LSET', KEYS[1], ARGV[1], ARGV[3])
push_jobs(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[5], 'tail', {ARGV[4]})
if ARGV[6] ~= '' and redis.call('EXISTS', KEYS[6]) == 1 then
  redis.call('SET', KEYS[6], ARGV[6])
end
if ARGV[7] ~= '' then
  local from = 6 + given(ARGV[6])
  local waiting = workflow_lib().retry({jobs = KEYS[from], batches = KEYS[from + 1],
    expiry = KEYS[from + 2], outbox = KEYS[from + 3], now = now_ms()}, ARGV[7])
  if #waiting > 0 then
    table.insert(waiting, 1, 1)
    return waiting
  end
end
return 1
