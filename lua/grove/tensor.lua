-- Tensors from Lua: a metatype over a one-pointer handle to a C tensor.
--
-- The handle owns one reference to the C tensor and releases it from its
-- finalizer (ffi.gc) or from :free(). Dimensions and indices are 1-based and
-- may count from the end (-1 is the last); the C API is 0-based, and this
-- file is where the translation happens. Index values *inside* tensors
-- (argmax results, embedding ids, class targets) are 0-based, as in PyTorch
-- and on disk.
local ffi = require "ffi"

return function(grove)
  local C = grove.C
  local M = {}          -- methods
  local Tensor = {}     -- metatable
  local handle_ct = ffi.typeof("grove_handle")
  local i64buf = ffi.typeof("int64_t[?]")
  local shape_a = ffi.new("int64_t[8]")
  local dims_a = ffi.new("int32_t[8]")

  -- dtypes and devices by name, from the C enums: grove_dtype_name gives
  -- each dtype's short name, the long ones (torch's) are aliases.
  local dtype_ids, dtype_names = {}, {}
  for id = 0, C.GROVE_DTYPE_COUNT - 1 do
    local name = ffi.string(C.grove_dtype_name(id))
    dtype_ids[name], dtype_names[id] = id, name
  end
  for alias, name in pairs { float = "f32", float32 = "f32", half = "f16", float16 = "f16", bfloat16 = "bf16",
                             uint8 = "u8", int8 = "i8", int32 = "i32", int64 = "i64", long = "i64", int = "i32",
                             byte = "u8" } do
    dtype_ids[alias] = dtype_ids[name]
  end
  grove.dtypes = dtype_ids
  grove.dtype_names = dtype_names  -- [id] = "f32", ...
  -- Devices by name (grove uses CUDA device 0: "cuda:0" is "cuda").
  local device_ids = { cpu = C.GROVE_CPU, cuda = C.GROVE_CUDA, ["cuda:0"] = C.GROVE_CUDA }
  local device_names = { [C.GROVE_CPU] = "cpu", [C.GROVE_CUDA] = "cuda" }
  grove.devices, grove.device_names = device_ids, device_names

  -- The C API counts dimensions and positions from 0, the Lua API from 1:
  -- this is the one place a C message is put in the Lua user's numbering.
  -- "dimension 0", "dimensions [0, 2]", "index 3 out of range for
  -- dimension 0" and narrow's "range [2, 5)" become 1-based; negative
  -- numbers (counted from the end, the same in both) stay as given.
  local function plus1(n)
    n = tonumber(n)
    return tostring(n >= 0 and n + 1 or n)
  end
  local function lua_numbering(msg)
    msg = msg:gsub("%f[%w_]dimension (%-?%d+)", function(n) return "dimension " .. plus1(n) end)
    msg = msg:gsub("%f[%w_]dimensions %[([%-%d, ]*)%]", function(list)
      return "dimensions [" .. list:gsub("%-?%d+", plus1) .. "]"
    end)
    msg = msg:gsub("%f[%w_]index (%-?%d+) out of range for dimension", function(n)
      return "index " .. plus1(n) .. " out of range for dimension"
    end)
    msg = msg:gsub("%f[%w_]range %[(%-?%d+), (%-?%d+)%)", function(a, b)
      return "range " .. plus1(a) .. ".." .. b
    end)
    return msg
  end
  grove._lua_numbering = lua_numbering
  -- The message of the C call that just failed (grove_last_error), in the
  -- Lua numbering.
  local function c_error() return lua_numbering(ffi.string(C.grove_last_error())) end
  grove.c_error = c_error
  -- Raises the C error at `level` as error() counts it from the function
  -- calling fail (2, the default: that function's caller).
  local function fail(level)
    error(c_error(), (level or 2) + 1)
  end
  grove.fail = fail
  -- Raises the C error when a call returned a failure status (nonzero);
  -- level as fail's. Returns the status otherwise.
  function grove.check(rc, level)
    if rc ~= 0 then error(c_error(), (level or 2) + 1) end
    return rc
  end

  local release = C.grove_handle_release

  -- Lua's collector sees only the small handles, not the tensors' memory
  -- behind them, so it would let dead activations pile up for many steps.
  -- Collect whenever live bytes have grown well past what the last
  -- collection left (Torch7 left this to the user's collectgarbage()).
  -- The slack is a quarter of what stayed live, at least 64 MB and at most
  -- 1 GB: doubling (the usual rule) let a forward of a 6.4 GB model pile up
  -- another 6.4 GB of dead temporaries before collecting, while a collection
  -- costs about a millisecond per thousand Lua objects, nothing next to the
  -- gigabyte of work between two.
  local live_total = C.grove_memory_live_total
  local gc_floor, gc_ceiling = 64 * 2^20, 2^30
  local gc_threshold = gc_floor
  local gc_base = 0  -- live bytes after the last collection
  local function collect()
    collectgarbage("collect")
    gc_base = tonumber(live_total())
    gc_threshold = gc_base + math.min(gc_ceiling, math.max(gc_floor, gc_base / 4))
  end
  local function pressure()
    if tonumber(live_total()) > gc_threshold then collect() end
  end
  -- Collects when more than a few MB were allocated since the last collection.
  function grove.collect_if_grown()
    if tonumber(live_total()) > gc_base + 8 * 2^20 then collect() end
  end

  -- Wraps a new C reference; raises the C error when the call failed.
  local function wrap(p)
    if p == nil then fail(2) end
    pressure()
    return ffi.gc(handle_ct(p), release)
  end
  grove._wrap = wrap

  local function is_tensor(x) return ffi.istype(handle_ct, x) end
  grove.is_tensor = is_tensor

  local function dtype_id(d, op)
    if d == nil then return C.GROVE_F32 end
    if type(d) == "number" then return d end
    local id = dtype_ids[d]
    if not id then error((op or "dtype") .. ": unknown dtype '" .. tostring(d) .. "'", 3) end
    return id
  end
  grove._dtype_id = dtype_id

  local function device_id(d, op)
    if d == nil then return nil end
    if type(d) == "number" and device_names[d] then return d end
    local id = device_ids[d]
    if not id then error((op or "device") .. ": unknown device '" .. tostring(d) .. "' (expected \"cpu\" or \"cuda\")", 3) end
    return id
  end
  grove._device_id = device_id
  local function is_device_name(x) return type(x) == "string" and device_ids[x] ~= nil end

  -- 1-based (or negative) Lua dimension to the C convention.
  local function cdim(d, op)
    if type(d) ~= "number" or d % 1 ~= 0 or d == 0 then
      error((op or "dim") .. ": dimension " .. tostring(d) .. " is invalid (dimensions are 1-based; -1 is the last)", 3)
    end
    return d > 0 and d - 1 or d
  end
  grove._cdim = cdim

  local function fill_shape(shape, op)
    if type(shape) ~= "table" then error((op or "shape") .. ": expected a shape table like {2, 3}, got " .. type(shape), 3) end
    local n = #shape
    if n > 8 then error((op or "shape") .. ": " .. n .. " dimensions; tensors have at most 8", 3) end
    for i = 1, n do
      local s = shape[i]
      if type(s) ~= "number" or s % 1 ~= 0 then error((op or "shape") .. ": size " .. tostring(s) .. " is not an integer", 3) end
      shape_a[i - 1] = s
    end
    return n, shape_a
  end

  local function tensor_arg(x, op, name)
    if is_tensor(x) then return x.p end
    error(op .. ": expected a tensor" .. (name and (" for " .. name) or "") .. ", got " .. type(x), 3)
  end

  -- ---- geometry ------------------------------------------------------------
  function M.dim(t) return t.p.ndim end
  function M.shape(t)
    local p, s = t.p, {}
    for i = 0, p.ndim - 1 do s[i + 1] = tonumber(p.shape[i]) end
    return s
  end
  function M.stride(t)
    local p, s = t.p, {}
    for i = 0, p.ndim - 1 do s[i + 1] = tonumber(p.stride[i]) end
    return s
  end
  function M.size(t, d)
    if d == nil then return M.shape(t) end
    local n = t.p.ndim
    if type(d) ~= "number" or d % 1 ~= 0 then
      error("size: dimension " .. tostring(d) .. " is invalid (dimensions are 1-based; -1 is the last)", 2)
    end
    local i = d < 0 and n + d or d - 1
    if d == 0 or i < 0 or i >= n then error("size: dimension " .. tostring(d) .. " out of range for a " .. n .. "-d tensor", 2) end
    return tonumber(t.p.shape[i])
  end
  function M.numel(t) return tonumber(C.grove_tensor_numel(t.p)) end
  function M.dtype(t) return dtype_names[t.p.dtype] end
  function M.device(t) return device_names[t.p.device] end
  function M.is_contiguous(t) return C.grove_tensor_is_contiguous(t.p) end
  function M.is_freed(t) return C.grove_tensor_is_freed(t.p) end

  -- Releases the data now; any later use raises "use of a freed tensor".
  function M.free(t)
    if t.p ~= nil then C.grove_tensor_free_data(t.p) end
  end

  -- ---- values ----------------------------------------------------------------
  -- Reading into Lua: a (possibly expanded, stride-0) tensor with more
  -- elements than this is refused before a buffer is asked for.
  local MAX_READ = 2 ^ 27
  local function read_all(t)
    local n = M.numel(t)
    if n > MAX_READ then
      error("tolist: " .. M.shape_str(t) .. " has " .. string.format("%.0f", n) .. " elements; reading into Lua is " ..
            "limited to " .. MAX_READ, 3)
    end
    local buf = ffi.new("double[?]", n > 0 and n or 1)
    if C.grove_tensor_read_doubles(t.p, buf, n) ~= 0 then fail(3) end
    return buf, n
  end

  function M.item(t)
    local v = ffi.new("double[1]")
    if C.grove_tensor_item(t.p, v) ~= 0 then fail() end
    return v[0]
  end

  -- A list nests one Lua table per position of every dimension but the
  -- last, and a tensor with no elements can still have huge leading
  -- dimensions ([2^40, 1, 0] is 2^40 tables, though nothing is read): the
  -- Lua values it would make are bounded like the elements, before any.
  function M.tolist(t)
    local shape = M.shape(t)
    local values, prefix = 0, 1
    for d = 1, #shape do
      prefix = prefix * shape[d]
      values = values + prefix
      if values > MAX_READ then
        error("tolist: " .. M.shape_str(t) .. " would make more than " .. MAX_READ .. " nested tables and elements; " ..
              "reading into Lua is limited to " .. MAX_READ, 2)
      end
    end
    local buf = read_all(t)
    if #shape == 0 then return buf[0] end
    local pos = 0
    local function build(d)
      local out = {}
      for i = 1, shape[d] do
        if d == #shape then out[i] = buf[pos]; pos = pos + 1
        else out[i] = build(d + 1) end
      end
      return out
    end
    return build(1)
  end

  -- ---- constructors ------------------------------------------------------------
  local function flatten(data, shape, depth, out)
    if type(data) == "number" or type(data) == "boolean" then
      if shape[depth] ~= nil then error("tensor: ragged nested table (a number where a list was expected)", 4) end
      out[#out + 1] = type(data) == "boolean" and (data and 1 or 0) or data
      return
    end
    if type(data) ~= "table" then error("tensor: cannot make a tensor from a " .. type(data), 4) end
    local n = #data
    if shape[depth] == nil then shape[depth] = n
    elseif shape[depth] ~= n then error("tensor: ragged nested table (lengths " .. shape[depth] .. " and " .. n .. ")", 4) end
    for i = 1, n do flatten(data[i], shape, depth + 1, out) end
    if n == 0 and depth == 1 then shape[1] = 0 end
  end

  local function options(o) return type(o) == "table" and o or {} end
  -- A trailing options table where the optional arguments used to be
  -- positional: the first table among them holds them by name. Tensors are
  -- cdata, never tables.
  local function named(o) return type(o) == "table" and o or nil end
  -- The default eps of the RMS and layer norms: the ops' and grove.nn's.
  grove.norm_eps = { rms = 1e-5, layer = 1e-5 }

  local function finish_new(t, opts)
    local dev = device_id(opts.device, "device")
    if dev and dev ~= t.p.device then t = wrap(C.grove_tensor_to_device(t.p, dev)) end
    if opts.requires_grad then M.requires_grad_(t, true) end
    return t
  end

  function grove.tensor(data, opts)
    opts = options(opts)
    if is_tensor(data) then return finish_new(M.clone(data), opts) end
    local shape, flat = {}, {}
    flatten(data, shape, 1, flat)
    -- a nested table's depth fixes the rank even when a level is empty
    local n = #flat
    local buf = ffi.new("double[?]", n > 0 and n or 1)
    for i = 1, n do buf[i - 1] = flat[i] end
    local nd, sh = fill_shape(shape, "tensor")
    return finish_new(wrap(C.grove_tensor_from_doubles(nd, sh, dtype_id(opts.dtype, "tensor"), buf, n)), opts)
  end

  -- Shapes may be given as a table or as separate numbers: zeros{2,3} or zeros(2, 3).
  local function shape_args(a, ...)
    if type(a) == "table" and not is_tensor(a) then return a, ... end
    local s, rest = {}, { a, ... }
    local i = 1
    while type(rest[i]) == "number" do s[i] = rest[i]; i = i + 1 end
    return s, rest[i]
  end

  function grove.empty(...)
    local shape, opts = shape_args(...)
    opts = options(opts)
    local nd, sh = fill_shape(shape, "empty")
    return finish_new(wrap(C.grove_tensor_empty(nd, sh, dtype_id(opts.dtype, "empty"), device_id(opts.device, "empty") or C.GROVE_CPU)), opts)
  end

  function grove.full(shape, value, opts)
    opts = options(opts)
    local nd, sh = fill_shape(shape, "full")
    return finish_new(wrap(C.grove_tensor_full(nd, sh, value, dtype_id(opts.dtype, "full"), device_id(opts.device, "full") or C.GROVE_CPU)), opts)
  end
  function grove.zeros(...)
    local shape, opts = shape_args(...)
    return grove.full(shape, 0, opts)
  end
  function grove.ones(...)
    local shape, opts = shape_args(...)
    return grove.full(shape, 1, opts)
  end

  function grove.arange(a, b, step, opts)
    if type(step) == "table" then opts, step = step, nil end
    if type(b) == "table" then opts, b = b, nil end
    if b == nil then a, b = 0, a end
    for _, v in ipairs { { a, "start" }, { b, "end" }, { step or 1, "step" } } do
      if type(v[1]) ~= "number" then error("arange: " .. v[2] .. " must be a number, got " .. type(v[1]), 2) end
    end
    opts = options(opts)
    return finish_new(wrap(C.grove_arange(a, b, step or 1, dtype_id(opts.dtype, "arange"))), opts)
  end

  function grove.linspace(a, b, steps, opts)
    opts = options(opts)
    return finish_new(wrap(C.grove_linspace(a, b, steps or 100, dtype_id(opts.dtype, "linspace"))), opts)
  end

  function grove.eye(n, m, opts)
    if type(m) == "table" then opts, m = m, nil end
    opts = options(opts)
    return finish_new(wrap(C.grove_eye(n, m or n, dtype_id(opts.dtype, "eye"))), opts)
  end

  -- On another device the draws are made there, in place: Philox is
  -- counter-based, so the values equal the CPU's for the same generator state.
  local function random(op, normal, ...)
    local shape, opts = shape_args(...)
    opts = options(opts)
    local nd, sh = fill_shape(shape, op)
    local dev = device_id(opts.device, op) or C.GROVE_CPU
    if dev == C.GROVE_CPU then
      return finish_new(wrap(normal and C.grove_randn(nd, sh, opts.generator) or C.grove_rand(nd, sh, opts.generator)), opts)
    end
    local t = wrap(C.grove_tensor_empty(nd, sh, C.GROVE_F32, dev))
    local st = normal and C.grove_normal_(t.p, opts.generator, 0, 1) or C.grove_uniform_(t.p, opts.generator, 0, 1)
    if st ~= 0 then fail(3) end
    return finish_new(t, opts)
  end
  function grove.rand(...) return random("rand", false, ...) end
  function grove.randn(...) return random("randn", true, ...) end

  local function like_opts(t, opts)
    opts = options(opts)
    return { dtype = opts.dtype or M.dtype(t), requires_grad = opts.requires_grad, generator = opts.generator,
             device = opts.device or M.device(t) }
  end
  function grove.zeros_like(t, o) return grove.zeros(M.shape(t), like_opts(t, o)) end
  function grove.ones_like(t, o) return grove.ones(M.shape(t), like_opts(t, o)) end
  function grove.full_like(t, v, o) return grove.full(M.shape(t), v, like_opts(t, o)) end
  function grove.empty_like(t, o) return grove.empty(M.shape(t), like_opts(t, o)) end
  function grove.rand_like(t, o) return grove.rand(M.shape(t), like_opts(t, o)) end
  function grove.randn_like(t, o) return grove.randn(M.shape(t), like_opts(t, o)) end

  -- ---- views ---------------------------------------------------------------------
  function M.view(t, ...)
    local shape = shape_args(...)
    local nd, sh = fill_shape(shape, "view")
    return wrap(C.grove_view(t.p, nd, sh))
  end
  function M.reshape(t, ...)
    local shape = shape_args(...)
    local nd, sh = fill_shape(shape, "reshape")
    return wrap(C.grove_reshape(t.p, nd, sh))
  end
  function M.permute(t, ...)
    local dims = shape_args(...)
    for i = 1, #dims do dims_a[i - 1] = cdim(dims[i], "permute") end
    return wrap(C.grove_permute(t.p, #dims, dims_a))
  end
  function M.transpose(t, d0, d1)
    return wrap(C.grove_transpose(t.p, cdim(d0 or 1, "transpose"), cdim(d1 or 2, "transpose")))
  end
  function M.t(t)
    if t.p.ndim ~= 2 then error("t: expects a 2-d tensor, got " .. M.shape_str(t) .. "; use transpose", 2) end
    return wrap(C.grove_transpose(t.p, 0, 1))
  end
  -- A 1-based (or negative, from the end) position along a dimension to
  -- the C convention; 0 and non-integers are errors, never the first element.
  local function cindex(i, op, what)
    if type(i) ~= "number" or i % 1 ~= 0 or i == 0 then
      error(op .. ": " .. (what or "index") .. " " .. tostring(i) ..
            " is invalid (positions are 1-based; -1 is the last)", 3)
    end
    return i > 0 and i - 1 or i
  end
  grove._cindex = cindex
  function M.narrow(t, d, start, len)
    local cd = cdim(d, "narrow")
    local i = cd < 0 and t.p.ndim + cd or cd
    -- checked before the shape array is read (an FFI index is not bounds-checked)
    if i < 0 or i >= t.p.ndim then
      error("narrow: dimension " .. d .. " out of range for " .. M.shape_str(t) .. " (" .. t.p.ndim .. " dimensions)", 2)
    end
    local n = tonumber(t.p.shape[i])
    cindex(start, "narrow", "start")
    if type(len) ~= "number" or len % 1 ~= 0 or len < 0 then
      error("narrow: length " .. tostring(len) .. " is not a non-negative integer", 2)
    end
    if start < 0 then start = n + start + 1 end
    return wrap(C.grove_narrow(t.p, cd, start - 1, len))
  end
  function M.select(t, d, i)
    return wrap(C.grove_select(t.p, cdim(d, "select"), cindex(i, "select")))
  end
  function M.expand(t, ...)
    local shape = shape_args(...)
    local nd, sh = fill_shape(shape, "expand")
    return wrap(C.grove_expand(t.p, nd, sh))
  end
  function M.expand_as(t, o) return M.expand(t, M.shape(o)) end
  -- squeeze() drops every size-1 dimension; squeeze(d) only d (when it has
  -- size 1). The C call takes a negative dimension as "all", so a Lua
  -- dimension is checked and made non-negative here.
  function M.squeeze(t, d)
    if d == nil then return wrap(C.grove_squeeze(t.p, -1)) end
    local cd = cdim(d, "squeeze")
    if cd < 0 then cd = t.p.ndim + cd end
    if cd < 0 or cd >= t.p.ndim then
      error("squeeze: dimension " .. d .. " out of range for " .. M.shape_str(t) .. " (" .. t.p.ndim .. " dimensions)", 2)
    end
    return wrap(C.grove_squeeze(t.p, cd))
  end
  function M.unsqueeze(t, d)
    -- -1 inserts after the last dimension, as torch
    local cd = cdim(d, "unsqueeze")
    if cd < 0 then cd = t.p.ndim + 1 + cd end
    if cd < 0 or cd > t.p.ndim then
      error("unsqueeze: dimension " .. d .. " out of range for " .. M.shape_str(t) .. " (" .. t.p.ndim .. " dimensions)", 2)
    end
    return wrap(C.grove_unsqueeze(t.p, cd))
  end
  function M.flatten(t) return M.reshape(t, { -1 }) end

  local MAX_PIECES = 2 ^ 24
  function M.split(t, size, d)
    d = d or 1
    local n = M.size(t, d)
    local out = {}
    local start = 1
    if type(size) == "table" then
      for i = 1, #size do out[i] = M.narrow(t, d, start, size[i]); start = start + size[i] end
      if start ~= n + 1 then error("split: sizes add up to " .. (start - 1) .. ", dimension has " .. n, 2) end
      return out
    end
    if type(size) ~= "number" or size <= 0 or size % 1 ~= 0 then error("split: size must be a positive integer", 2) end
    -- each piece is a tensor: a dimension of 2^40 (an expanded view) cut
    -- into size-1 pieces would never finish
    if math.ceil(n / size) > MAX_PIECES then
      error(string.format("split: %d pieces of size %d (dimension %d has %.0f) is more than the %d a split makes",
                          math.ceil(n / size), size, d, n, MAX_PIECES), 2)
    end
    while start <= n do
      local len = math.min(size, n - start + 1)
      out[#out + 1] = M.narrow(t, d, start, len)
      start = start + len
    end
    return out
  end
  function M.chunk(t, chunks, d)
    d = d or 1
    local n = M.size(t, d)
    if type(chunks) ~= "number" or chunks < 1 or chunks % 1 ~= 0 then error("chunk: number of chunks must be an integer >= 1", 2) end
    return M.split(t, math.ceil(n / chunks), d)
  end

  -- ---- copies ------------------------------------------------------------------------
  function M.contiguous(t) return wrap(C.grove_contiguous(t.p)) end
  function M.clone(t) return wrap(C.grove_clone(t.p)) end
  -- t:to(device), t:to(dtype), or both in either order: t:to("cuda", "f32").
  -- Moving records on the tape (the gradient flows back to t's device);
  -- already there, t itself is returned.
  function M.to(t, a, b)
    local dev, dtype
    for _, x in pairs { a, b } do
      if is_device_name(x) then dev = device_ids[x] else dtype = x end
    end
    local out = t
    if dev and dev ~= t.p.device then
      local np = C.grove_tensor_to_device(t.p, dev)
      if np == nil then fail(2) end -- names the caller's line
      out = wrap(np)
    end
    if dtype ~= nil then
      local np = C.grove_to_dtype(out.p, dtype_id(dtype, "to"))
      if np == nil then fail(2) end
      out = wrap(np)
    end
    return out
  end
  function M.cuda(t) return M.to(t, "cuda") end
  function M.cpu(t) return M.to(t, "cpu") end

  -- Moves a tensor in place: this handle (and every Lua reference to it)
  -- now holds the tensor's copy on device; requires_grad and .grad come
  -- along, the copy is a leaf. For parameters and optimizer state
  -- (Module:to, Optimizer:to); not for tensors on the tape.
  function M.to_(t, device)
    local dev = device_id(device, "to_")
    local p = t.p
    if p.device == dev then return t end
    if p.grad_fn ~= nil then
      error("to_: " .. M.shape_str(t) .. " was computed on the tape; move a leaf (or use :to, which is differentiable)", 2)
    end
    local was = C.grove_set_grad_enabled(false)
    local np = C.grove_tensor_to_device(p, dev)
    local g = np ~= nil and C.grove_tensor_grad(p) or nil
    local ng = g ~= nil and C.grove_tensor_to_device(g, dev) or nil
    C.grove_set_grad_enabled(was)
    if g ~= nil then C.grove_tensor_release(g) end
    if np == nil or (g ~= nil and ng == nil) then
      if np ~= nil then C.grove_tensor_release(np) end
      fail()
    end
    if p.requires_grad ~= 0 and C.grove_set_requires_grad(np, true) ~= 0 then
      C.grove_tensor_release(np)
      if ng ~= nil then C.grove_tensor_release(ng) end
      fail()
    end
    if ng ~= nil then
      local st = C.grove_tensor_set_grad(np, ng)
      C.grove_tensor_release(ng)
      if st ~= 0 then C.grove_tensor_release(np); fail() end
    end
    t.p = np
    C.grove_tensor_release(p)
    return t
  end
  function M.float(t) return M.to(t, "f32") end
  function M.long(t) return M.to(t, "i64") end
  function M.int(t) return M.to(t, "i32") end
  function M.byte(t) return M.to(t, "u8") end
  function M.bf16(t) return M.to(t, "bf16") end
  function M.half(t) return M.to(t, "f16") end

  local function as_tensor(x, like)
    if is_tensor(x) then return x end
    if type(x) == "number" then return grove.full({}, x, { dtype = like and M.dtype(like), device = like and M.device(like) }) end
    if type(x) == "table" then return grove.tensor(x, { dtype = like and M.dtype(like), device = like and M.device(like) }) end
    error("expected a tensor, number or table, got " .. type(x), 3)
  end

  function M.copy_(t, src)
    if C.grove_copy_(t.p, as_tensor(src, t).p) ~= 0 then fail() end
    return t
  end
  function M.fill_(t, v)
    if type(v) ~= "number" then error("fill_: expected a number, got " .. type(v), 2) end
    if C.grove_fill_(t.p, v) ~= 0 then fail() end
    return t
  end
  function M.zero_(t) return M.fill_(t, 0) end
  -- t:uniform_(lo, hi, gen) or t:uniform_{low =, high =, generator =}
  -- (also t:uniform_(lo, hi, {generator =})); likewise normal_ with mean, std.
  function M.uniform_(t, lo, hi, gen)
    local o = named(lo) or named(hi) or named(gen)
    if o then
      if o == lo then lo, hi = o.low, o.high end
      gen = o.generator
    end
    if C.grove_uniform_(t.p, gen, lo or 0, hi or 1) ~= 0 then fail() end
    return t
  end
  function M.normal_(t, mean, std, gen)
    local o = named(mean) or named(std) or named(gen)
    if o then
      if o == mean then mean, std = o.mean, o.std end
      gen = o.generator
    end
    if C.grove_normal_(t.p, gen, mean or 0, std or 1) ~= 0 then fail() end
    return t
  end

  -- ---- autograd ------------------------------------------------------------------------
  function M.requires_grad_(t, on)
    if C.grove_set_requires_grad(t.p, on == nil or on) ~= 0 then fail() end
    return t
  end
  function M.backward(t, grad, retain_graph)
    if C.grove_backward(t.p, grad and tensor_arg(grad, "backward", "grad") or nil, retain_graph and true or false) ~= 0 then
      fail()
    end
    -- The step's activations are dead now but for their Lua handles: free
    -- them before the next forward piles new ones on top.
    grove.collect_if_grown()
  end
  function M.detach(t) return wrap(C.grove_detach(t.p)) end
  function M.zero_grad(t) C.grove_zero_grad(t.p) end
  function M.grad_fn(t)
    local n = C.grove_grad_fn_name(t.p)
    return n ~= nil and ffi.string(n) or nil
  end

  local properties = {
    grad = function(t)
      local g = C.grove_tensor_grad(t.p)
      if g == nil then return nil end
      return ffi.gc(handle_ct(g), release)
    end,
    requires_grad = function(t) return t.p.requires_grad ~= 0 end,
    is_cuda = function(t) return t.p.device == C.GROVE_CUDA end,
    is_leaf = function(t) return t.p.is_leaf ~= 0 end,
  }

  -- ---- elementwise ------------------------------------------------------------------------
  local U = { neg = C.GROVE_NEG, exp = C.GROVE_EXP, log = C.GROVE_LOG, sqrt = C.GROVE_SQRT, rsqrt = C.GROVE_RSQRT,
              abs = C.GROVE_ABS, relu = C.GROVE_RELU, silu = C.GROVE_SILU, gelu = C.GROVE_GELU_TANH,
              sigmoid = C.GROVE_SIGMOID, tanh = C.GROVE_TANH }
  for name, op in pairs(U) do
    M[name] = function(t) return wrap(C.grove_unary(t.p, op)) end
  end

  local function binary(op, opname)
    return function(a, b)
      if is_tensor(a) then
        if is_tensor(b) then return wrap(C.grove_binary(a.p, b.p, op)) end
        if type(b) == "number" then return wrap(C.grove_binary_scalar(a.p, b, op, false)) end
      elseif type(a) == "number" and is_tensor(b) then
        return wrap(C.grove_binary_scalar(b.p, a, op, true))
      end
      error(opname .. ": expected tensors or numbers, got " .. type(a) .. " and " .. type(b), 2)
    end
  end
  M.add, M.sub, M.mul, M.div = binary(C.GROVE_ADD, "add"), binary(C.GROVE_SUB, "sub"), binary(C.GROVE_MUL, "mul"),
                                binary(C.GROVE_DIV, "div")

  function M.pow(t, e)
    if type(e) ~= "number" then error("pow: exponent must be a number", 2) end
    return wrap(C.grove_pow_scalar(t.p, e))
  end
  function M.clamp(t, lo, hi) return wrap(C.grove_clamp(t.p, lo or -math.huge, hi or math.huge)) end
  function M.square(t) return M.mul(t, t) end

  -- ---- reductions ---------------------------------------------------------------------------
  local R = { sum = C.GROVE_SUM, mean = C.GROVE_MEAN, max = C.GROVE_MAX, min = C.GROVE_MIN }
  -- t:sum(d, keepdim) or t:sum(d, {keepdim =}) or t:sum{dim =, keepdim =}
  -- (d a number or a list of dims); likewise mean, max, min, argmax, argmin.
  local function reduce_args(d, keepdim)
    if type(keepdim) == "table" then keepdim = keepdim.keepdim end
    if type(d) == "table" and d[1] == nil then d, keepdim = d.dim, d.keepdim end
    return d, keepdim
  end
  local function reduce(op, name)
    return function(t, d, keepdim)
      d, keepdim = reduce_args(d, keepdim)
      if d == nil then return wrap(C.grove_reduce(t.p, op, 0, nil, false)) end
      if (op == C.GROVE_MAX or op == C.GROVE_MIN) and type(d) == "number" then
        local idx = ffi.new("grove_tensor *[1]")
        local v = C.grove_reduce_arg(t.p, op, cdim(d, name), keepdim and true or false, idx)
        if v == nil then fail() end
        return wrap(v), ffi.gc(handle_ct(idx[0]), release)
      end
      local dims = type(d) == "table" and d or { d }
      for i = 1, #dims do dims_a[i - 1] = cdim(dims[i], name) end
      return wrap(C.grove_reduce(t.p, op, #dims, dims_a, keepdim and true or false))
    end
  end
  for name, op in pairs(R) do M[name] = reduce(op, name) end
  -- C takes dim < 0 as "flattened", so negative Lua dims are resolved here.
  local function argdim(t, d, op)
    if d == nil then return -1 end
    local c = cdim(d, op)
    if c < 0 then c = c + t.p.ndim end
    if c < 0 then error(op .. ": dimension " .. d .. " out of range for " .. t.p.ndim .. " dimensions", 3) end
    return c
  end
  function M.argmax(t, d, keepdim)
    d, keepdim = reduce_args(d, keepdim)
    return wrap(C.grove_argmax(t.p, argdim(t, d, "argmax"), keepdim and true or false))
  end
  function M.argmin(t, d, keepdim)
    d, keepdim = reduce_args(d, keepdim)
    return wrap(C.grove_argmin(t.p, argdim(t, d, "argmin"), keepdim and true or false))
  end

  -- ---- comparisons and masks: u8 (1 or 0), off the tape, for where / masked_fill ----------
  local CMP = { eq = C.GROVE_EQ, ne = C.GROVE_NE, lt = C.GROVE_LT, le = C.GROVE_LE, gt = C.GROVE_GT, ge = C.GROVE_GE }
  -- a number on the left turns the comparison round: 0 < x is x > 0
  local MIRROR = { eq = "eq", ne = "ne", lt = "gt", le = "ge", gt = "lt", ge = "le" }
  for name, op in pairs(CMP) do
    M[name] = function(a, b)
      if is_tensor(a) then
        if is_tensor(b) then return wrap(C.grove_compare(a.p, b.p, op)) end
        if type(b) == "number" then return wrap(C.grove_compare_scalar(a.p, b, op)) end
      elseif type(a) == "number" and is_tensor(b) then
        return wrap(C.grove_compare_scalar(b.p, a, CMP[MIRROR[name]]))
      end
      error(name .. ": expected tensors or numbers, got " .. type(a) .. " and " .. type(b), 2)
    end
  end
  function M.logical_and(a, b) return wrap(C.grove_logical(a.p, tensor_arg(b, "logical_and", "mask"), C.GROVE_AND)) end
  function M.logical_or(a, b) return wrap(C.grove_logical(a.p, tensor_arg(b, "logical_or", "mask"), C.GROVE_OR)) end
  function M.logical_not(a) return wrap(C.grove_logical(a.p, nil, C.GROVE_NOT)) end
  -- any / all over dimension d (a number or a table; none = all) or {dim =, keepdim =}, as sum
  local function mask_reduce(name)
    return function(t, d, keepdim)
      d, keepdim = reduce_args(d, keepdim)
      if d == nil then return wrap(C["grove_" .. name](t.p, 0, nil, false)) end
      local dims = type(d) == "table" and d or { d }
      for i = 1, #dims do dims_a[i - 1] = cdim(dims[i], name) end
      return wrap(C["grove_" .. name](t.p, #dims, dims_a, keepdim and true or false))
    end
  end
  M.any, M.all = mask_reduce("any"), mask_reduce("all")

  -- ---- linear algebra and nn ops ----------------------------------------------------------
  local function opt_p(x, op, name)
    if x == nil then return nil end
    return tensor_arg(x, op, name)
  end
  function M.matmul(a, b) return wrap(C.grove_matmul(a.p, tensor_arg(b, "matmul"))) end
  function M.linear(x, w, b) return wrap(C.grove_linear(x.p, tensor_arg(w, "linear", "weight"), opt_p(b, "linear", "bias"))) end
  function M.softmax(x, d) return wrap(C.grove_softmax(x.p, cdim(d or -1, "softmax"))) end
  function M.log_softmax(x, d) return wrap(C.grove_log_softmax(x.p, cdim(d or -1, "log_softmax"))) end
  -- layer_norm(x, w, b, eps) or layer_norm(x, {weight =, bias =, eps =}) or
  -- layer_norm(x, w, b, {eps =}); rms_norm(x, w, eps) likewise.
  function M.layer_norm(x, w, b, eps)
    local o = named(w) or named(b) or named(eps)
    if o then
      if o == w then w, b = o.weight, o.bias elseif o == b then b = o.bias end
      eps = o.eps
    end
    return wrap(C.grove_layer_norm(x.p, opt_p(w, "layer_norm", "weight"), opt_p(b, "layer_norm", "bias"),
                                   eps or grove.norm_eps.layer))
  end
  function M.rms_norm(x, w, eps)
    local o = named(w) or named(eps)
    if o then
      if o == w then w = o.weight end
      eps = o.eps
    end
    return wrap(C.grove_rms_norm(x.p, opt_p(w, "rms_norm", "weight"), eps or grove.norm_eps.rms))
  end
  -- conv2d(x, w, b, {stride =, padding =, groups =}): x NHWC (B, H, W, Cin),
  -- w in PyTorch's layout (Cout, Cin/groups, kh, kw), b (Cout) or nil; stride
  -- 1, padding 0 (zeros, both sides), groups 1 by default. The output is
  -- (B, (H + 2·padding − kh)/stride + 1, (W + 2·padding − kw)/stride + 1, Cout).
  function M.conv2d(x, w, b, o)
    o = options(o)
    return wrap(C.grove_conv2d(x.p, tensor_arg(w, "conv2d", "weight"), opt_p(b, "conv2d", "bias"),
                               o.stride or 1, o.padding or 0, o.groups or 1))
  end
  -- conv2d_bf16(x, w, b, opts): conv2d in bf16 mixed precision (x and w
  -- rounded to bf16, products summed in f32, f32 output; oneDNN's bf16
  -- convolution where the CPU multiplies bf16). Inference: its gradients
  -- are conv2d's at the unrounded operands (docs/scale.md).
  function M.conv2d_bf16(x, w, b, o)
    o = options(o)
    return wrap(C.grove_conv2d_bf16(x.p, tensor_arg(w, "conv2d_bf16", "weight"), opt_p(b, "conv2d_bf16", "bias"),
                                    o.stride or 1, o.padding or 0, o.groups or 1))
  end
  function M.embedding(weight, ids) return wrap(C.grove_embedding(weight.p, tensor_arg(ids, "embedding", "indices"))) end

  local function tensor_list(ts, op)
    if type(ts) ~= "table" then error(op .. ": expected a list of tensors", 3) end
    local n = #ts
    local arr = ffi.new("grove_tensor *[?]", n > 0 and n or 1)
    for i = 1, n do arr[i - 1] = tensor_arg(ts[i], op, "element " .. i) end
    return n, arr
  end
  function grove.cat(ts, d)
    local n, arr = tensor_list(ts, "cat")
    return wrap(C.grove_cat(n, arr, cdim(d or 1, "cat")))
  end
  function grove.stack(ts, d)
    local n, arr = tensor_list(ts, "stack")
    d = d or 1
    cdim(d, "stack")
    -- stack may insert after the last dimension: -1 means a new last dim
    local cd = d > 0 and d - 1 or ((n > 0 and ts[1].p.ndim or 0) + 1 + d)
    return wrap(C.grove_stack(n, arr, cd))
  end
  -- pad(x, pads, value) or pad(x, pads, {value =})
  function M.pad(x, pads, value)
    if type(value) == "table" then value = value.value end
    if type(pads) ~= "table" or #pads % 2 ~= 0 then error("pad: pads must be a table of (before, after) pairs", 2) end
    local arr = i64buf(#pads > 0 and #pads or 1)
    for i = 1, #pads do arr[i - 1] = pads[i] end
    return wrap(C.grove_pad(x.p, #pads / 2, arr, value or 0))
  end
  -- an integer resampling factor for C's int32 (the C side checks >= 1)
  local function factor_arg(v, op, name)
    if type(v) ~= "number" or v % 1 ~= 0 or v < -2 ^ 31 or v >= 2 ^ 31 then
      error(op .. ": " .. name .. " must be an integer >= 1, got " .. tostring(v), 3)
    end
    return v
  end
  -- NHWC x (B, H, W, C) → (B, H·s, W·s, C), each pixel repeated s×s times
  -- (torch's interpolate(mode="nearest", scale_factor=s)); the gradient sums
  -- each s×s block.
  function M.upsample_nearest(x, s) return wrap(C.grove_upsample_nearest(x.p, factor_arg(s, "upsample_nearest", "scale"))) end
  -- NHWC x (B, H, W, C·r²) → (B, H·r, W·r, C) in PyTorch's channel order:
  -- out[y·r + i, x·r + j, c] = x[y, x, c·r² + i·r + j].
  function M.pixel_shuffle(x, r) return wrap(C.grove_pixel_shuffle(x.p, factor_arg(r, "pixel_shuffle", "r"))) end
  -- NHWC x (B, H·r, W·r, C) → (B, H, W, C·r²), the inverse of pixel_shuffle.
  function M.pixel_unshuffle(x, r) return wrap(C.grove_pixel_unshuffle(x.p, factor_arg(r, "pixel_unshuffle", "r"))) end
  function grove.where(cond, a, b)
    return wrap(C.grove_where(tensor_arg(cond, "where", "condition"), as_tensor(a, is_tensor(b) and b or nil).p,
                              as_tensor(b, is_tensor(a) and a or nil).p))
  end
  function M.masked_fill(x, mask, value) return wrap(C.grove_masked_fill(x.p, tensor_arg(mask, "masked_fill", "mask"), value)) end
  function M.mse_loss(a, b) return wrap(C.grove_mse_loss(a.p, tensor_arg(b, "mse_loss", "target"))) end
  function M.cross_entropy(x, t) return wrap(C.grove_cross_entropy(x.p, tensor_arg(t, "cross_entropy", "target"))) end
  -- dropout(x, {p = 0.5, training = true, generator =}), or the positional
  -- dropout(x, p, training, gen).
  function M.dropout(x, p, training, gen)
    local o = named(p) or named(training) or named(gen)
    if o then
      if o == p then p, training = o.p, o.training elseif o == training then training = o.training end
      gen = o.generator
    end
    if training == nil then training = true end
    return wrap(C.grove_dropout(x.p, p or 0.5, training, gen))
  end
  -- cosine_similarity(a, b, d, eps) or cosine_similarity(a, b, {dim = -1, eps = 1e-8})
  function M.cosine_similarity(a, b, d, eps)
    local o = named(d) or named(eps)
    if o then
      if o == d then d = o.dim end
      eps = o.eps
    end
    return wrap(C.grove_cosine_similarity(a.p, tensor_arg(b, "cosine_similarity"), cdim(d or -1, "cosine_similarity"), eps or 1e-8))
  end

  -- fused SANA block ops (core/nn/)
  -- The trailing arguments of these may also come as one options table:
  -- linear_attention(q, k, v, {head_dim =, eps =}), cross_attention(q, k, v,
  -- {mask =, heads =}), norm_modulate(x, shift, scale, {eps =}),
  -- timestep_embedding(t, {dim =, max_period =}).
  function M.linear_attention(q, k, v, head_dim, eps)
    local o = named(head_dim) or named(eps)
    if o then
      if o == head_dim then head_dim = o.head_dim end
      eps = o.eps
    end
    return wrap(C.grove_linear_attention(q.p, tensor_arg(k, "linear_attention", "k"), tensor_arg(v, "linear_attention", "v"),
                                         head_dim or 32, eps or 1e-15))
  end
  function M.cross_attention(q, k, v, mask, heads)
    local o = named(mask) or named(heads)
    if o then
      if o == mask then mask = o.mask end
      heads = o.heads
    end
    return wrap(C.grove_cross_attention(q.p, tensor_arg(k, "cross_attention", "k"), tensor_arg(v, "cross_attention", "v"),
                                        opt_p(mask, "cross_attention", "mask"), heads or 1))
  end
  -- Causal self-attention of a decoder text encoder (Gemma-2), forward only:
  -- q (B, L, heads·d), k, v (B, L, kv_heads·d), mask (B, L) u8 or f32
  -- (nonzero = a real token) or nil; opts.heads (required), kv_heads
  -- (default heads), scale (default 1/√d), window (the last `window` keys;
  -- nil: no window), softcap (nil: none).
  local causal_opts = { heads = true, kv_heads = true, scale = true, window = true, softcap = true }
  function M.causal_attention(q, k, v, mask, opts)
    if type(opts) ~= "table" then error("causal_attention: expected an options table with heads, got " .. type(opts), 2) end
    for key in pairs(opts) do
      if not causal_opts[key] then error("causal_attention: unknown option '" .. tostring(key) .. "' (heads, kv_heads, scale, window, softcap)", 2) end
    end
    local heads = opts.heads
    if type(heads) ~= "number" then error("causal_attention: opts.heads is required", 2) end
    local d = q.p.ndim == 3 and tonumber(q.p.shape[2]) / heads or 1
    return wrap(C.grove_causal_attention(q.p, tensor_arg(k, "causal_attention", "k"), tensor_arg(v, "causal_attention", "v"),
                                         opt_p(mask, "causal_attention", "mask"), heads, opts.kv_heads or heads,
                                         opts.scale or 1 / math.sqrt(d), opts.window or 0, opts.softcap or 0))
  end
  function M.norm_modulate(x, shift, scale, eps)
    if type(eps) == "table" then eps = eps.eps end
    return wrap(C.grove_norm_modulate(x.p, tensor_arg(shift, "norm_modulate", "shift"),
                                      tensor_arg(scale, "norm_modulate", "scale"), eps or 1e-6))
  end
  function M.gated_residual(x, gate, y)
    return wrap(C.grove_gated_residual(x.p, tensor_arg(gate, "gated_residual", "gate"), tensor_arg(y, "gated_residual", "y")))
  end
  function M.glu_silu(h) return wrap(C.grove_glu_silu(h.p)) end
  function M.timestep_embedding(t, dim, max_period)
    local o = named(dim) or named(max_period)
    if o then
      if o == dim then dim = o.dim end
      max_period = o.max_period
    end
    return wrap(C.grove_timestep_embedding(t.p, dim or 256, max_period or 10000))
  end

  -- every method is also a grove.<name> function
  for name, f in pairs(M) do if grove[name] == nil then grove[name] = f end end
  M.cat = function(t, others, d) local l = { t }; for i = 1, #others do l[i + 1] = others[i] end; return grove.cat(l, d) end

  -- ---- printing --------------------------------------------------------------------------------
  function M.shape_str(t)
    local s = M.shape(t)
    return "[" .. table.concat(s, ",") .. "]"
  end

  -- One printer for tensors: the REPL's (repl/pretty.lua: Torch7's layout,
  -- only the shown entries read), for print(t) and tostring(t) too.
  function Tensor.__tostring(t)
    if t.p == nil then return "<freed tensor>" end
    return require("grove.repl.pretty").tensor(t)
  end

  -- ---- metamethods --------------------------------------------------------------------------------
  Tensor.__add, Tensor.__sub, Tensor.__mul, Tensor.__div = M.add, M.sub, M.mul, M.div
  Tensor.__unm = M.neg
  Tensor.__len = function(t)
    if t.p.ndim == 0 then error("len: a 0-d tensor has no length", 2) end
    return tonumber(t.p.shape[0])
  end

  -- t[i] selects along the first dimension (1-based, negative from the end);
  -- a 1-d tensor gives a number, as Torch7 did.
  Tensor.__index = function(t, k)
    local m = M[k]
    if m then return m end
    if type(k) == "number" then
      local s = M.select(t, 1, k)
      if t.p.ndim == 1 then return M.item(s) end
      return s
    end
    local prop = properties[k]
    if prop then return prop(t) end
    return nil
  end
  Tensor.__newindex = function(t, k, v)
    if type(k) == "number" then
      local s = M.select(t, 1, k)
      if is_tensor(v) then M.copy_(s, v) else M.fill_(s, v) end
      return
    end
    if k == "grad" then
      if C.grove_tensor_set_grad(t.p, v and tensor_arg(v, "grad") or nil) ~= 0 then fail() end
      return
    end
    if k == "requires_grad" then M.requires_grad_(t, v); return end
    error("tensor: cannot set field '" .. tostring(k) .. "'", 2)
  end

  ffi.metatype(handle_ct, Tensor)
  grove.Tensor = M
end
