-- Remove one failure record by index *and* content (the dashboard's and the CLI's
-- Remove), as Ruby's `Failure.remove` does (LSET a mark, LREM the mark), except
-- that the content is checked first, so a list that changed since it was read can
-- never make this remove another record, and the LREM starts from the end nearer
-- the record: it reads only the records between that end and this one.
--
-- KEYS[1] failed list
-- ARGV[1] index   ARGV[2] record as read   ARGV[3] a mark no record holds
-- Returns 1 when removed, 0 when the record is not at that index any more.
expect_keys(KEYS, 1, 'failed')

local index = tonumber(ARGV[1])
if redis.call('LINDEX', KEYS[1], index) ~= ARGV[2] then
  return 0
end
redis.call('LSET', KEYS[1], index, ARGV[3])
local from_head = index < redis.call('LLEN', KEYS[1]) / 2
return redis.call('LREM', KEYS[1], from_head and 1 or -1, ARGV[3])
