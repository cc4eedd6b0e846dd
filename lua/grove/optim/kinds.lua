-- The optimizers' definitions: options with defaults, the state each
-- parameter gets (its layout, also used to count bytes from shapes alone),
-- and the C call that updates one parameter.
--
-- A layout is a list of {key, shape, dtype, kind}: kind is what the bytes
-- are for (first_moment, second_moment, instability, scales, momentum).
local ffi = require "ffi"
local O = require "grove.optim.options"

return function(grove, optim)
  local C = grove.C
  local kinds = {}

  local function numel(shape)
    local n = 1
    for _, s in ipairs(shape) do n = n * s end
    return n
  end

  local function copy(shape)
    local out = {}
    for i, s in ipairs(shape) do out[i] = s end
    return out
  end

  local function tp(t) return t and t.p or nil end

  -- ---- SGD (torch.optim.SGD) -------------------------------------------------
  kinds.sgd = {
    name = "sgd",
    spec = {
      lr = { 1e-3, O.nonneg },
      momentum = { 0, O.nonneg },
      dampening = { 0, O.unit },
      weight_decay = { 0, O.nonneg },
      nesterov = { false, O.boolean },
    },
    validate = function(op, g)
      if g.nesterov and (g.momentum <= 0 or g.dampening ~= 0) then
        O.fail(op, "nesterov needs momentum > 0 and dampening 0 (momentum " .. g.momentum .. ", dampening " .. g.dampening .. ")")
      end
    end,
    layout = function(shape, _, g)
      if g.momentum > 0 then return "sgd", { { "momentum_buffer", copy(shape), "f32", "momentum" } } end
      return "sgd", {}
    end,
    bind = function() end,
    c_options = function(g)
      return ffi.new("grove_sgd_options", { lr = g.lr, momentum = g.momentum, dampening = g.dampening,
                                             weight_decay = g.weight_decay, nesterov = g.nesterov and 1 or 0 })
    end,
    step = function(e, p, o)
      return C.grove_sgd_step(p, p.grad, tp(e.state.momentum_buffer), o, e.step)
    end,
  }

  -- ---- AdamW (torch.optim.AdamW) ---------------------------------------------
  kinds.adamw = {
    name = "adamw",
    spec = {
      lr = { 1e-3, O.nonneg },
      betas = { { 0.9, 0.999 }, O.betas(2) },
      eps = { 1e-8, O.nonneg },
      weight_decay = { 1e-2, O.nonneg },
    },
    validate = function() end,
    layout = function(shape)
      return "adamw", { { "exp_avg", copy(shape), "f32", "first_moment" },
                        { "exp_avg_sq", copy(shape), "f32", "second_moment" } }
    end,
    bind = function() end,
    c_options = function(g)
      return ffi.new("grove_adamw_options", { lr = g.lr, beta1 = g.betas[1], beta2 = g.betas[2], eps = g.eps,
                                               weight_decay = g.weight_decay })
    end,
    step = function(e, p, o)
      return C.grove_adamw_step(p, p.grad, e.state.exp_avg.p, e.state.exp_avg_sq.p, o, e.step)
    end,
    -- every due parameter of a group in one kernel call (on CUDA, one launch
    -- per 32 tensors); returns nil, or the index of the parameter at fault
    step_group = function(entries, o)
      local n = #entries
      local ps, gs = ffi.new("grove_tensor *[?]", n), ffi.new("grove_tensor *[?]", n)
      local ms, vs = ffi.new("grove_tensor *[?]", n), ffi.new("grove_tensor *[?]", n)
      local steps, failed = ffi.new("int64_t[?]", n), ffi.new("int32_t[1]")
      for i, e in ipairs(entries) do
        local p = e.param.p
        ps[i - 1], gs[i - 1], steps[i - 1] = p, p.grad, e.step
        ms[i - 1], vs[i - 1] = e.state.exp_avg.p, e.state.exp_avg_sq.p
      end
      if C.grove_adamw_step_group(n, ps, gs, ms, vs, o, steps, failed) == 0 then return nil end
      return failed[0] >= 0 and failed[0] + 1 or 0
    end,
  }

  -- ---- CAME and CAME-8bit ----------------------------------------------------
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

  local quant_ids = { dynamic = 0, affine = 1 }
  optim.quant_ids = quant_ids

  local function came_kind(name, eightbit)
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

  kinds.came = came_kind("came", false)
  kinds.came8bit = came_kind("came8bit", true)

  return kinds
end
