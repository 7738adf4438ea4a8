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

-- A pop or move (`...`, with redis.pcall) from a queue: Resque's `queue:<name>`, the
-- user's key, never changed here. One of another type (written by hand, by another
-- application, or hostile) fails it: returns false and the type it holds then, for the
-- caller to skip the queue and name it in its reply (the worker logs it:
-- protocol/foreign_queues.py). Any other error (a landing list of another type) is
-- raised as redis.call raises it. No TYPE call while the queue is a list: a claim pays
-- nothing.
local function from_queue(k_queue, ...)
  local reply = redis.pcall(...)
  if type(reply) ~= 'table' or not reply['err'] then
    return reply
  end
  local found = redis.call('TYPE', k_queue)['ok']
  if found == 'list' or found == 'none' then
    return redis.call(...)
  end
  return false, found
end

-- The queues `from_queue` skipped ({index = type}) as a reply's last element: a flat
-- array {name, type, ...} of the names in `names` (offset by `at`), in priority order.
local function skipped_reply(skipped, n, names, at)
  local out = {}
  for i = 1, n do
    if skipped[i] then
      out[#out + 1] = names[at + i]
      out[#out + 1] = skipped[i]
    end
  end
  return out
end

-- The type `k_queue` holds when a job cannot be pushed onto it (not a list, nor gone: the
-- user's key, never changed here), else nil. Asked before a script takes a job off where
-- it waits: a script stopped by the push's error keeps what it wrote, the job lost.
local function foreign_type(k_queue)
  local kind = redis.call('TYPE', k_queue)['ok']
  if kind ~= 'list' and kind ~= 'none' then
    return kind
  end
end

-- Refuse a push onto `k_queue` when its key holds another type, before anything is
-- written: a script stopped by the push's error keeps what it wrote before (a unique
-- lock taken, a WAITING status), which outlives the job that was never queued. The
-- key is the user's, left as it is; the producer gets one line that names it.
local function refuse_foreign(k_queue)
  local found = foreign_type(k_queue)
  if found then
    return redis.error_reply('WRONGTYPE ' .. k_queue .. ' holds a ' .. found ..
      ', not a list: no job can be pushed onto it (the key is left as it is)')
  end
end
