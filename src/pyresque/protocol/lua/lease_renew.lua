-- Renew a worker's lease in one queue's slot on Redis Cluster (the heartbeat renews
-- it in the home slot: protocol/beat.py), where its claims from that queue check it
-- (lib_claim.lua), and report the workers whose lease there has expired, for their
-- jobs in that slot to be recovered (recover.lua).
--
-- KEYS[1] the slot's leases zset   ARGV[1] worker id   ARGV[2] lease length (ms)
-- Returns the expired worker ids (20 at most).
expect_keys(KEYS, 1, 'leases')
clear_foreign(KEYS[1], 'zset') -- written by hand, or hostile: every beat would fail
local now = now_ms()
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 20)
