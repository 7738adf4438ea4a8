-- Before recovery requeues a dead worker's jobs (peer_prune.py): a Ruby worker
-- that prunes it must not move one of them to `failed` as well.
-- Ruby takes the pruning lock, then reads worker:<id> and fails the job in it.
-- So: while the lock is young and not pyresque's, a prune may be under way and
-- recovery waits; otherwise worker:<id> is deleted, and a prune that starts
-- afterwards finds no job to fail.
--
-- KEYS[1] pruning_dead_workers_in_progress   KEYS[2] worker:<id>
-- ARGV[1] a lock with more than this many ms to live is young
-- ARGV[2] how pyresque's own lock values start
-- Returns 1 when recovery may go on, 0 when it must wait.

expect_keys(KEYS, 2, 'pruning lock, worker:<id>')
if redis.call('TYPE', KEYS[1]).ok == 'string' then
  local holder = redis.call('GET', KEYS[1])
  local mark = ARGV[2]
  if string.sub(holder, 1, #mark) ~= mark and redis.call('PTTL', KEYS[1]) > tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('DEL', KEYS[2])
return 1
