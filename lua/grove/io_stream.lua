-- safetensors files one tensor at a time, for files larger than memory
-- (checkpoint surgery: `grove grow`). The whole-file functions are in io.lua.
--
--   local r = grove.safetensors_open(path)
--   r.names (file order), r.metadata, r:info(name) -> {dtype=, shape=, stored=},
--   r:get(name) -> a new tensor (a copy), r:close()
--
--   local w = grove.safetensors_writer(path, {{name, dtype, shape}, ...}, metadata)
--   w:write(name, tensor)   -- in the order given, each matching its dtype and shape
--   w:finish()              -- sync, then rename path.tmp over path
--   w:abort()               -- remove path.tmp (also done if w is collected unfinished)
local ffi = require "ffi"

return function(grove)
  local C = grove.C
  local dtype_names = grove.dtype_names
  local shape_a = ffi.new("int64_t[8]")
  local dtype_a, ndim_a = ffi.new("int32_t[1]"), ffi.new("int32_t[1]")

  local last_error = grove.c_error

  local Reader = {}
  Reader.__index = Reader

  function grove.safetensors_open(path)
    if type(path) ~= "string" then error("safetensors_open: expected a file path, got " .. type(path), 2) end
    local f = C.grove_safetensors_open(path)
    if f == nil then error(last_error(), 2) end
    f = ffi.gc(f, C.grove_safetensors_close)
    local names, metadata = {}, {}
    for i = 0, tonumber(C.grove_safetensors_count(f)) - 1 do names[i + 1] = ffi.string(C.grove_safetensors_name(f, i)) end
    for i = 0, tonumber(C.grove_safetensors_metadata_count(f)) - 1 do
      local k = C.grove_safetensors_metadata_key(f, i)
      metadata[ffi.string(k)] = ffi.string(C.grove_safetensors_metadata(f, k))
    end
    return setmetatable({ f = f, path = path, names = names, metadata = metadata }, Reader)
  end

  local function handle(r)
    if r.f == nil then error("safetensors: " .. r.path .. " is closed", 3) end
    return r.f
  end

  function Reader:info(name)
    if C.grove_safetensors_info(handle(self), name, dtype_a, ndim_a, shape_a) ~= 0 then error(last_error(), 2) end
    local shape = {}
    for d = 0, ndim_a[0] - 1 do shape[d + 1] = tonumber(shape_a[d]) end
    -- stored: the file's own name for the dtype ("F64" where dtype is f32)
    return { dtype = dtype_names[dtype_a[0]], shape = shape, stored = ffi.string(C.grove_safetensors_stored_dtype(self.f, name)) }
  end

  function Reader:get(name)
    local p = C.grove_safetensors_get(handle(self), name)
    if p == nil then error(last_error(), 2) end
    return grove._wrap(p)
  end

  function Reader:close()
    if self.f ~= nil then
      ffi.gc(self.f, nil)
      C.grove_safetensors_close(self.f)
      self.f = nil
    end
  end

  local Writer = {}
  Writer.__index = Writer

  -- entries: list of {name, dtype, shape}; metadata: {key = "value"} or nil.
  function grove.safetensors_writer(path, entries, metadata)
    local op = "safetensors_writer"
    if type(path) ~= "string" then error(op .. ": expected a file path, got " .. type(path), 2) end
    if type(entries) ~= "table" then error(op .. ": expected a list of {name, dtype, shape}, got " .. type(entries), 2) end
    local n = #entries
    local names = ffi.new("const char *[?]", math.max(n, 1))
    local dtypes, ndims = ffi.new("int32_t[?]", math.max(n, 1)), ffi.new("int32_t[?]", math.max(n, 1))
    local shapes = ffi.new("int64_t[?]", 8 * math.max(n, 1))
    local keep = {} -- the strings the arrays point into stay referenced until the call
    for i, e in ipairs(entries) do
      local name, dtype, shape = e[1] or e.name, e[2] or e.dtype, e[3] or e.shape
      if type(name) ~= "string" then error(op .. ": entry " .. i .. " has no name", 2) end
      if type(shape) ~= "table" or #shape > 8 then error(op .. ": '" .. name .. "' needs a shape of at most 8 sizes", 2) end
      keep[i] = name
      names[i - 1] = name
      dtypes[i - 1] = grove._dtype_id(dtype or "f32", op)
      ndims[i - 1] = #shape
      for d, s in ipairs(shape) do shapes[(i - 1) * 8 + d - 1] = s end
    end
    local keys, values = {}, {}
    for k, v in pairs(metadata or {}) do keys[#keys + 1] = k end
    table.sort(keys)
    local ka, va = ffi.new("const char *[?]", math.max(#keys, 1)), ffi.new("const char *[?]", math.max(#keys, 1))
    for i, k in ipairs(keys) do
      values[i] = tostring(metadata[k])
      ka[i - 1], va[i - 1] = k, values[i]
    end
    local w = C.grove_safetensors_writer_open(path, n, names, dtypes, ndims, shapes, #keys, ka, va)
    if w == nil then error(last_error(), 2) end
    return setmetatable({ w = ffi.gc(w, C.grove_safetensors_writer_abort), path = path, keep = keep }, Writer)
  end

  local function writer(w)
    if w.w == nil then error("safetensors_writer: " .. w.path .. " was already finished or aborted", 3) end
    return w.w
  end

  function Writer:write(name, t)
    if not grove.is_tensor(t) then error("safetensors_writer: '" .. tostring(name) .. "' must be a tensor", 2) end
    if C.grove_safetensors_writer_write(writer(self), name, t.p) ~= 0 then error(last_error(), 2) end
  end

  -- finish and abort free the C writer whatever happens; detach it first.
  local function take(w)
    local p = writer(w)
    ffi.gc(p, nil)
    w.w = nil
    return p
  end

  function Writer:finish()
    if C.grove_safetensors_writer_finish(take(self)) ~= 0 then error(last_error(), 2) end
  end

  function Writer:abort()
    if self.w ~= nil then C.grove_safetensors_writer_abort(take(self)) end
  end
end
