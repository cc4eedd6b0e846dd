-- Parity cases (CPU vs CUDA) of the optimizer kernels. An optimizer step is
-- not an op: each case builds a parameter from its first input, runs one or
-- two steps of grove.optim.<name> with the other inputs as gradients, and
-- returns the updated parameter and the optimizer state, so both devices
-- must agree on every state tensor too (grad = false throughout).
--
-- Covered: SGD (plain, momentum with dampening, Nesterov with decay), AdamW
-- (one tensor, and a group of 40 in one kernel call),
-- CAME full and factored (rows in several bands of 16 and a partial band,
-- one row, a vector long enough for many partial sums), CAME-8bit with both
-- quantizers on sizes that are not multiples of the block, the quantizers
-- themselves, and the Σx² and x·=s of gradient clipping.
local grove = grove or require "grove"
if not grove.optim then require "grove.optim"(grove) end
local optim = grove.optim

local cases = {}
local function add(c) cases[#cases + 1] = c end

-- A fresh leaf parameter with p0's values on p0's device.
local function param(p0) return p0:detach():clone():requires_grad_() end

-- Runs one step per gradient of the optimizer made by make(named params)
-- over a parameter named "w" from p0; returns w and its state tensors
-- listed in keys (in that order).
local function run_steps(make, keys, p0, ...)
  local w = param(p0)
  local opt = make({ { "w", w } })
  for _, g in ipairs { ... } do
    w.grad = g:detach()
    opt:step()
  end
  local out = { w:detach() }
  local st = opt:state_of("w")
  for _, k in ipairs(keys) do out[#out + 1] = st[k] end
  return out
end

-- ---- SGD ------------------------------------------------------------------------
for _, o in ipairs {
  { label = "plain", lr = 0.05 },
  { label = "momentum, dampening 0.1, decay 0.01", lr = 0.05, momentum = 0.9, dampening = 0.1, weight_decay = 0.01 },
  { label = "nesterov, decay 0.05", lr = 0.02, momentum = 0.9, weight_decay = 0.05, nesterov = true },
} do
  local keys = o.momentum and { "momentum_buffer" } or {}
  local opts = { lr = o.lr, momentum = o.momentum, dampening = o.dampening, weight_decay = o.weight_decay,
                 nesterov = o.nesterov }
  for _, shape in ipairs { { 37, 50 }, { 1001 } } do
    add { name = string.format("sgd %s %s, 2 steps", o.label, table.concat(shape, "x")),
          fn = function(p0, g1, g2)
            return run_steps(function(named) return optim.sgd(named, opts) end, keys, p0, g1, g2)
          end,
          inputs = { shape, shape, shape } }
  end
end

-- ---- AdamW ----------------------------------------------------------------------
for _, shape in ipairs { { 37, 50 }, { 333 }, { 4, 3, 3, 3 } } do
  add { name = "adamw " .. table.concat(shape, "x") .. ", 2 steps",
        fn = function(p0, g1, g2)
          return run_steps(function(named)
            return optim.adamw(named, { lr = 1e-2, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0.1 })
          end, { "exp_avg", "exp_avg_sq" }, p0, g1, g2)
        end,
        inputs = { shape, shape, shape } }
end

-- A group of 40 parameters takes one kernel call (on CUDA two launches of
-- up to 32 tensors); the odd ones have no gradient at the first step, so the
-- second step mixes two step counts in one call.
local group_sizes = {}
for i = 1, 40 do group_sizes[i] = (i * 37) % 97 + 1 end
local group_total = 0
for _, n in ipairs(group_sizes) do group_total = group_total + n end
add { name = "adamw group of 40 parameters (two launches), step counts 1 and 2",
      fn = function(p0, g1, g2)
        local named, ws, off = {}, {}, 0
        for i, n in ipairs(group_sizes) do
          ws[i] = param(p0:narrow(1, off + 1, n))
          named[i] = { "w" .. i, ws[i] }
          off = off + n
        end
        local opt = optim.adamw(named, { lr = 1e-2, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0.1 })
        for step, g in ipairs { g1, g2 } do
          off = 0
          for i, n in ipairs(group_sizes) do
            ws[i].grad = (step == 2 or i % 2 == 0) and g:narrow(1, off + 1, n):detach():clone() or nil
            off = off + n
          end
          opt:step()
        end
        local out = {}
        for i, w in ipairs(ws) do
          local st = opt:state_of("w" .. i)
          out[#out + 1], out[#out + 2], out[#out + 3] = w:detach(), st.exp_avg, st.exp_avg_sq
        end
        return out
      end,
      inputs = { { group_total }, { group_total }, { group_total } } }

-- ---- CAME ---------------------------------------------------------------------------
-- Factored for matrices (rows × cols statistics), full for vectors and k×k convs.
local came_opts = { lr = 1e-2, betas = { 0.9, 0.999, 0.9999 }, eps = { 1e-30, 1e-16 }, clip_threshold = 1.0,
                    weight_decay = 0.1 }
local factored_keys = { "exp_avg", "exp_avg_sq_row", "exp_avg_sq_col", "exp_avg_res_row", "exp_avg_res_col" }
local full_keys = { "exp_avg", "exp_avg_sq" }

for _, c in ipairs {
  { shape = { 37, 50 }, keys = factored_keys, note = "factored, 3 bands (the last partial)" },
  { shape = { 300, 5 }, keys = factored_keys, note = "factored, tall: 19 bands" },
  { shape = { 5, 300 }, keys = factored_keys, note = "factored, wide: one partial band" },
  { shape = { 1, 70 }, keys = factored_keys, note = "factored, one row" },
  { shape = { 16, 12, 1, 1 }, keys = factored_keys, note = "factored 1x1 conv" },
  { shape = { 333 }, keys = full_keys, note = "full vector" },
  { shape = { 70001 }, keys = full_keys, note = "full vector, many partial sums" },
  { shape = { 4, 3, 3, 3 }, keys = full_keys, note = "full 3x3 conv" },
} do
  add { name = string.format("came %s %s, 2 steps", c.note, table.concat(c.shape, "x")),
        fn = function(p0, g1, g2)
          return run_steps(function(named) return optim.came(named, came_opts) end, c.keys, p0, g1, g2)
        end,
        inputs = { c.shape, c.shape, c.shape } }
end

-- A clip threshold the first step's update (RMS ≈ 1/√(1 − β2) ≈ 32) exceeds
-- by far, and a small gradient scale: the clip divisor and ε1 both matter.
add { name = "came factored 40x24, clip 0.5, gradients x1e-3, 2 steps",
      fn = function(p0, g1, g2)
        local o = { lr = 3e-3, betas = { 0.8, 0.99, 0.999 }, eps = { 1e-30, 1e-16 }, clip_threshold = 0.5,
                    weight_decay = 0 }
        return run_steps(function(named) return optim.came(named, o) end, factored_keys, p0, g1 * 1e-3, g2 * 1e-3)
      end,
      inputs = { { 40, 24 }, { 40, 24 }, { 40, 24 } } }

-- ---- CAME-8bit ----------------------------------------------------------------------------
-- min_8bit_size 0 keeps small matrices 8-bit; blocks of 64 and 100 leave a
-- partial last block. The codes are returned as floats with the scales: a
-- first moment that differs in its last bits between the devices may round
-- to the neighbouring code now and then, which moves one code by 1 (well
-- inside the default tolerance); the quantizer cases below check the codes
-- bit for bit on identical inputs.
for _, quant in ipairs { "dynamic", "affine" } do
  for _, c in ipairs { { shape = { 37, 45 }, block = 64 }, { shape = { 130, 7 }, block = 100 } } do
    add { name = string.format("came8bit %s %s block %d, 2 steps", quant, table.concat(c.shape, "x"), c.block),
          fn = function(p0, g1, g2)
            local out = run_steps(function(named)
              return optim.came8bit(named, { lr = 1e-2, quant = quant, block = c.block, min_8bit_size = 0 })
            end, { "exp_avg_codes", "exp_avg_scales", "exp_avg_sq_row", "exp_avg_sq_col", "exp_avg_res_row",
                   "exp_avg_res_col" }, p0, g1, g2)
            out[2] = out[2]:float() -- the u8 codes
            return out
          end,
          inputs = { c.shape, c.shape, c.shape } }
  end
end

-- ---- blockwise quantizers -------------------------------------------------------------------
-- Values over many decades (normal × e^(3·normal)); elements 513..768 are
-- zero (whole blocks of 64 and 256: absmax 0, step 0) and 769..832 are
-- constant (a whole block of 64); n = 1000 is not a multiple of the block.
local function spread_input(seed)
  return function()
    local gen = grove.Generator(seed)
    local x = grove.randn({ 1000 }, { generator = gen }) * (grove.randn({ 1000 }, { generator = gen }) * 3):exp()
    return grove.cat({ x:narrow(1, 1, 512), grove.zeros { 256 }, grove.full({ 64 }, 0.25), x:narrow(1, 513, 168) }, 1)
  end
end

for _, quant in ipairs { "dynamic", "affine" } do
  for _, block in ipairs { 64, 256, 1000 } do
    -- Same input, same code: the absmax (or min and max) is exact, the
    -- division is IEEE and the code is the same function of the quotient,
    -- so codes and scales are bit-identical (tol 0).
    add { name = string.format("quantize %s block %d (bit-identical codes)", quant, block),
          fn = function(x)
            local codes, scales = optim.quantize(x, { quant = quant, block = block })
            return codes:float(), scales
          end,
          inputs = { spread_input(11) }, tol = 0 }
    -- Decoding is one multiply (dynamic) or one fused multiply-add (affine,
    -- as GCC contracts the CPU loop): bit-identical on an FMA build.
    add { name = string.format("dequantize %s block %d", quant, block),
          fn = function(x)
            local codes, scales = optim.quantize(x, { quant = quant, block = block })
            return optim.dequantize(codes, scales, { quant = quant, block = block })
          end,
          inputs = { spread_input(12) }, tol = 1e-12 }
  end
end

-- ---- gradient clipping: Σx² and x·=s ---------------------------------------------------------
-- 300000 + 37 values: more than 1024 blocks' worth, so the GPU's partial
-- sums stride; the norm is returned as a one-element tensor on the
-- parameters' device.
add { name = "clip_grad_norm of two gradients (Σx², scale_)",
      fn = function(a0, b0, ga, gb)
        local a, b = param(a0), param(b0)
        a.grad, b.grad = ga:detach() * 3, gb:detach()
        local norm = grove.tensor { optim.clip_grad_norm({ a, b }, 1.5) }
        if a:device() ~= "cpu" then norm = norm:cuda() end
        return a.grad, b.grad, norm
      end,
      inputs = { { 600, 500 }, { 37 }, { 600, 500 }, { 37 } } }
-- 1,100 gradients (two waits on the GPU: 1,024 sums per read-back), one of
-- them empty, from one flat input.
add { name = "clip_grad_norm of 1100 gradients, one empty (grouped sums)",
      fn = function(p0, g0)
        local ps, off = {}, 0
        for i = 1, 1100 do
          local n = i == 700 and 0 or (i % 5) + 1
          local p = param(p0:narrow(1, off + 1, n))
          p.grad = g0:narrow(1, off + 1, n):detach():clone()
          ps[i], off = p, off + n
        end
        local norm = grove.tensor { optim.clip_grad_norm(ps, 2.0) }
        if p0:device() ~= "cpu" then norm = norm:cuda() end
        local out = { norm }
        for i = 1, 1100, 37 do out[#out + 1] = ps[i].grad end
        return out
      end,
      inputs = { { 3400 }, { 3400 } } }

return cases
