-- The optimizer kinds: each is a Lua file (optim/sgd.lua, adamw.lua,
-- came.lua, came8bit.lua) returning its definition, and register names it,
-- which also makes grove.optim.<name>(params, options).
--
-- A definition: name; spec = {option = {default, check}} (optim/options.lua);
-- layout(shape, param_name, group) -> rule, layout, the state each parameter
-- gets, also used to count bytes from shapes alone; c_options(group) -> the
-- C options struct; step(entry, param, c_options) -> C status, the update of
-- one parameter; optionally validate(op, group), bind(entry, group) (a C view
-- of the state) and step_group(entries, c_options) (one call for a group;
-- returns nil, or the index of the parameter at fault).
--
-- A layout is a list of {key, shape, dtype, kind}: kind is what the bytes
-- are for (first_moment, second_moment, instability, scales, momentum).
return function(grove, optim)
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
  -- The helpers the definitions share.
  optim.util = { numel = numel, copy = copy, tp = function(t) return t and t.p or nil end }

  local function nothing() end
  local registry = grove.registry.new { owner = "optim", kind = "optimizer", register_name = "grove.optim.register",
    entry = function(k, name, _, where)
      if type(k) ~= "table" then
        error((where or "optim") .. ": optimizer '" .. name .. "' must be a table {spec =, layout =, c_options =, step =}, got "
              .. type(k), 0)
      end
      for _, f in ipairs { "layout", "c_options", "step" } do
        if type(k[f]) ~= "function" then
          error((where or "optim") .. ": optimizer '" .. name .. "' needs a function " .. f .. ", got " .. type(k[f]), 0)
        end
      end
      if type(k.spec) ~= "table" then
        error((where or "optim") .. ": optimizer '" .. name .. "' needs a spec table of options, got " .. type(k.spec), 0)
      end
      k.name = k.name or name
      k.validate, k.bind = k.validate or nothing, k.bind or nothing
      return k
    end }
  optim.registry = registry
  local kinds = registry.entries

  -- grove.optim.register(name, definition): also grove.optim[name](params, options).
  function optim.register(name, def)
    local kind = registry.register(name, def)
    optim[name] = function(params, options)
      local opt = optim._at_caller(optim._build, kind, params, options)
      return opt -- not a tail call: at_caller's error level counts this frame
    end
    return kind
  end

  return kinds
end
