-- Record how a job ended and claim the next ones, in a single round trip: the
-- worker's hot path. ARGV[1] is how many of the KEYS belong to the finish step;
-- finish takes ARGV[2..15] (its 14 arguments, lib_finish.lua), claim the rest.
-- Both key counts are checked before either step writes.
-- Returns {0 when fenced, 2 when worker:<id> was deleted (no next job), else 1; claim reply}.
local nfinish = tonumber(ARGV[1])
local finish_keys, finish_args = slice(KEYS, 1, nfinish), slice(ARGV, 2, 15)
local claim_keys, claim_args = slice(KEYS, nfinish + 1, #KEYS), slice(ARGV, 16, #ARGV)
expect_finish_keys(finish_keys, finish_args)
expect_claim_keys(claim_keys, claim_args)
local done, working = finish(finish_keys, finish_args)
local claimed = claim_each(claim_keys, claim_args)
if #claimed < 2 then -- no next job ({}, or paused, or the lease expired)
  done = idle(finish_keys[1], working, done)
end
return {done, claimed}
