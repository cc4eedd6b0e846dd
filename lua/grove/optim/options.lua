-- Option checking for the optimizers: each optimizer lists its options with
-- a default and a checker; a checker returns the (possibly normalised) value
-- or raises an error that names the optimizer, the option and the value.
local O = {}

-- Errors carry no position: the public entry points re-raise them at the
-- caller's line (see raise_at_caller in optimizer.lua).
local function fail(op, msg) error(op .. ": " .. msg, 0) end
O.fail = fail

local function num_str(v)
  if type(v) == "number" then return string.format("%g", v) end
  return tostring(v)
end

-- A finite number >= 0.
function O.nonneg(op, name, v)
  if type(v) ~= "number" or v ~= v or v < 0 or v == math.huge then
    fail(op, name .. " must be a finite number >= 0, got " .. num_str(v))
  end
  return v
end

-- A finite number > 0.
function O.positive(op, name, v)
  if type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge then
    fail(op, name .. " must be a finite number > 0, got " .. num_str(v))
  end
  return v
end

-- A number in [0, 1].
function O.unit(op, name, v)
  if type(v) ~= "number" or not (v >= 0 and v <= 1) then
    fail(op, name .. " must lie in [0, 1], got " .. num_str(v))
  end
  return v
end

function O.boolean(op, name, v)
  if type(v) ~= "boolean" then fail(op, name .. " must be true or false, got " .. tostring(v)) end
  return v
end

-- A list of exactly n betas, each in [0, 1).
function O.betas(n)
  return function(op, name, v)
    if type(v) ~= "table" or #v ~= n then
      fail(op, name .. " must be a list of " .. n .. " numbers in [0, 1), got " .. (type(v) == "table" and (#v .. " values") or tostring(v)))
    end
    local out = {}
    for i = 1, n do
      local b = v[i]
      if type(b) ~= "number" or not (b >= 0 and b < 1) then
        fail(op, name .. "[" .. i .. "] must lie in [0, 1), got " .. num_str(b))
      end
      out[i] = b
    end
    return out
  end
end

-- A list of exactly n finite numbers >= 0.
function O.eps_list(n)
  return function(op, name, v)
    if type(v) ~= "table" or #v ~= n then
      fail(op, name .. " must be a list of " .. n .. " numbers >= 0, got " .. (type(v) == "table" and (#v .. " values") or tostring(v)))
    end
    local out = {}
    for i = 1, n do
      local e = v[i]
      if type(e) ~= "number" or e ~= e or e < 0 or e == math.huge then
        fail(op, name .. "[" .. i .. "] must be a finite number >= 0, got " .. num_str(e))
      end
      out[i] = e
    end
    return out
  end
end

-- One of the listed strings.
function O.one_of(list)
  return function(op, name, v)
    for _, s in ipairs(list) do if v == s then return v end end
    fail(op, name .. " must be one of " .. table.concat(list, ", ") .. ", got " .. tostring(v))
  end
end

-- An integer >= lo.
function O.integer(lo)
  return function(op, name, v)
    if type(v) ~= "number" or v % 1 ~= 0 or v < lo then
      fail(op, name .. " must be an integer >= " .. lo .. ", got " .. num_str(v))
    end
    return v
  end
end

-- Checks a user option table against spec {name = {default, checker}}:
-- unknown names are errors; returns a table holding only the given options,
-- checked. `extra` names keys allowed besides the options (e.g. "params").
function O.check(op, spec, given, extra)
  local out = {}
  if given == nil then return out end
  if type(given) ~= "table" then fail(op, "options must be a table, got " .. type(given)) end
  for k, v in pairs(given) do
    if not (extra and extra[k]) then
      local s = spec[k]
      if not s then
        local known = {}
        for name in pairs(spec) do known[#known + 1] = name end
        table.sort(known)
        fail(op, "unknown option '" .. tostring(k) .. "' (options: " .. table.concat(known, ", ") .. ")")
      end
      out[k] = s[2](op, k, v)
    end
  end
  return out
end

-- Values as metadata strings and back (exact: %.17g round-trips a double).
function O.encode(v)
  if type(v) == "number" then return string.format("%.17g", v) end
  if type(v) == "boolean" then return v and "true" or "false" end
  if type(v) == "table" then
    local parts = {}
    for i = 1, #v do parts[i] = string.format("%.17g", v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  return tostring(v)
end

function O.decode(s, like)
  if type(like) == "number" then return tonumber(s) end
  if type(like) == "boolean" then
    if s == "true" then return true elseif s == "false" then return false end
    return nil
  end
  if type(like) == "table" then
    local inner = s:match("^%[(.*)%]$")
    if not inner then return nil end
    local out = {}
    for part in inner:gmatch("[^,]+") do
      local x = tonumber(part)
      if not x then return nil end
      out[#out + 1] = x
    end
    return out
  end
  return s
end

return O
