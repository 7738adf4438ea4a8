-- Workflows: dependencies, chains and groups (docs/workflows.md). Every workflow job's
-- record lives in one hash (`wf:jobs`, id -> JSON) and every batch's in another
-- (`wf:batches`), so the finish of a job reaches its dependents, and theirs, through keys
-- it was given. Only the queue a released job goes to varies: the caller passes every
-- queue that waiting jobs go to (the `wf:queues` set) and the finish refuses to run
-- (returns -1, nothing written) when that set changed since it was read. A queue leaves
-- the set once no record holds a payload for it (`wf:queue-jobs` counts them), so each
-- call is given the queues of the jobs that wait now, not of every job that ever waited.
--
-- A job's record: s (waiting, queued, ok, failed, cancelled), dep (its dependents' ids),
-- b (its batches), and while it waits: q (queue), p (payload; when it takes its
-- dependencies' results, p is the text before where they go and p2 the rest), front,
-- fail ('cancel' or 'run': what a failed or cancelled dependency does to it), wait (the
-- ids it still waits for, as keys), deps (all of them, in order), res (id -> result JSON).
-- A cancelled one has by (the failed job that cancelled it); a failed one, cancelled (the
-- ids it cancelled: a retry from `failed` restores them). One a retry restored has restored
-- (its `waiting <id>` outbox entry may be there) until it is released or cancelled again.
-- On Cluster, one released has push ({q, p, h}: queue, payload, at the head) until it ends;
-- a dependable delayed one, push ({q, p, at, x}: queue, its delayed item, its due time, when
-- its id index expires) until it ends; and on Cluster rq (its queue, where its result record
-- is: a later dependent that takes results reads it there) from then on. One released
-- onto a queue whose key holds another type has foreign (wf_release) until it is failed.
-- A batch's record: total, succeeded, failed, cancelled, name, created, on_success,
-- on_complete, parent.

-- Everything is defined inside `workflow_lib()`, called only by a call that needs it:
-- a script creates each of its top-level local functions on every run, and these
-- dozen made every job's finish measurably slower (benchmarks/finish_cost.py).
local function workflow_lib()
  -- How long a finished record (and a finished batch) is kept, in seconds: a dependency
  -- enqueued later sees how its dependency ended, and a retry restores what a failure
  -- cancelled, within this time.
  local WF_TTL = 604800

  -- The workflow keys starting at k[from]: jobs, batches, expiry, the waiting jobs' queues,
  -- the queues set, queues-changed, the outbox, the queues' counts, then `count` pairs
  -- (queue:<name>, its wake list). `size`: how many keys that is. A `count` of -1 is
  -- Redis Cluster's layout (`sharded`): the queues are in other slots, so a released job
  -- is not pushed here but recorded in its record (`push`) and the outbox (`push <id>`),
  -- and its caller pushes it in its queue's slot (protocol/workflow.py).
  local function wf_open(k, from, count)
    local w = {jobs = k[from], batches = k[from + 1], expiry = k[from + 2],
      wf_queues = k[from + 3], queues = k[from + 4], changed = k[from + 5],
      outbox = k[from + 6], queue_jobs = k[from + 7], given = count, queue = {},
      size = 8 + 2 * math.max(count, 0), now = now_ms(), sharded = count < 0, pushed = {}}
    -- The names of the given queues, from their keys: <prefix>queue:<name>, where <prefix>
    -- is what precedes 'pyresque:wf:jobs' in the jobs key.
    local head = string.sub(w.jobs, 1, #w.jobs - #'pyresque:wf:jobs') .. 'queue:'
    for i = from + 8, from + 7 + 2 * count, 2 do
      w.queue[string.sub(k[i], #head + 1)] = {k[i], k[i + 1]}
    end
    return w
  end

  -- Whether `wf:queues` changed since the caller read it: the given queues are its members.
  local function wf_stale(w)
    if w.sharded then
      return false -- no queue keys given: nothing to be out of date
    end
    if redis.call('SCARD', w.wf_queues) ~= w.given then
      return true
    end
    for name in pairs(w.queue) do
      if redis.call('SISMEMBER', w.wf_queues, name) == 0 then
        return true
      end
    end
    return false
  end

  -- `by` more (or fewer) records hold a payload for `queue`; it leaves `wf:queues` at none.
  -- A member the counts do not know (written before they existed) is never removed, nor
  -- is one whose count is not a number (anyone may write Redis).
  local function wf_hold(w, queue, by)
    if by > 0 and redis.call('SADD', w.wf_queues, queue) == 0
      and redis.call('HEXISTS', w.queue_jobs, queue) == 0 then
      by = by + 1000000000
    end
    local ok, left = pcall(redis.call, 'HINCRBY', w.queue_jobs, queue, by)
    if ok and left <= 0 then
      redis.call('HDEL', w.queue_jobs, queue)
      redis.call('SREM', w.wf_queues, queue)
    end
  end

  -- A record as JSON text, or nil when it is not one (anyone may write Redis).
  local function wf_decode(raw)
    if not raw then
      return nil
    end
    local ok, rec = pcall(cjson.decode, raw)
    if not ok or type(rec) ~= 'table' then
      return nil
    end
    return rec
  end

  -- Job `id`'s record; nil when there is none or its fields are not what this file writes.
  local function wf_get(w, id)
    local rec = wf_decode(redis.call('HGET', w.jobs, id))
    if not rec or type(rec.dep or {}) ~= 'table' or type(rec.b or {}) ~= 'table' then
      return nil
    end
    if rec.s ~= 'waiting' and rec.s ~= 'cancelled' then
      return rec
    end
    local ok = type(rec.wait) == 'table' and type(rec.p) == 'string' and type(rec.q) == 'string'
    if ok and rec.p2 then
      ok = type(rec.p2) == 'string' and type(rec.deps) == 'table' and type(rec.res) == 'table'
    end
    return ok and rec or nil
  end

  local function wf_put(w, id, rec)
    redis.call('HSET', w.jobs, id, cjson.encode(rec))
  end

  -- A finished record goes WF_TTL from now (or stays, `keep`: it can change again).
  local function wf_expire_at(w, member, keep)
    if keep then
      redis.call('ZREM', w.expiry, member)
    else
      redis.call('ZADD', w.expiry, w.now + WF_TTL * 1000, member)
    end
  end

  -- Drop a few records whose time passed: each call that adds some removes some.
  local function wf_sweep(w)
    local due = redis.call('ZRANGEBYSCORE', w.expiry, '-inf', w.now, 'LIMIT', 0, 20)
    for _, member in ipairs(due) do
      local hash = string.sub(member, 1, 2) == 'b:' and w.batches or w.jobs
      if hash == w.jobs then -- a cancelled record still holds its payload
        local rec = wf_decode(redis.call('HGET', hash, string.sub(member, 3)))
        if rec and type(rec.p) == 'string' and type(rec.q) == 'string' then
          wf_hold(w, rec.q, -1)
        end
      end
      redis.call('HDEL', hash, string.sub(member, 3))
    end
    if #due > 0 then
      redis.call('ZREM', w.expiry, unpack(due)) -- at most 20 (LIMIT above)
    end
  end

  -- Count `by` (1, or -1 for a retry) more members `field` (succeeded, failed, cancelled)
  -- in each of the batches `bids`. A batch with nothing pending expires WF_TTL later.
  local function wf_count(w, bids, field, by)
    for _, bid in ipairs(bids or {}) do
      local b = wf_decode(redis.call('HGET', w.batches, bid))
      if b and type(b.total) == 'number' and type(b.succeeded) == 'number'
        and type(b.failed) == 'number' and type(b.cancelled) == 'number' then
        b[field] = b[field] + by
        wf_expire_at(w, 'b:' .. bid, b.succeeded + b.failed + b.cancelled < b.total)
        redis.call('HSET', w.batches, bid, cjson.encode(b))
      end
    end
  end

  -- Job `id` (record `rec`), which a retry may have made wait again (wf_retry), leaves
  -- that state: its `waiting <id>` outbox entry (its records say waiting) is moot.
  local function wf_restored(w, id, rec)
    if rec.restored then
      redis.call('ZREM', w.outbox, 'waiting ' .. id)
      rec.restored = nil
    end
  end

  -- On Cluster: record the push of job `id` (record `rec`) that its caller makes in its
  -- queue's slot, once (wf_push.lua): `push` in its record (kept until it ends) and
  -- `push <id>` in the outbox (for a recovery pass, should the caller die first).
  local function wf_defer(w, id, rec, push)
    rec.push, rec.rq = push, push.q
    redis.call('ZADD', w.outbox, w.now, 'push ' .. id)
    w.pushed[#w.pushed + 1] = id
  end

  -- Push a job whose dependencies are all met onto its queue, with their results when it
  -- takes them (one dependency: its result; several: a list, in their order). A queue
  -- whose key holds another type cannot take it, and its error would stop the call after
  -- it wrote (the finish of the job that released it: recorded halfway): the job is
  -- queued nowhere, its record's `foreign` ({q, p, t}: queue, payload, the key's type)
  -- and `foreign <id>` in the outbox say so, for its caller to fail it as recovery fails
  -- one (protocol/workflow.py's fail_foreign), then settle it as failed.
  -- False when its queue was not given (only if someone emptied `wf:queues`): it waits on.
  -- `new`: its record was not counted in `wf:queue-jobs` yet.
  local function wf_release(w, id, rec, new)
    local keys = w.queue[rec.q]
    if not keys and not w.sharded then
      return false
    end
    if not new then
      wf_hold(w, rec.q, -1)
    end
    local payload = rec.p
    if rec.p2 then
      local parts = {}
      for _, id in ipairs(rec.deps) do
        parts[#parts + 1] = rec.res[id] or 'null'
      end
      local value = #parts == 1 and parts[1] or ('[' .. table.concat(parts, ',') .. ']')
      payload = rec.p .. value .. rec.p2
    end
    local found = not w.sharded and foreign_type(keys[1])
    if w.sharded then
      wf_defer(w, id, rec, {q = rec.q, p = payload, h = rec.front and 1 or 0})
    elseif found then -- the user's key (lib_types.lua): the push would stop the call
      rec.foreign = {q = rec.q, p = payload, t = found}
      redis.call('ZADD', w.outbox, w.now, 'foreign ' .. id)
    else
      push_jobs(w.queues, keys[1], keys[2], w.changed, rec.q, rec.front and 'head' or 'tail',
        {payload})
    end
    rec.s, rec.q, rec.p, rec.p2, rec.wait, rec.deps, rec.res, rec.front, rec.fail =
      'queued', nil, nil, nil, nil, nil, nil, nil, nil
    wf_restored(w, id, rec) -- a late follow-up must not say WAITING once it runs
    return true
  end

  -- Cancel waiting job `id` (record `rec`) because `root` failed (its record `root_rec`).
  -- Its result record and status (per-job keys) are the caller's to write after the call:
  -- the outbox holds that follow-up until it is done (a killed caller's, a recovery's).
  local function wf_cancel(w, id, rec, root, root_rec)
    rec.s, rec.by = 'cancelled', root
    wf_restored(w, id, rec)
    table.insert(root_rec.cancelled, id)
    redis.call('ZADD', w.outbox, w.now, 'cancelled ' .. id)
    wf_count(w, rec.b, 'cancelled', 1)
    wf_expire_at(w, 'j:' .. id, false)
  end

  -- What job `id` ending in `state` (ok, failed, cancelled) with `result` (JSON) means for
  -- its dependents, and for theirs in turn (a list, not recursion: chains may be long).
  -- A dependent whose last dependency is met goes onto its queue; a failure or cancel
  -- cancels the dependents whose policy is 'cancel', and runs the others once their other
  -- dependencies are met. `root` failed (or is the job that ended); `root_rec` its record.
  local function wf_settle(w, id, rec, state, result, root, root_rec)
    local todo = {{id, rec, state}}
    local i = 1
    while i <= #todo do
      local from, from_rec, from_state = todo[i][1], todo[i][2], todo[i][3]
      i = i + 1
      for _, dep_id in ipairs(from_rec.dep or {}) do
        local d = wf_get(w, dep_id)
        if d and d.s == 'waiting' and d.wait[from] then
          if from_state == 'ok' or d.fail == 'run' then
            d.wait[from] = nil
            if d.p2 then
              d.res[from] = (from_state == 'ok' and from == id) and result or 'null'
            end
            if next(d.wait) == nil then
              wf_release(w, dep_id, d)
            end
          else
            wf_cancel(w, dep_id, d, root, root_rec)
            todo[#todo + 1] = {dep_id, d, 'cancelled'}
          end
          wf_put(w, dep_id, d)
        elseif d and d.s == 'cancelled' and from_state == 'ok' and d.wait[from] then
          d.wait[from] = nil -- met: a retry of what cancelled it must not wait for it again
          if d.p2 then
            d.res[from] = from == id and result or 'null'
          end
          wf_put(w, dep_id, d)
        end
      end
    end
  end

  -- The workflow part of a finish (lib_finish.lua): job `id` ended in `state` (ok, failed
  -- on its last attempt, or cancelled) with `result` (JSON). Acts only on a job still
  -- queued, so a second finish of the same job (there is none: finishes are fenced;
  -- on Cluster a report applied twice, by its worker and a recovery) changes nothing.
  -- Returns whether it acted.
  local function wf_finish(w, id, state, result)
    wf_sweep(w)
    local rec = wf_get(w, id)
    if not rec or rec.s ~= 'queued' then
      return false
    end
    rec.s, rec.cancelled, rec.push, rec.foreign = state, {}, nil, nil
    wf_count(w, rec.b, state == 'ok' and 'succeeded' or state, 1)
    wf_settle(w, id, rec, state, result, id, rec)
    if state == 'ok' then
      rec.dep, rec.cancelled = nil, nil -- nothing can change for them any more
    end
    wf_expire_at(w, 'j:' .. id, false)
    wf_put(w, id, rec)
    return true
  end

  -- A retry of job `id` from `failed` (retry_failed.lua): as if it had not failed. Its
  -- batches count it pending again, and the jobs its failure cancelled wait again, unless
  -- they also wait for another job that failed (then they are that one's to restore).
  -- Returns the ids that wait again.
  local function wf_retry(w, id)
    -- A failure by recovery whose settle is still pending (outbox): it never counted.
    redis.call('ZREM', w.outbox, 'settle ' .. id)
    local rec = wf_get(w, id)
    local waiting = {}
    if not rec or rec.s ~= 'failed' then
      return waiting
    end
    rec.s = 'queued'
    wf_expire_at(w, 'j:' .. id, true)
    wf_count(w, rec.b, 'failed', -1)
    local roots = {} -- other failed jobs whose records gain a cancelled dependent
    for _, dep_id in ipairs(rec.cancelled or {}) do
      local d = wf_get(w, dep_id)
      if d and d.s == 'cancelled' and d.by == id then
        d.s, d.by = 'waiting', nil
        redis.call('ZREM', w.outbox, 'cancelled ' .. dep_id) -- its records say waiting again
        wf_expire_at(w, 'j:' .. dep_id, true)
        wf_count(w, d.b, 'cancelled', -1)
        if d.fail == 'cancel' then
          for other in pairs(d.wait) do
            local o = other ~= id and wf_get(w, other)
            if o and (o.s == 'failed' or o.s == 'cancelled') then
              local root = o.s == 'failed' and other or o.by
              roots[root] = roots[root] or wf_get(w, root)
              if roots[root] and roots[root].cancelled then
                wf_cancel(w, dep_id, d, root, roots[root])
              end
              break
            end
          end
        end
        if d.s == 'waiting' then
          table.insert(waiting, dep_id)
          d.restored = true
          redis.call('ZADD', w.outbox, w.now, 'waiting ' .. dep_id) -- its records say so
        end
        wf_put(w, dep_id, d)
      end
    end
    for root, root_rec in pairs(roots) do
      wf_put(w, root, root_rec)
    end
    rec.cancelled = {}
    wf_put(w, id, rec)
    return waiting
  end

  -- A script's reply on Cluster: `first`, then the ids it released (w.pushed), built by a
  -- loop: `unpack` fails past ~8,000 values, and one finish may release 10,000 jobs.
  local function wf_reply(w, first)
    local reply = {first}
    for i = 1, #w.pushed do
      reply[i + 1] = w.pushed[i]
    end
    return reply
  end

  return {reply = wf_reply, open = wf_open, stale = wf_stale, get = wf_get, put = wf_put, sweep = wf_sweep,
    cancel = wf_cancel, release = wf_release, finish = wf_finish, retry = wf_retry,
    hold = wf_hold, defer = wf_defer}
end
