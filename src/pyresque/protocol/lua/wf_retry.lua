-- Redis Cluster: the workflow part of a retry from `failed` (retry_failed.lua does it in
-- the same call on a single Redis), in the workflow slot, made before the job is pushed
-- back in its queue's slot: its batches count it pending again, and the jobs its failure
-- cancelled wait for it again (lib_workflow.lua's wf_retry).
--
-- KEYS: the workflow keys (lib_workflow.lua's wf_open, no queue)
-- ARGV[1] job id
-- Returns the ids that wait again (the caller marks them waiting: `waiting <id>`).
expect_keys(KEYS, 8, 'the workflow keys: 8')
local wf = workflow_lib()
return wf.retry(wf.open(KEYS, 1, -1), ARGV[1])
