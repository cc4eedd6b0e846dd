-- CAME (confidence-guided adaptive memory efficient optimization) and its
-- 8-bit variant, whose large factored first moments are kept as block-wise
-- quantized codes; registered as grove.optim.came and came8bit
-- (optim/kinds.lua, came8bit.lua).
local ffi = require "ffi"
local O = require "grove.optim.options"

return function(grove, optim)
  local C = grove.C
  local copy, tp, numel = optim.util.copy, optim.util.tp, optim.util.numel
  -- Parameters whose name matches one of these (Lua patterns) are tables:
  -- their rows mean different things, so they keep a full second moment.
  optim.table_patterns = { "scale_shift_table$", "y_embedding$" }

  local function is_table_name(name)
    if not name then return false end
    for _, pat in ipairs(optim.table_patterns) do
      if name:find(pat) then return true end
    end
    return false
  end

  -- "factored", rows, cols for matrices and 1×1 convs (out, in, 1, 1) seen as
  -- (out, in); "full" for vectors, tables, and k×k (e.g. depthwise) convs.
  function optim.came_rule(shape, name)
    if #shape == 2 and not is_table_name(name) then return "factored", shape[1], shape[2] end
    if #shape == 4 and shape[3] == 1 and shape[4] == 1 then return "factored", shape[1], shape[2] end
    return "full"
  end

  local came_spec = {
    lr = { 1e-4, O.nonneg },
    betas = { { 0.9, 0.999, 0.9999 }, O.betas(3) },
    eps = { { 1e-30, 1e-16 }, O.eps_list(2) },
    clip_threshold = { 1.0, O.positive },
    weight_decay = { 0, O.nonneg },
  }

  local quant_ids = { dynamic = C.GROVE_QUANT_DYNAMIC, affine = C.GROVE_QUANT_AFFINE }
  optim.quant_ids = quant_ids

  function optim.came_kind(name, eightbit)
    local spec = {}
    for k, v in pairs(came_spec) do spec[k] = v end
    if eightbit then
      spec.quant = { "affine", O.one_of { "dynamic", "affine" } }
      spec.block = { 256, O.integer(1) }
      spec.min_8bit_size = { 16384, O.integer(0) }
    end
    return {
      name = name,
      spec = spec,
      validate = function() end,
      layout = function(shape, pname, g)
        local rule, rows, cols = optim.came_rule(shape, pname)
        local n = numel(shape)
        local L = {}
        if rule == "factored" and eightbit and n > g.min_8bit_size then
          rule = "factored-8bit"
          local nb = math.ceil(n / g.block)
          L[1] = { "exp_avg_codes", { n }, "u8", "first_moment" }
          L[2] = { "exp_avg_scales", g.quant == "affine" and { nb, 2 } or { nb }, "f32", "scales" }
        else
          L[1] = { "exp_avg", copy(shape), "f32", "first_moment" }
        end
        if rows then
          L[#L + 1] = { "exp_avg_sq_row", { rows }, "f32", "second_moment" }
          L[#L + 1] = { "exp_avg_sq_col", { cols }, "f32", "second_moment" }
          L[#L + 1] = { "exp_avg_res_row", { rows }, "f32", "instability" }
          L[#L + 1] = { "exp_avg_res_col", { cols }, "f32", "instability" }
        else
          L[#L + 1] = { "exp_avg_sq", copy(shape), "f32", "second_moment" }
        end
        return rule, L
      end,
      -- The C view of a parameter's state; the tensors stay referenced by e.state.
      bind = function(e, g)
        local s, c = e.state, ffi.new("grove_came_state")
        c.exp_avg = tp(s.exp_avg)
        c.exp_avg_codes = tp(s.exp_avg_codes)
        c.exp_avg_scales = tp(s.exp_avg_scales)
        c.quant = quant_ids[g.quant or "affine"]
        c.block = g.block or 256
        c.exp_avg_sq = tp(s.exp_avg_sq)
        c.exp_avg_sq_row, c.exp_avg_sq_col = tp(s.exp_avg_sq_row), tp(s.exp_avg_sq_col)
        c.exp_avg_res_row, c.exp_avg_res_col = tp(s.exp_avg_res_row), tp(s.exp_avg_res_col)
        e.c = c
      end,
      c_options = function(g)
        return ffi.new("grove_came_options", { lr = g.lr, beta1 = g.betas[1], beta2 = g.betas[2], beta3 = g.betas[3],
                                               eps1 = g.eps[1], eps2 = g.eps[2], clip_threshold = g.clip_threshold,
                                               weight_decay = g.weight_decay })
      end,
      step = function(e, p, o) return C.grove_came_step(p, p.grad, e.c, o) end,
    }
  end

  return optim.came_kind("came", false)
end
