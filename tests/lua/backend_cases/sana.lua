-- Parity cases (CPU vs CUDA) of the fused SANA ops (norm_modulate,
-- gated_residual, glu_silu, timestep_embedding) and of one whole SANA block
-- forward and backward.
local grove = grove or require "grove"

-- The block: small, token grid 5x7 (35 tokens), 6 text tokens. Its
-- parameters are inputs of the case (so the suite puts them on each device
-- and compares their gradients too); fn binds them into the block before
-- running it.
local cfg = { depth = 1, width = 64, head_dim = 32, cross_heads = 2, mlp_ratio = 2.5, in_channels = 4,
              caption_channels = 16 }
local H, W, L = 5, 7, 6
local block = grove.nn.SanaBlock(grove.nn.param_factory { generator = grove.Generator(7) },
                                 grove.nn.resolve_config(cfg))

-- (module, name) of every parameter, in named_parameters order.
local function param_slots(m, out)
  out = out or {}
  for _, name in ipairs(m._param_names) do
    if m[name] ~= nil then out[#out + 1] = { m, name } end
  end
  for _, c in ipairs(m:children()) do param_slots(c[2], out) end
  return out
end
local slots = param_slots(block)

local block_inputs = {
  { 2, H * W, 64 },                       -- x tokens
  { 2, 6 * 64 },                          -- t0
  { 2, L, 64 },                           -- projected text
  function() return grove.tensor({ { 1, 1, 1, 1, 0, 0 }, { 1, 1, 1, 1, 1, 1 } }, { dtype = "u8" }) end,
}
for _, s in ipairs(slots) do
  local p = s[1][s[2]]
  block_inputs[#block_inputs + 1] = function() return p:detach():clone() end
end

local function run_block(x, t0, text, mask, ...)
  local params = { ... }
  for i, s in ipairs(slots) do s[1][s[2]] = params[i] end
  return block:forward(x, t0, text, mask, H, W)
end

-- A (B, D) non-contiguous row of a (B, 3, D) tensor, as SANA's modulation rows.
local function row(t, k) return t:select(2, k) end

return {
  { name = "norm_modulate [2,37,70]",
    fn = function(x, sh, sc) return grove.norm_modulate(x, sh, sc, 1e-6) end,
    inputs = { { 2, 37, 70 }, { 2, 70 }, { 2, 70 } }, grad = true },
  { name = "norm_modulate [3,65,1152] shift/scale rows of a [3,3,1152] table",
    fn = function(x, m) return grove.norm_modulate(x, row(m, 1), row(m, 2), 1e-6) end,
    inputs = { { 3, 65, 1152 }, { 3, 3, 1152 } }, grad = true },
  { name = "norm_modulate transposed x [5,2,7] -> [2,5,7]",
    fn = function(x, sh, sc) return grove.norm_modulate(x:transpose(1, 2), sh, sc, 1e-5) end,
    inputs = { { 5, 2, 7 }, { 2, 7 }, { 2, 7 } }, grad = true },
  { name = "gated_residual [2,37,70]",
    fn = function(x, g, y) return grove.gated_residual(x, g, y) end,
    inputs = { { 2, 37, 70 }, { 2, 70 }, { 2, 37, 70 } }, grad = true },
  { name = "gated_residual [2,300,96] gate a row of a [2,3,96] table",
    fn = function(x, m, y) return grove.gated_residual(x, row(m, 3), y) end,
    inputs = { { 2, 300, 96 }, { 2, 3, 96 }, { 2, 300, 96 } }, grad = true },
  { name = "glu_silu [2,5,7,90]",
    fn = function(h) return grove.glu_silu(h) end,
    inputs = { { 2, 5, 7, 90 } }, grad = true },
  { name = "glu_silu [3,33,66] scaled to the tails of SiLU",
    fn = function(h) return grove.glu_silu(h * 6) end,
    inputs = { { 3, 33, 66 } }, grad = true },
  { name = "timestep_embedding [5] dim 256",
    fn = function(t) return grove.timestep_embedding(t, 256, 10000) end,
    inputs = { function() return grove.tensor { 0, 1, 37.5, 500, 999 } end }, grad = false },
  { name = "timestep_embedding strided [4] dim 33 (odd)",
    fn = function(t) return grove.timestep_embedding(t:select(2, 2), 33, 10000) end,
    inputs = { function() return grove.rand { 4, 3 } * 1000 end }, grad = false },
  { name = "SANA block forward+backward (width 64, 5x7 tokens, masked text)",
    fn = run_block, inputs = block_inputs, nograd = { [4] = true }, grad = true },
}
