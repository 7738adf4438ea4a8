-- Push payloads onto a queue, atomically with everything that goes with them:
-- the queue's name in `queues`, a WAITING status for each tracked job, and a
-- wake-up token so an idle pyresque worker starts at once (lib_push.lua).
--
-- KEYS[1] queues set        KEYS[2] queue:<name>      KEYS[3] wake list of the queue
-- KEYS[4] queues-changed list (wakes workers that serve globs when a queue is new)
-- KEYS[5..] status keys of the tracked jobs
-- ARGV[1] queue name        ARGV[2] WAITING status packet, '' when untracked
-- ARGV[3] 'head' or 'tail'  ARGV[4..] payloads
-- Returns the queue's new length, or (nothing written) a WRONGTYPE error naming the
-- queue's key when it holds another type (lib_types.lua): not asked when no status is
-- set, as the push then writes nothing before it fails but the queue's name (harmless).

expect_keys(KEYS, 4 + (ARGV[2] ~= '' and #ARGV - 3 or 0),
  'queues, queue, wake, queues-changed, then a status key per payload when tracked')
local refused = #KEYS > 4 and refuse_foreign(KEYS[2])
if refused then
  return refused
end
for i = 5, #KEYS do
  redis.call('SET', KEYS[i], ARGV[2])
end
return push_jobs(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[3], {unpack(ARGV, 4)})
