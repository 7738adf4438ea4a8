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
