-- A key pyresque keeps that holds another type (written by hand, or hostile) would fail
-- every call that uses it: deleted when it is not of type `want`; returns the type it
-- held then (for the caller to report), else nil.
local function clear_foreign(key, want)
  local found = redis.call('TYPE', key)['ok']
  if found ~= 'none' and found ~= want then
    redis.call('DEL', key)
    return found
  end
  return nil
end

-- The tokens on a list of pyresque's that holds no job (a wake-up list, queues-changed):
-- one of another type is deleted, and counts as empty (it would fail every push; it
-- loses wake-ups only, never a job). No TYPE call while it is a list: a push pays nothing.
local function token_count(key)
  local n = redis.pcall('LLEN', key)
  if type(n) == 'table' then -- an error reply: LLEN has no other than WRONGTYPE
    redis.call('DEL', key)
    return 0
  end
  return n
end
