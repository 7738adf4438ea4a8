-- Adopt a job that a worker's idle wait moved onto its landing list (BLMOVE,
-- landing.py) into its in-flight hash, under the claim token its processor runs
-- it with: from then on it is finished, given back and recovered like any claim.
-- Idempotent: a call re-sent after a lost reply finds the token adopted already.
--
-- KEYS[1] the worker's landing list   KEYS[2] the worker's in-flight hash
-- ARGV[1] claim token   ARGV[2] queue name   ARGV[3] payload (as landed)
-- Returns 1 when the token holds the job, 0 when the job had left the landing list
-- (recovered after the worker lost its lease: the worker's finish is then fenced).
expect_keys(KEYS, 2, 'landing, in-flight')
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return 1
end
if redis.call('LREM', KEYS[1], 1, ARGV[3]) == 0 then
  return 0
end
local record = cjson.encode({queue = ARGV[2], payload = ARGV[3], claimed_at = now_ms()})
redis.call('HSET', KEYS[2], ARGV[1], record)
return 1
