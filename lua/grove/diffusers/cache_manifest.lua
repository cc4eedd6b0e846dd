-- The feature cache's manifest (CACHE/manifest.json), shared by the writer
-- (cache.lua, `grove cache`) and the data set that reads it
-- (cache_dataset.lua): reading and checking it, the facts of a model folder
-- it records, and the comparison that refuses a cache made with another
-- model. docs/sana15-real.md, "Feature cache", describes the format.
return function(grove, diffusers)
  local C = grove.C
  local json = grove.json

  local M = {}
  M.FORMAT, M.VERSION, M.NAME = "grove.feature_cache", 1, "manifest.json"

  local function is_file(p) return C.grove_path_kind(p) == C.GROVE_PATH_FILE end
  M.is_file = is_file

  local function shown(v)
    if type(v) == "string" then return "\"" .. v .. "\"" end
    if type(v) == "table" and v ~= json.null then
      local ok, s = pcall(json.encode, v)
      return ok and (s:gsub("%s+", " "):gsub(" $", "")) or "a table"
    end
    return tostring(v)
  end
  M.shown = shown

  -- The first difference between two values decoded from JSON (or about to
  -- be written as JSON), as "path A there, B here"; nil when they are equal.
  local function difference(a, b, path)
    if type(a) ~= "table" or type(b) ~= "table" or a == json.null or b == json.null then
      if a == b then return nil end
      return path .. " " .. shown(a) .. " there, " .. shown(b) .. " here"
    end
    local keys, seen = {}, {}
    for k in pairs(a) do if not seen[k] then seen[k] = true; keys[#keys + 1] = k end end
    for k in pairs(b) do if not seen[k] then seen[k] = true; keys[#keys + 1] = k end end
    table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
    for _, k in ipairs(keys) do
      local d = difference(a[k], b[k], path == "" and tostring(k) or (path .. "." .. tostring(k)))
      if d then return d end
    end
    return nil
  end
  M.difference = difference

  -- A pipeline from a folder path or a pipeline (grove.diffusers.pipeline).
  function M.pipeline_of(model, opts, who)
    if type(model) == "string" then return diffusers.pipeline(model, opts) end
    if type(model) == "table" and type(rawget(model, "dir")) == "string" and type(model.generate) == "function" then
      return model
    end
    error(who .. ": expected a model folder (a path) or a grove.diffusers.pipeline, got " .. type(model), 3)
  end

  -- What a cache depends on in a model folder: the DC-AE's and the text
  -- encoder's configs (whole, as config.json holds them) with the numbers
  -- the data set needs, the tokenizer's vocabulary size, and the
  -- transformer's channels when the folder has one. Components the pipeline
  -- holds already are used as they are; others are read as shapes only.
  -- need: "all" (the cache writer: every component must be there) or
  -- "present" (the data set's check: only what the folder has).
  function M.facts(pipe, need)
    local dir = pipe.dir
    local f = {}
    local function has(marker) return is_file(dir .. "/" .. marker) end
    if rawget(pipe, "vae") or need == "all" or has("vae/config.json") then
      local vae = rawget(pipe, "vae") or diffusers.vae(dir, { meta = true })
      f.vae = { config = vae.config, latent_channels = vae.latent_channels, scaling_factor = vae.scaling_factor,
                factor = vae.factor }
    end
    if rawget(pipe, "text_encoder") or need == "all" or has("text_encoder/config.json") then
      local enc = rawget(pipe, "text_encoder") or diffusers.text_encoder(dir, { meta = true })
      f.text_encoder = { config = enc.diffusers_config, hidden_size = enc.settings.hidden }
    end
    if rawget(pipe, "tokenizer") or need == "all" or has("tokenizer/tokenizer.model") then
      f.tokenizer = { vocab_size = pipe.tokenizer.vocab_size }
    end
    if rawget(pipe, "transformer") or has("transformer/config.json") then
      local T = rawget(pipe, "transformer")
      local c
      if T then c = T.config
      else
        local raw, where = diffusers.component_config(dir, "transformer")
        c = diffusers.transformer_config(raw, where)
      end
      f.transformer = { in_channels = c.in_channels, caption_channels = c.caption_channels, patch_size = c.patch_size,
                        sample_size = c.sample_size }
    end
    return f
  end

  -- The manifest at path, decoded and checked enough that the caller can
  -- trust its shape; errors start with who and name the file.
  function M.read(path, who)
    if not is_file(path) then
      error(who .. ": " .. path .. " is missing (not a feature cache, or `grove cache` has not started writing it)", 0)
    end
    local ok, m = pcall(json.read, path)
    if not ok then error(who .. ": " .. tostring(m), 0) end
    local function bad(what) error(who .. ": " .. path .. ": " .. what, 0) end
    if type(m) ~= "table" or m.format ~= M.FORMAT then bad("not a grove feature cache manifest (format is not \"" .. M.FORMAT .. "\")") end
    if m.version ~= M.VERSION then bad("manifest version " .. shown(m.version) .. "; this grove reads version " .. M.VERSION) end
    local function int(t, k, where, min)
      local v = t[k]
      if type(v) ~= "number" or v % 1 ~= 0 or v < (min or 0) or v >= 2 ^ 53 then
        bad(where .. k .. " must be an integer >= " .. (min or 0) .. ", got " .. shown(v))
      end
      return v
    end
    for _, k in ipairs { "latent_channels", "text_hidden_size", "max_sequence_length", "size", "shards_planned" } do
      int(m, k, "", 1)
    end
    if type(m.scaling_factor) ~= "number" then bad("scaling_factor must be a number, got " .. shown(m.scaling_factor)) end
    if m.features_dtype ~= "f32" and m.features_dtype ~= "bf16" then
      bad("features_dtype must be \"f32\" or \"bf16\", got " .. shown(m.features_dtype))
    end
    if type(m.model) ~= "table" then bad("model must be an object") end
    if type(m.shards) ~= "table" or not json.is_array(m.shards) then bad("shards must be a list") end
    local files = {}
    for i, e in ipairs(m.shards) do
      local where = "shards[" .. i .. "]."
      if type(e) ~= "table" then bad("shards[" .. i .. "] must be an object") end
      -- a shard is a plain file name inside the cache: a manifest from
      -- elsewhere must not make grove read or write other files
      if type(e.file) ~= "string" or not e.file:match("^[%w][%w_.%-]*%.safetensors$") then
        bad(where .. "file must be a file name like 512x512-00001.safetensors, got " .. shown(e.file))
      end
      if files[e.file] then bad("shard " .. e.file .. " is listed twice") end
      files[e.file] = true
      int(e, "count", where, 0)
      int(e, "height", where, 1); int(e, "width", where, 1)
      int(e, "latent_height", where, 1); int(e, "latent_width", where, 1)
      if type(e.bucket) ~= "string" then bad(where .. "bucket must be a string") end
      for _, k in ipairs { "ids", "captions", "skipped" } do
        if type(e[k]) ~= "table" then bad(where .. k .. " must be a list") end
      end
      if #e.ids ~= e.count or #e.captions ~= e.count then
        bad(where .. "ids and captions must list count (" .. e.count .. ") samples, got " .. #e.ids .. " and " .. #e.captions)
      end
    end
    if #m.shards > m.shards_planned then bad(#m.shards .. " shards listed but shards_planned is " .. m.shards_planned) end
    return m
  end

  return M
end
