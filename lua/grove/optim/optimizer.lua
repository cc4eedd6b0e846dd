-- Optimizer objects over parameter lists, as in Torch7 and PyTorch: the
-- object holds the parameter groups, their options, the step counts and the
-- state tensors; C updates one parameter per call (core/optim/).
--
--   opt = grove.optim.came(params_or_groups, options)
--   opt:zero_grad(); loss:backward(); opt:step()
--
-- params_or_groups: a model (anything with :named_parameters()), a list of
-- tensors, a list of {name, tensor} pairs, or a list of groups
-- {params = <one of those lists>, <option> = value, ...}. Group options
-- override the optimizer's, which override the defaults. Names key the
-- state dict; unnamed parameters are called "params.<k>" (k counts across
-- groups from 1). Shape-only parameters (grove.nn.Sana(..., {meta = true}))
-- give an optimizer that allocates nothing and only counts state bytes.
-- State is allocated when the optimizer is built for every parameter that
-- requires a gradient, and at its first update for one that does not yet
-- (a frozen encoder costs no state until it is unfrozen).
--
-- Devices: a parameter's state lives on the parameter's device. It is
-- allocated there; opt:to(device) moves all of it (do it with
-- model:to(device), which moves the parameters in place, so the optimizer
-- keeps referring to them); and step() moves the state of a parameter found
-- on another device than its state before updating it, so a model and its
-- optimizer always move together.
local ffi = require "ffi"
local O = require "grove.optim.options"

