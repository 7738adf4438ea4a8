-- Record how a job ended and claim the next ones, in a single round trip: the
-- worker's hot path. ARGV[1] is how many of the KEYS belong to the finish step;
-- finish takes ARGV[2..13] (its 12 arguments, lib_finish.lua), claim the rest.
-- Both key counts are checked before either step writes.
-- Returns {finish's reply (0 when fenced), claim reply}.
local nfinish = tonumber(ARGV[1])
local finish_keys, finish_args = slice(KEYS, 1, nfinish), slice(ARGV, 2, 13)
local claim_keys, claim_args = slice(KEYS, nfinish + 1, #KEYS), slice(ARGV, 14, #ARGV)
expect_finish_keys(finish_keys, finish_args)
expect_claim_keys(claim_keys, claim_args)
local finished = finish(finish_keys, finish_args)
return {finished, claim_each(claim_keys, claim_args)}
