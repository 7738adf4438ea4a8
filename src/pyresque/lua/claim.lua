-- Claim the next job (see lib_claim.lua for KEYS and ARGV).
return claim(KEYS, ARGV)
