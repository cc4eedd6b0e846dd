-- Float64 reference arrays for the specs: {shape = {...}, data = {flat,
-- row-major, 1-based doubles}}. Plain Lua numbers are doubles, so references
-- written with these helpers are exact to float64.
local ref = {}

function ref.numel(shape)
  local n = 1
  for i = 1, #shape do n = n * shape[i] end
  return n
end

local function copy(t) local c = {}; for i = 1, #t do c[i] = t[i] end; return c end

function ref.new(shape, fill)
  local a = { shape = copy(shape), data = {} }
  local n = ref.numel(shape)
  for i = 1, n do
    if type(fill) == "function" then a.data[i] = fill(i) else a.data[i] = fill or 0 end
  end
  return a
end

function ref.from_tensor(t)
  local shape = t:shape()
  local a = { shape = shape, data = {} }
  local flat = t:contiguous():view({ -1 }):tolist()
  if #shape == 0 then flat = { t:item() } end
  for i = 1, #flat do a.data[i] = flat[i] end
  return a
end

-- Row-major strides of a shape.
function ref.strides(shape)
  local s, acc = {}, 1
  for d = #shape, 1, -1 do s[d] = acc; acc = acc * shape[d] end
  return s
end

-- Flat 1-based position of a 1-based multi-index.
function ref.offset(a, idx)
  local st = ref.strides(a.shape)
  local o = 1
  for d = 1, #a.shape do o = o + (idx[d] - 1) * st[d] end
  return o
end

function ref.get(a, idx) return a.data[ref.offset(a, idx)] end
function ref.set(a, idx, v) a.data[ref.offset(a, idx)] = v end

-- The multi-index of flat position k (1-based) in shape.
function ref.unflatten(shape, k)
  local idx = {}
  k = k - 1
  for d = #shape, 1, -1 do
    idx[d] = k % shape[d] + 1
    k = math.floor(k / shape[d])
  end
  return idx
end

function ref.map(a, f)
  local r = ref.new(a.shape, 0)
  for i = 1, #a.data do r.data[i] = f(a.data[i]) end
  return r
end

-- Elementwise f(a, b) with torch broadcasting.
function ref.zip(a, b, f)
  local n = math.max(#a.shape, #b.shape)
  local shape = {}
  for i = 1, n do
    local sa = a.shape[i - (n - #a.shape)] or 1
    local sb = b.shape[i - (n - #b.shape)] or 1
    if sa ~= sb and sa ~= 1 and sb ~= 1 then error("ref.zip: shapes do not broadcast") end
    shape[i] = sa == 1 and sb or sa
  end
  local r = ref.new(shape, 0)
  local function pick(x, idx)
    local lead = n - #x.shape
    local sub = {}
    for d = 1, #x.shape do sub[d] = x.shape[d] == 1 and 1 or idx[d + lead] end
    return ref.get(x, sub)
  end
  for k = 1, #r.data do
    local idx = ref.unflatten(shape, k)
    r.data[k] = f(pick(a, idx), pick(b, idx))
  end
  return r
end

return ref
