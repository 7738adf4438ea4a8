-- Claim the next job for each of the given tokens (see lib_claim.lua for KEYS and ARGV).
expect_claim_keys(KEYS, ARGV)
return claim_each(KEYS, ARGV)
