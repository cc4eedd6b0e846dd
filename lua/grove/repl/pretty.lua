-- How the REPL shows values. Tensors print as Torch7 printed them: one
-- number format for every shown value, aligned columns, slices of 3-d and
-- larger tensors as "(i,j,.,.) =" matrices, and a footer line with dtype,
-- size, device and autograd state. Past `threshold` elements each long
-- dimension shows its first and last `edge` entries around "...", as numpy
-- and PyTorch do, and only those entries are read from the tensor (a huge
-- or on-device tensor prints as cheaply as a small one). Tables print
-- nested with sorted keys, a depth limit and <cycle> for a table inside
-- itself.
local ffi = require "ffi"

local pretty = {
  threshold = 1000, -- tensors with more elements are summarised
  edge = 3,         -- entries kept at each end of a summarised dimension
  width = 80,       -- wider matrices are split into column blocks
  depth = 4,        -- deeper tables print as {...}
  max_items = 100,  -- longer tables end with "... (N more)"
}

local function grove() return package.loaded.grove end

local function is_tensor(v)
  local g = grove()
  return type(v) == "cdata" and g ~= nil and g.is_tensor(v)
end
pretty.is_tensor = is_tensor

-- ---- tensors --------------------------------------------------------------------------------------

local function footer_state(t)
  if not t.requires_grad then return "" end
  local fn = t:grad_fn()
  return fn and (", grad_fn=" .. fn) or ", requires_grad"
end

-- "[ f32 tensor of size 2x3, cpu ]"
function pretty.tensor_footer(t)
  local shape = t:shape()
  local what = #shape == 0 and (t:dtype() .. " scalar")
    or (t:dtype() .. " tensor of size " .. table.concat(shape, "x"))
  return "[ " .. what .. ", " .. t:device() .. footer_state(t) .. " ]"
end

