-- Concurrency slots belong to a worker's lease: a slot is "<worker id>|<claim
-- token>" (the token has no "|"), and a slot whose worker's lease has
-- expired (the worker died) is dropped the next time anyone looks. So a dead
-- worker can never keep a slot, and nothing needs to renew slots.

-- Drop the slots of dead workers; return how many slots are held.
local function live_slots(k_slots, k_leases, now)
  for _, member in ipairs(redis.call('ZRANGE', k_slots, 0, -1)) do
    local expiry = redis.call('ZSCORE', k_leases, string.match(member, '^(.*)|'))
    if not expiry or tonumber(expiry) <= now then
      redis.call('ZREM', k_slots, member)
    end
  end
  return redis.call('ZCARD', k_slots)
end
