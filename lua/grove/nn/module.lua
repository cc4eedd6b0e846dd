-- Modules as Torch7's nn had them: objects holding named parameters and
-- child modules in registration order, with a forward. Names are joined with
-- "." and follow PyTorch's state-dict naming, so checkpoints map 1:1.
local Module = {}
Module.__index = Module

-- A new class inheriting from parent (default Module); instances are made by
-- calling the class: Linear(4, 3).
function Module.class(name, parent)
  parent = parent or Module
  local cls = setmetatable({}, { __index = parent, __call = function(c, ...)
    local self = setmetatable({ _param_names = {}, _child_names = {}, training = true }, c)
    c.init(self, ...)
    return self
  end })
  cls.__index = cls
  cls.__name = name
  cls.__tostring = function(m) return m:describe() end
  return cls
end

function Module:init() end

function Module:add_parameter(name, tensor)
  if self[name] == nil or not self._param_names[name] then
    self._param_names[#self._param_names + 1] = name
    self._param_names[name] = true
  end
  self[name] = tensor
  return tensor
end

function Module:add_module(name, module)
  if not self._child_names[name] then
    self._child_names[#self._child_names + 1] = name
    self._child_names[name] = true
  end
  self[name] = module
  return module
end

-- The children in order as {name, module} pairs. Classes whose children
-- live in plain Lua lists (a model's blocks) override this, so that names
-- follow the list's current order.
function Module:children()
  local out = {}
  for _, name in ipairs(self._child_names) do out[#out + 1] = { name, self[name] } end
  return out
end

-- {name, tensor} pairs in a fixed order: own parameters, then children's.
function Module:named_parameters(prefix, out)
  prefix, out = prefix or "", out or {}
  for _, name in ipairs(self._param_names) do
    if self[name] ~= nil then out[#out + 1] = { prefix .. name, self[name] } end
  end
  for _, c in ipairs(self:children()) do
    c[2]:named_parameters(prefix .. c[1] .. ".", out)
  end
  return out
end

function Module:parameters()
  local out = {}
  for i, np in ipairs(self:named_parameters()) do out[i] = np[2] end
  return out
end

function Module:num_parameters()
  local n = 0
  for _, np in ipairs(self:named_parameters()) do n = n + np[2]:numel() end
  return n
end

function Module:state_dict()
  local out = {}
  for _, np in ipairs(self:named_parameters()) do out[np[1]] = np[2] end
  return out
end

function Module:train(on)
  if on == nil then on = true end
  self.training = on
  for _, c in ipairs(self:children()) do c[2]:train(on) end
  return self
end

function Module:eval() return self:train(false) end

function Module:zero_grad()
  for _, p in ipairs(self:parameters()) do p:zero_grad() end
end

-- Points the Lua tensor t at src's storage (a reference of its own), so
-- that everything holding t sees src's data: how to() and
-- store_gemm_weights replace a parameter in place and keep ties tied.
local function rebind(t, src)
  local C = package.loaded.grove.C
  C.grove_tensor_retain(src.p)
  local old = t.p
  t.p = src.p
  C.grove_tensor_release(old)
end

-- Moves every parameter and buffer (any other tensor field) of this module
-- and its children to device ("cpu" or "cuda") in place: each field keeps
-- its Lua tensor, which now holds the copy on device (requires_grad and
-- .grad come along), so whatever refers to the parameters (an optimizer,
-- an EMA) refers to the moved ones. Returns the module. An optimizer's
-- state follows its parameters (grove.optim: Optimizer:to).
--
-- module:to(device, "bf16") (or "f32") also sets the compute dtype of every
-- module (Module:set_compute_dtype): the parameters stay f32, and are the
-- master weights the optimizer updates.
--
-- module:to(device, "bf16", { weights = "bf16" }) also stores the weights
-- the GEMMs read (Module:gemm_weight_names: a Linear's, a 1×1 Conv2d's) as
-- bf16, for inference: half their memory and no rounding pass per call,
-- with the same outputs bit for bit as f32 weights computed in bf16 (the
-- GEMM rounds an f32 weight to exactly the stored bf16 value). bf16 tensors
-- take no gradient and the optimizers refuse them: training keeps the f32
-- weights. { weights = "f32" } widens them back (exactly; what rounding
-- took is not restored), as leaves that do not require gradients.
function Module:to(device, _seen, opts)
  if type(_seen) == "string" then
    self:to(device):set_compute_dtype(_seen)
    if opts ~= nil then
      if type(opts) ~= "table" then error("to: options must be a table, got " .. type(opts), 2) end
      local w = opts.weights
      if w ~= nil and w ~= "bf16" and w ~= "f32" then
        error("to: weights must be \"bf16\" or \"f32\", got " .. tostring(w), 2)
      end
      if w ~= nil then self:store_gemm_weights(w) end
    end
    return self
  end
  local grove = package.loaded.grove
  local ffi = require "ffi"
  -- Keyed by the C tensor, so two handles of one tied tensor stay one tensor.
  local seen = _seen or {}
  local dev = grove._device_id(device, "to")
  for k, v in pairs(self) do
    if type(k) == "string" and grove.is_tensor(v) and v.p ~= nil and v.p.device ~= dev
      and not grove.C.grove_tensor_is_freed(v.p) then
      local key = tonumber(ffi.cast("intptr_t", v.p))
      local moved = seen[key]
      if moved == nil then
        v:to_(device)
        seen[key] = v
      elseif moved ~= v and moved.p ~= v.p then
        rebind(v, moved)
      end
    end
  end
  for _, c in ipairs(self:children()) do c[2]:to(device, seen) end
  return self
end
-- "bf16": the GEMMs of Linear and 1×1 Conv2d layers round their inputs to
-- bf16 and sum in f32; everything else (norms, attention sums, residuals,
-- losses, gradients, optimizer state) stays f32. "f32" turns it off.
function Module:set_compute_dtype(dtype)
  if dtype ~= "bf16" and dtype ~= "f32" then
    error("to: compute dtype must be \"bf16\" or \"f32\", got " .. tostring(dtype), 2)
  end
  self.compute_dtype = dtype ~= "f32" and dtype or nil
  for _, c in ipairs(self:children()) do c[2]:set_compute_dtype(dtype) end
  return self
end
-- The names of this module's own parameters that its GEMMs read (and that
-- Module:to(device, "bf16", { weights = "bf16" }) stores as bf16): the
-- field gemm_weights, or none. Linear and 1×1 Conv2d name their weight.
function Module:gemm_weight_names() return self.gemm_weights or {} end

-- Converts every module's GEMM weights (Module:gemm_weight_names) to dtype
-- ("bf16" or "f32") in place: each keeps its Lua tensor (a tied tensor
-- stays one tensor). Returns the module.
function Module:store_gemm_weights(dtype, _seen)
  local grove = package.loaded.grove
  local ffi = require "ffi"
  local seen = _seen or {}
  for _, name in ipairs(self:gemm_weight_names()) do
    local w = self[name]
    if grove.is_tensor(w) and w.p ~= nil and w:dtype() ~= dtype and not grove.C.grove_tensor_is_freed(w.p) then
      local key = tonumber(ffi.cast("intptr_t", w.p))
      local done = seen[key]
      if done == nil then
        local c = grove.no_grad(function() return w:detach():to(dtype) end)
        rebind(w, c)
        seen[key] = w
      elseif done ~= w then
        rebind(w, done)
      end
    end
  end
  for _, c in ipairs(self:children()) do c[2]:store_gemm_weights(dtype, seen) end
  return self
end
function Module:cuda() return self:to("cuda") end
function Module:cpu() return self:to("cpu") end

function Module:describe()
  return string.format("%s (%d parameters)", self.__name or "Module", self:num_parameters())
end

return Module
