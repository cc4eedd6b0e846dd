-- The layers SANA is built from. Each takes a parameter factory `make`
-- (see nn/init.lua) so a model can be built for real, seeded, or as shapes
-- only (meta) without allocating.
local Module = require "grove.nn.module"

return function(grove)
  local layers = {}

  -- Weights kept in their stored dtype (bf16/f16 from a diffusers folder)
  -- are computed in f32: each use converts the tensor exactly, and the copy
  -- is freed as soon as the op is done with it (unless the tape keeps it for
  -- a backward), so the model is never held twice in memory.
  local function f32(w)
    if w == nil or w.p.dtype == 0 then return w, false end
    return w:to("f32"), true
  end
  local function drop(w, converted, out)
    if converted and (not grove.is_grad_enabled() or out == nil or out.p.grad_fn == nil) then w:free() end
    return out
  end
  layers.f32, layers.drop_f32 = f32, drop

  -- A weight for grove.linear_bf16: f32 and bf16 are read as stored (a
  -- bf16-stored weight needs no rounding pass), f16 is converted as f32 is.
  local function bf16_operand(w)
    if w.p.dtype == grove.C.GROVE_BF16 then return w, false end
    return f32(w)
  end
  layers.bf16_operand = bf16_operand

  -- y = x·Wᵀ + b, W (out, in).
  local Linear = Module.class("Linear")
  function Linear:init(make, n_in, n_out, opts)
    opts = opts or {}
    self:add_parameter("weight", make({ n_out, n_in }, opts.init or "xavier"))
    if opts.bias ~= false then self:add_parameter("bias", make({ n_out }, "zeros")) end
  end
  -- compute_dtype "bf16" (Module:to(device, "bf16")): the GEMM rounds its
  -- inputs to bf16 and sums in f32 (grove.linear_bf16, docs/scale.md); a
  -- weight stored bf16 (Module:to's weights = "bf16") is read as stored.
  function Linear:forward(x)
    local bf16 = self.compute_dtype == "bf16"
    local w, cw = (bf16 and bf16_operand or f32)(self.weight)
    local b, cb = f32(self.bias)
    local y
    if bf16 then y = grove.linear_bf16(x, w, b) else y = x:linear(w, b) end
    drop(w, cw, y); drop(b, cb, y)
    return y
  end
  function Linear:gemm_weight_names() return { "weight" } end
  layers.Linear = Linear

  -- RMSNorm over the last dimension with a learnable elementwise weight.
  local RMSNorm = Module.class("RMSNorm")
  -- RMSNorm(make, dim, eps, init) or RMSNorm(make, dim, {eps =, init =})
  function RMSNorm:init(make, dim, eps, init)
    if type(eps) == "table" then eps, init = eps.eps, eps.init end
    self.eps = eps or grove.norm_eps.rms
    self:add_parameter("weight", make({ dim }, init or "ones"))
  end
  function RMSNorm:forward(x)
    local w, cw = f32(self.weight)
    return drop(w, cw, x:rms_norm(w, self.eps))
  end
  layers.RMSNorm = RMSNorm

  -- LayerNorm over the last dimension with an elementwise weight and bias
  -- (torch.nn.LayerNorm with elementwise_affine).
  local LayerNorm = Module.class("LayerNorm")
  -- LayerNorm(make, dim, eps) or LayerNorm(make, dim, {eps =})
  function LayerNorm:init(make, dim, eps)
    if type(eps) == "table" then eps = eps.eps end
    self.eps = eps or grove.norm_eps.layer
    self:add_parameter("weight", make({ dim }, "ones"))
    self:add_parameter("bias", make({ dim }, "zeros"))
  end
  function LayerNorm:forward(x)
    local w, cw = f32(self.weight)
    local b, cb = f32(self.bias)
    local y = x:layer_norm(w, b, self.eps)
    drop(w, cw, y); drop(b, cb, y)
    return y
  end
  layers.LayerNorm = LayerNorm

  -- A convolution with a PyTorch-layout weight (out, in/groups, kh, kw) on
  -- NHWC grids; k is a side or { kh, kw }; opts: groups, padding, stride
  -- (default 1, 0, 1), bias (false: none). 1×1 ones with stride 1 and no
  -- padding run as a Linear over tokens (no grid needed).
  local Conv2d = Module.class("Conv2d")
  function Conv2d:init(make, n_in, n_out, k, opts)
    opts = opts or {}
    local kh, kw = k, k
    if type(k) == "table" then kh, kw = k[1], k[2] end
    self.k, self.groups, self.padding, self.stride = kh, opts.groups or 1, opts.padding or 0, opts.stride or 1
    self.pointwise = kh == 1 and kw == 1 and self.groups == 1 and self.stride == 1 and self.padding == 0
    self:add_parameter("weight", make({ n_out, n_in / self.groups, kh, kw }, opts.init or "xavier"))
    if opts.bias ~= false then self:add_parameter("bias", make({ n_out }, opts.bias_init or "zeros")) end
  end
  -- x: tokens (..., in) for a pointwise 1×1, a grid (B, H, W, C) otherwise.
  function Conv2d:forward(x)
    local bf16 = self.pointwise and self.compute_dtype == "bf16"
    local w, cw = (bf16 and bf16_operand or f32)(self.weight)
    local b, cb = f32(self.bias)
    local y
    if self.pointwise then
      local w2 = w:view{ w:size(1), w:size(2) }
      if bf16 then y = grove.linear_bf16(x, w2, b) else y = x:linear(w2, b) end
    else
      -- bf16: the convolutions with dense products (grove.conv2d_bf16); a
      -- depthwise one (a product per tap and channel) stays f32
      local o = { stride = self.stride, padding = self.padding, groups = self.groups }
      local depthwise = self.groups == w:size(1) and w:size(2) == 1
      if self.compute_dtype == "bf16" and not depthwise then y = x:conv2d_bf16(w, b, o) else y = x:conv2d(w, b, o) end
    end
    drop(w, cw, y); drop(b, cb, y)
    return y
  end
  function Conv2d:gemm_weight_names() return self.pointwise and { "weight" } or {} end
  layers.Conv2d = Conv2d

  -- A module that only groups children under a name (diffusers' `to_out.0`).
  local Container = Module.class("Container")
  function Container:init(children)
    for _, c in ipairs(children or {}) do self:add_module(c[1], c[2]) end
  end
  layers.Container = Container

  return layers
end
