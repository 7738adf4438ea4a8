-- Record how a job ended (see lib_finish.lua for KEYS and ARGV).
return finish(KEYS, ARGV)
