-- AdamW (torch.optim.AdamW), with a one-kernel step over a whole group;
-- registered as grove.optim.adamw (optim/kinds.lua).
local ffi = require "ffi"
local O = require "grove.optim.options"

return function(grove, optim)
  local C = grove.C
  local copy, tp = optim.util.copy, optim.util.tp
  return {
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
end
