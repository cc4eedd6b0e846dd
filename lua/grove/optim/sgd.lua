-- SGD with momentum, dampening, Nesterov and weight decay (torch.optim.SGD);
-- registered as grove.optim.sgd (optim/kinds.lua).
local ffi = require "ffi"
local O = require "grove.optim.options"

return function(grove, optim)
  local C = grove.C
  local copy, tp = optim.util.copy, optim.util.tp
  return {
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
end