return function(grove, optim, kinds)
  local C = grove.C
  local Optimizer = {}
  Optimizer.__index = Optimizer
  optim.Optimizer = Optimizer

  local FORMAT = "1"
  local function dtype_size(name) return tonumber(C.grove_dtype_size(grove.dtypes[name])) end
  local byte_kinds = { "first_moment", "second_moment", "instability", "scales", "momentum" }

  -- Runs fn(...) and re-raises its error at the public function's caller.
  local function at_caller(fn, ...)
    local r = { pcall(fn, ...) }
    if not r[1] then error(r[2], 3) end
    return unpack(r, 2, table.maxn(r))
  end
  optim._at_caller = at_caller

  local function is_meta(x) return grove.nn ~= nil and grove.nn.is_meta ~= nil and grove.nn.is_meta(x) end
  local function is_param(x) return grove.is_tensor(x) or is_meta(x) end

  local function numel(shape)
    local n = 1
    for _, s in ipairs(shape) do n = n * s end
    return n
  end

  local function shape_str(s) return "[" .. table.concat(s, ",") .. "]" end

  -- A model, a parameter list or a {name, tensor} list → {{name=, param=}}.
  local function read_params(op, list, where)
    if type(list) == "table" and type(list.named_parameters) == "function" then list = list:named_parameters() end
    if type(list) ~= "table" then O.fail(op, where .. " must be a list of tensors or {name, tensor} pairs, got " .. type(list)) end
    local out = {}
    for i = 1, #list do
      local e = list[i]
      if is_param(e) then
        out[i] = { param = e }
      elseif type(e) == "table" and type(e[1]) == "string" and is_param(e[2]) then
        out[i] = { name = e[1], param = e[2] }
      else
        O.fail(op, where .. " entry " .. i .. " is neither a tensor nor a {name, tensor} pair")
      end
    end
    return out
  end

  local function is_group_list(list)
    return type(list) == "table" and type(list.named_parameters) ~= "function" and type(list[1]) == "table"
      and not is_param(list[1]) and list[1].params ~= nil
  end

  local function deep_copy(v)
    if type(v) ~= "table" then return v end
    local out = {}
    for k, x in pairs(v) do out[k] = x end
    return out
  end

  local function identity(p)
    if is_meta(p) then return p end
    return tonumber(ffi.cast("intptr_t", p.p))
  end

  -- Zeroed state tensors for one parameter, on its device, and their C view.
  local function allocate(e)
    local on_cuda = e.param:device() ~= "cpu"
    for _, l in ipairs(e.layout) do
      local t = grove.zeros(l[2], { dtype = l[3] })
      e.state[l[1]] = on_cuda and t:cuda() or t
    end
    e.allocated = true
    e.group._kind.bind(e, e.group)
  end

  -- Moves one parameter's state in place and rebinds its C view.
  local function move_state(e, device)
    for _, l in ipairs(e.layout) do
      local t = e.state[l[1]]
      if t ~= nil then t:to_(device) end
    end
    e.group._kind.bind(e, e.group)
  end

  local function state_device(e)
    for _, l in ipairs(e.layout) do
      local t = e.state[l[1]]
      if t ~= nil then return t.p.device end
    end
    return nil
  end

  local function build(kind, params, options)
    local op = kind.name
    local spec = kind.spec
    if type(params) ~= "table" then O.fail(op, "expected a model, a parameter list or a list of groups, got " .. type(params)) end
    local base = O.check(op, spec, options)
    local raw_groups
    if is_group_list(params) then
      raw_groups = params
    else
      raw_groups = { { params = params } }
    end
    local self = setmetatable({ kind = kind, param_groups = {}, entries = {}, steps = 0, meta = false }, Optimizer)
    local seen, names = {}, {}
    for gi, rg in ipairs(raw_groups) do
      if type(rg) ~= "table" or rg.params == nil then O.fail(op, "group " .. gi .. " has no params") end
      local gopts = O.check(op, spec, rg, { params = true })
      local g = { params = {}, names = {}, _entries = {}, _kind = kind }
      for k, s in pairs(spec) do
        local v = gopts[k]
        if v == nil then v = base[k] end
        if v == nil then v = s[1] end
        g[k] = deep_copy(v)
      end
      kind.validate(op, g)
      g._base_lr = g.lr     -- what schedules scale (loading a state changes g.lr, not this)
      local plist = read_params(op, rg.params, "group " .. gi .. " params")
      for _, pe in ipairs(plist) do
        local k = #self.entries + 1
        local name = pe.name or ("params." .. k)
        local id = identity(pe.param)
        if seen[id] then O.fail(op, "parameter '" .. name .. "' appears twice (also as '" .. seen[id] .. "')") end
        if names[name] then O.fail(op, "two parameters are named '" .. name .. "'") end
        seen[id], names[name] = name, true
        if is_meta(pe.param) then self.meta = true end
        local e = { param = pe.param, name = name, group = g, step = 0, state = {} }
        e.rule, e.layout = kind.layout(pe.param:shape(), name, g)
        self.entries[k] = e
        g._entries[#g._entries + 1] = e
        g.params[#g.params + 1] = pe.param
        g.names[#g.names + 1] = name
      end
      self.param_groups[gi] = g
    end
    if self.meta then
      for _, e in ipairs(self.entries) do
        if not is_meta(e.param) then O.fail(op, "mixes shape-only (meta) and real parameters") end
      end
    else
      for _, e in ipairs(self.entries) do
        if e.param:dtype() ~= "f32" then O.fail(op, "parameter '" .. e.name .. "' is " .. e.param:dtype() .. ", expected f32") end
        if e.param.requires_grad then allocate(e) end
      end
    end
    return self
  end

  optim._build = build

  -- One update of every parameter that has a gradient.
  function Optimizer:step()
    local kind = self.kind
    if self.meta then error(kind.name .. ": step: this optimizer was built over shape-only (meta) parameters", 2) end
    self.steps = self.steps + 1
    for _, g in ipairs(self.param_groups) do
      local o = kind.c_options(g)
      -- the parameters with a gradient, their state where they are
      local due = {}
      for _, e in ipairs(g._entries) do
        local p = e.param.p
        if p.grad ~= nil then
          if not e.allocated then allocate(e)
          elseif state_device(e) ~= nil and state_device(e) ~= p.device then move_state(e, e.param:device()) end
          due[#due + 1] = e
        end
      end
      for _, e in ipairs(due) do e.step = e.step + 1 end
      -- one kernel call for the group where the kind has one (and its
      -- parameters share a device), else one per parameter
      local same_device = true
      for i = 2, #due do same_device = same_device and due[i].param.p.device == due[1].param.p.device end
      if kind.step_group and #due > 1 and same_device then
        local failed = kind.step_group(due, o)
        if failed then
          for _, e in ipairs(due) do e.step = e.step - 1 end
          error(grove.c_error() .. (due[failed] and (" (parameter '" .. due[failed].name .. "')") or ""), 2)
        end
      else
        for i, e in ipairs(due) do
          if kind.step(e, e.param.p, o) ~= 0 then
            for j = i, #due do due[j].step = due[j].step - 1 end
            error(grove.c_error() .. " (parameter '" .. e.name .. "')", 2)
          end
        end
      end
    end
  end

  -- Moves all allocated state to device ("cpu" or "cuda") in place; returns
  -- the optimizer. (step() also moves a parameter's state to wherever the
  -- parameter is.)
  function Optimizer:to(device)
    if self.meta then return self end
    grove._device_id(device, self.kind.name .. ": to")
    for _, e in ipairs(self.entries) do
      if e.allocated then at_caller(move_state, e, device) end
    end
    return self
  end

  -- Drops every parameter's gradient (as torch's zero_grad(set_to_none=True)).
  function Optimizer:zero_grad()
    if self.meta then return end
    for _, e in ipairs(self.entries) do C.grove_zero_grad(e.param.p) end
  end

  -- Exact bytes of optimizer state, by kind, plus the parameter count:
  -- the state allocated now (for a shape-only optimizer, all of it as it
  -- would be); `unallocated` counts that of parameters not updated yet
  -- that did not require a gradient when the optimizer was built.
  function Optimizer:state_bytes()
    local r = { total = 0, params = 0, unallocated = 0 }
    for _, k in ipairs(byte_kinds) do r[k] = 0 end
    for _, e in ipairs(self.entries) do
      r.params = r.params + e.param:numel()
      for _, l in ipairs(e.layout) do
        local b = numel(l[2]) * dtype_size(l[3])
        if self.meta or e.allocated then
          r[l[4]] = r[l[4]] + b
          r.total = r.total + b
        else
          r.unallocated = r.unallocated + b
        end
      end
    end
    r.per_param = r.params > 0 and r.total / r.params or 0
    return r
  end

  -- name → the update rule applied to that parameter.
  function Optimizer:rules()
    local out = {}
    for _, e in ipairs(self.entries) do out[e.name] = e.rule end
    return out
  end

  -- The parameter names in order.
  function Optimizer:names()
    local out = {}
    for i, e in ipairs(self.entries) do out[i] = e.name end
    return out
  end

  -- The state tensors of one parameter (by name), keyed by state name
  -- (empty until allocated).
  function Optimizer:state_of(name)
    for _, e in ipairs(self.entries) do
      if e.name == name then return e.state end
    end
    return nil
  end

  -- {tensors = {"<name>.<key>" = tensor}, metadata = {string = string}}.
  -- The tensors are the live state (clone them to keep a snapshot);
  -- metadata holds the optimizer kind, step counts and group options.
  -- Parameters whose state is not allocated yet have no tensors.
  function Optimizer:state_dict()
    if self.meta then error(self.kind.name .. ": state_dict: shape-only optimizer has no state", 2) end
    local tensors = {}
    local meta = { ["grove.optimizer"] = self.kind.name, ["grove.format"] = FORMAT,
                   steps = tostring(self.steps), groups = tostring(#self.param_groups) }
    for _, e in ipairs(self.entries) do
      if e.allocated then
        for _, l in ipairs(e.layout) do tensors[e.name .. "." .. l[1]] = e.state[l[1]] end
      end
      meta["step." .. e.name] = tostring(e.step)
    end
    for gi, g in ipairs(self.param_groups) do
      meta["group." .. gi .. ".params"] = tostring(#g._entries)
      for k in pairs(self.kind.spec) do meta["group." .. gi .. "." .. k] = O.encode(g[k]) end
    end
    return { tensors = tensors, metadata = meta }
  end

  local function same_layout(a, b)
    if #a ~= #b then return false end
    for i = 1, #a do
      if a[i][1] ~= b[i][1] or a[i][3] ~= b[i][3] or shape_str(a[i][2]) ~= shape_str(b[i][2]) then return false end
    end
    return true
  end

  local function load(self, sd)
    local kind = self.kind
    local op = kind.name .. ": load_state_dict"
    if self.meta then O.fail(op, "shape-only optimizer has no state") end
    if type(sd) ~= "table" or type(sd.tensors) ~= "table" or type(sd.metadata) ~= "table" then
      O.fail(op, "expected {tensors = ..., metadata = ...} as returned by state_dict()")
    end
    local meta, tensors = sd.metadata, sd.tensors
    local saved = meta["grove.optimizer"]
    if saved == nil then O.fail(op, "not an optimizer state (no grove.optimizer metadata)") end
    if saved ~= kind.name then O.fail(op, "the state is for " .. saved .. ", this optimizer is " .. kind.name) end
    if meta["grove.format"] ~= FORMAT then O.fail(op, "unknown state format " .. tostring(meta["grove.format"])) end
    local function count(key)
      local v = tonumber(meta[key])
      if not v or v < 0 or v % 1 ~= 0 then O.fail(op, "metadata '" .. key .. "' is missing or not a count: " .. tostring(meta[key])) end
      return v
    end
    if count("groups") ~= #self.param_groups then
      O.fail(op, "the state has " .. meta.groups .. " parameter groups, this optimizer " .. #self.param_groups)
    end
    -- decode and check everything before changing anything
    local new_groups, new_steps = {}, {}
    for gi, g in ipairs(self.param_groups) do
      local n = count("group." .. gi .. ".params")
      if n ~= #g._entries then
        O.fail(op, "group " .. gi .. " has " .. n .. " parameters in the state, " .. #g._entries .. " here")
      end
      local opts = {}
      for k, s in pairs(kind.spec) do
        local key = "group." .. gi .. "." .. k
        local raw = meta[key]
        if raw == nil then O.fail(op, "metadata '" .. key .. "' is missing") end
        local v = O.decode(raw, s[1])
        if v == nil then O.fail(op, "metadata '" .. key .. "' = '" .. raw .. "' is not a valid " .. k) end
        opts[k] = s[2](op, "group " .. gi .. " " .. k, v)
      end
      kind.validate(op, opts)
      for _, e in ipairs(g._entries) do
        local _, layout = kind.layout(e.param:shape(), e.name, opts)
        if not same_layout(layout, e.layout) then
          O.fail(op, "parameter '" .. e.name .. "' was saved with other structural options (e.g. quant, block, min_8bit_size, momentum)")
        end
      end
      new_groups[gi] = opts
    end
    -- a parameter's state is in the file whole, or not at all (a parameter
    -- that never had a gradient: its state starts fresh)
    local expected, present = {}, {}
    for _, e in ipairs(self.entries) do
      for _, l in ipairs(e.layout) do expected[e.name .. "." .. l[1]] = true end
    end
    local extra = {}
    for k in pairs(tensors) do if not expected[k] then extra[#extra + 1] = tostring(k) end end
    if #extra > 0 then
      table.sort(extra)
      O.fail(op, "unexpected tensor '" .. extra[1] .. "'" .. (#extra > 1 and (" and " .. (#extra - 1) .. " more") or "") ..
        " (state for other parameters?)")
    end
    for _, e in ipairs(self.entries) do
      local found = 0
      for _, l in ipairs(e.layout) do
        if tensors[e.name .. "." .. l[1]] ~= nil then found = found + 1 end
      end
      present[e] = found > 0
      for _, l in ipairs(e.layout) do
        local key = e.name .. "." .. l[1]
        local t = tensors[key]
        if t == nil then
          if found > 0 then O.fail(op, "tensor '" .. key .. "' is missing") end
        else
          if not grove.is_tensor(t) then O.fail(op, "'" .. key .. "' is not a tensor") end
          if t:dtype() ~= l[3] then O.fail(op, "'" .. key .. "' is " .. t:dtype() .. ", expected " .. l[3]) end
          if shape_str(t:shape()) ~= shape_str(l[2]) then
            O.fail(op, "'" .. key .. "' has shape " .. shape_str(t:shape()) .. ", expected " .. shape_str(l[2]))
          end
        end
      end
      new_steps[e] = count("step." .. e.name)
      if not present[e] and #e.layout > 0 and new_steps[e] > 0 then
        O.fail(op, "the state of '" .. e.name .. "' is missing (" .. new_steps[e] .. " steps taken)")
      end
    end
    local steps = count("steps")
    -- apply
    for _, e in ipairs(self.entries) do
      if present[e] then
        if not e.allocated then allocate(e) end
        for _, l in ipairs(e.layout) do e.state[l[1]]:copy_(tensors[e.name .. "." .. l[1]]) end
      elseif e.allocated then
        for _, l in ipairs(e.layout) do e.state[l[1]]:zero_() end
      end
      e.step = new_steps[e]
    end
    for gi, g in ipairs(self.param_groups) do
      for k in pairs(kind.spec) do g[k] = new_groups[gi][k] end
      for _, e in ipairs(g._entries) do
        if e.allocated then kind.bind(e, g) end
      end
    end
    self.steps = steps
  end

  -- (at_caller is never a tail call here, so errors point at the caller)
  function Optimizer:load_state_dict(sd)
    at_caller(load, self, sd)
    return self
  end

  -- Saves the state to a safetensors file (written atomically).
  function Optimizer:save(path)
    local sd = self:state_dict()
    grove.save_safetensors(path, sd.tensors, sd.metadata)
  end

  function Optimizer:load(path)
    local ok, tensors, meta = pcall(grove.load_safetensors, path)
    if not ok then error(self.kind.name .. ": load: " .. tostring(tensors), 2) end
    at_caller(load, self, { tensors = tensors, metadata = meta })
    return self
  end

  function Optimizer:__tostring()
    local b = self:state_bytes()
    return string.format("%s (%d groups, %d parameters, %d state bytes)", self.kind.name, #self.param_groups, b.params, b.total)
  end

  return Optimizer
end
