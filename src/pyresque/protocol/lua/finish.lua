-- Record how a job ended (see lib_finish.lua for KEYS and ARGV).
expect_finish_keys(KEYS, ARGV)
local done, working = finish(KEYS, ARGV)
return idle(KEYS[1], working, done)
