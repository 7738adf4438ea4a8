-- The lengths of many keys in one call, for counts over every queue or worker
-- (the dashboard's totals, `pyresque info`): LLEN of queues, STRLEN of
-- `worker:<id>` (non-empty while the worker runs a job), EXISTS of a worker's
-- paused flag. The caller sends at most a thousand keys per call, so one call never
-- blocks Redis for long.
--
-- KEYS the keys   ARGV[1] 'LLEN', 'STRLEN' or 'EXISTS'   ARGV[2] how many keys
-- Returns one length per key: 0 for a missing key, -1 for a key of another type
-- (anyone may have written it).
expect_keys(KEYS, tonumber(ARGV[2]), 'the keys to measure')

local command = (ARGV[1] == 'STRLEN' or ARGV[1] == 'EXISTS') and ARGV[1] or 'LLEN'
local lengths = {}
for i, key in ipairs(KEYS) do
  local length = redis.pcall(command, key)
  lengths[i] = type(length) == 'number' and length or -1
end
return lengths
