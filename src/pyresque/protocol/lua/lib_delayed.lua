-- Add one item to resque-scheduler's delayed queue exactly as Ruby's
-- `delayed_push` does: the item on the list `delayed:<ts>`, the list's name in
-- the item's `timestamps:<item JSON>` set, the timestamp in the schedule.
local function schedule_item(k_schedule, k_list, k_timestamps, ts, list_name, item)
  redis.call('RPUSH', k_list, item)
  redis.call('SADD', k_timestamps, list_name)
  redis.call('ZADD', k_schedule, ts, ts)
end