-- One line for a tensor inside a table.
function pretty.tensor_summary(t)
  if t:is_freed() then return "<freed tensor>" end
  local shape = t:shape()
  return "<tensor " .. t:dtype() .. " " .. (#shape == 0 and "scalar" or table.concat(shape, "x")) .. " " .. t:device() .. ">"
end

-- The indices shown along a dimension of length len: all of them, or the
-- first and last `edge` with false marking the gap.
local function shown_indices(len, summarize)
  local sel = {}
  local e = pretty.edge
  if summarize and len > 2 * e then
    for i = 1, e do sel[#sel + 1] = i end
    sel[#sel + 1] = false
    for i = len - e + 1, len do sel[#sel + 1] = i end
  else
    for i = 1, len do sel[i] = i end
  end
  return sel
end

-- The shown values as a flat row-major table over the reduced shape (the
-- shown indices per dimension), read block by block: each block is a view
-- holding one contiguous run of shown indices per dimension.
local function read_shown(t, shape, sel)
  local g = grove()
  local nd = #shape
  local rshape, ranges = {}, {}
  for d = 1, nd do
    local rs, run = {}, nil
    local pos = 0
    for _, i in ipairs(sel[d]) do
      if i then
        pos = pos + 1
        if run and i == run.start + run.len then run.len = run.len + 1
        else run = { start = i, len = 1, at = pos - 1 }; rs[#rs + 1] = run end
      else
        run = nil
      end
    end
    rshape[d], ranges[d] = pos, rs
  end
  local rstride, acc = {}, 1
  for d = nd, 1, -1 do rstride[d] = acc; acc = acc * rshape[d] end
  local vals = {}
  local base = t:detach()
  local pick = {}
  local function block(d, view)
    if d > nd then
      local n = view:numel()
      local buf = ffi.new("double[?]", math.max(n, 1))
      if g.C.grove_tensor_read_doubles(view.p, buf, n) ~= 0 then error(g.c_error(), 0) end
      -- scatter the block into the reduced array
      local idx = {}
      for k = 1, nd do idx[k] = 0 end
      for k = 0, n - 1 do
        local off = 0
        for q = 1, nd do off = off + (pick[q].at + idx[q]) * rstride[q] end
        vals[off] = buf[k]
        for q = nd, 1, -1 do
          idx[q] = idx[q] + 1
          if idx[q] < pick[q].len then break end
          idx[q] = 0
        end
      end
      return
    end
    for _, r in ipairs(ranges[d]) do
      pick[d] = r
      block(d + 1, (r.start == 1 and r.len == shape[d]) and view or view:narrow(d, r.start, r.len))
    end
  end
  if acc > 0 then block(1, base) end
  return vals, rstride
end

-- One format for every shown value: integers when all are whole numbers
-- (or the dtype is integral), else fixed point with 4 decimals, or
-- scientific when the magnitudes are too large or too small for that.
local function number_format(vals, integral_dtype, summarized)
  local integral, maxabs, minabs = true, 0, math.huge
  for _, v in pairs(vals) do
    if v == v and v ~= math.huge and v ~= -math.huge then
      local a = math.abs(v)
      if v % 1 ~= 0 then integral = false end
      if a > maxabs then maxabs = a end
      if a ~= 0 and a < minabs then minabs = a end
    end
  end
  local fmt
  if integral_dtype or (integral and maxabs < 1e9) then fmt = "%.0f"
  elseif maxabs >= 1e5 or minabs < 1e-4 then fmt = "%.4e"
  else fmt = "%.4f" end
  local function f(v)
    if v ~= v then return "nan" end
    if v == math.huge then return "inf" elseif v == -math.huge then return "-inf" end
    local s = string.format(fmt, v)
    if s == "-0" then s = "0" end
    return s
  end
  local width = summarized and 3 or 1 -- room for "..."
  for _, v in pairs(vals) do width = math.max(width, #f(v)) end
  return function(v)
    local s = f(v)
    return string.rep(" ", width - #s) .. s
  end, width
end

local function pad(s, w) return string.rep(" ", w - #s) .. s end

function pretty.tensor(t)
  if t:is_freed() then return "<freed tensor>" end
  local shape = t:shape()
  local nd = #shape
  local numel = t:numel()
  local footer = pretty.tensor_footer(t)
  if numel == 0 then return footer end
  local summarize = numel > pretty.threshold
  local sel = {}
  for d = 1, nd do sel[d] = shown_indices(shape[d], summarize) end
  local vals, rstride = read_shown(t, shape, sel)
  local dt = t:dtype()
  local fmt, width = number_format(vals, dt == "u8" or dt == "i8" or dt == "i32" or dt == "i64", summarize)
  if nd == 0 then return fmt(vals[0]):match("^%s*(.-)$") .. "\n" .. footer end

  local out = {}
  local function emit(s) out[#out + 1] = s end

  -- the entries of one row: reduced offset of its first element
  local function row_items(off)
    local items, k = {}, 0
    for _, i in ipairs(sel[nd]) do
      if i then items[#items + 1] = fmt(vals[off + k * rstride[nd]]); k = k + 1
      else items[#items + 1] = pad("...", width) end
    end
    return items
  end

  if nd == 1 then
    -- a vector is one row, wrapped at the line width
    local line = ""
    for _, s in ipairs(row_items(0)) do
      if #line > 0 and #line + 2 + #s > pretty.width then emit(line); line = "" end
      line = line .. (#line > 0 and "  " or " ") .. s
    end
    emit(line)
    emit(footer)
    return table.concat(out, "\n")
  end

  -- column blocks so that a line stays within the width (Torch's "Columns a to b")
  local cols = sel[nd]
  local per = math.max(1, math.floor((pretty.width - 1) / (width + 2)))
  local blocks = {}
  if #cols <= per then blocks[1] = { 1, #cols }
  else for a = 1, #cols, per do blocks[#blocks + 1] = { a, math.min(#cols, a + per - 1) } end end

  local function matrix(off)
    local rows = {}
    local r = 0
    for _, i in ipairs(sel[nd - 1]) do
      if i then rows[#rows + 1] = row_items(off + r * rstride[nd - 1]); r = r + 1
      else rows[#rows + 1] = false end
    end
    for b, range in ipairs(blocks) do
      if #blocks > 1 then
        local first, last
        for c = range[1], range[2] do if cols[c] then first = first or cols[c]; last = cols[c] end end
        if b > 1 then emit("") end
        emit("Columns " .. first .. " to " .. last)
      end
      for _, items in ipairs(rows) do
        if items then emit(" " .. table.concat(items, "  ", range[1], range[2]))
        else emit(" " .. pad("...", width)) end
      end
    end
  end

  if nd == 2 then
    matrix(0)
  else
    -- leading dimensions: one "(i,j,.,.) =" matrix per index, "..." where skipped
    local first = true
    local prefix = {}
    local function slices(d, off)
      if d == nd - 1 then
        if not first then emit("") end
        first = false
        emit("(" .. table.concat(prefix, ",") .. ",.,.) = ")
        matrix(off)
        return
      end
      local r = 0
      for _, i in ipairs(sel[d]) do
        if i then
          prefix[d] = i
          slices(d + 1, off + r * rstride[d])
          r = r + 1
        else
          if not first then emit("") end
          emit(" ...")
        end
      end
      prefix[d] = nil
    end
    slices(1, 0)
  end
  emit(footer)
  return table.concat(out, "\n")
end

-- ---- tables and the rest ------------------------------------------------------------------------------

local function quote(s)
  return (string.format("%q", s):gsub("\\\n", "\\n"):gsub("\r", "\\r"))
end

local function func_str(f)
  local info = debug.getinfo(f, "S")
  if info.what == "C" or not info.source:match("^@") then return "<function builtin>" end
  local file = info.source:sub(2):match("([^/]+/[^/]+)$") or info.source:sub(2)
  return "<function " .. file .. ":" .. info.linedefined .. ">"
end

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then
    if ta == "number" then return true elseif tb == "number" then return false end
    if ta == "string" then return true elseif tb == "string" then return false end
    return ta < tb
  end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function key_str(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return k end
  if type(k) == "string" then return "[" .. quote(k) .. "]" end
  return "[" .. tostring(k) .. "]"
end

local format_nested

local function scalar_str(v)
  local tv = type(v)
  if tv == "string" then return quote(v) end
  if tv == "function" then return func_str(v) end
  if is_tensor(v) then return pretty.tensor_summary(v) end
  return tostring(v)
end

-- A table as text; indent is the indentation of the line it starts on.
local function format_table(v, indent, depth, seen)
  if seen[v] then return "<cycle>" end
  local mt = getmetatable(v)
  if type(mt) == "table" and rawget(mt, "__tostring") then
    local ok, s = pcall(tostring, v)
    if ok then return s end
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  if #keys == 0 then return "{}" end
  if depth >= pretty.depth then return "{...}" end
  table.sort(keys, key_order)
  local n = #v
  local shown = math.min(#keys, pretty.max_items)
  seen[v] = true
  local items = {}
  for i = 1, shown do
    local k = keys[i]
    local x = v[k]
    local s = format_nested(x, indent .. "  ", depth + 1, seen)
    if type(k) == "number" and k >= 1 and k <= n and k % 1 == 0 then items[i] = s
    else items[i] = key_str(k) .. " = " .. s end
  end
  seen[v] = nil
  if shown < #keys then items[#items + 1] = "... (" .. (#keys - shown) .. " more)" end
  -- one line when it fits
  local line = "{" .. table.concat(items, ", ") .. "}"
  if #indent + #line <= pretty.width and not line:find("\n", 1, true) then return line end
  local inner = indent .. "  "
  return "{\n" .. inner .. table.concat(items, ",\n" .. inner) .. ",\n" .. indent .. "}"
end

format_nested = function(v, indent, depth, seen)
  if type(v) == "table" then return format_table(v, indent, depth, seen) end
  return scalar_str(v)
end

-- A value as the REPL prints it: strings as they are, tensors in full,
-- tables nested, anything else through tostring.
function pretty.format(v)
  if type(v) == "string" then return v end
  if is_tensor(v) then return pretty.tensor(v) end
  if type(v) == "table" then return format_table(v, "", 0, {}) end
  if type(v) == "function" then return func_str(v) end
  return tostring(v)
end

return pretty
