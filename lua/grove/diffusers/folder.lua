-- diffusers folders: model_index.json, a component's config.json, and its
-- weights as one safetensors file or shards with an index
-- ({"metadata": {"total_size": N}, "weight_map": {tensor: shard file}}),
-- plain or in a variant (diffusion_pytorch_model.bf16.safetensors,
-- diffusion_pytorch_model.bf16-00001-of-00002.safetensors with
-- diffusion_pytorch_model.safetensors.index.bf16.json).
--
-- Index files and configs are untrusted: every shard must be a plain file
-- name inside the component folder (no "..", no absolute path, no symbolic
-- link leading out); every tensor sits exactly once, in the shard the index
-- names. Tensors are read lazily, one at a time: a reader keeps one mapping
-- per shard and a load copies one tensor and unmaps its pages, so a model
-- larger than memory streams through.
local ffi = require "ffi"

return function(grove, diffusers)
  local C = grove.C
  local json = grove.json

  local last_error = grove.c_error

  local function kind(path) return C.grove_path_kind(path) end

  local function real_path(path)
    local buf = ffi.new("char[?]", 4096)
    if C.grove_path_real(path, buf, 4096) ~= 0 then error(last_error(), 0) end
    return ffi.string(buf)
  end

  local function list_dir(dir)
    local l = C.grove_list_dir(dir)
    if l == nil then error(last_error(), 0) end
    local names = {}
    for i = 0, tonumber(C.grove_file_list_count(l)) - 1 do names[i + 1] = ffi.string(C.grove_file_list_get(l, i)) end
    C.grove_file_list_free(l)
    return names
  end
  -- the names of a folder's entries, sorted, and a path with its links
  -- resolved (the feature cache and folder surgery use them too)
  diffusers._list_dir = list_dir
  diffusers._real_path = real_path

  local function join(dir, name) return (dir:gsub("/+$", "")) .. "/" .. name end

  local function read_object(path)
    local v = json.read(path)
    if not json.is_object(v) then
      error(path .. ": expected a JSON object", 0)
    end
    return v
  end

  -- The parsed model_index.json of a pipeline folder, or nil when dir has
  -- none (a component folder).
  function diffusers.model_index(dir)
    if type(dir) ~= "string" then error("diffusers.model_index: expected a folder path, got " .. type(dir), 2) end
    if kind(dir) ~= C.GROVE_PATH_DIR then error("diffusers.model_index: " .. dir .. " is not a folder", 2) end
    local p = join(dir, "model_index.json")
    if kind(p) == C.GROVE_PATH_NONE then return nil end
    return read_object(p)
  end

  -- Raises an error naming `where` (a file) and the first key of config
  -- (sorted) that is not in known. known: a set {key = true} or a list of
  -- keys. Returns config.
  function diffusers.check_config(config, known, where)
    where = where or "config"
    if type(config) ~= "table" then error(where .. ": expected a config table, got " .. type(config), 2) end
    local set = {}
    if #known > 0 then
      for _, k in ipairs(known) do set[k] = true end
    else
      for k, v in pairs(known) do if v then set[k] = true end end
    end
    local bad = {}
    for k in pairs(config) do if not set[k] then bad[#bad + 1] = tostring(k) end end
    if #bad == 0 then return config end
    table.sort(bad)
    local more = #bad > 1 and " (also: " .. table.concat(bad, ", ", 2) .. ")" or ""
    error(where .. ": key '" .. bad[1] .. "' is not implemented by grove" .. more, 0)
  end

  -- A config value as errors show it: strings quoted, lists as JSON.
  function diffusers.show_value(v)
    if type(v) == "table" then return (grove.json.encode(v):gsub("%s+", "")) end
    if type(v) == "string" then return '"' .. v .. '"' end
    return tostring(v)
  end

  -- The opening every component's config reader shares: every key is one of
  -- defaults (diffusers' defaults) or inert (keys that change nothing) and
  -- _class_name, when given, is class. Returns get(k), the value or its
  -- default, and bad(k, want [, v]), which raises
  -- "<where>: key '<k>' is <v>; grove needs <want>".
  function diffusers.config_reader(config, class, defaults, inert, where)
    local known = {}
    for k in pairs(defaults) do known[k] = true end
    for k in pairs(inert) do known[k] = true end
    diffusers.check_config(config, known, where)
    if config._class_name ~= nil and config._class_name ~= class then
      error(where .. ": _class_name is '" .. tostring(config._class_name) .. "', grove reads " .. class .. " here", 0)
    end
    local function get(k)
      local v = config[k]
      if v == nil then v = defaults[k] end
      return v
    end
    local function bad(k, want, v)
      if v == nil then v = get(k) end
      error(string.format("%s: key '%s' is %s; grove needs %s", where, k, diffusers.show_value(v), want), 0)
    end
    return get, bad
  end

  -- File names of one weights stem in one variant.
  local function weight_names(stem, variant)
    local v = variant and ("." .. variant) or ""
    return {
      single = stem .. v .. ".safetensors",
      index = stem .. ".safetensors.index" .. v .. ".json",
      shard = function(i, k) return string.format("%s%s-%05d-of-%05d.safetensors", stem, v, i, k) end,
      shard_pattern = "^" .. (stem .. v):gsub("%p", "%%%0") .. "%-%d+%-of%-%d+%.safetensors$",
    }
  end

  -- A file named by untrusted input must be a plain name inside dir, and
  -- must not lead out of it through a link.
  local function check_inside(dir, real_dir, file, where, what)
    if file == "" or file == "." or file == ".." or file:find("/", 1, true) or file:find("\\", 1, true)
       or file:find("\0", 1, true) then
      error(where .. ": " .. what .. " names '" .. file .. "', which is not a file name inside the folder "
            .. "(paths, '..' and absolute paths are refused)", 0)
    end
    local p = join(dir, file)
    local k = kind(p)
    if k == C.GROVE_PATH_NONE then return p, false end
    if k ~= C.GROVE_PATH_FILE then error(where .. ": " .. what .. " names '" .. file .. "', which is not a regular file", 0) end
    local real = real_path(p)
    if real:sub(1, #real_dir + 1) ~= real_dir .. "/" then
      error(where .. ": " .. what .. " names '" .. file .. "', a link leading outside the folder (to " .. real .. ")", 0)
    end
    return p, true
  end

  local Component = {}
  Component.__index = Component

  local function component_dir(dir, name)
    if type(dir) ~= "string" then error("diffusers.component: expected a folder path, got " .. type(dir), 3) end
    if kind(dir) ~= C.GROVE_PATH_DIR then error("diffusers.component: " .. dir .. " is not a folder", 3) end
    if name and kind(join(join(dir, name), "config.json")) == C.GROVE_PATH_FILE then return join(dir, name) end
    if kind(join(dir, "config.json")) == C.GROVE_PATH_FILE then return dir end
    error("diffusers.component: " .. dir .. " has no " .. (name and (name .. "/config.json nor ") or "")
          .. "config.json (expected a pipeline folder or a component folder)", 3)
  end

  -- The parsed config.json of a component and its path, and nothing else
  -- read (shapes-only builds need no weights): dir is the pipeline folder
  -- (dir/name/config.json) or the component folder.
  function diffusers.component_config(dir, name)
    local p = join(component_dir(dir, name), "config.json")
    return read_object(p), p
  end

  -- Finds the one weights file or index of the folder.
  local function find_weights(dir, opts)
    local stems = opts.weights_name and { opts.weights_name } or { "diffusion_pytorch_model", "model" }
    local found = {}
    for _, stem in ipairs(stems) do
      local w = weight_names(stem, opts.variant)
      for _, f in ipairs { w.single, w.index } do
        if kind(join(dir, f)) ~= C.GROVE_PATH_NONE then found[#found + 1] = { file = f, names = w, stem = stem } end
      end
    end
    if #found > 1 then
      error(dir .. ": both " .. found[1].file .. " and " .. found[2].file .. " are present; grove does not guess "
            .. "which holds the weights (remove one)", 0)
    end
    if #found == 1 then return found[1] end
    local present = {}
    for _, f in ipairs(list_dir(dir)) do
      if f:find("%.safetensors$") or f:find("%.safetensors%.index") then present[#present + 1] = f end
    end
    local w = weight_names(stems[1], opts.variant)
    error(dir .. ": no weights " .. (opts.variant and ("of variant '" .. opts.variant .. "' ") or "") .. "(looked for "
          .. w.single .. " or " .. w.index .. (#stems > 1 and " and the same for 'model'" or "") .. "); the folder has "
          .. (#present > 0 and table.concat(present, ", ") .. (opts.variant and "" or " (a variant? pass { variant = ... })")
              or "no safetensors files"), 0)
  end

  -- Opens the shards of an index and checks that they agree with it.
  local function open_index(dir, real_dir, index_file)
    local where = join(dir, index_file)
    local idx = read_object(where)
    for k in pairs(idx) do
      if k ~= "metadata" and k ~= "weight_map" then error(where .. ": unexpected key '" .. k .. "' (an index holds metadata and weight_map)", 0) end
    end
    local map = idx.weight_map
    if not json.is_object(map) then
      error(where .. ": weight_map must be an object of tensor name -> shard file", 0)
    end
    if idx.metadata ~= nil and not json.is_object(idx.metadata) then
      error(where .. ": metadata must be an object", 0)
    end
    local names, shards, order = {}, {}, {}
    for name, file in pairs(map) do
      if type(file) ~= "string" then error(where .. ": weight_map: tensor '" .. name .. "' maps to a " .. type(file) .. ", not a file name", 0) end
      names[#names + 1] = name
    end
    table.sort(names)
    for _, name in ipairs(names) do
      local file = map[name]
      if not shards[file] then
        local p, exists = check_inside(dir, real_dir, file, where, "weight_map: tensor '" .. name .. "'")
        if not exists then error(where .. ": shard '" .. file .. "' (listed for tensor '" .. name .. "') does not exist", 0) end
        shards[file] = { path = p, file = file }
        order[#order + 1] = file
      end
    end
    table.sort(order)
    -- Shards named "<stem>-0000i-of-0000K": the index must use all K, or a
    -- shard it forgot (and every tensor in it) would be silently dropped.
    local count, prefix
    for _, file in ipairs(order) do
      local p, k = file:match("^(.*)%-%d+%-of%-(%d+)%.safetensors$")
      if p then
        if count and (tonumber(k) ~= count or p ~= prefix) then
          error(where .. ": weight_map names shards of different sets (" .. order[1] .. " and " .. file .. ")", 0)
        end
        count, prefix = tonumber(k), p
      end
    end
    if count then
      local used = {}
      for _, file in ipairs(order) do
        local i = file:match("%-(%d+)%-of%-%d+%.safetensors$")
        if i then used[tonumber(i)] = true end
      end
      for i = 1, count do
        if not used[i] then
          local file = string.format("%s-%05d-of-%05d.safetensors", prefix, i, count)
          error(where .. ": weight_map lists no tensor in shard " .. i .. " of " .. count .. " (" .. file .. ")", 0)
        end
      end
    end
    -- Where each tensor really is, over all shards.
    local actual = {}
    for _, file in ipairs(order) do
      local s = shards[file]
      s.reader = grove.safetensors_open(s.path)
      for _, name in ipairs(s.reader.names) do
        if actual[name] then
          error(where .. ": tensor '" .. name .. "' is in both " .. actual[name] .. " and " .. file, 0)
        end
        actual[name] = file
      end
    end
    for _, name in ipairs(names) do
      local want, got = map[name], actual[name]
      if got == nil then error(where .. ": tensor '" .. name .. "' is listed in shard " .. want .. ", which does not hold it", 0) end
      if got ~= want then
        error(where .. ": tensor '" .. name .. "' is listed in shard " .. want .. " but is in " .. got, 0)
      end
    end
    for _, file in ipairs(order) do
      for _, name in ipairs(shards[file].reader.names) do
        if map[name] == nil then error(where .. ": shard " .. file .. " holds tensor '" .. name .. "', which weight_map does not list", 0) end
      end
    end
    local located = {}
    for _, name in ipairs(names) do located[name] = shards[map[name]] end
    return names, located, order, shards
  end

  -- A component of a diffusers folder. dir: the pipeline folder (then
  -- dir/name is read) or the component folder itself. opts.variant ("bf16",
  -- "fp16", ...) picks variant files; opts.weights_name the file stem
  -- (default: diffusion_pytorch_model, else model). Fields: dir, name,
  -- config (parsed config.json), config_path, class (config._class_name),
  -- files (the weight files, sorted), index (the index path or nil).
  -- opts.dtype ("f32", "bf16", "f16"): floating-point tensors are converted
  -- to it as they load (one tensor at a time, so a BF16 copy of an F32
  -- model never holds both); info() reports the dtype load() returns.
  local CASTS = { f32 = true, bf16 = true, f16 = true }
  function diffusers.component(dir, name, opts)
    opts = opts or {}
    if opts.dtype ~= nil and not CASTS[opts.dtype] then
      error("diffusers.component: dtype must be \"f32\", \"bf16\" or \"f16\", got " .. tostring(opts.dtype), 2)
    end
    local cdir = component_dir(dir, name)
    local real_dir = real_path(cdir)
    local config_path = join(cdir, "config.json")
    local config = read_object(config_path)
    local w = find_weights(cdir, opts)
    local self = setmetatable({
      dir = cdir, name = name or cdir:gsub("/+$", ""):match("[^/]*$"), config = config, config_path = config_path,
      class = config._class_name or (type(config.architectures) == "table" and config.architectures[1]) or nil,
      weights_name = w.stem, cast = opts.dtype,
    }, Component)
    if w.file == w.names.index then
      self.index = join(cdir, w.file)
      local names, located, order, shards = open_index(cdir, real_dir, w.file)
      self._names, self._where, self.files, self._readers = names, located, order, shards
    else
      local p = check_inside(cdir, real_dir, w.file, cdir, "the weights file")
      local s = { path = p, file = w.file, reader = grove.safetensors_open(p) }
      local names, located = {}, {}
      for i, n in ipairs(s.reader.names) do names[i] = n; located[n] = s end
      table.sort(names)
      self._names, self._where, self.files, self._readers = names, located, { w.file }, { [w.file] = s }
    end
    return self
  end

  local function locate(self, name, op)
    if self._readers == nil then error("diffusers: component " .. self.dir .. " is closed", 3) end
    local s = self._where[name]
    if not s then error(self.dir .. ": no tensor named '" .. tostring(name) .. "'", 3) end
    return s
  end

  -- The tensor names, sorted (a new list).
  function Component:names()
    local out = {}
    for i, n in ipairs(self._names) do out[i] = n end
    return out
  end

  -- {dtype = "bf16", shape = {...}, file = "shard file name", stored =
  -- "BF16"} of one tensor, from the header only.
  function Component:info(name)
    local s = locate(self, name, "info")
    local i = s.reader:info(name)
    i.file = s.file
    if self.cast and CASTS[i.dtype] then i.dtype = self.cast end
    return i
  end

  -- One tensor, a new CPU tensor in its stored dtype (F64 as f32, BOOL as
  -- u8); its pages of the mapping are dropped, so loading a model tensor by
  -- tensor holds it once.
  function Component:load(name)
    local t = locate(self, name, "load").reader:get(name)
    if self.cast and CASTS[t:dtype()] and t:dtype() ~= self.cast then
      local c = t:to(self.cast)
      t:free()
      t = c
    end
    return t
  end

  -- Every tensor: {name = tensor}.
  function Component:load_all()
    local out = {}
    for _, n in ipairs(self._names) do out[n] = self:load(n) end
    return out
  end

  -- Closes the shards' mappings (also done when the component is collected).
  function Component:close()
    for _, s in pairs(self._readers or {}) do s.reader:close() end
    self._readers = nil
  end

  -- Calls fn(name, owner, key) for every parameter slot of a module tree.
  local function each_slot(mod, prefix, fn)
    for _, k in ipairs(mod._param_names) do
      if mod[k] ~= nil then fn(prefix .. k, mod, k) end
    end
    for _, ch in ipairs(mod:children()) do each_slot(ch[2], prefix .. ch[1] .. ".", fn) end
  end

  local function shape_str(s) return "(" .. table.concat(s, ", ") .. ")" end

  -- Fills a module tree built with shape-only stand-ins (nn.param_factory
  -- { meta = true }) from a source of tensors (names(), info(name),
  -- load(name): a component). Every parameter slot must be in the source
  -- with its shape, stored as F32, BF16 or F16; every tensor of the source
  -- must fill a slot or be in opts.ignore (a set of names read past). All
  -- names, shapes and dtypes are checked before any data is read, so a bad
  -- folder costs no loading. Tensors keep their stored dtype; F32 ones are
  -- trainable (requires_grad). opts.where names the folder and opts.class
  -- the model in errors. Returns model.
  function diffusers.load_parameters(model, source, opts)
    opts = opts or {}
    local where, class, ignore = opts.where or "diffusers", opts.class or "model", opts.ignore or {}
    local extra = {}
    for _, n in ipairs(source:names()) do extra[n] = true end
    local slots = {}
    each_slot(model, "", function(name, owner, key)
      if not extra[name] then error(where .. ": tensor '" .. name .. "' is missing (the config asks for it)", 0) end
      extra[name] = nil
      local info = source:info(name)
      local want = owner[key]:shape()
      local ok = #info.shape == #want
      for i = 1, #want do ok = ok and info.shape[i] == want[i] end
      if not ok then
        error(string.format("%s: tensor '%s' has shape %s, but config.json implies %s", where, name,
                            shape_str(info.shape), shape_str(want)), 0)
      end
      if info.dtype ~= "f32" and info.dtype ~= "bf16" and info.dtype ~= "f16" then
        error(where .. ": tensor '" .. name .. "' is stored as " .. tostring(info.dtype) .. "; grove reads F32, BF16 and F16 weights", 0)
      end
      slots[#slots + 1] = { name, owner, key }
    end)
    local left = {}
    for n in pairs(extra) do if not ignore[n] then left[#left + 1] = n end end
    if #left > 0 then
      table.sort(left)
      error(where .. ": tensor '" .. left[1] .. "' is not part of a " .. class .. " with this config" ..
            (#left > 1 and (" (nor " .. (#left - 1) .. " more: " .. table.concat(left, ", ", 2, math.min(#left, 6)) .. ")") or ""), 0)
    end
    for _, s in ipairs(slots) do
      local t = source:load(s[1])
      if t:dtype() == "f32" then t:requires_grad_(true) end
      s[2]:add_parameter(s[3], t)
    end
    return model
  end

  local function tensor_source(tensors)
    if type(tensors) ~= "table" then error("diffusers.write_component: expected tensors, got " .. type(tensors), 3) end
    if type(tensors.names) == "function" and type(tensors.load) == "function" then
      -- a component or anything like it: streamed, one tensor at a time
      local names = tensors:names()
      return names, function(n) local i = tensors:info(n); return i.dtype, i.shape end,
             function(n) return tensors:load(n), true end
    end
    local names = {}
    for k, t in pairs(tensors) do
      if type(k) ~= "string" then error("diffusers.write_component: tensor names must be strings, got " .. type(k), 3) end
      if not grove.is_tensor(t) then error("diffusers.write_component: '" .. k .. "' is not a tensor", 3) end
      names[#names + 1] = k
    end
    table.sort(names)
    return names, function(n) return tensors[n]:dtype(), tensors[n]:shape() end,
           function(n) return tensors[n], false end
  end

  -- Writes the weights, the index and config.json into the staging folder
  -- dir, and links in the files of the folder being replaced (final) that
  -- this write does not make. Returns write_component's result.
  local function write_staged(dir, final, config_text, names, info, load, opts)
    local w = weight_names(opts.weights_name or "diffusion_pytorch_model", opts.variant)
    local metadata = opts.metadata or { format = "pt" }
    local max = opts.max_shard_bytes

    -- Plan: names in sorted order, a new shard when the next tensor would
    -- overflow the current one (a tensor larger than the limit gets its own).
    local shards, total = { { entries = {}, bytes = 0 } }, 0
    for _, n in ipairs(names) do
      local dtype, shape = info(n)
      local numel = 1
      for _, s in ipairs(shape) do numel = numel * s end
      local bytes = numel * tonumber(C.grove_dtype_size(grove._dtype_id(dtype, "write_component")))
      local cur = shards[#shards]
      if max and #cur.entries > 0 and cur.bytes + bytes > max then
        cur = { entries = {}, bytes = 0 }
        shards[#shards + 1] = cur
      end
      cur.entries[#cur.entries + 1] = { n, dtype, shape }
      cur.bytes = cur.bytes + bytes
      total = total + bytes
    end
    local k = #shards
    for i, s in ipairs(shards) do s.file = k == 1 and w.single or w.shard(i, k) end

    local written, weight_map = {}, {}
    for _, s in ipairs(shards) do
      local writer = grove.safetensors_writer(join(dir, s.file), s.entries, metadata)
      for _, e in ipairs(s.entries) do
        local t, owned = load(e[1])
        local ok, err = pcall(writer.write, writer, e[1], t)
        if owned then t:free() end
        if not ok then writer:abort(); error(err, 0) end
        weight_map[e[1]] = s.file
      end
      writer:finish()
      written[#written + 1] = s.file
    end
    local files = require "grove.files"
    if k > 1 then
      files.write_atomic(join(dir, w.index), json.encode { metadata = { total_size = total }, weight_map = weight_map })
      written[#written + 1] = w.index
    end
    files.write_atomic(join(dir, "config.json"), config_text)
    written[#written + 1] = "config.json"
    -- The replaced folder's other files and folders come along (linked,
    -- not copied); its weights of this name (another shard count: a single
    -- file beside an index would be ambiguous) do not.
    if kind(final) == C.GROVE_PATH_DIR then
      for _, f in ipairs(list_dir(final)) do
        local ours = f == "config.json" or f == w.single or f == w.index or f:find(w.shard_pattern)
        if not ours and C.grove_path_link(join(final, f), join(dir, f)) ~= 0 then error(last_error(), 0) end
      end
    end
    return { files = written, total_size = total }
  end

  -- Writes a component folder: config.json (sorted keys, as diffusers
  -- writes it) and the tensors as <weights_name>.safetensors, or, when they
  -- exceed opts.max_shard_bytes, as shards <weights_name>-0000i-of-0000K
  -- .safetensors with <weights_name>.safetensors.index.json. tensors:
  -- {name = tensor} or a component (anything with names/info/load: copied
  -- one tensor at a time). opts: max_shard_bytes (default: one file),
  -- weights_name (default "diffusion_pytorch_model"), variant (adds
  -- ".<variant>" as diffusers names it), metadata (each file's safetensors
  -- metadata, default {format = "pt"}). The whole folder is written beside
  -- dir (dir.tmp), complete, and then put in dir's place in one step
  -- (grove_dir_replace), so a reader, or a kill at any moment, finds the
  -- old folder or the new one, never files of both. Files of an existing
  -- dir that are not this write's (other weight names or variants, a
  -- README) are carried over; weight files of the same name from the
  -- earlier write (other shard counts) are not. Dtypes are kept. Returns
  -- {files = {...}, total_size = bytes}.
  function diffusers.write_component(dir, config, tensors, opts)
    opts = opts or {}
    if type(dir) ~= "string" then error("diffusers.write_component: expected a folder path, got " .. type(dir), 2) end
    if type(config) ~= "table" then error("diffusers.write_component: expected a config table, got " .. type(config), 2) end
    local max = opts.max_shard_bytes
    if max ~= nil and (type(max) ~= "number" or max < 1) then
      error("diffusers.write_component: max_shard_bytes must be a positive number", 2)
    end
    local names, info, load = tensor_source(tensors)
    local config_text = json.encode(config) -- before any file is touched: a bad config changes nothing
    local final = dir:gsub("/+$", "")
    if final == "" then error("diffusers.write_component: cannot replace the root folder", 2) end
    local k = kind(final)
    if k ~= C.GROVE_PATH_NONE and k ~= C.GROVE_PATH_DIR then
      error("diffusers.write_component: " .. final .. " exists and is not a folder", 2)
    end
    local old = final .. ".old"
    dir = final .. ".tmp"
    -- leftovers of an interrupted write (a kill between the swap and the cleanup)
    for _, p in ipairs { dir, old } do
      if C.grove_dir_remove(p) ~= 0 then error(last_error(), 2) end
    end
    if C.grove_dir_make(dir) ~= 0 then error(last_error(), 2) end
    local ok, res = pcall(write_staged, dir, final, config_text, names, info, load, opts)
    if ok and C.grove_dir_replace(dir, final, old) ~= 0 then ok, res = false, last_error() end
    if not ok then
      C.grove_dir_remove(dir)
      error(res, 0)
    end
    if C.grove_dir_remove(old) ~= 0 then error(last_error(), 2) end
    return res
  end
end
