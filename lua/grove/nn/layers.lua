-- The layers SANA is built from. Each takes a parameter factory `make`
-- (see nn/init.lua) so a model can be built for real, seeded, or as shapes
-- only (meta) without allocating.
local Module = require "grove.nn.module"

return function(grove)
  local layers = {}

  -- y = x·Wᵀ + b, W (out, in).
  local Linear = Module.class("Linear")
  function Linear:init(make, n_in, n_out, opts)
    opts = opts or {}
    self:add_parameter("weight", make({ n_out, n_in }, opts.init or "xavier"))
    if opts.bias ~= false then self:add_parameter("bias", make({ n_out }, "zeros")) end
  end
  -- compute_dtype "bf16" (Module:to(device, "bf16")): the GEMM rounds its
  -- inputs to bf16 and sums in f32 (grove.linear_bf16, docs/scale.md).
  function Linear:forward(x)
    if self.compute_dtype == "bf16" then return grove.linear_bf16(x, self.weight, self.bias) end
    return x:linear(self.weight, self.bias)
  end
  layers.Linear = Linear

  -- RMSNorm over the last dimension with a learnable elementwise weight.
  local RMSNorm = Module.class("RMSNorm")
  function RMSNorm:init(make, dim, eps, init)
    self.eps = eps or 1e-5
    self:add_parameter("weight", make({ dim }, init or "ones"))
  end
  function RMSNorm:forward(x) return x:rms_norm(self.weight, self.eps) end
  layers.RMSNorm = RMSNorm

  -- A convolution with a PyTorch-layout weight (out, in/groups, k, k) on
  -- NHWC grids. 1×1 ones run as a Linear over tokens (no grid needed).
  local Conv2d = Module.class("Conv2d")
  function Conv2d:init(make, n_in, n_out, k, opts)
    opts = opts or {}
    self.k, self.groups, self.padding = k, opts.groups or 1, opts.padding or 0
    self:add_parameter("weight", make({ n_out, n_in / self.groups, k, k }, opts.init or "xavier"))
    if opts.bias ~= false then self:add_parameter("bias", make({ n_out }, opts.bias_init or "zeros")) end
  end
  -- x: tokens (..., in) for 1×1, a grid (B, H, W, C) otherwise.
  function Conv2d:forward(x)
    if self.k == 1 and self.groups == 1 then
      local w = self.weight
      w = w:view{ w:size(1), w:size(2) }
      if self.compute_dtype == "bf16" then return grove.linear_bf16(x, w, self.bias) end
      return x:linear(w, self.bias)
    end
    return x:conv2d(self.weight, self.bias, { padding = self.padding, groups = self.groups })
  end
  layers.Conv2d = Conv2d

  -- A module that only groups children under a name (diffusers' `to_out.0`).
  local Container = Module.class("Container")
  function Container:init(children)
    for _, c in ipairs(children or {}) do self:add_module(c[1], c[2]) end
  end
  layers.Container = Container

  return layers
end
