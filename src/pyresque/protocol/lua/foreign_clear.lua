-- A worker's own keys that a claim or a wait failed on with WRONGTYPE (landing_claims.py):
-- each one that holds another type than pyresque keeps there is deleted. The caller
-- names only keys that can hold no job of ours then: a landing list that is not a list
-- (our jobs land there with LMOVE, onto a list only), a registry of landing lists that
-- is not a set (it names queues, it never holds a job).
--
-- KEYS[i] a key   ARGV[i] the type pyresque keeps there ('list', 'set')
-- Returns {key, the type it held, ...} for each key deleted.
expect_keys(KEYS, #ARGV, 'one key per expected type')
local deleted = {}
for i = 1, #KEYS do
  local found = clear_foreign(KEYS[i], ARGV[i])
  if found then
    deleted[#deleted + 1] = KEYS[i]
    deleted[#deleted + 1] = found
  end
end
return deleted
