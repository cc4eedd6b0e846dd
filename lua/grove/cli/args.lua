-- Command-line options for recipes and subcommands: a spec lists each
-- option with its type and default; parse() fills a table from arg and a
-- base config, and --help prints the spec as usage.
--
--   local opts = args.parse(arg, {
--     { "preset", "string", "tiny", "model preset" },
--     { "steps", "number", 2000, "training steps" },
--     { "resume", "boolean", false, "continue from the last checkpoint" },
--     { "n", "number", 1, "number of images", short = "n", check = args.count },
--   }, { usage = "grove recipes/train.lua [options]" })
--
-- A spec's `check` is a function(value) -> nil when the value is good, or
-- a phrase saying what it must be ("an integer >= 1"); parse() then fails
-- with "option --n must be an integer >= 1, got -3". The checkers below are
-- the ones every command shares; args.validate runs one on a value that
-- came from elsewhere (a config table, a Lua call).
local args = {}

local function is_finite(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end
args.is_finite = is_finite

-- A checker for whole numbers in [min, max] (either bound may be nil; a
-- double holds every integer only below 2^53, so none is allowed beyond).
function args.integer(min, max)
  local want = "an integer" .. (min and max and string.format(" from %d to %d", min, max) or
                                min and string.format(" >= %d", min) or max and string.format(" <= %d", max) or "")
  return function(v)
    if not is_finite(v) or v % 1 ~= 0 or math.abs(v) >= 2 ^ 53 or (min and v < min) or (max and v > max) then
      return want
    end
  end
end

-- A checker for finite numbers in [min, max] (either bound may be nil).
function args.number(min, max)
  local want = "a finite number" .. (min and max and string.format(" from %g to %g", min, max) or
                                     min and string.format(" >= %g", min) or max and string.format(" <= %g", max) or "")
  return function(v)
    if not is_finite(v) or (min and v < min) or (max and v > max) then return want end
  end
end

-- Counts of things (images, steps, blocks): integers >= 1.
args.count = args.integer(1)
-- Seeds: integers >= 0 (below 2^53; the generator takes the seed as an
-- unsigned 64-bit number).
args.seed = args.integer(0)
-- Any finite number (a guidance scale, a learning rate, a noise scale).
args.finite = args.number()

local function flag(name) return "--" .. (name:gsub("_", "-")) end

local function shown(v)
  if type(v) == "string" then return "'" .. v .. "'" end
  return tostring(v)
end

-- Runs check on value; raises "<what> must be <phrase>, got <value>" (at
-- error level `level`, default 2: the caller's caller) when it fails.
-- Returns the value.
function args.validate(value, check, what, level)
  local want = check(value)
  if want then error(what .. " must be " .. want .. ", got " .. shown(value), level == 0 and 0 or (level or 2) + 1) end
  return value
end

-- The --device option of every command that runs a model; the value goes
-- to grove.train.load_for_inference{device =} and the like, which fail with
-- a clear message where there is no such device.
function args.device_option()
  return { "device", "string", "cpu", "cpu or cuda: where the model runs (noise and data are drawn on the CPU either way)" }
end

local function usage(spec, o)
  local lines = { "usage: " .. (o.usage or "grove script [options]") }
  if o.description then lines[#lines + 1] = o.description end
  lines[#lines + 1] = ""
  for _, s in ipairs(spec) do
    local flag = "--" .. s[1]:gsub("_", "-") .. (s.short and (", -" .. s.short) or "")
    local val = s[2] == "boolean" and "" or (" " .. s[2]:upper())
    local def = s[3] ~= nil and ("  (default " .. tostring(s[3]) .. ")") or ""
    lines[#lines + 1] = string.format("  %-28s %s%s", flag .. val, s[4] or "", def)
  end
  return table.concat(lines, "\n")
end
args.usage = usage

-- Returns the options table, or nil and the usage text when --help was asked.
-- Errors (unknown option, missing or malformed value) are Lua errors that
-- name the option and end with the usage.
function args.parse(argv, spec, o)
  o = o or {}
  local by_name, by_short, out = {}, {}, {}
  for _, s in ipairs(spec) do
    by_name[s[1]] = s
    if s.short then by_short[s.short] = s end
    out[s[1]] = s[3]
  end
  for k, v in pairs(o.base or {}) do if by_name[k] then out[k] = v end end
  local positional = {}
  local i = 1
  local function fail(msg) error(msg .. "\n\n" .. usage(spec, o), 0) end
  while argv[i] ~= nil do
    local a = argv[i]
    if a == "--help" or a == "-h" then return nil, usage(spec, o) end
    local name, inline = a:match("^%-%-([%w%-_]+)=(.*)$")
    if not name then name = a:match("^%-%-([%w%-_]+)$") end
    local s
    if name then s = by_name[name:gsub("%-", "_")]
    elseif a:match("^%-%a$") then s = by_short[a:sub(2)] end
    if not s then
      if a:sub(1, 1) == "-" and not tonumber(a) then fail("unknown option " .. a) end
      positional[#positional + 1] = a
    elseif s[2] == "boolean" then
      if inline then out[s[1]] = inline ~= "false" and inline ~= "0" else out[s[1]] = true end
    else
      local v = inline
      if v == nil then
        i = i + 1
        v = argv[i]
        if v == nil then fail("option --" .. s[1] .. " needs a value") end
      end
      if s[2] == "number" then
        local n = tonumber(v)
        if not n then fail("option --" .. s[1] .. " needs a number, got '" .. v .. "'") end
        out[s[1]] = n
      elseif s[2] == "list" then
        out[s[1]] = out[s[1]] ~= s[3] and out[s[1]] or {}
        table.insert(out[s[1]], v)
      else
        out[s[1]] = v
      end
    end
    i = i + 1
  end
  for _, s in ipairs(spec) do
    if s.required and out[s[1]] == nil then fail("option --" .. s[1] .. " is required") end
    if s.check and out[s[1]] ~= nil then
      args.validate(out[s[1]], s.check, "option " .. flag(s[1]), 0)
    end
  end
  return out, positional
end

-- Value checks for parsed options (the checkers above, on o[name]), raised
-- as plain messages (no Lua file:line) that name the option as the user
-- typed it:
--   args.check_int(o, "steps", 1)       an integer >= 1 (when given)
--   args.check_number(o, "cfg", 0)      a finite number >= 0 (when given)

function args.check_int(o, name, min)
  if o[name] == nil then return nil end
  return args.validate(o[name], args.integer(min), "option " .. flag(name), 0)
end

function args.check_number(o, name, min)
  if o[name] == nil then return nil end
  return args.validate(o[name], args.number(min), "option " .. flag(name), 0)
end

-- One of a list of words.
function args.check_choice(o, name, choices)
  local v = o[name]
  if v == nil then return nil end
  for _, c in ipairs(choices) do if v == c then return v end end
  error("option " .. flag(name) .. " must be " .. table.concat(choices, ", ", 1, #choices - 1) .. " or " ..
        choices[#choices] .. ", got '" .. tostring(v) .. "'", 0)
end

return args
