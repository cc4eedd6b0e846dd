-- Mixed precision (docs/scale.md).
--
-- bf16: model:to(device, "bf16") keeps every parameter f32 (the master
-- weights, which the optimizer updates with f32 state) and makes the GEMMs
-- of Linear and 1×1 Conv2d layers round their inputs to bf16 and sum in f32
-- (grove.matmul_bf16: cublasGemmEx with bf16 inputs and CUBLAS_COMPUTE_32F
-- on CUDA, its reference on the CPU). Norms, the linear-attention sums,
-- softmax, residuals, the loss and all gradients stay f32. bf16 has f32's
-- exponent range, so it needs no loss scaling.
--
-- f16 has a narrow exponent range: small gradients underflow. A dynamic
-- loss scaler multiplies the loss by `scale` before backward, divides the
-- gradients by it before the step, and skips the step (halving the scale)
-- when any gradient is inf or NaN; after `growth_interval` good steps in a
-- row the scale doubles.
--
--   local scaler = grove.amp.LossScaler { init_scale = 2^16 }
--   scaler:scale(loss):backward()
--   local stepped = scaler:step(opt, params)   -- unscale, check, step or skip
local ffi = require "ffi"

return function(grove)
  local C = grove.C
  local amp = {}
  grove.amp = amp

  -- a (m, k) · b (k, n): operands rounded to bf16, products summed in f32.
  -- Either operand may be a transposed or row-strided view (read in place,
  -- no copy) and may be stored f32 or bf16 (bf16 is read as stored: the
  -- same result as the f32 tensor it was rounded from).
  function grove.matmul_bf16(a, b)
    if not grove.is_tensor(a) or not grove.is_tensor(b) then error("matmul_bf16: expected two tensors", 2) end
    local p = C.grove_matmul_bf16(a.p, b.p)
    if p == nil then grove.fail() end
    return grove._wrap(p)
  end

  -- x (..., in) · w (out, in)ᵀ + b with the product as grove.matmul_bf16;
  -- w is read transposed where it lies (f32, or bf16 for an inference
  -- model's stored weights), never copied.
  function grove.linear_bf16(x, w, b)
    local shp = x:shape()
    local n_in = shp[#shp]
    local y = grove.matmul_bf16(x:reshape { -1, n_in }, w:t())
    if b ~= nil then y = y + b end
    shp[#shp] = w:size(1)
    return y:reshape(shp)
  end

  -- x rounded to bf16 and back (round to nearest, ties to even).
  function amp.round_bf16(x) return grove.no_grad(function() return x:to("bf16"):to("f32") end) end
  function amp.round_f16(x) return grove.no_grad(function() return x:to("f16"):to("f32") end) end

  local LossScaler = {}
  LossScaler.__index = LossScaler
  amp.LossScaler = LossScaler

  -- opts: init_scale (2^16), growth_factor (2), backoff_factor (0.5),
  -- growth_interval (2000 good steps), min_scale (1), max_scale (2^24).
  function amp.loss_scaler(opts)
    opts = opts or {}
    local self = setmetatable({
      scale_value = opts.init_scale or 65536, growth_factor = opts.growth_factor or 2,
      backoff_factor = opts.backoff_factor or 0.5, growth_interval = opts.growth_interval or 2000,
      min_scale = opts.min_scale or 1, max_scale = opts.max_scale or 2 ^ 24,
      good_steps = 0, skipped = 0, steps = 0,
    }, LossScaler)
    if self.scale_value <= 0 or self.growth_factor <= 1 or self.backoff_factor <= 0 or self.backoff_factor >= 1
      or self.growth_interval < 1 then
      error("LossScaler: need init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1, growth_interval >= 1", 2)
    end
    return self
  end
  setmetatable(LossScaler, { __call = function(_, opts) return amp.loss_scaler(opts) end })

  function LossScaler:scale(loss) return loss * self.scale_value end
  function LossScaler:get_scale() return self.scale_value end

  -- Divides every gradient by the scale; returns true when all are finite.
  function LossScaler:unscale(params)
    local inv = 1 / self.scale_value
    local finite = true
    grove.no_grad(function()
      for _, p in ipairs(params) do
        local g = p.grad
        if g then
          local s = g:mul(g):sum():item() -- inf or NaN anywhere makes the sum so
          if s ~= s or s == math.huge or s == -math.huge then finite = false end
          p.grad = g * inv
        end
      end
    end)
    return finite
  end

  -- Unscales, then steps opt when every gradient is finite; otherwise
  -- drops the gradients, skips the step and backs the scale off. Updates
  -- the scale either way. Returns true when the optimizer stepped.
  function LossScaler:step(opt, params)
    params = params or (opt.param_groups and (function()
      local out = {}
      for _, g in ipairs(opt.param_groups) do for _, p in ipairs(g.params) do out[#out + 1] = p end end
      return out
    end)())
    self.steps = self.steps + 1
    local ok = self:unscale(params)
    if ok then
      opt:step()
      self.good_steps = self.good_steps + 1
      if self.good_steps >= self.growth_interval then
        self.scale_value = math.min(self.max_scale, self.scale_value * self.growth_factor)
        self.good_steps = 0
      end
    else
      for _, p in ipairs(params) do p:zero_grad() end
      self.skipped = self.skipped + 1
      self.good_steps = 0
      self.scale_value = math.max(self.min_scale, self.scale_value * self.backoff_factor)
    end
    return ok
  end

  function LossScaler:state_dict()
    return { scale = self.scale_value, good_steps = self.good_steps, skipped = self.skipped, steps = self.steps }
  end
  function LossScaler:load_state_dict(s)
    self.scale_value, self.good_steps = s.scale, s.good_steps or 0
    self.skipped, self.steps = s.skipped or 0, s.steps or 0
  end
end
