-- Cancel a workflow job that has not run (Resque.cancel, client/admin/workflows.py): one
-- waiting for its dependencies, or one the caller just took off its queue. Its batches
-- count it cancelled and its dependents are settled as for a cancelled dependency
-- (lib_workflow.lua: those that cancel are cancelled, those that run anyway may run).
--
-- KEYS: the workflow keys (lib_workflow.lua's wf_open)
-- ARGV[1] job id   ARGV[2] how many queues the keys hold   ARGV[3] 'waiting' or 'queued':
-- the state the caller expects (a waiting job released meanwhile is left alone)
-- Returns 1 when cancelled, 0 when the job is not a workflow job in that state, -1
-- (nothing written) when `wf:queues` grew since the caller read it.
expect_keys(KEYS, 6 + 2 * (tonumber(ARGV[2]) or 0), 'the workflow keys: 6, then 2 per queue')
local w = wf_open(KEYS, 1, tonumber(ARGV[2]))
if wf_stale(w) then
  return -1
end
local rec = wf_get(w, ARGV[1])
if not rec or rec.s ~= ARGV[3] then
  return 0
end
if rec.s == 'waiting' then
  rec.s = 'queued' -- what wf_finish settles: as if it had been released and then cancelled
  wf_put(w, ARGV[1], rec)
end
wf_finish(w, ARGV[1], 'cancelled', 'null')
return 1
