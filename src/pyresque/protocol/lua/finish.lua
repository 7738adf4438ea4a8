-- Record how a job ended (see lib_finish.lua for KEYS and ARGV).
expect_finish_keys(KEYS, ARGV)
return finish(KEYS, ARGV)
