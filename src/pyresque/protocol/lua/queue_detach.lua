-- The first step of removing a queue (removal.py): the queue's list moves, in one
-- O(1) step, to a key of the caller's own, and its name leaves `queues`, so the
-- caller can release what its jobs hold (unique locks, status keys) a chunk at a
-- time, without a long call. A job pushed after this starts the queue afresh, as
-- after Resque's `remove_queue`. The moved list expires if the caller dies.
--
-- KEYS[1] queue:<name>   KEYS[2] queues set   KEYS[3] the queue's wake list
-- KEYS[4] where the list goes
-- ARGV[1] queue name   ARGV[2] seconds the moved list lives at most
-- Returns how many jobs the queue held (0 when it held none or was not a list:
-- a key of another type is left as it is).
expect_keys(KEYS, 4, 'queue, queues, wake, detached list')

redis.call('SREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
if redis.call('TYPE', KEYS[1])['ok'] ~= 'list' then
  return 0
end
redis.call('RENAME', KEYS[1], KEYS[4])
redis.call('EXPIRE', KEYS[4], ARGV[2])
return redis.call('LLEN', KEYS[4])
