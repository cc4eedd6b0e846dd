-- The transformer of a diffusers folder (SanaTransformer2DModel) as a
-- grove.nn.Sana: config.json read key by key, weights checked against the
-- shapes the config implies and kept in their stored dtype (docs/diffusers.md,
-- "Transformer").
--
--   local T = grove.diffusers.transformer(dir, { meta = false })
--   local y = T:forward(x, t, text, mask, { guidance = g })
--   grove.diffusers.save(out_dir, T)
return function(grove)
  local diffusers = grove.diffusers or {}
  grove.diffusers = diffusers
  local nn = grove.nn

  local CLASS = "SanaTransformer2DModel"

  -- diffusers' own defaults for keys a config.json leaves out (the
  -- signature of SanaTransformer2DModel.__init__): a folder written by an
  -- older diffusers omits the keys added since, and means these.
  local DEFAULTS = {
    in_channels = 32, out_channels = 32, num_attention_heads = 70, attention_head_dim = 32, num_layers = 20,
    num_cross_attention_heads = 20, cross_attention_head_dim = 112, cross_attention_dim = 2240,
    caption_channels = 2304, mlp_ratio = 2.5, dropout = 0.0, attention_bias = false, sample_size = 32,
    patch_size = 1, norm_elementwise_affine = false, norm_eps = 1e-6, interpolation_scale = "null",
    guidance_embeds = false, guidance_embeds_scale = 0.1, qk_norm = "null", timestep_scale = 1.0,
  }
  -- Keys that change nothing grove computes.
  local INERT = { _class_name = true, _diffusers_version = true, _name_or_path = true }

  local MAX_SIZE, MAX_LAYERS = 2 ^ 17, 4096
  local function is_null(v) return v == nil or v == "null" or (grove.json and v == grove.json.null) end

  -- grove.nn.Sana's config from a SanaTransformer2DModel config (a table as
  -- decoded from config.json). where names the file in errors.
  function diffusers.transformer_config(config, where)
    where = where or "transformer config"
    if type(config) ~= "table" then error(where .. ": expected a config table, got " .. type(config), 2) end
    local get, bad = diffusers.config_reader(config, CLASS, DEFAULTS, INERT, where)
    -- Sizes are bounded before anything is built from them: a config from a
    -- stranger must not make grove loop over 10^15 blocks or size a tensor
    -- past memory (released models: at most 60 blocks, widths of 2240).
    local function int(k, min, max)
      local v = get(k)
      max = max or MAX_SIZE
      if type(v) ~= "number" or v % 1 ~= 0 or v < (min or 1) or v > max then
        bad(k, "an integer from " .. (min or 1) .. " to " .. max)
      end
      return v
    end
    local function num(k, positive)
      local v = get(k)
      if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge or (positive and v <= 0) then
        bad(k, positive and "a positive finite number" or "a finite number")
      end
      return v
    end
    local function bool(k)
      local v = get(k)
      if type(v) ~= "boolean" then bad(k, "true or false") end
      return v
    end

    local c = {}
    c.depth = int("num_layers", 1, MAX_LAYERS)
    local heads, head_dim = int("num_attention_heads"), int("attention_head_dim")
    c.width, c.head_dim = heads * head_dim, head_dim
    if c.width > MAX_SIZE then
      bad("num_attention_heads", "num_attention_heads × attention_head_dim of at most " .. MAX_SIZE .. " (it is " .. c.width .. ")")
    end
    c.cross_heads, c.cross_head_dim = int("num_cross_attention_heads"), int("cross_attention_head_dim")
    local cad = get("cross_attention_dim")
    if cad ~= c.width then
      -- the caption projection is num_attention_heads × attention_head_dim wide,
      -- so diffusers' forward can only run when the two agree
      bad("cross_attention_dim", "num_attention_heads × attention_head_dim = " .. c.width .. " (the caption projection's width)")
    end
    c.in_channels = int("in_channels")
    local oc = get("out_channels")
    c.out_channels = is_null(oc) and c.in_channels or int("out_channels")
    c.caption_channels = int("caption_channels")
    c.mlp_ratio = num("mlp_ratio", true)
    if c.mlp_ratio > 64 then bad("mlp_ratio", "a positive number of at most 64") end
    if c.cross_heads * c.cross_head_dim > MAX_SIZE then
      bad("num_cross_attention_heads", "num_cross_attention_heads × cross_attention_head_dim of at most " .. MAX_SIZE)
    end
    if get("dropout") ~= 0 then bad("dropout", "0 (grove's transformer has no dropout)") end
    c.attention_bias = bool("attention_bias")
    c.sample_size = int("sample_size")
    c.patch_size = int("patch_size")
    c.norm_elementwise_affine = bool("norm_elementwise_affine")
    c.norm_eps = num("norm_eps", true)
    local is = get("interpolation_scale")
    if not is_null(is) then c.interpolation_scale = num("interpolation_scale", true) end
    c.guidance_embeds = bool("guidance_embeds")
    c.guidance_embeds_scale = num("guidance_embeds_scale")
    c.timestep_scale = num("timestep_scale")
    local qk = get("qk_norm")
    if is_null(qk) then c.qk_norm, c.cross_norm = false, false
    elseif qk == "rms_norm_across_heads" then c.qk_norm, c.cross_norm = true, true
    else bad("qk_norm", "null or \"rms_norm_across_heads\"") end
    c.caption_dropout = 0 -- no learned null caption in a diffusers transformer
    c.text_len = 300
    return c
  end

  -- The diffusers config (every key, sorted on writing) of a grove.nn.Sana.
  function diffusers.transformer_diffusers_config(model)
    local c = model.config
    if c.qk_norm ~= c.cross_norm then
      error("diffusers.save: qk-norm on one attention only (qk_norm " .. tostring(c.qk_norm) .. ", cross_norm " ..
            tostring(c.cross_norm) .. ") has no diffusers config", 3)
    end
    local null = grove.json and grove.json.null
    return {
      _class_name = CLASS, _diffusers_version = "0.33.0",
      in_channels = c.in_channels, out_channels = c.out_channels,
      num_attention_heads = c.width / c.head_dim, attention_head_dim = c.head_dim,
      num_layers = #model.blocks,
      num_cross_attention_heads = c.cross_heads, cross_attention_head_dim = c.cross_head_dim,
      cross_attention_dim = c.width, caption_channels = c.caption_channels, mlp_ratio = c.mlp_ratio,
      dropout = 0.0, attention_bias = c.attention_bias and true or false,
      sample_size = c.sample_size or 32, patch_size = c.patch_size,
      norm_elementwise_affine = c.norm_elementwise_affine and true or false, norm_eps = c.norm_eps,
      interpolation_scale = c.interpolation_scale or null,
      guidance_embeds = c.guidance_embeds and true or false, guidance_embeds_scale = c.guidance_embeds_scale,
      qk_norm = c.qk_norm and "rms_norm_across_heads" or null, timestep_scale = c.timestep_scale,
    }
  end

  local function shape_str(s) return "(" .. table.concat(s, ", ") .. ")" end

  -- Builds the model of a diffusers config and fills it from a source of
  -- tensors (names(), info(name) -> {dtype, shape}, load(name)). Every
  -- name the model has must be there with its shape; any other name is an
  -- error, except grove's own learned null caption `y_embedding` (L,
  -- caption_channels), which turns it on.
  function diffusers.transformer_from(config, source, opts)
    opts = opts or {}
    local where = opts.where or "transformer"
    local c = diffusers.transformer_config(config, opts.config_where or where .. "/config.json")
    local extra = {}
    if source then
      for _, n in ipairs(source:names()) do extra[n] = true end
      if extra.y_embedding then
        local s = source:info("y_embedding").shape
        if #s ~= 2 or s[2] ~= c.caption_channels then
          error(string.format("%s: tensor 'y_embedding' has shape %s; grove's null caption is (L, %d)", where,
                              shape_str(s), c.caption_channels), 0)
        end
        c.text_len, c.caption_dropout = s[1], 0.1
      end
    end
    local model = nn.Sana(c, { meta = true })
    if opts.meta or not source then
      if not opts.meta then error("diffusers.transformer: no weights to load (give opts.meta = true for shapes only)", 2) end
      model.diffusers_config = config
      return model
    end
    diffusers.load_parameters(model, source, { where = where, class = CLASS })
    model.make = nn.param_factory { generator = opts.generator }  -- new blocks (growth) are real
    model.diffusers_config = config
    return model
  end

  -- grove.diffusers.transformer(dir, opts): dir is a pipeline folder (its
  -- transformer/ is read) or the transformer folder itself. opts.meta
  -- builds shapes only (config.json alone is read); opts.variant picks
  -- variant weight files ("bf16", "fp16"); opts.dtype ("f32", "bf16",
  -- "f16") holds the weights in that dtype instead of the stored one.
  function diffusers.transformer(dir, opts)
    opts = opts or {}
    if opts.meta then
      -- shapes only: config.json is all that is read
      local config, path = diffusers.component_config(dir, "transformer")
      return diffusers.transformer_from(config, nil, { meta = true, config_where = path })
    end
    if not diffusers.component then error("diffusers.transformer: grove.diffusers.component is not available", 2) end
    local comp = diffusers.component(dir, "transformer", { variant = opts.variant, dtype = opts.dtype })
    local ok, model = pcall(diffusers.transformer_from, comp.config, comp,
                            { where = comp.dir, config_where = comp.config_path, generator = opts.generator })
    if comp.close then comp:close() end
    if not ok then error(model, 0) end
    -- read from a pipeline folder: its scheduler is the sampler's default
    if comp.dir:gsub("/+$", "") ~= dir:gsub("/+$", "") then model.diffusers_pipeline = dir end
    return model
  end

  -- Writes a grove.nn.Sana as a diffusers transformer folder: config.json
  -- with diffusers' keys, the weights under diffusers' names in their
  -- dtype (sharded above opts.max_shard_bytes). grove's learned null
  -- caption, when the model has one, is saved as `y_embedding`.
  function diffusers.save_transformer(dir, model, opts)
    local config = diffusers.transformer_diffusers_config(model)
    if not diffusers.write_component then error("diffusers.save: grove.diffusers.write_component is not available", 2) end
    local tensors = {}
    for _, np in ipairs(model:named_parameters()) do
      if nn.is_meta(np[2]) then error("diffusers.save: the model was built with meta = true (shapes only)", 2) end
      tensors[np[1]] = np[2]:detach()
    end
    return diffusers.write_component(dir, config, tensors, opts)
  end

  -- grove.diffusers.save(dir, module, opts): a component folder. A module
  -- class that can be written as one has a method
  -- diffusers_save(module, dir, opts) (grove.nn.Sana: the transformer).
  function diffusers.save(dir, module, opts)
    if type(module) ~= "table" or type(module.diffusers_save) ~= "function" then
      error("diffusers.save: expected a module grove writes as a diffusers component (one with :diffusers_save), got " ..
            (type(module) == "table" and tostring(module.__name or "a table") or type(module)), 2)
    end
    return module:diffusers_save(dir, opts)
  end
  nn.SanaModel.diffusers_save = function(model, dir, opts) return diffusers.save_transformer(dir, model, opts) end

  return diffusers
end
