-- Retry one failure record, as resque-web's Retry button does: mark the record
-- with `retried_at` and push a fresh copy of its job onto its queue. The record
-- is addressed by index *and* content, so a concurrent removal that shifted the
-- list can never make us touch the wrong record.
--
-- KEYS[1] failed list   KEYS[2] queues set   KEYS[3] queue:<name>   KEYS[4] wake list
-- KEYS[5] status key (optional)
-- ARGV[1] index   ARGV[2] record as read   ARGV[3] record with retried_at
-- ARGV[4] payload to enqueue   ARGV[5] queue name   ARGV[6] WAITING status packet
-- Returns 1 when retried, 0 when the record changed meanwhile.

if redis.call('LINDEX', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('LSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[5])
redis.call('RPUSH', KEYS[3], ARGV[4])
if redis.call('LLEN', KEYS[4]) == 0 then
  redis.call('RPUSH', KEYS[4], '1')
end
if KEYS[5] and redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('SET', KEYS[5], ARGV[6])
end
return 1
