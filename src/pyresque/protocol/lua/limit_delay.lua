-- On Redis Cluster: a job a limit refused waits in its queue's slot's delayed schedule,
-- not on the limit's waiting list (the limit's keys are in the home slot): release its
-- claim and schedule it, in one step in the queue's slot. The scheduler moves it back
-- to the head of its queue when due (limits.py says when; delayed_shards.py indexes it).
-- KEYS[1] in-flight hash   KEYS[2] worker:<id>   KEYS[3] delayed_queue_schedule
-- KEYS[4] delayed:<ts>   KEYS[5] timestamps:<item>
-- ARGV[1] claim token   ARGV[2] due (epoch s)   ARGV[3] 'delayed:<ts>'   ARGV[4] item
-- Returns 1 when scheduled, 0 when fenced (the claim was gone).

expect_keys(KEYS, 5, 'in-flight, worker, schedule, delayed:<ts>, timestamps')
if not release_claim(KEYS[1], KEYS[2], ARGV[1]) then
  return 0
end
schedule_item(KEYS[3], KEYS[4], KEYS[5], ARGV[2], ARGV[3], ARGV[4])
return 1
