-- End a workflow job that did not end through a finish (lib_workflow.lua): one cancelled
-- before it ran (Resque.cancel: one waiting for its dependencies, or one the caller just
-- took off its queue), or one that recovery moved to `failed` (a poison job). Its batches
-- count it and its dependents are settled as for any failed or cancelled dependency.
--
-- KEYS: the workflow keys (lib_workflow.lua's wf_open)
-- ARGV[1] job id   ARGV[2] how many queues the keys hold   ARGV[3] 'waiting' or 'queued':
-- the state the caller expects (a waiting job released meanwhile is left alone)
-- ARGV[4] 'cancelled' or 'failed'
-- Removes the outbox's `settle <id>` (recover.lua's: the follow-up of a failure by
-- recovery) unless it writes nothing.
-- Returns 1 when settled, 0 when the job is not a workflow job in that state, -1
-- (nothing written) when `wf:queues` grew since the caller read it. On Redis Cluster
-- (ARGV[2] -1: no queue keys) {that code, then the ids released: the caller pushes them}.
expect_keys(KEYS, 8 + 2 * math.max(tonumber(ARGV[2]) or 0, 0),
  'the workflow keys: 8, then 2 per queue')
local wf = workflow_lib()
local w = wf.open(KEYS, 1, tonumber(ARGV[2]))
if wf.stale(w) then
  return -1
end
redis.call('ZREM', w.outbox, 'settle ' .. ARGV[1])
local rec = wf.get(w, ARGV[1])
if not rec or rec.s ~= ARGV[3] then
  return w.sharded and {0} or 0
end
if rec.s == 'waiting' then
  rec.s = 'queued' -- what wf.finish settles: as if it had been released, then ended
  wf.put(w, ARGV[1], rec)
end
wf.finish(w, ARGV[1], ARGV[4] == 'failed' and 'failed' or 'cancelled', 'null')
return w.sharded and wf.reply(w, 1) or 1
