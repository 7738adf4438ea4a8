-- Become the cron leader, or stay it: a lease (a string with a TTL) that the
-- leader renews on every loop. Another scheduler takes over only once it expired.
-- KEYS[1] leader key   ARGV[1] scheduler id   ARGV[2] lease (ms)
-- Returns 1 when the caller is the leader, 0 otherwise.

expect_keys(KEYS, 1, 'leader key')
if take_lock(KEYS[1], ARGV[1], ARGV[2]) then
  return 1
end
-- A lease is a string with a TTL. Anything else under its name (another type, no
-- TTL) was not written by a scheduler and would keep every scheduler out forever.
if redis.call('TYPE', KEYS[1])['ok'] ~= 'string' or redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('DEL', KEYS[1])
  return take_lock(KEYS[1], ARGV[1], ARGV[2]) and 1 or 0
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
