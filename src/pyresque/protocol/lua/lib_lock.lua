-- Unique-job locks: a string holding the token of the one job allowed with
-- given arguments. Every lock has a TTL, so a crash can never leave one forever.

-- Take the lock for `token`; false if another job holds it.
local function take_lock(key, token, ttl_ms)
  return redis.call('SET', key, token, 'NX', 'PX', ttl_ms) ~= false
end

-- Release the lock only if `token` still holds it (it may have expired and been
-- taken by another job meanwhile).
local function release_lock(key, token)
  if redis.call('GET', key) == token then
    redis.call('DEL', key)
    return 1
  end
  return 0
end

-- The status key of a job removed unrun: it lives a day, as a finished job's does
-- (php-resque), instead of saying "waiting" forever.
local function expire_removed_status(key)
  if redis.call('TTL', key) == -1 then
    redis.call('EXPIRE', key, 86400)
  end
end
