-- Release a unique job's lock if this job's token still holds it.
-- KEYS[1] the lock   ARGV[1] token   Returns 1 when released.
expect_keys(KEYS, 1, 'the lock')
return release_lock(KEYS[1], ARGV[1])
