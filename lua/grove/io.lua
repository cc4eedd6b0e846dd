-- Checkpoint files: safetensors (huggingface/safetensors), read and written
-- by core/io/safetensors.c.
--
--   grove.save_safetensors(path, tensors, metadata)
--     tensors: {name = tensor, ...} (saved in sorted name order, so the same
--     tensors always give the same bytes) or a list {{name, tensor}, ...}
--     (saved in list order); metadata: {key = "value", ...} or nil.
--   grove.load_safetensors(path) -> {name = tensor}, metadata, {names in file order}
--   grove.safetensors_info(path) -> {{name=, dtype=, shape=, stored=}, ...}, metadata
--     (reads the header only; stored is the file's dtype name, "F64" for
--     a tensor read as f32)
local ffi = require "ffi"

return function(grove)
  local C = grove.C
  local dtype_names = grove.dtype_names
  local shape_a = ffi.new("int64_t[8]")
  local dtype_a, ndim_a = ffi.new("int32_t[1]"), ffi.new("int32_t[1]")

  local last_error = grove.c_error

  -- level: how far up the caller of the public function is.
  local function sorted_keys(t, op, what, level)
    local keys = {}
    for k in pairs(t) do
      if type(k) ~= "string" then error(op .. ": " .. what .. " names must be strings, got " .. type(k), level) end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    return keys
  end

  -- Names and tensors from either accepted form, in the order they are saved.
  local function collect_tensors(tensors, op)
    if type(tensors) ~= "table" then error(op .. ": expected a table of tensors, got " .. type(tensors), 3) end
    local names, list = {}, {}
    local n = #tensors
    if n > 0 then
      local count = 0
      for _ in pairs(tensors) do count = count + 1 end
      if count ~= n then error(op .. ": the tensor table mixes a list of {name, tensor} pairs with named entries", 3) end
      for i = 1, n do
        local e = tensors[i]
        if type(e) ~= "table" or grove.is_tensor(e) then
          error(op .. ": list entry " .. i .. " must be a {name, tensor} pair", 3)
        end
        names[i], list[i] = e[1], e[2]
      end
    else
      names = sorted_keys(tensors, op, "tensor", 4)
      for i, k in ipairs(names) do list[i] = tensors[k] end
    end
    for i = 1, #names do
      if type(names[i]) ~= "string" then
        error(op .. ": tensor name " .. i .. " must be a string, got " .. type(names[i]), 3)
      end
      if not grove.is_tensor(list[i]) then
        error(op .. ": '" .. names[i] .. "' must be a tensor, got " .. type(list[i]), 3)
      end
    end
    return names, list
  end

  function grove.save_safetensors(path, tensors, metadata)
    local op = "save_safetensors"
    if type(path) ~= "string" then error(op .. ": expected a file path, got " .. type(path), 2) end
    local names, list = collect_tensors(tensors, op)
    metadata = metadata or {}
    if type(metadata) ~= "table" then error(op .. ": metadata must be a table of strings, got " .. type(metadata), 2) end
    local keys = sorted_keys(metadata, op, "metadata", 3)
    local values = {}
    for i, k in ipairs(keys) do
      local v = metadata[k]
      if type(v) == "number" then v = tostring(v) end
      if type(v) ~= "string" then error(op .. ": metadata value for '" .. k .. "' must be a string, got " .. type(v), 2) end
      values[i] = v
    end
    local n, m = #names, #keys
    local name_a = ffi.new("const char *[?]", n > 0 and n or 1)
    local tensor_a = ffi.new("grove_tensor *[?]", n > 0 and n or 1)
    local key_a = ffi.new("const char *[?]", m > 0 and m or 1)
    local value_a = ffi.new("const char *[?]", m > 0 and m or 1)
    -- The arrays point into Lua strings; nothing allocates between filling
    -- them and the call, so no collection can run in between.
    for i = 1, n do
      name_a[i - 1] = names[i]
      tensor_a[i - 1] = list[i].p
    end
    for i = 1, m do
      key_a[i - 1] = keys[i]
      value_a[i - 1] = values[i]
    end
    local rc = C.grove_safetensors_save(path, n, name_a, tensor_a, m, key_a, value_a)
    if rc ~= 0 then error(last_error(), 2) end
  end

  -- The file is closed by the finalizer if a caller's error escapes first.
  local function open(path, op)
    if type(path) ~= "string" then error(op .. ": expected a file path, got " .. type(path), 3) end
    local f = C.grove_safetensors_open(path)
    if f == nil then error(last_error(), 3) end
    return ffi.gc(f, C.grove_safetensors_close)
  end

  local function close(f)
    ffi.gc(f, nil)
    C.grove_safetensors_close(f)
  end

  local function read_metadata(f)
    local meta = {}
    for i = 0, tonumber(C.grove_safetensors_metadata_count(f)) - 1 do
      local k = C.grove_safetensors_metadata_key(f, i)
      meta[ffi.string(k)] = ffi.string(C.grove_safetensors_metadata(f, k))
    end
    return meta
  end

  local function read_names(f)
    local names = {}
    for i = 0, tonumber(C.grove_safetensors_count(f)) - 1 do
      names[i + 1] = ffi.string(C.grove_safetensors_name(f, i))
    end
    return names
  end

  function grove.load_safetensors(path)
    local f = open(path, "load_safetensors")
    local names, tensors = read_names(f), {}
    for _, name in ipairs(names) do
      local p = C.grove_safetensors_get(f, name)
      if p == nil then
        local msg = last_error()
        close(f)
        error(msg, 2)
      end
      tensors[name] = grove._wrap(p)
    end
    local meta = read_metadata(f)
    close(f)
    return tensors, meta, names
  end

  function grove.safetensors_info(path)
    local f = open(path, "safetensors_info")
    local list = {}
    for i, name in ipairs(read_names(f)) do
      if C.grove_safetensors_info(f, name, dtype_a, ndim_a, shape_a) ~= 0 then
        local msg = last_error()
        close(f)
        error(msg, 2)
      end
      local shape = {}
      for d = 0, ndim_a[0] - 1 do shape[d + 1] = tonumber(shape_a[d]) end
      list[i] = { name = name, dtype = dtype_names[dtype_a[0]], shape = shape,
                  stored = ffi.string(C.grove_safetensors_stored_dtype(f, name)) }
    end
    local meta = read_metadata(f)
    close(f)
    return list, meta
  end
end
