-- Record how a job ended and claim the next ones, in a single round trip: the
-- worker's hot path. ARGV[1] is how many of the KEYS belong to the finish step;
-- finish takes ARGV[2..17] (its 16 arguments, lib_finish.lua), claim the rest.
-- Both key counts are checked before either step writes.
-- Returns {0 when fenced, 2 when worker:<id> was deleted (no next job), else 1; claim reply},
-- or {-1, {}} when the finish wrote nothing (lib_finish.lua) and so nothing was claimed.
local nfinish = tonumber(ARGV[1])
local finish_keys, finish_args = slice(KEYS, 1, nfinish), slice(ARGV, 2, 17)
local claim_keys, claim_args = slice(KEYS, nfinish + 1, #KEYS), slice(ARGV, 18, #ARGV)
expect_finish_keys(finish_keys, finish_args)
expect_claim_keys(claim_keys, claim_args)
local done, working = finish(finish_keys, finish_args)
if done == -1 then
  return {-1, {}}
end
local claimed = claim_each(claim_keys, claim_args)
if #claimed < 2 then -- no next job ({}, or paused, or the lease expired)
  done = idle(finish_keys[1], working, done)
end
return {done, claimed}
