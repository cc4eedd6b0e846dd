-- Parity cases (CPU vs CUDA) of the Philox fills. Each case fills a tensor
-- made from its input (so on the device under test) from a fresh generator
-- of a fixed seed: both devices must draw the same numbers. Sizes that are
-- not multiples of 4 end inside a Philox block; a second fill from the same
-- generator starts at the advanced offset; an offset just below 2^32 and a
-- seed above 2^32 check that both counter words and both key words are
-- mapped as on the CPU.
local grove = grove or require "grove"

local cases = {}
local function add(c) cases[#cases + 1] = c end

-- A generator with a seed and a starting offset.
local function generator(seed, offset)
  local g = grove.Generator(seed)
  g.offset = offset or 0
  return g
end

-- Two fills in a row from one generator into copies of x (so on x's device).
local function two_fills(fill, seed, offset)
  return function(x)
    local gen = generator(seed, offset)
    local a = fill(x:detach():clone(), gen)
    local b = fill(x:detach():clone(), gen)
    return a, b
  end
end

for _, c in ipairs {
  { shape = { 7 }, seed = 1 },
  { shape = { 33, 31 }, seed = 0x123456789AB },
  { shape = { 1001 }, seed = 42, offset = 4294967294 }, -- the low counter word wraps inside the fill
  { shape = { 3, 5, 70001 }, seed = 7 },
} do
  local label = string.format("%s seed %.0f offset %.0f", table.concat(c.shape, "x"), c.seed, c.offset or 0)
  -- The 32-bit draws are the same integers and the conversion to (0, 1]
  -- is exact (a power-of-two scale), so uniforms on [0, 1) are the same
  -- floats: tol 0.
  add { name = "uniform [0,1) " .. label,
        fn = two_fills(function(t, gen) return t:uniform_(0, 1, gen) end, c.seed, c.offset),
        inputs = { c.shape }, tol = 0 }
  -- lo + (hi − lo)·u is one fused multiply-add on both (GCC contracts the
  -- CPU loop under -march=native): bit-identical on an FMA build, 1 ulp
  -- apart elsewhere.
  add { name = "uniform [-1.5,3) " .. label,
        fn = two_fills(function(t, gen) return t:uniform_(-1.5, 3, gen) end, c.seed, c.offset),
        inputs = { c.shape }, tol = 1e-13 }
  -- Box-Muller through log, sin and cos, which two math libraries may
  -- round differently by 1 ulp (about 1% of values): a normalised squared
  -- error near 1e-16; a wrong draw would give about 1.
  add { name = "normal mean 0.5 std 2 " .. label,
        fn = two_fills(function(t, gen) return t:normal_(0.5, 2, gen) end, c.seed, c.offset),
        inputs = { c.shape }, tol = 1e-12 }
end

return cases
