-- A job refused by a rate limit runs again once the window has room: release
-- its claim and put it in the delayed queue for then (lib_delayed.lua).
-- KEYS[1] in-flight hash   KEYS[2] worker:<id>   KEYS[3] delayed_queue_schedule
-- KEYS[4] delayed:<ts>   KEYS[5] timestamps:<item>
-- ARGV[1] claim token   ARGV[2] timestamp   ARGV[3] 'delayed:<ts>'   ARGV[4] item
-- Returns 1 when deferred, 0 when fenced (the claim was gone).

if not release_claim(KEYS[1], KEYS[2], ARGV[1]) then
  return 0
end
schedule_item(KEYS[3], KEYS[4], KEYS[5], ARGV[2], ARGV[3], ARGV[4])
return 1
