-- The shapes data set: an endless, deterministic stream of rendered scenes
-- with GenEval-style captions (core/data/, docs/shapes.md).
--
--   local ds = grove.data.shapes{batch = 32, seed = 1, size = 32, split = "train"}
--   for step, batch in ds:take(1000) do
--     -- batch.images (B, size, size, 3) f32 in [-1, 1], batch.captions {strings},
--     -- batch.specs {specs}, batch.objects {{shape, color, cx, cy, w, h}...}
--   end
--
-- Options: batch (32), seed (1), size (32, in 16..128), split ("train" or
-- "heldout"), categories (a list of category names; all by default),
-- dtype ("f32" or "u8"), start (the first sample index, 0). Sample i of a
-- stream depends only on (seed, split, categories, i), never on the batching;
-- ds.position is the next sample's index (save it to resume, seek(i) to go back).
--
--   grove.data.shapes.render(specs_or_captions, {size =, seed =, start =, dtype =})
--     -> images, objects: draws scenes for given specs (colours the caption
--     leaves free are drawn, never as a held-out pair); spec i is laid out as
--     sample start + i - 1 of the seed.
--   grove.data.shapes.draw(object_lists, {size =, dtype =}) -> images: draws
--     explicit objects {shape =, color =, cx =, cy =, w =, h =} (fractions of the side).
--   grove.data.shapes.prompts(name) -> the lines of data/shapes/prompts/<name>.txt
local ffi = require "ffi"

