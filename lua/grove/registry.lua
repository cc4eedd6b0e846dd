-- grove.registry: the one way to make a piece pluggable by name. Growth
-- strategies, pruning metrics and schedules, search policies, samplers and
-- optimizers each keep a registry: a Lua file returns the piece, `register`
-- names it, and every option that takes the piece takes that name, the
-- piece itself, or (on the command line) a .lua file returning it.
--
--   local policies = grove.registry.new { owner = "search", kind = "policy",
--     register_name = "search.register", signature = "(prompt, candidates, judge, opts) -> picked" }
--   policies.register("mine", fn)         -- also policies.entries.mine
--   local entry, name = policies.get("mine")   -- or policies.get(fn)
--   policies.load("my_policy.lua")        -- what the file returns; a name as given
--
-- opts.entry(value, name, extra) turns what was registered into what is
-- stored (default: a function, stored as it is) and raises its own error when
-- the value does not fit; extra is register's third argument.
local registry = {}

local function sorted(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

function registry.new(o)
  assert(type(o) == "table" and o.owner and o.kind, "registry.new: give {owner =, kind =}")
  local owner, kind = o.owner, o.kind
  local register_name = o.register_name or (owner .. ".register")
  local signature = o.signature and (" " .. o.signature) or ""
  local r = { entries = {}, owner = owner, kind = kind }

  -- `where` names the function the value came through ("search.register",
  -- a file) for the message; nil when it was given as an option.
  local function entry_of(v, name, extra, where)
    if o.entry then return o.entry(v, name, extra, where) end
    if type(v) == "function" then return v end
    if where then error(where .. ": " .. kind .. " '" .. name .. "' must be a function" .. signature .. ", got " .. type(v), 0) end
    error(owner .. ": " .. kind .. " must be a name or a function, got " .. type(v), 0)
  end

  -- Sorted names, and the same joined for messages.
  function r.names() return sorted(r.entries) end
  function r.known() return table.concat(sorted(r.entries), ", ") end

  -- register(name, value[, extra]) -> the stored entry; a name registered
  -- again is replaced. Its errors name register_name, not a line.
  function r.register(name, v, extra)
    if type(name) ~= "string" or name == "" then
      error(register_name .. ": expected " .. (kind:match("^[aeiou]") and "an " or "a ") .. kind .. " name, got "
            .. tostring(name), 0)
    end
    local e = entry_of(v, name, extra, register_name)
    r.entries[name] = e
    return e
  end

  -- get(name or value) -> entry, name ("(function)" and the like for a value).
  function r.get(v)
    if type(v) == "string" then
      local e = r.entries[v]
      if e == nil then error(owner .. ": unknown " .. kind .. " '" .. v .. "' (known: " .. r.known() .. ")", 0) end
      return e, v
    end
    local name = "(" .. type(v) .. ")"
    return entry_of(v, name), name
  end

  -- load(v): a value or a name as given, or what the .lua file v returns
  -- (checked as register would); for command lines.
  function r.load(v)
    if type(v) ~= "string" or not v:match("%.lua$") then return v end
    local chunk, err = loadfile(v)
    if not chunk then error("cannot load " .. kind .. " file: " .. err, 0) end
    local value = chunk()
    if type(value) == "table" and value.name == nil then value.name = v end
    entry_of(value, v, nil, "cannot use " .. kind .. " file")
    return value
  end

  return r
end

return registry
