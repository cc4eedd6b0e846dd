-- Parity cases (CPU vs CUDA) of dropout and cosine similarity.
--
-- Dropout draws its mask from the generator's uniforms (the same Philox
-- numbers on both devices) and scales the kept values by one float
-- multiply, so output and gradient are bit-identical (tol 0).
-- Cosine similarity sums each row in double: rows up to 64 long go one per
-- GPU thread, longer ones one per block, so both sizes are covered, along
-- every dimension, with broadcasting and non-contiguous inputs.
local grove = grove or require "grove"

local cases = {}
local function add(c) cases[#cases + 1] = c end

-- ---- dropout -------------------------------------------------------------------------
for _, c in ipairs {
  { shape = { 7, 33 }, p = 0.3, seed = 5 },
  { shape = { 1001 }, p = 0.5, seed = 0x123456789AB },
  { shape = { 4, 3, 257 }, p = 0.9, seed = 9 },
} do
  add { name = string.format("dropout p %g %s", c.p, table.concat(c.shape, "x")),
        fn = function(x) return grove.dropout(x, c.p, true, grove.Generator(c.seed)) end,
        inputs = { c.shape }, grad = true, tol = 0 }
end
add { name = "dropout p 0.25 of a transposed [40,9]^T, two draws from one generator",
      fn = function(x)
        local gen = grove.Generator(3)
        local a = grove.dropout(x:t(), 0.25, true, gen)
        local b = grove.dropout(x:t(), 0.25, true, gen)
        return a, b
      end,
      inputs = { { 40, 9 } }, grad = true, tol = 0 }

-- ---- cosine similarity -------------------------------------------------------------------
local function cos(dim) return function(a, b) return grove.cosine_similarity(a, b, dim) end end

add { name = "cosine_similarity dim -1 [7,33] (short rows)", fn = cos(-1), inputs = { { 7, 33 }, { 7, 33 } },
      grad = true }
add { name = "cosine_similarity dim -1 [5,300] (long rows)", fn = cos(-1), inputs = { { 5, 300 }, { 5, 300 } },
      grad = true }
add { name = "cosine_similarity dim 1 [70,9] (along the first dimension)", fn = cos(1),
      inputs = { { 70, 9 }, { 70, 9 } }, grad = true }
add { name = "cosine_similarity dim 2 [3,100,6] (a middle dimension)", fn = cos(2),
      inputs = { { 3, 100, 6 }, { 3, 100, 6 } }, grad = true }
add { name = "cosine_similarity broadcast [6,1,40] with [5,40]", fn = cos(-1),
      inputs = { { 6, 1, 40 }, { 5, 40 } }, grad = true }
add { name = "cosine_similarity broadcast [4,130] with [130] (long rows)", fn = cos(-1),
      inputs = { { 4, 130 }, { 130 } }, grad = true }
add { name = "cosine_similarity of transposed inputs [33,9]^T, dim -1",
      fn = function(a, b) return grove.cosine_similarity(a:t(), b:t(), -1) end,
      inputs = { { 33, 9 }, { 33, 9 } }, grad = true }
add { name = "cosine_similarity of a narrowed input [6,200] cols 5..154, dim -1",
      fn = function(a, b) return grove.cosine_similarity(a:narrow(2, 5, 150), b, -1) end,
      inputs = { { 6, 200 }, { 6, 150 } }, grad = true }
-- a zero row: the product of norms is below eps², whose clamp passes no gradient
add { name = "cosine_similarity with a zero row (eps clamp)",
      fn = function(a, b)
        local z = grove.cat({ a:narrow(1, 1, 1), a:narrow(1, 2, 1) * 0, a:narrow(1, 3, 1) }, 1)
        return grove.cosine_similarity(z, b, -1)
      end,
      inputs = { { 3, 20 }, { 3, 20 } }, grad = true }

return cases
