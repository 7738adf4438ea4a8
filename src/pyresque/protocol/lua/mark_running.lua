-- A job has been running for a few milliseconds (RunningMarker, running.py): show it
-- as Resque shows a working worker (`worker:<id>`, read by resque-web), and mark it
-- RUNNING when it is tracked. Only while the job is still in flight here: a finish
-- or a recovery that came first is never overwritten.
--
-- KEYS[1] the worker's in-flight hash, or its landing list when ARGV[4] is '1'
-- KEYS[2] worker:<id>   KEYS[3] the job's status key, when ARGV[3] is '1'
-- ARGV[1] claim token   ARGV[2] the worker:<id> record (JSON, as Ruby writes it)
-- ARGV[3] '1' when a status key is given, else ''
-- ARGV[4] '1' for a job that runs from the landing list (landing.py), ARGV[5] its payload
-- Returns 0 when the job was no longer in flight; when written, 1, or for a tracked
-- job the `started` of its status packet (JSON).
expect_keys(KEYS, 2 + given(ARGV[3]), 'in-flight or landing, worker[, status]')
if ARGV[4] == '1' then
  if not redis.call('LPOS', KEYS[1], ARGV[5]) then
    return 0
  end
elseif redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2])
if ARGV[3] == '1' then
  -- A tracked job's `started`, as JSON, for a finish without a script to carry over.
  local ok, packet = pcall(cjson.decode, redis.call('GET', KEYS[3]) or '')
  set_status(KEYS[3], 2, 'null')
  if ok and type(packet) == 'table' and packet.started ~= nil then
    return cjson.encode(packet.started)
  end
end
return 1
