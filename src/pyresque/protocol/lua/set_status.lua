-- Move a tracked job to a new status (RUNNING when a worker starts it).
-- KEYS[1] status key   ARGV[1] status code   ARGV[2] result (JSON)
expect_keys(KEYS, 1, 'status key')
set_status(KEYS[1], tonumber(ARGV[1]), ARGV[2])
return 1
