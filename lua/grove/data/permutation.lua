-- Shuffled orders drawn from a seed with the engine's Philox4x32 generator,
-- the same on every machine and for every thread count: the folder data
-- set's epochs and the feature cache's batches use it.
--
--   local order = grove.data.permutation(n, seed, a, b, tag)  -- {1..n} shuffled
--
-- The counter holds (i, a, b, tag): a and b pick the stream (an epoch, a
-- bucket), tag keeps the users apart ("FOLD" for the folder data set). The
-- shuffle is Fisher–Yates from the last position down.
local ffi = require "ffi"

return function(grove)
  local C = grove.C
  grove.data = grove.data or {}

  local ctr, key, out = ffi.new("uint32_t[4]"), ffi.new("uint32_t[2]"), ffi.new("uint32_t[4]")

  local function word(v, name)
    if type(v) ~= "number" or v % 1 ~= 0 or v < 0 or v >= 2 ^ 32 then
      error("data.permutation: " .. name .. " must be an integer from 0 to 2^32 - 1, got " .. tostring(v), 3)
    end
    return v
  end

  -- n: the length; seed: an integer from 0 to 2^53; a, b, tag: 32-bit
  -- words of the counter. Returns a new list of 1..n in shuffled order.
  function grove.data.permutation(n, seed, a, b, tag)
    if type(n) ~= "number" or n % 1 ~= 0 or n < 0 then error("data.permutation: n must be an integer >= 0, got " .. tostring(n), 2) end
    if type(seed) ~= "number" or seed % 1 ~= 0 or seed < 0 or seed > 2 ^ 53 then
      error("data.permutation: seed must be an integer from 0 to 2^53, got " .. tostring(seed), 2)
    end
    local order = {}
    for i = 1, n do order[i] = i end
    key[0], key[1] = seed % 2 ^ 32, math.floor(seed / 2 ^ 32)
    ctr[1], ctr[2], ctr[3] = word(a, "a"), word(b, "b"), word(tag, "tag")
    for i = n, 2, -1 do
      ctr[0] = i
      C.grove_philox4x32(ctr, key, out)
      local j = math.floor((out[0] + out[1] / 2 ^ 32) / 2 ^ 32 * i) + 1
      order[i], order[j] = order[j], order[i]
    end
    return order
  end

  return grove.data.permutation
end
