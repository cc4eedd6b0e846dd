-- Parity cases (CPU vs CUDA) of the attention family: SANA's ReLU linear
-- attention (several head widths, q/k/v read in place as slices of one
-- projection) and the softmax cross attention with u8 / f32 / no masks,
-- shapes off multiples of 32; the causal self-attention of text encoders
-- (forward only) with grouped-query heads, padding, windows and soft-caps.
local grove = grove or require "grove"

-- Masks (B, M): 1 = real token. Row 2 of the u8 mask is all padding (the
-- kernels then apply no bias at all).
local function mask_u8(rows) return function() return grove.tensor(rows, { dtype = "u8" }) end end
local function mask_f32(rows) return function() return grove.tensor(rows) end end

local function ones_then_zeros(m, real)
  local r = {}
  for j = 1, m do r[j] = j <= real and 1 or 0 end
  return r
end

return {
  -- linear attention
  { name = "linear_attention [2,37,64] head 32 eps 1e-15",
    fn = function(q, k, v) return grove.linear_attention(q, k, v, 32, 1e-15) end,
    inputs = { { 2, 37, 64 }, { 2, 37, 64 }, { 2, 37, 64 } }, grad = true },
  { name = "linear_attention [1,50,48] head 16 eps 1e-6",
    fn = function(q, k, v) return grove.linear_attention(q, k, v, 16, 1e-6) end,
    inputs = { { 1, 50, 48 }, { 1, 50, 48 }, { 1, 50, 48 } }, grad = true },
  { name = "linear_attention [3,9,24] head 8",
    fn = function(q, k, v) return grove.linear_attention(q, k, v, 8, 1e-6) end,
    inputs = { { 3, 9, 24 }, { 3, 9, 24 }, { 3, 9, 24 } }, grad = true },
  { name = "linear_attention [1,70,128] head 64",
    fn = function(q, k, v) return grove.linear_attention(q, k, v, 64, 1e-6) end,
    inputs = { { 1, 70, 128 }, { 1, 70, 128 }, { 1, 70, 128 } }, grad = true },
  { name = "linear_attention [2,300,96] head 32 (tokens over several tiles)",
    fn = function(q, k, v) return grove.linear_attention(q, k, v, 32, 1e-15) end,
    inputs = { { 2, 300, 96 }, { 2, 300, 96 }, { 2, 300, 96 } }, grad = true },
  { name = "linear_attention q,k,v slices of one [2,33,192] projection",
    fn = function(qkv)
      return grove.linear_attention(qkv:narrow(3, 1, 64), qkv:narrow(3, 65, 64), qkv:narrow(3, 129, 64), 32, 1e-15)
    end,
    inputs = { { 2, 33, 192 } }, grad = true },
  { name = "linear_attention only v needs grad (dq/dk not wanted)",
    fn = function(q, k, v) return grove.linear_attention(q, k, v, 32, 1e-6) end,
    inputs = { { 2, 21, 64 }, { 2, 21, 64 }, { 2, 21, 64 } }, nograd = { [1] = true, [2] = true }, grad = true },

  -- cross attention
  { name = "cross_attention [2,37,64] x [2,11,64] heads 2 u8 mask",
    fn = function(q, k, v, m) return grove.cross_attention(q, k, v, m, 2) end,
    inputs = { { 2, 37, 64 }, { 2, 11, 64 }, { 2, 11, 64 },
               mask_u8 { ones_then_zeros(11, 7), ones_then_zeros(11, 0) } },
    nograd = { [4] = true }, grad = true },
  { name = "cross_attention [2,19,40] x [2,5,40] heads 1 f32 mask",
    fn = function(q, k, v, m) return grove.cross_attention(q, k, v, m, 1) end,
    inputs = { { 2, 19, 40 }, { 2, 5, 40 }, { 2, 5, 40 }, mask_f32 { { 0, 1, 1, 0, 1 }, { 1, 1, 1, 1, 1 } } },
    nograd = { [4] = true }, grad = true },
  { name = "cross_attention [3,70,120] x [3,19,120] heads 3 (dh 40) no mask",
    fn = function(q, k, v) return grove.cross_attention(q, k, v, nil, 3) end,
    inputs = { { 3, 70, 120 }, { 3, 19, 120 }, { 3, 19, 120 } }, grad = true },
  { name = "cross_attention [1,257,224] x [1,300,224] heads 2 (dh 112) u8 mask",
    fn = function(q, k, v, m) return grove.cross_attention(q, k, v, m, 2) end,
    inputs = { { 1, 257, 224 }, { 1, 300, 224 }, { 1, 300, 224 }, mask_u8 { ones_then_zeros(300, 123) } },
    nograd = { [4] = true }, grad = true },
  { name = "cross_attention q slice of [2,33,128], k,v slices of [2,9,128], heads 2",
    fn = function(qx, kv)
      return grove.cross_attention(qx:narrow(3, 33, 64), kv:narrow(3, 1, 64), kv:narrow(3, 65, 64), nil, 2)
    end,
    inputs = { { 2, 33, 128 }, { 2, 9, 128 } }, grad = true },

  -- causal self-attention (forward only)
  { name = "causal_attention [2,37,64] heads 4 on 2, u8 mask right and left padded",
    fn = function(q, k, v, m) return grove.causal_attention(q, k, v, m, { heads = 4, kv_heads = 2 }) end,
    inputs = { { 2, 37, 64 }, { 2, 37, 32 }, { 2, 37, 32 },
               mask_u8 { ones_then_zeros(37, 29), { 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                                    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 } } } },
  { name = "causal_attention [1,300,512] heads 2 (dh 256) window 40 soft-cap 50 scale 1/16, f32 mask",
    fn = function(q, k, v, m)
      return grove.causal_attention(q, k, v, m, { heads = 2, kv_heads = 1, window = 40, softcap = 50, scale = 1 / 16 })
    end,
    inputs = { { 1, 300, 512 }, { 1, 300, 256 }, { 1, 300, 256 }, mask_f32 { ones_then_zeros(300, 211) } } },
  { name = "causal_attention [3,70,57] heads 3 (dh 19) window 1, no mask",
    fn = function(q, k, v) return grove.causal_attention(q, k, v, nil, { heads = 3, window = 1 }) end,
    inputs = { { 3, 70, 57 }, { 3, 70, 57 }, { 3, 70, 57 } } },
  { name = "causal_attention q, k, v slices of one [2,33,128] projection, soft-cap 3",
    fn = function(qkv)
      return grove.causal_attention(qkv:narrow(3, 1, 64), qkv:narrow(3, 65, 32), qkv:narrow(3, 97, 32), nil,
                                    { heads = 4, kv_heads = 2, softcap = 3 })
    end,
    inputs = { { 2, 33, 128 } } },
}
