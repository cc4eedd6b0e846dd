-- Tab completion for the REPL. The word before the cursor is a chain of
-- names joined by "." with perhaps a final ":" (grove.optim.Ad, t:res); the
-- chain up to the last separator is looked up from the globals, and the
-- candidates are that value's fields: a table's keys and those its
-- metatable's __index tables provide, a tensor's methods (and properties
-- after "."), a string's string-library methods. Candidates are whole
-- words, ready to replace the one being typed, with "." after a table and
-- "(" after a function so typing can go on.
local complete = {}

local keywords = { "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
                   "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while" }

-- Fields of tensors that are not methods (tensor.lua's properties).
local tensor_properties = { "grad", "requires_grad", "is_cuda", "is_leaf" }

local function is_tensor(v)
  local g = package.loaded.grove
  return type(v) == "cdata" and type(g) == "table" and g.is_tensor and g.is_tensor(v)
end

-- t[k] without letting a metamethod's error escape.
local function index(t, k)
  local ok, v = pcall(function() return t[k] end)
  if ok then return v end
end

-- Adds the string keys of table t and of its __index chain.
local function add_keys(names, t)
  for _ = 1, 16 do -- a bound against __index loops
    if type(t) ~= "table" then return end
    for k in pairs(t) do if type(k) == "string" then names[k] = true end end
    local mt = getmetatable(t)
    t = type(mt) == "table" and rawget(mt, "__index") or nil
  end
end

-- Names that can follow value v and the separator ("." or ":").
local function field_names(v, sep)
  local names = {}
  if is_tensor(v) then
    add_keys(names, package.loaded.grove.Tensor)
    if sep == "." then for _, k in ipairs(tensor_properties) do names[k] = true end end
  elseif type(v) == "string" then
    if sep == ":" then add_keys(names, string) end
  elseif type(v) == "table" then
    add_keys(names, v)
  elseif type(v) == "userdata" or type(v) == "cdata" then
    local mt = getmetatable(v)
    if type(mt) == "table" then add_keys(names, rawget(mt, "__index")) end
  end
  return names
end

local function suffix(v, help)
  if type(v) == "table" and not is_tensor(v) then
    local mt = getmetatable(v)
    if not (type(mt) == "table" and rawget(mt, "__call")) then return "." end
  end
  if type(v) == "function" and not help then return "(" end
  return ""
end

-- Where the word being completed starts in line:sub(1, cursor) (0-based,
-- as readline's rl_point), and the word.
function complete.word(line, cursor)
  local before = line:sub(1, cursor or #line)
  local word = before:match("[%w_%.:]*$")
  return #before - #word, word
end

-- Candidates for the word that ends at cursor (bytes before the cursor;
-- default the whole line), sorted, and where that word starts (0-based).
-- env is the global table names are looked up in (default _G). Names that
-- start with "_" are offered only when the typed part starts with "_".
function complete.complete(line, cursor, env)
  env = env or _G
  local start, word = complete.word(line, cursor)
  local help = line:match("^%s*%?") ~= nil
  local out = {}
  local chain, sep, partial = word:match("^(.*)([%.:])([%w_]*)$")
  local names, owner
  if not chain then
    if word:match("^%d") then return out, start end
    partial = word
    names = {}
    add_keys(names, env)
    for _, k in ipairs(keywords) do names[k] = true end
    owner = env
  else
    -- only a dotted chain of names comes before the last separator
    if not chain:match("^[%a_][%w_%.]*$") or chain:find("%.%.") or chain:find("%.$") or chain:find("%.%d") then
      return out, start
    end
    local v = env
    for name in chain:gmatch("[^%.]+") do
      if type(v) ~= "table" and type(v) ~= "cdata" and type(v) ~= "userdata" then return out, start end
      v = index(v, name)
      if v == nil then return out, start end
    end
    names = field_names(v, sep)
    owner = v
  end
  local hidden = partial:sub(1, 1) ~= "_"
  for name in pairs(names) do
    if name:sub(1, #partial) == partial and name:match("^[%a_][%w_]*$") and not (hidden and name:sub(1, 1) == "_") then
      local value = index(owner, name)
      if not chain then
        out[#out + 1] = name .. suffix(value, help)
      elseif sep == "." or type(value) == "function" then -- after ":" only methods
        out[#out + 1] = chain .. sep .. name .. suffix(value, help)
      end
    end
  end
  table.sort(out)
  return out, start
end

-- The longest common prefix of the candidates (what one Tab inserts).
function complete.common_prefix(list)
  local p = list[1] or ""
  for i = 2, #list do
    local s = list[i]
    local n = 0
    while n < #p and n < #s and p:byte(n + 1) == s:byte(n + 1) do n = n + 1 end
    p = p:sub(1, n)
  end
  return p
end

return complete
