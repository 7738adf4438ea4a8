-- The first element of many lists in one call, for the age of each queue's oldest
-- job (the dashboard's queue lists, /metrics). The caller sends at most 200 keys per
-- call, so one call never blocks Redis for long.
--
-- KEYS the lists   ARGV[1] how many keys
-- Returns per key its head, or false when the key is missing, empty or not a list.
expect_keys(KEYS, tonumber(ARGV[1]), 'the lists')

local heads = {}
for i, key in ipairs(KEYS) do
  local head = redis.pcall('LINDEX', key, 0)
  heads[i] = type(head) == 'string' and head or false
end
return heads
