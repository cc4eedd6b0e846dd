-- The fused causal self-attention of decoder text encoders (Gemma-2):
-- forward against a float64 reference written from the definition (every
-- L×L score formed, masked with -inf), with grouped-query heads, key padding
-- (right and left), sliding windows, soft-capping and strided inputs; sizes
-- that span several query blocks and key tiles of the kernel; rows that see
-- no key; the forward-only rule; bad input and leaks.
local grove = grove or require "grove"
local spec = require "spec"
local ref = require "ref"

-- The reference: per (batch, head), query i sees key j when j <= i,
-- mask[b][j] ~= 0 and (no window or j > i - window); scores scale·q·k, then
-- cap·tanh(s/cap); a row that sees nothing gives zeros.
local function causal_ref(o)
  return function(Q, K, V, Mk)
    local B, L, HD, KD = Q.shape[1], Q.shape[2], Q.shape[3], K.shape[3]
    local H, KV = o.heads, o.kv_heads or o.heads
    local d = HD / H
    local scale = o.scale or 1 / math.sqrt(d)
    local O = ref.new({ B, L, HD }, 0)
    local q, k, v, out = Q.data, K.data, V.data, O.data
    for b = 0, B - 1 do
      for h = 0, H - 1 do
        local g = math.floor(h / (H / KV))
        for i = 0, L - 1 do
          local qi = (b * L + i) * HD + h * d
          local s, mx = {}, -math.huge
          for j = 0, i do
            local seen = (not o.window or j > i - o.window) and (not Mk or Mk.data[b * L + j + 1] ~= 0)
            if seen then
              local kj = (b * L + j) * KD + g * d
              local x = 0
              for c = 1, d do x = x + q[qi + c] * k[kj + c] end
              x = x * scale
              if o.softcap then x = o.softcap * math.tanh(x / o.softcap) end
              s[j] = x
              if x > mx then mx = x end
            end
          end
          local z = 0
          for j, x in pairs(s) do s[j] = math.exp(x - mx); z = z + s[j] end
          for e = 1, d do
            local acc = 0
            for j, p in pairs(s) do acc = acc + p / z * v[(b * L + j) * KD + g * d + e] end
            out[qi + e] = acc
          end
        end
      end
    end
    return O
  end
end

local function attn(o)
  return function(q, k, v, m) return grove.causal_attention(q, k, v, m, o) end
end

local function mask_rows(rows, dtype) return function() return grove.tensor(rows, { dtype = dtype }) end end

-- 1 for real tokens: `lead` padding positions, then `real` tokens, then padding up to L.
local function row(L, lead, real)
  local r = {}
  for j = 1, L do r[j] = (j > lead and j <= lead + real) and 1 or 0 end
  return r
end

local function check(o, shapes, mask, seed, tol)
  local inputs = { shapes[1], shapes[2], shapes[3] }
  if mask then inputs[4] = mask end
  spec.check_op {
    fn = attn(o), ref = causal_ref(o), inputs = inputs, seed = seed, fwd_tol = tol or 1e-5, no_backward = true,
    nograd = { true, true, true, true },
  }
end

