-- Record how a job ended and claim the next ones, in a single round trip: the
-- worker's hot path. ARGV[1] is how many of the KEYS belong to the finish step;
-- finish takes ARGV[2..11] (its 10 arguments, lib_finish.lua), claim the rest.
-- Returns {1 or 0 (fenced), claim reply}.
local nfinish = tonumber(ARGV[1])
local finished = finish(slice(KEYS, 1, nfinish), slice(ARGV, 2, 11))
return {finished, claim_each(slice(KEYS, nfinish + 1, #KEYS), slice(ARGV, 12, #ARGV))}
