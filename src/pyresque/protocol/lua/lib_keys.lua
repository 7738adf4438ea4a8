-- Every script first checks that it was given exactly the keys its ARGV asks for.
-- Optional keys travel in KEYS too (Redis Cluster routes a call by its keys) and
-- are chosen by ARGV flags, so a caller out of step with a script would otherwise
-- make it write the wrong key; instead the call fails before any write, naming the
-- script. scripts.py defines SCRIPT, the script's name, above this library.
local function expect_keys(k, count, layout)
  if #k ~= count then
    error({err = string.format('ERR pyresque %s.lua expects %d KEYS (%s), got %d',
      SCRIPT, count, layout, #k)})
  end
end

-- 1 when an optional key's ARGV flag (a token, a packet) is set, else 0.
local function given(flag)
  return (flag ~= nil and flag ~= '') and 1 or 0
end