spec.describe("causal_attention", function()
  spec.it("matches the float64 reference: 2 heads, no mask", function()
    check({ heads = 2 }, { { 2, 7, 16 }, { 2, 7, 16 }, { 2, 7, 16 } }, nil, 1)
  end)

  spec.it("grouped-query heads (4 on 2) with right and left padding (u8 mask)", function()
    check({ heads = 4, kv_heads = 2 }, { { 2, 9, 32 }, { 2, 9, 16 }, { 2, 9, 16 } },
          mask_rows({ row(9, 0, 6), row(9, 3, 6) }, "u8"), 2)
  end)

  spec.it("sliding window shorter than the sequence, soft-cap, scale not 1/sqrt(d)", function()
    check({ heads = 4, kv_heads = 1, window = 3, softcap = 2.5, scale = 0.9 },
          { { 2, 11, 24 }, { 2, 11, 6 }, { 2, 11, 6 } }, mask_rows({ row(11, 0, 11), row(11, 2, 7) }), 3)
  end)

  spec.it("window 1 (each query sees only itself) and an f32 mask with holes", function()
    check({ heads = 2, window = 1 }, { { 1, 6, 8 }, { 1, 6, 8 }, { 1, 6, 8 } },
          mask_rows({ { 1, 0, 1, 1, 0, 1 } }), 4)
  end)

  spec.it("spans several query blocks and key tiles (L = 150, window 70, GQA 3:1, odd head width)", function()
    check({ heads = 3, kv_heads = 1, window = 70, softcap = 5 }, { { 2, 150, 3 * 19 }, { 2, 150, 19 }, { 2, 150, 19 } },
          mask_rows({ row(150, 0, 131), row(150, 40, 110) }, "u8"), 5, 2e-5)
  end)

  spec.it("reads q, k, v in place as slices of one projection and through a transposed view", function()
    grove.manual_seed(6)
    local qkv = grove.randn { 2, 13, 64 }
    local vt = grove.randn { 2, 16, 13 }:transpose(2, 3)
    local o = { heads = 2, kv_heads = 1 }
    local got = grove.causal_attention(qkv:narrow(3, 1, 32), qkv:narrow(3, 33, 16), vt, nil, o)
    local want = causal_ref(o)(ref.from_tensor(qkv:narrow(3, 1, 32)), ref.from_tensor(qkv:narrow(3, 33, 16)),
                               ref.from_tensor(vt))
    spec.assert(spec.rel_error(ref.from_tensor(got), want) < 1e-5, "strided inputs")
  end)

  spec.it("gives zeros to a query that sees no key, and finite values everywhere", function()
    grove.manual_seed(7)
    local q, k, v = grove.randn { 1, 5, 8 }, grove.randn { 1, 5, 8 }, grove.randn { 1, 5, 8 }
    -- keys 1 and 2 are padding: queries 1 and 2 see nothing; with window 2
    -- query 5 sees keys 4, 5 only
    local m = grove.tensor({ { 0, 0, 1, 1, 1 } }, { dtype = "u8" })
    local y = grove.causal_attention(q, k, v, m, { heads = 1, window = 2 })
    spec.eq(y:narrow(2, 1, 2):abs():max():item(), 0, "rows without keys")
    spec.assert(y:narrow(2, 3, 3):abs():max():item() > 0, "rows with keys")
    local all_pad = grove.causal_attention(q, k, v, grove.zeros({ 1, 5 }, { dtype = "u8" }), { heads = 1 })
    spec.eq(all_pad:abs():max():item(), 0, "all padding")
  end)

  spec.it("is forward only: the gradient is an error naming the op", function()
    local q = grove.randn({ 1, 4, 8 }, { requires_grad = true })
    local k, v = grove.randn { 1, 4, 8 }, grove.randn { 1, 4, 8 }
    local y = grove.causal_attention(q, k, v, nil, { heads = 2 })
    spec.eq(y:grad_fn(), "causal_attention", "recorded")
    spec.raises(function() y:sum():backward() end, "causal_attention: forward only")
    local y2 = grove.no_grad(function() return grove.causal_attention(q, k, v, nil, { heads = 2 }) end)
    spec.eq(y2:grad_fn(), nil, "nothing recorded under no_grad")
  end)

  spec.it("rejects bad input with clear errors", function()
    local q, k = grove.randn { 2, 5, 16 }, grove.randn { 2, 5, 8 }
    spec.raises(function() grove.causal_attention(q, k, k, nil, { heads = 3 }) end, "not divisible by heads 3")
    spec.raises(function() grove.causal_attention(q, k, k, nil, { heads = 2, kv_heads = 2 }) end,
                "must be kv_heads 2")
    spec.raises(function() grove.causal_attention(q, k, k, nil, { heads = 4, kv_heads = 3 }) end,
                "positive multiple of kv_heads")
    spec.raises(function() grove.causal_attention(q, grove.randn { 2, 6, 8 }, grove.randn { 2, 6, 8 }, nil, { heads = 2, kv_heads = 1 }) end,
                "same batch and tokens")
    spec.raises(function() grove.causal_attention(q, k, grove.randn { 2, 5, 4 }, nil, { heads = 2, kv_heads = 1 }) end,
                "same shape")
    spec.raises(function() grove.causal_attention(q, k, k, grove.ones { 2, 4 }, { heads = 2, kv_heads = 1 }) end,
                "mask [2,4] does not match")
    spec.raises(function() grove.causal_attention(q, k, k, grove.ones({ 2, 5 }, { dtype = "i64" }), { heads = 2, kv_heads = 1 }) end,
                "mask must be u8 or f32")
    spec.raises(function() grove.causal_attention(q, k, k, nil, { heads = 2, kv_heads = 1, window = -1 }) end,
                "window must be >= 0")
    spec.raises(function() grove.causal_attention(q, k, k, nil, { heads = 2, kv_heads = 1, softcap = -1 }) end,
                "softcap must be >= 0")
    spec.raises(function() grove.causal_attention(q, k, k, nil, { heads = 2, kv_heads = 1, scale = 0 }) end,
                "scale must be positive")
    spec.raises(function() grove.causal_attention(q, k, k, nil, { heads = 2, kv_heads = 1, windw = 3 }) end,
                "unknown option 'windw'")
    spec.raises(function() grove.causal_attention(q, k, k, nil, {}) end, "opts.heads is required")
    spec.raises(function() grove.causal_attention(q, k, k, nil, 2) end, "expected an options table")
  end)

  spec.it("does not leak", function()
    local q, k = grove.randn { 2, 9, 16 }, grove.randn { 2, 9, 8 }
    local m = grove.ones({ 2, 9 }, { dtype = "u8" })
    spec.no_leaks(function()
      grove.causal_attention(q, k, k, m, { heads = 2, kv_heads = 1, window = 3, softcap = 4 })
      pcall(grove.causal_attention, q, k, k, nil, { heads = 3 })
    end)
  end)
end)
