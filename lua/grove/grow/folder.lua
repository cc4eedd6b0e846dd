-- Surgery on diffusers transformer folders (`grove grow` / `grove prune` with
-- a folder): reads a SanaTransformer2DModel component — one safetensors file
-- or shards with their index, through grove.diffusers.component — and writes
-- a new component folder with config.json's num_layers updated, shards above
-- a size limit with their index, and every tensor in its stored dtype. One
-- tensor is read (its pages unmapped after the copy), made, written and
-- freed at a time; the model is never built.
--
--   grove.grow.folder("Sana_1600M", "Sana_1600M_grown", {strategy = "partial", depth = 24})
--   grove.prune.folder("Sana_1600M", "Sana_1600M_pruned", {remove = {3}})
--
-- A pipeline folder (model_index.json beside transformer/) as input writes
-- OUT/transformer; the other components are not copied (docs/growth.md).
return function(grove, grow)
  local C = grove.C
  local CLASS = "SanaTransformer2DModel"
  -- diffusers' default max_shard_size ("10GB", 10^9 bytes a GB)
  grow.FOLDER_SHARD_BYTES = 10e9

  local function join(dir, name) return (dir:gsub("/+$", "")) .. "/" .. name end
  local function is_dir(p) return C.grove_path_kind(p) == C.GROVE_PATH_DIR end
  local function exists(p) return C.grove_path_kind(p) ~= C.GROVE_PATH_NONE end

  -- "10GB", "500MB", "2GiB" or a number of bytes (diffusers' max_shard_size).
  function grow.parse_size(v, who)
    if type(v) == "number" and v >= 1 then return v end
    if type(v) == "string" then
      local n, unit = v:match("^%s*([%d%.]+)%s*(%a*)%s*$")
      local scale = ({ [""] = 1, B = 1, KB = 1e3, MB = 1e6, GB = 1e9, TB = 1e12, KIB = 2 ^ 10, MIB = 2 ^ 20,
                       GIB = 2 ^ 30, TIB = 2 ^ 40 })[(unit or ""):upper()]
      if n and tonumber(n) and scale and tonumber(n) * scale >= 1 then return math.floor(tonumber(n) * scale) end
    end
    error((who or "grow") .. ": a shard size is a number of bytes or a size like 5GB, 500MB or 2GiB, got '" ..
          tostring(v) .. "'", 0)
  end

  -- The transformer component of dir (a pipeline folder or the component
  -- itself), checked to be a SanaTransformer2DModel whose config agrees with
  -- its blocks. Returns the component, a source for grow.stream, and whether
  -- dir was a pipeline folder.
  function grow.open_transformer(dir, who, opts)
    opts = opts or {}
    if type(dir) ~= "string" then error(who .. ": expected the input folder's path, got " .. type(dir), 0) end
    if not is_dir(dir) then error(who .. ": " .. dir .. " is not a folder", 0) end
    local ok, comp = pcall(grove.diffusers.component, dir, "transformer", { variant = opts.variant })
    if not ok then error(who .. ": " .. tostring(comp):gsub("^diffusers%.component: ", ""), 0) end
    if comp.class ~= CLASS then
      comp:close()
      error(string.format("%s: %s: _class_name is %s; grove grows and prunes %s folders", who, comp.config_path,
                          comp.class and ("'" .. tostring(comp.class) .. "'") or "absent", CLASS), 0)
    end
    local src = { path = comp.dir, names = comp:names(), metadata = {}, order = "specs",
                  info = function(n) return comp:info(n) end, load = function(n) return comp:load(n) end }
    local pipeline = comp.dir ~= dir and comp.dir ~= (dir:gsub("/+$", ""))
    return comp, src, pipeline
  end

  -- The folder the new component goes to: OUT, or OUT/transformer for a
  -- pipeline input. It must not exist: surgery never overwrites.
  function grow.folder_target(out, pipeline, who)
    if type(out) ~= "string" or out == "" then error(who .. ": expected the output folder's path, got " .. type(out), 0) end
    local dir = pipeline and join(out, "transformer") or out
    if exists(dir) then
      error(who .. ": " .. dir .. " already exists; grove writes a new folder and never overwrites one " ..
            "(remove it or choose another --out)", 0)
    end
    if exists(dir .. ".partial") then
      error(who .. ": " .. dir .. ".partial exists (left by an interrupted run?); remove it first", 0)
    end
    return dir
  end

  -- Writes plan (grow.stream) as a component folder at dir: into
  -- dir.partial, renamed to dir when every file is complete (a failed run
  -- leaves nothing). config: the source's, num_layers becomes plan.M.
  -- opts: max_shard_bytes, variant, metadata (each file's).
  function grow.write_folder(plan, comp, dir, opts)
    local config = {}
    for k, v in pairs(comp.config) do config[k] = v end
    config.num_layers = plan.M
    local names = {}
    for i, e in ipairs(plan.entries) do names[i] = e[1] end
    local entry = {}
    for _, e in ipairs(plan.entries) do entry[e[1]] = e end
    local source = {
      names = function() return names end,
      info = function(_, n) return { dtype = entry[n][2], shape = entry[n][3] } end,
      load = function(_, n) return plan.make(n) end,
    }
    local tmp = dir .. ".partial"
    local ok, res = pcall(grove.diffusers.write_component, tmp, config, source,
                          { max_shard_bytes = opts.max_shard_bytes or grow.FOLDER_SHARD_BYTES, variant = opts.variant,
                            weights_name = comp.weights_name, metadata = opts.metadata })
    grove.empty_cache()
    if ok then
      local renamed, err = os.rename(tmp, dir)
      if not renamed then ok, res = false, "cannot rename " .. tmp .. " to " .. dir .. ": " .. tostring(err) end
    end
    if not ok then
      grow.remove_tree(tmp)   -- grow/complete.lua's: never follows a link
      error(res, 0)
    end
    return res
  end

  -- Checks that config.json's num_layers is the number of blocks the weights hold.
  function grow.check_layers(comp, N, who)
    local n = comp.config.num_layers
    if n ~= nil and n ~= N then
      error(string.format("%s: %s says num_layers = %s, but the weights hold %d blocks (transformer_blocks.0..%d)",
                          who, comp.config_path, tostring(n), N, N - 1), 0)
    end
  end

  -- 1-based block numbers from a number, a list, or a string "1,3,5-8"
  -- (ranges inclusive), each checked to be in 1..N (where names the
  -- source, who the command). Returns them ascending without repeats and
  -- as a set; nil for nil.
  function grow.block_list(v, what, N, where, who)
    if v == nil then return nil end
    who = who or "grow"
    if type(v) == "number" then v = { v } end
    if type(v) == "string" then
      local items = {}
      for w in v:gmatch("[^,%s]+") do
        local a, b = w:match("^(%d+)%-(%d+)$")
        if a then
          a, b = tonumber(a), tonumber(b)
          if b < a then error(who .. ": " .. what .. " has the range " .. w .. ", which runs backwards", 0) end
          if b - a > 1e6 then error(who .. ": " .. what .. " has the range " .. w .. ", which is too long", 0) end
          for j = a, b do items[#items + 1] = j end
        else
          local j = tonumber(w)
          if not j then error(who .. ": " .. what .. " needs comma-separated block indices, got '" .. v .. "'", 0) end
          items[#items + 1] = j
        end
      end
      v = items
    end
    if type(v) ~= "table" then error(who .. ": " .. what .. " must be a list of block indices, got " .. type(v), 0) end
    local set, out = {}, {}
    for _, j in ipairs(v) do
      if type(j) ~= "number" or j % 1 ~= 0 or j < 1 or j > N then
        error(string.format("%s: %s names block %s, but %s has blocks 1..%d (transformer_blocks.0..%d)", who, what,
                            tostring(j), where, N, N - 1), 0)
      end
      if not set[j] then out[#out + 1] = j end
      set[j] = true
    end
    table.sort(out)
    return out, set
  end

  -- The strategy's map for N source blocks; with o.keep, the strategy sees
  -- only the kept source blocks (NVlabs' 4.8B recipe grows the first 18 of
  -- Sana 1.6B's 20 blocks to 60) and the map names their source numbers.
  -- Returns the map and the source blocks left out (ascending).
  function grow.source_map(o, N, where)
    if o.keep == nil then return o.strategy.map(N, o.depth), {} end
    local kept, set = grow.block_list(o.keep, "keep", N, where, "grow")
    if #kept == 0 then error("grow: keep names no block", 0) end
    local inner = o.strategy.map(#kept, o.depth)
    if type(inner) ~= "table" then error("grow: strategy " .. o.strategy.name .. ": map gave a " .. type(inner), 0) end
    local map = {}
    for i = 1, o.depth do
      local j = inner[i]
      if type(j) == "number" then
        if not kept[j] then
          error(string.format("grow: strategy %s maps target block %d to kept block %s, but %d blocks are kept",
                              o.strategy.name, i, tostring(j), #kept), 0)
        end
        map[i] = kept[j]
      else
        map[i] = j
      end
    end
    local dropped = {}
    for j = 1, N do if not set[j] then dropped[#dropped + 1] = j end end
    return map, dropped
  end

  -- Grows a transformer folder. opts: grove.grow's (strategy, depth, init,
  -- noise, seed), keep (source blocks the strategy grows from: a list or
  -- "1-18"; the others are left out), max_shard_bytes (a number or "5GB";
  -- default 10 GB, as diffusers), variant (read and write
  -- <stem>.<variant>.safetensors). Returns a summary: source_depth, depth,
  -- kinds, keep, repeats, new, dropped, tensors, bytes, files, dir, seconds.
  function grow.folder(in_dir, out_dir, opts)
    local t0 = grove.now()
    opts = opts or {}
    local o = grow.options(opts)
    if not o.strategy.map then
      error("grow: strategy " .. o.strategy.name .. " has no map(N, M), which folder surgery needs " ..
            "(a strategy that is only a function works on models in memory: grove.grow)", 0)
    end
    local max = opts.max_shard_bytes and grow.parse_size(opts.max_shard_bytes, "grow")
    local comp, src, pipeline = grow.open_transformer(in_dir, "grow", opts)
    local ok, res = pcall(function()
      local dir = grow.folder_target(out_dir, pipeline, "grow")
      local dropped
      local plan = grow.stream(src, o, function(N)
        grow.check_layers(comp, N, "grow")
        local map
        map, dropped = grow.source_map(o, N, comp.dir)
        return map
      end, o.strategy.name)
      local w = grow.write_folder(plan, comp, dir, { max_shard_bytes = max, variant = opts.variant,
        metadata = { format = "pt", ["grove.grow"] = grow.describe(o, plan.N, plan.M) } })
      return { source_depth = plan.N, depth = plan.M, kinds = plan.kinds, keep = plan.keep, repeats = plan.repeats,
               new = plan.new, dropped = dropped, tensors = #plan.entries, bytes = plan.bytes, files = w.files, dir = dir,
               pipeline = pipeline, seconds = grove.now() - t0 }
    end)
    comp:close()
    if not ok then error(res, 0) end
    return res
  end

  -- True when path is a folder (the command line picks folder surgery).
  function grow.is_folder(path) return type(path) == "string" and is_dir(path) end
end
