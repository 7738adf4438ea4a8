-- Update a php-resque status packet, only if the job is tracked (the key exists).
-- `result_json` is already JSON. Finished states (3 FAILED, 4 COMPLETE, 5 CANCELLED) expire
-- after 24 hours, as php-resque does; `started` is carried over. The clock is read
-- only for a tracked job: most jobs have an id, few are tracked.
local function set_status(key, code, result_json)
  local old = redis.call('GET', key)
  if not old then return end
  local now_secs = math.floor(now_ms() / 1000)
  local ok, packet = pcall(cjson.decode, old)
  local started = cjson.null
  if ok and type(packet) == 'table' and packet.started ~= nil then started = packet.started end
  local value = '{"status":' .. code .. ',"updated":' .. now_secs .. ',"started":'
    .. cjson.encode(started) .. ',"result":' .. result_json .. '}'
  if code >= 3 then
    redis.call('SET', key, value, 'EX', 86400)
  else
    redis.call('SET', key, value)
  end
end
