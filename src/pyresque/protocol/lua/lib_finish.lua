-- Store a job's result record and wake its waiters: they block with BLMOVE of the ready
-- list onto itself, so one element wakes them all and stays for a waiter that comes
-- later (both keys expire with the result). A recovered job that ran again finds the
-- element there already: one is enough.
local function store_result(k_result, k_ready, ttl, record)
  redis.call('SET', k_result, record, 'EX', ttl)
  if redis.call('LLEN', k_ready) == 0 then
    redis.call('RPUSH', k_ready, '1')
  end
  redis.call('EXPIRE', k_ready, ttl)
end

-- Record the end of a job in one atomic step: release its in-flight record, count it in
-- Resque's totals, store the failure record if it failed, update its status,
-- schedule its next attempt when it is retried, release its unique lock when it is
-- done and give back its concurrency slots. (The dashboard's history is counted by
-- the worker and written once a second: history.py, history.lua.)
--
-- Fencing: if the in-flight record is gone, the worker lost its lease and the
-- job was handed to someone else; nothing is written and 0 is returned.
--
-- k[1] in-flight hash   k[2] stat:processed   k[3] stat:processed:<id>
-- then, each only when its ARGV says so: stat:failed, stat:failed:<id> and the failed
-- list (a failed job); worker:<id> (a[12]); the status key; delayed_queue_schedule,
-- delayed:<ts> and timestamps:<item> (a next attempt); the unique lock; the result
-- key and its ready list (a[13]); the workflow keys (a[15], lib_workflow.lua's open);
-- and last, the slots zsets of the job's concurrency limits
-- a[1] claim token
-- a[2] 'ok', 'failed', 'retry' (counted as processed; runs again at a[6]) or 'cancelled'
--   (Resque.cancel stopped it: processed, not failed; status 5)
-- a[3] result (JSON)   a[4] failure record (JSON, when failed)
-- a[5] '1' when a status key is given
-- a[6] timestamp of the next attempt or ''   a[7] 'delayed:<ts>'   a[8] its item (JSON)
-- a[9] unique lock token to release, or ''   a[10] slot member "<worker>|<token>", or ''
-- a[11] how many slots zsets follow
-- a[12] '1' when worker:<id> is given: the worker may have written it (mark_running.lua).
--   `idle` deletes it once the worker has nothing in flight and claimed no next job.
-- a[13] the result's TTL in seconds when the result is stored, or ''   a[14] its record (JSON)
-- a[15] the job's id when it is part of a workflow and this was its last attempt, or ''
-- a[16] how many queues the workflow keys hold (the `wf:queues` set as the caller read it),
--   or 'report' (Redis Cluster, where the workflow keys are in another slot): the one key
--   given is the worker's reports hash in this slot, where the job's end is recorded for
--   the worker to apply next (wf_report.lua), or a recovery of the worker if it dies first
-- Returns 0 when fenced, -1 (nothing written) when `wf:queues` grew since the caller read
-- it (read it again and call again), else 1, and worker:<id> when given.
local function finish(k, a)
  -- The optional keys, in order: the failure's three, worker:<id>, the status key,
  -- the next attempt's three keys, the unique lock, the result's two, the workflow's,
  -- then the concurrency slots (all the rest).
  local failed_key, working_key, status_key, retry_key, lock_key = nil, nil, nil, nil, nil
  local result_key = nil
  local next_key = 4
  if a[2] == 'failed' then
    failed_key, next_key = next_key, next_key + 3
  end
  if a[12] == '1' then
    working_key, next_key = k[next_key], next_key + 1
  end
  if a[5] == '1' then
    status_key, next_key = k[next_key], next_key + 1
  end
  if a[6] ~= '' then
    retry_key, next_key = next_key, next_key + 3
  end
  if a[9] ~= '' then
    lock_key, next_key = k[next_key], next_key + 1
  end
  if a[13] ~= '' then
    result_key, next_key = next_key, next_key + 2
  end
  local wf, flow, report_key = nil, nil, nil
  if a[15] ~= '' and a[16] == 'report' then
    report_key, next_key = k[next_key], next_key + 1
  elseif a[15] ~= '' then
    wf = workflow_lib()
    flow = wf.open(k, next_key, tonumber(a[16]))
    if wf.stale(flow) then
      return -1
    end
    next_key = next_key + flow.size
  end
  -- Slots go back even when fenced: the job no longer runs here either way.
  for i = next_key, #k do
    redis.call('ZREM', k[i], a[10])
  end
  if redis.call('HDEL', k[1], a[1]) == 0 then
    return 0
  end
  redis.call('INCR', k[2])
  redis.call('INCR', k[3])
  local code = 4
  if failed_key then
    code = 3
    redis.call('INCR', k[failed_key])
    redis.call('INCR', k[failed_key + 1])
    redis.call('RPUSH', k[failed_key + 2], a[4])
  elseif a[2] == 'retry' then
    code = 1
  elseif a[2] == 'cancelled' then
    code = 5
  end
  if status_key then
    set_status(status_key, code, a[3])
  end
  if retry_key then
    schedule_item(k[retry_key], k[retry_key + 1], k[retry_key + 2], a[6], a[7], a[8])
  end
  if lock_key then
    release_lock(lock_key, a[9])
  end
  if result_key then
    store_result(k[result_key], k[result_key + 1], a[13], a[14])
  end
  local wf_state = failed_key and 'failed' or (code == 5 and 'cancelled' or 'ok')
  if flow then
    wf.finish(flow, a[15], wf_state, a[3])
  elseif report_key then
    redis.call('HSET', report_key, a[15], cjson.encode({s = wf_state, r = a[3]}))
  end
  return 1, working_key
end

-- Resque's "working on" record goes once the worker works on nothing: nothing left in
-- its in-flight hash. Kept while it goes from job to job, as Ruby's would mostly be.
-- Returns 2 when deleted, else `done` (finish's reply).
local function idle(k_inflight, k_working, done)
  if done == 1 and k_working and redis.call('HLEN', k_inflight) == 0 then
    redis.call('DEL', k_working)
    return 2
  end
  return done
end

-- Check the keys of a finish(k, a) call against what its arguments ask for.
local function expect_finish_keys(k, a)
  local count = 3 + (a[2] == 'failed' and 3 or 0) + (a[12] == '1' and 1 or 0)
    + (a[5] == '1' and 1 or 0) + 3 * given(a[6]) + given(a[9]) + 2 * given(a[13])
    + given(a[15]) * (a[16] == 'report' and 1 or 8 + 2 * (tonumber(a[16]) or 0))
    + (tonumber(a[11]) or 0)
  expect_keys(k, count,
    'in-flight, 2 processed counters[, failed counters and list][, worker][, status][, 3 retry keys][, lock][, result and ready list][, workflow], slots')
end

-- KEYS[from .. to] (or ARGV) as a table, so each step reads its own part of a combined call.
-- (unpack copies in C: a loop in Lua cost a microsecond per call on the hot path.)
local function slice(t, from, to)
  return {unpack(t, from, to)}
end
