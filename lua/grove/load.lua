-- File kinds: what a path holds, said from its header alone, and one
-- loader for all of them.
--
--   local info = grove.describe("runs/tiny/checkpoint.safetensors")
--   info.kind  -- "train_checkpoint"; info.what: "a grove training checkpoint (step 2000)"
--   local parts, kind = grove.load("runs/tiny/checkpoint.safetensors")
--
-- Kinds and what grove.load returns for them:
--   train_checkpoint    a run's checkpoint (grove.train)      parts {model, text, tokenizer, ...}
--                       (EMA weights unless opts.ema = false)
--   weights             model + text encoder (train.save_weights)  parts
--   pruned_weights      weights written by grove prune           parts
--   grown_weights       weights written by grove grow from a checkpoint or weights   parts
--   model               a model alone (Module:save, grove.config)  a grove.nn.Sana
--   diffusers_weights   a transformer's tensors in diffusers naming, no config   {name = tensor}
--   optimizer_state     an optimizer's state (Optimizer:save)    {name = tensor}
--   safetensors         any other safetensors file              {name = tensor}
--   diffusers_pipeline  a folder with model_index.json          its transformer (grove.nn.Sana)
--   diffusers_transformer  a transformer folder (config.json)   a grove.nn.Sana
--   diffusers_component    another component folder (vae, text_encoder, ...)  grove.diffusers.component
--   feature_cache       a folder grove cache wrote (manifest.json)   grove.diffusers.cache_dataset
--   feature_cache_shard one shard of a feature cache              {name = tensor}
-- The third value is describe's table (kind, what, metadata, names, ...).
return function(grove)
  local C = grove.C

  local PARTS = { train_checkpoint = true, weights = true, pruned_weights = true, grown_weights = true }
  grove.file_kinds_with_parts = PARTS

  local function has_prefix(names, prefix)
    for _, n in ipairs(names) do if n:sub(1, #prefix) == prefix then return true end end
    return false
  end

  -- A safetensors file's kind from its metadata and names.
  local function describe_file(path)
    local ok, r = pcall(grove.safetensors_open, path)
    if not ok then
      -- not safetensors (or broken): name what it looks like when that is clear
      local f = io.open(path, "rb")
      local head = f and f:read(8) or ""
      if f then f:close() end
      local what
      if head:sub(1, 8) == "\137PNG\r\n\26\n" then what = "a PNG image"
      elseif head:sub(1, 3) == "\255\216\255" then what = "a JPEG image"
      elseif head:match("^%s*[{%[]") then what = "a JSON file"
      elseif head:sub(1, 2) == "PK" then what = "a zip archive (a PyTorch .pt/.bin checkpoint?)" end
      if what then return { kind = "other", what = what, path = path } end
      error(tostring(r):gsub("^[^:]*%.lua:%d+: ", ""), 0)
    end
    local names, meta = r.names, r.metadata
    r:close()
    local info = { path = path, names = names, metadata = meta, count = #names }
    local gk = meta["grove.kind"]
    if gk == "train_checkpoint" then
      info.kind = "train_checkpoint"
      info.step = tonumber(meta.step)
      info.ema = has_prefix(names, "ema.model.")
      info.what = "a grove training checkpoint (step " .. tostring(meta.step) .. ")"
    elseif gk == "weights" then
      if meta["grove.prune"] then
        info.kind, info.what = "pruned_weights", "grove model weights pruned by grove prune (" .. meta["grove.prune"] .. ")"
      elseif meta["grove.grow"] then
        info.kind, info.what = "grown_weights", "grove model weights grown by grove grow (" .. meta["grove.grow"] .. ")"
      else
        info.kind, info.what = "weights", "grove model weights (a model and its text encoder)"
      end
    elseif meta.format == "grove.feature_cache" then
      info.kind = "feature_cache_shard"
      info.what = "a feature cache shard (" .. tostring(meta.count) .. " samples of bucket " .. tostring(meta.bucket) .. ")"
    elseif meta["grove.optimizer"] then
      info.kind, info.what = "optimizer_state", "an optimizer state (" .. meta["grove.optimizer"] .. ")"
    elseif meta["grove.config"] and has_prefix(names, "transformer_blocks.") then
      info.kind, info.what = "model", "a grove model file (a transformer alone, no text encoder)"
    elseif has_prefix(names, "transformer_blocks.") then
      info.kind, info.what = "diffusers_weights", "transformer weights in diffusers naming, without a config"
    else
      info.kind, info.what = "safetensors", "a safetensors file of " .. #names .. " tensors"
    end
    return info
  end

  local function describe_folder(path)
    local d = grove.diffusers
    local index = d.model_index(path)
    if index then
      local comps = {}
      for k, v in pairs(index) do if type(v) == "table" then comps[#comps + 1] = k end end
      table.sort(comps)
      return { kind = "diffusers_pipeline", path = path, components = comps,
               what = "a diffusers pipeline folder (" .. tostring(index._class_name or "model_index.json") ..
                      (#comps > 0 and ": " .. table.concat(comps, ", ") or "") .. ")" }
    end
    local base = path:gsub("/+$", "")
    if C.grove_path_kind(base .. "/config.json") == C.GROVE_PATH_NONE and
       C.grove_path_kind(base .. "/transformer/config.json") ~= C.GROVE_PATH_NONE then
      -- a pipeline's folders without model_index.json (grove.diffusers reads these too)
      return { kind = "diffusers_pipeline", path = path, components = { "transformer" },
               what = "a diffusers pipeline folder without model_index.json (transformer)" }
    end
    if C.grove_path_kind(base .. "/manifest.json") == C.GROVE_PATH_FILE then
      local okm, m = pcall(grove.json.read, base .. "/manifest.json")
      if okm and type(m) == "table" and m.format == "grove.feature_cache" then
        local shards = type(m.shards) == "table" and #m.shards or 0
        return { kind = "feature_cache", path = path, manifest = m,
                 what = string.format("a grove feature cache (%s samples in %d of %s shards%s)", tostring(m.samples),
                                      shards, tostring(m.shards_planned), m.complete and "" or ", unfinished") }
      end
    end
    local ok, config = pcall(grove.json.read, base .. "/config.json")
    if not ok or type(config) ~= "table" then
      return { kind = "other", path = path, what = "a folder without model_index.json or config.json (not a diffusers folder)" }
    end
    local class = tostring(config._class_name or "?")
    if class:match("Transformer") then
      return { kind = "diffusers_transformer", path = path, class = class, config = config,
               what = "a diffusers transformer folder (" .. class .. ")" }
    end
    return { kind = "diffusers_component", path = path, class = class, config = config,
             what = "a diffusers component folder (" .. class .. ")" }
  end

  --- What a path holds, from its header or folder layout alone (no tensor
  -- is read): {kind, what (a phrase for messages), path, and per kind
  -- metadata, names, step, components, class}. Errors name the path.
  function grove.describe(path)
    if type(path) ~= "string" then error("describe: expected a path, got " .. type(path), 2) end
    local k = C.grove_path_kind(path)
    if k == C.GROVE_PATH_NONE then error("describe: " .. path .. ": no such file or folder", 2) end
    if k == C.GROVE_PATH_DIR then return describe_folder(path) end
    return describe_file(path)
  end

  --- Loads whatever path holds and says what it was: value, kind, info
  -- (grove.describe's table). opts: ema (false: a checkpoint's raw weights),
  -- device, variant (diffusers weight files). See the table at the top of
  -- lua/grove/load.lua for what each kind gives.
  function grove.load(path, opts)
    opts = opts or {}
    local ok, info = pcall(grove.describe, path)
    if not ok then error((tostring(info):gsub("^describe: ", "load: ")), 2) end
    local kind = info.kind
    if PARTS[kind] then
      return grove.train.load_for_inference(path, opts), kind, info
    elseif kind == "model" then
      local m = grove.nn.load(path)
      if opts.device and opts.device ~= "cpu" then m:to(opts.device) end
      return m, kind, info
    elseif kind == "diffusers_pipeline" or kind == "diffusers_transformer" then
      local m = grove.diffusers.transformer(path, { variant = opts.variant })
      if opts.device and opts.device ~= "cpu" then m:to(opts.device) end
      return m, kind, info
    elseif kind == "diffusers_component" then
      local name = path:gsub("/+$", ""):match("([^/]+)$")
      return grove.diffusers.component(path, name, { variant = opts.variant }), kind, info
    elseif kind == "feature_cache" then
      return grove.diffusers.cache_dataset(path, { device = opts.device }), kind, info
    elseif kind == "other" then
      error("load: " .. path .. " is " .. info.what .. ", which grove does not load", 2)
    end
    local tensors = grove.load_safetensors(path)
    return tensors, kind, info
  end

  -- For a command's message: "<path> is <what>; <need>".
  function grove.wrong_kind(path, need, info)
    info = info or grove.describe(path)
    return path .. " is " .. info.what .. "; " .. need
  end
end
