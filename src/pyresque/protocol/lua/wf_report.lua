-- Redis Cluster: apply the end of a workflow job, which its finish recorded in its queue's
-- slot (lib_finish.lua's `report`), to the workflow records in the workflow slot: what
-- lib_finish.lua does in the finish itself on a single Redis. Applied twice (by the worker,
-- then a recovery that found the report still there), the second changes nothing: only a
-- job still queued is settled.
--
-- KEYS: the workflow keys (lib_workflow.lua's wf_open, no queue)
-- ARGV[1] job id   ARGV[2] 'ok', 'failed' or 'cancelled'   ARGV[3] its result (JSON)
-- Returns {1 when it acted else 0, then the ids it released: the caller pushes them}.
expect_keys(KEYS, 8, 'the workflow keys: 8')
local wf = workflow_lib()
local w = wf.open(KEYS, 1, -1)
local state = ARGV[2]
if state ~= 'ok' and state ~= 'failed' then
  state = 'cancelled'
end
local acted = wf.finish(w, ARGV[1], state, ARGV[3])
return wf.reply(w, acted and 1 or 0)