return function(grove)
  local C = grove.C
  grove.data = grove.data or {}
  if not grove.data.captions then require "grove.data.captions"(grove) end
  local captions = grove.data.captions

  local scenes_ct = ffi.typeof("grove_shapes_scene[?]")
  local spec_ct = ffi.typeof("grove_shapes_spec")
  local rgb = ffi.new("uint8_t[3]")
  local splits = { train = 0, heldout = 1 }
  local dtypes = { f32 = C.GROVE_F32, u8 = C.GROVE_U8 }

  local last_error = grove.c_error

  local S = {}

  -- Lua spec -> grove_shapes_spec (validated).
  local function to_c(spec, out, level)
    if type(spec) == "string" then
      local parsed, err = captions.parse(spec)
      if not parsed then error(err, level + 1) end
      spec = parsed
    end
    spec = captions.check_spec(spec, level + 1)
    out.category = captions.category_index[spec.category]
    out.relation = spec.relation and captions.relation_index[spec.relation] or -1
    out.n_items = #spec.objects
    for i, o in ipairs(spec.objects) do
      local it = out.items[i - 1]
      it.shape = captions.shape_index[o.shape]
      it.color = o.color and captions.color_index[o.color] or -1
      it.count = o.count
    end
    return spec
  end
  S.to_c = to_c

  local function spec_of(cs)
    local objects = {}
    for i = 0, cs.n_items - 1 do
      local it = cs.items[i]
      objects[i + 1] = { shape = captions.shapes[it.shape + 1], count = it.count,
                         color = it.color >= 0 and captions.colors[it.color + 1] or nil }
    end
    return { category = captions.categories[cs.category + 1], objects = objects,
             relation = cs.relation >= 0 and captions.relations[cs.relation + 1] or nil }
  end

  local function objects_of(scene)
    local out = {}
    for k = 0, scene.n_objects - 1 do
      local o = scene.objects[k]
      out[k + 1] = { shape = captions.shapes[o.shape + 1], color = captions.colors[o.color + 1],
                     cx = o.cx, cy = o.cy, w = o.w, h = o.h }
    end
    return out
  end

  local function check_int(v, name, lo, hi, level)
    if type(v) ~= "number" or v % 1 ~= 0 or v < lo or (hi and v > hi) then
      error("shapes: " .. name .. " must be an integer " .. (hi and ("in [" .. lo .. ", " .. hi .. "]")
            or (">= " .. lo)) .. ", got " .. tostring(v), level + 1)
    end
    return v
  end

  local function dtype_of(d, level)
    local id = dtypes[d or "f32"]
    if not id then error("shapes: dtype must be \"f32\" or \"u8\", got " .. tostring(d), level + 1) end
    return id
  end

  local function render(n, scenes, size, dtype, level)
    local p = C.grove_shapes_render(n, scenes, size, dtype)
    if p == nil then error(last_error(), level + 1) end
    return grove._wrap(p)
  end

  local Stream = {}
  Stream.__index = Stream

  local function new_stream(opts)
    opts = opts or {}
    if type(opts) ~= "table" then error("shapes: expected an options table, got " .. type(opts), 3) end
    local known = { batch = true, seed = true, size = true, split = true, categories = true, dtype = true, start = true }
    for k in pairs(opts) do
      if not known[k] then error("shapes: unknown option '" .. tostring(k) .. "'", 3) end
    end
    local self = setmetatable({}, Stream)
    self.batch = check_int(opts.batch or 32, "batch", 1, nil, 3)
    self.seed = check_int(opts.seed or 1, "seed", 0, nil, 3)
    self.size = check_int(opts.size or 32, "size", 16, 128, 3)
    self.split = opts.split or "train"
    self.dtype = opts.dtype or "f32"
    self._dtype = dtype_of(self.dtype, 3)
    self._split = splits[self.split]
    if not self._split then error("shapes: split must be \"train\" or \"heldout\", got " .. tostring(self.split), 3) end
    self.position = check_int(opts.start or 0, "start", 0, nil, 3)
    local mask = 0
    if opts.categories ~= nil then
      if type(opts.categories) ~= "table" or #opts.categories == 0 then
        error("shapes: categories must be a non-empty list of category names", 3)
      end
      for _, c in ipairs(opts.categories) do
        local id = captions.category_index[c]
        if not id then
          error("shapes: unknown category '" .. tostring(c) .. "' (expected one of "
                .. table.concat(captions.categories, ", ") .. ")", 3)
        end
        mask = bit.bor(mask, bit.lshift(1, id))
      end
    end
    self._mask = mask
    self.categories = opts.categories
    self._scenes = scenes_ct(self.batch)
    -- fails now, not at the first batch, when the split has none of the categories
    if C.grove_shapes_sample(self.seed, 0, self._split, self._mask, self._scenes) ~= 0 then error(last_error(), 3) end
    return self
  end

  -- The next batch: {images, captions, specs, objects, index (of its first sample)}.
  function Stream:next()
    local n, sc = self.batch, self._scenes
    local first = self.position
    for i = 0, n - 1 do
      if C.grove_shapes_sample(self.seed, first + i, self._split, self._mask, sc + i) ~= 0 then
        error(last_error(), 2)
      end
    end
    local specs, caps, objs = {}, {}, {}
    for i = 0, n - 1 do
      local spec = spec_of(sc[i].spec)
      specs[i + 1] = spec
      caps[i + 1] = captions.generate(spec)
      objs[i + 1] = objects_of(sc[i])
    end
    self.position = first + n
    return { images = render(n, sc, self.size, self._dtype, 2), captions = caps, specs = specs,
             objects = objs, index = first }
  end

  -- for step, batch in ds:take(n) do ... end  (step counts from 1)
  Stream.take = require "grove.data.take"

  function Stream:seek(position)
    self.position = check_int(position, "position", 0, nil, 2)
    return self
  end

  -- {position =}: what a checkpoint needs to continue the stream.
  function Stream:state() return { position = self.position } end
  function Stream:set_state(st) return self:seek(st.position) end

  function S.render(specs, opts)
    opts = opts or {}
    if type(specs) ~= "table" or #specs == 0 then error("shapes.render: expected a non-empty list of specs or captions", 2) end
    local size = check_int(opts.size or 32, "size", 16, 128, 2)
    local seed = check_int(opts.seed or 1, "seed", 0, nil, 2)
    local start = check_int(opts.start or 0, "start", 0, nil, 2)
    local dtype = dtype_of(opts.dtype, 2)
    local n = #specs
    local sc = scenes_ct(n)
    local cs = spec_ct()
    for i = 1, n do
      to_c(specs[i], cs, 2)
      if C.grove_shapes_layout(cs, seed, start + i - 1, true, sc + (i - 1)) ~= 0 then error(last_error(), 2) end
    end
    local objs = {}
    for i = 0, n - 1 do objs[i + 1] = objects_of(sc[i]) end
    return render(n, sc, size, dtype, 2), objs
  end

  function S.draw(lists, opts)
    opts = opts or {}
    if type(lists) ~= "table" or #lists == 0 then error("shapes.draw: expected a non-empty list of object lists", 2) end
    local size = check_int(opts.size or 32, "size", 16, 128, 2)
    local dtype = dtype_of(opts.dtype, 2)
    local n = #lists
    local sc = scenes_ct(n)
    for i = 1, n do
      local list = lists[i]
      if #list > 8 then error("shapes.draw: scene " .. i .. " has " .. #list .. " objects (at most 8)", 2) end
      sc[i - 1].n_objects = #list
      for k, o in ipairs(list) do
        for _, f in ipairs{"cx", "cy", "w"} do
          if type(o[f]) ~= "number" then
            error("shapes.draw: scene " .. i .. " object " .. k .. ": " .. f .. " must be a number, got " .. type(o[f]), 2)
          end
        end
        local co = sc[i - 1].objects[k - 1]
        co.shape = captions.shape_index[o.shape] or -1
        co.color = captions.color_index[o.color] or -1
        co.cx, co.cy, co.w, co.h = o.cx, o.cy, o.w, o.h or o.w
      end
    end
    return render(n, sc, size, dtype, 2)
  end

  -- 8-bit RGB of each palette colour, and of the background.
  S.palette = {}
  for i, name in ipairs(captions.colors) do
    C.grove_shapes_rgb(i - 1, rgb)
    S.palette[name] = { rgb[0], rgb[1], rgb[2] }
  end
  C.grove_shapes_rgb(-1, rgb)
  S.background = { rgb[0], rgb[1], rgb[2] }
  S.heldout = captions.heldout_pairs()

  -- lua/grove/data/shapes.lua -> the repository root
  local source = debug.getinfo(1, "S").source
  local root = source:sub(1, 1) == "@" and source:sub(2):match("^(.*)lua/grove/data/shapes%.lua$") or ""
  S.prompt_dir = os.getenv("GROVE_SHAPES_PROMPTS") or (root .. "data/shapes/prompts")

  function S.prompts(name)
    if not captions.prompt_set_names then error("shapes.prompts: no prompt sets", 2) end
    local path = S.prompt_dir .. "/" .. tostring(name) .. ".txt"
    local f = io.open(path, "r")
    if not f then
      error("shapes.prompts: no prompt set '" .. tostring(name) .. "' (" .. path .. "; sets: "
            .. table.concat(captions.prompt_set_names, ", ") .. ")", 2)
    end
    local out = {}
    for line in f:lines() do
      if line:match("%S") then out[#out + 1] = line end
    end
    f:close()
    return out
  end

  grove.data.shapes = setmetatable(S, { __call = function(_, opts) return new_stream(opts) end })
end
