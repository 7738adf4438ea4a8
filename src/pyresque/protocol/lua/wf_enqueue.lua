-- Enqueue the jobs of a workflow (docs/workflows.md) in one atomic step: a job with
-- `depends_on`, or a chain or group's jobs, their batches, and the dependencies among
-- them (lib_workflow.lua). A job whose dependencies are met (or that has none) goes onto
-- its queue now; the others wait in `wf:jobs` until the finish of their last dependency
-- releases them. A dependency that already ended counts as it ended, in the same step:
-- no finish can slip in between.
--
-- KEYS[1..8] wf:jobs, wf:batches, wf:expiry, wf:queues, queues set, queues-changed, wf:outbox,
-- wf:queue-jobs
-- then queue:<name> and its wake list for each of spec.queues, then the status key of
-- each job whose `st` is true, in order, then the result key of each dependency of each
-- job with `p2`, in order: a dependency that already succeeded gives its stored result;
-- then for each job with `at` (a delayed job others may depend on): the schedule,
-- delayed:<at>, timestamps:<item> and its id index (schedule.lua's).
-- ARGV[1] spec (JSON): queues (names), status (the WAITING packet), batches (each: id,
--   total, name, on_success, on_complete, parent), jobs (each: id, q, p (the ARGV index of
--   its payload; with p2 that of the rest, when it takes its dependencies' results),
--   front, fail ('cancel' or 'run'), deps (ids), b (its batches' ids), st; a delayed one
--   (no deps): at (its timestamp), item (the ARGV index of its delayed item), expires (when
--   its id index expires))
-- ARGV[2..] the payloads
-- Returns {'ok'}, or {'unknown', id} (nothing written) for a dependency with no record:
-- not enqueued as part of a workflow, or finished longer ago than records are kept.
-- On Redis Cluster (spec.sharded) the status and result keys are in the jobs' queues'
-- slots, so none is given: the caller sets the statuses, reads the result records of
-- the dependencies that already succeeded, which it asks for (spec.res: id -> the ARGV
-- index of its record, 0 for none; {'results', id, queue, ...} asks), and the jobs that can start are pushed by the caller (the ids
-- after 'ok'), each once (wf_push.lua), a delayed one into its queue's schedule: no key of
-- the schedule is given either.
local spec = cjson.decode(ARGV[1])
local sharded = spec.sharded == true
local tracked, takers, delayed = 0, 0, 0
for _, job in ipairs(spec.jobs) do
  tracked = tracked + ((job.st and not sharded) and 1 or 0)
  takers = takers + ((job.p2 and not sharded) and #job.deps or 0)
  delayed = delayed + ((job.at and not sharded) and 1 or 0)
end
expect_keys(KEYS, 8 + 2 * #spec.queues + tracked + takers + 4 * delayed,
  'wf:jobs, wf:batches, wf:expiry, wf:queues, queues, queues-changed, wf:outbox, wf:queue-jobs, 2 per queue, status keys, result keys, 4 per delayed job')

-- The value of a stored result record (the text results.py's ok_json writes) as JSON text,
-- or 'null' when the record is not one. Anyone may write Redis and the text goes into a
-- payload as it is, so it must be what a worker decodes: one JSON value (Redis's cjson
-- also takes hex, inf, nan and leading zeros), UTF-8, no control character, no escaped
-- surrogate (pyresque writes raw UTF-8, never one).
local function stored_value(raw)
  local head = '{"status":"ok","value":'
  if type(raw) ~= 'string' or string.sub(raw, 1, #head) ~= head or string.sub(raw, -1) ~= '}' then
    return 'null'
  end
  local value = string.sub(raw, #head + 1, -2)
  if not pcall(cjson.decode, value) or string.find(value, '[%z\1-\31]') then
    return 'null'
  end
  for escape in string.gmatch(value, '\\(.%x?%x?%x?%x?)') do
    if string.match(escape, '^u[dD][89a-fA-F]') then
      return 'null'
    end
  end
  local text = value -- every valid UTF-8 sequence made one ASCII byte: none may be left over
  for _, sequence in ipairs({'[\194-\223][\128-\191]', '\224[\160-\191][\128-\191]',
      '[\225-\236\238\239][\128-\191][\128-\191]', '\237[\128-\159][\128-\191]',
      '\240[\144-\191][\128-\191][\128-\191]', '[\241-\243][\128-\191][\128-\191][\128-\191]',
      '\244[\128-\143][\128-\191][\128-\191]'}) do
    text = string.gsub(text, sequence, 'u')
  end
  if string.find(text, '[\128-\255]') then
    return 'null'
  end
  local bare = string.gsub(string.gsub(text, '\\.', ''), '"[^"]*"', '""')
  for token in string.gmatch(bare, '[%w%+%-%.]+') do
    if token ~= 'true' and token ~= 'false' and token ~= 'null' then
      local int, frac, exp = string.match(token, '^%-?(%d+)(%.?%d*)([eE]?[%+%-]?%d*)$')
      if not int or (#int > 1 and string.sub(int, 1, 1) == '0') or frac == '.'
        or (exp ~= '' and not string.match(exp, '^[eE][%+%-]?%d+$')) then
        return 'null'
      end
    end
  end
  return value
end

local wf = workflow_lib()
local w = wf.open(KEYS, 1, sharded and -1 or #spec.queues)
wf.sweep(w) -- first: a record it drops is not read below (only expired records go)

-- The records read and changed here, each decoded once and written once at the end: a
-- group of 10,000 depending on one job would otherwise write its growing record 10,000 times.
local cache, dirty = {}, {}
local function get(id)
  if cache[id] == nil then
    cache[id] = wf.get(w, id) or false
  end
  return cache[id] or nil
end
local function put(id, rec)
  cache[id], dirty[id] = rec, true
end
local function flush()
  for id in pairs(dirty) do
    wf.put(w, id, cache[id])
  end
end

-- On Cluster, the stored results of dependencies that already succeeded, read by the
-- caller in their queues' slots (spec.res: id -> the ARGV index of its result record, 0
-- for none). One not given yet is asked for, nothing written: {'results', id, queue, ...}.
local given = sharded and type(spec.res) == 'table' and spec.res or {}
local known, asked, ask = {}, {}, {}
for _, job in ipairs(spec.jobs) do
  for _, dep in ipairs(job.deps) do
    local d = not known[dep] and get(dep)
    if not known[dep] and not d then
      return {'unknown', dep}
    end
    if sharded and job.p2 and d and d.s == 'ok' and type(d.rq) == 'string'
      and given[dep] == nil and not asked[dep] then
      asked[dep] = true
      ask[#ask + 1] = dep
      ask[#ask + 1] = d.rq
    end
  end
  known[job.id] = true
end
if #ask > 0 then
  local reply = {'results'}
  for i = 1, #ask do -- a loop, not unpack: there may be thousands
    reply[i + 1] = ask[i]
  end
  return reply
end

local created = math.floor(w.now / 1000)
for _, b in ipairs(spec.batches) do
  redis.call('HSET', w.batches, b.id, cjson.encode({total = b.total, succeeded = 0,
    failed = 0, cancelled = 0, name = b.name, created = created, on_success = b.on_success,
    on_complete = b.on_complete, parent = b.parent}))
end

local status_index = w.size
local result_index = status_index + tracked
local delayed_index = result_index + takers
for _, job in ipairs(spec.jobs) do
  local rec = {s = 'waiting', q = job.q, p = ARGV[job.p], front = job.front, fail = job.fail,
    wait = {}, b = job.b, dep = {}}
  if job.p2 then
    rec.p2, rec.deps, rec.res = ARGV[job.p2], job.deps, {}
  end
  local root = nil -- the failed job that cancels this one at once
  for i, dep in ipairs(job.deps) do
    local d = get(dep)
    if d.s == 'failed' or d.s == 'cancelled' then
      if job.fail == 'cancel' then
        rec.wait[dep] = true -- a retry of it (or of what cancelled it) can still run this one
        root = root or (d.s == 'failed' and dep or d.by)
      end
    elseif d.s ~= 'ok' then
      rec.wait[dep] = true
      table.insert(d.dep, job.id)
      put(dep, d)
    elseif rec.p2 and sharded then -- what the caller read in its queue's slot, if anything
      local at = given[dep]
      rec.res[dep] = type(at) == 'number' and at >= 2 and stored_value(ARGV[at]) or 'null'
    elseif rec.p2 then -- what its finish would have given: its stored result, if any
      rec.res[dep] = stored_value(redis.pcall('GET', KEYS[result_index + i]))
    end
  end
  if rec.p2 and not sharded then
    result_index = result_index + #job.deps
  end
  if root then
    local root_rec = get(root)
    wf.hold(w, job.q, 1) -- a retry of what cancelled it can still release it
    wf.cancel(w, job.id, rec, root, root_rec or {cancelled = {}})
    if root_rec then
      put(root, root_rec)
    end
  elseif job.at and sharded then -- scheduled in its queue's slot by the caller, once
    rec = {s = 'queued', dep = {}, b = job.b}
    wf.defer(w, job.id, rec, {q = job.q, p = ARGV[job.item], at = job.at, x = job.expires})
  elseif job.at then -- into the schedule, not its queue: as queued for its dependents
    local k = delayed_index
    delayed_index = delayed_index + 4
    redis.call('SET', KEYS[k + 4], job.at)
    redis.call('EXPIREAT', KEYS[k + 4], job.expires)
    schedule_item(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], job.at, 'delayed:' .. job.at, ARGV[job.item])
    rec = {s = 'queued', dep = {}, b = job.b}
  elseif next(rec.wait) == nil then
    wf.release(w, job.id, rec, true)
  else
    wf.hold(w, job.q, 1)
  end
  put(job.id, rec)
  if job.st and not sharded then
    status_index = status_index + 1
    redis.call('SET', KEYS[status_index], spec.status)
  end
end
flush()
return wf.reply(w, 'ok')
