-- grove.diffusers.cache: an image folder encoded once for training
-- (`grove cache`): the DC-AE latents of every image and the Gemma-2
-- features of every caption, in safetensors shards with a JSON manifest,
-- so that fine-tuning holds neither encoder in memory.
--
--   local res = grove.diffusers.cache("Sana_1600M", "photos", "photos-cache", { size = 512, buckets = true })
--   local ds = grove.diffusers.cache_dataset("photos-cache", { batch_size = 8, seed = 0 })
--
-- The folder is read as grove.data.folder reads it (PNG and JPEG files,
-- each with its caption in a same-named .txt). Each image is decoded, put
-- in [-1, 1], resized and centre-cropped (grove.diffusers.resize_crop) to
-- --size square, or with buckets to SANA's aspect-ratio bucket nearest its
-- own (grove.diffusers.bin_size), encoded by the folder's DC-AE and
-- multiplied by its scaling_factor; each caption goes through
-- grove.diffusers.encode_prompt as SanaPipeline's prompt does (SANA's
-- instruction, max_sequence_length tokens).
--
-- Shards: the samples of one bucket in path order, shard_size at a time,
-- named <H>x<W>-<k>.safetensors. A shard is written to a temporary and
-- renamed into place, then listed in the manifest, which is itself replaced
-- atomically; a shard counts only once listed. A run on an existing cache
-- checks that it was made with the same model and options, skips the
-- listed shards and writes the rest, so an interrupted run (kill -9
-- included) is finished by running it again, with the same bytes as a run
-- never interrupted.
local files = require "grove.files"

return function(grove, diffusers)
  local C = grove.C
  local json = grove.json
  local manifest = require "grove.diffusers.cache_manifest"(grove, diffusers)

  local function fail(msg) error("diffusers.cache: " .. msg, 0) end

  local OPTS = {
    size = true, buckets = true, batch = true, shard_size = true, max_sequence_length = true, instruction = true,
    features_dtype = true, recursive = true, missing_caption = true, follow_links = true, dtype = true, device = true,
    log = true, on_shard = true, trim = true,
  }

  local function check_int(v, name, min)
    if type(v) ~= "number" or v ~= v or v % 1 ~= 0 or v < min or v >= 2 ^ 31 then
      fail(name .. " must be an integer >= " .. min .. ", got " .. tostring(v))
    end
    return v
  end

  local function options(opts)
    opts = opts or {}
    if type(opts) ~= "table" then fail("options must be a table") end
    for k in pairs(opts) do
      if not OPTS[k] then
        local names = {}
        for n in pairs(OPTS) do names[#names + 1] = n end
        table.sort(names)
        fail("unknown option '" .. tostring(k) .. "' (" .. table.concat(names, ", ") .. ")")
      end
    end
    local o = {
      size = check_int(opts.size or 512, "size", 1), buckets = opts.buckets and true or false,
      batch = check_int(opts.batch or 4, "batch", 1), shard_size = check_int(opts.shard_size or 64, "shard_size", 1),
      max_sequence_length = check_int(opts.max_sequence_length or 300, "max_sequence_length", 1),
      features_dtype = opts.features_dtype or "f32", recursive = opts.recursive and true or false,
      trim = opts.trim and true or false,
      missing_caption = opts.missing_caption or "empty", follow_links = opts.follow_links and true or false,
      log = opts.log or function(msg) io.stderr:write("grove cache: ", msg, "\n") end, on_shard = opts.on_shard,
    }
    if o.size > 8192 then fail("size must be at most 8192, got " .. o.size) end
    if o.features_dtype ~= "f32" and o.features_dtype ~= "bf16" then
      fail("features_dtype must be \"f32\" or \"bf16\", got " .. tostring(o.features_dtype))
    end
    local instr = opts.instruction
    if instr == nil then instr = true end
    if type(instr) == "table" then instr = json.array(instr)
    elseif type(instr) ~= "boolean" and type(instr) ~= "string" then
      fail("instruction must be true, false, a string or a list of lines, got " .. type(instr))
    end
    o.instruction = instr
    o.pipeline = { dtype = opts.dtype, device = opts.device }
    return o
  end

  -- ---- the plan: which image goes into which shard ------------------------------------------
  -- The (height, width) in pixels a picture of h × w pixels is cut to. With
  -- buckets: SANA's table for o.size (512 … 4096), or for another size the
  -- 512 table scaled by size / 512 with sides rounded to multiples of `mult`
  -- (the DC-AE's factor times the transformer's patch size).
  local function bucket_of(h, w, o, mult)
    if not o.buckets then return o.size, o.size end
    if diffusers.aspect_ratio_bins[o.size] then
      local bh, bw = diffusers.bin_size(h, w, nil, { resolution = o.size })
      if bh % mult ~= 0 or bw % mult ~= 0 then
        fail("the " .. o.size .. " table's bucket " .. bh .. "x" .. bw .. " is not a multiple of " .. mult ..
             " (the DC-AE's factor times the transformer's patch size); give another size")
      end
      return bh, bw
    end
    local bh, bw = diffusers.bin_size(h, w, nil, { resolution = 512 })
    local s = o.size / 512
    local function round(v) return math.max(mult, math.floor(v * s / mult + 0.5) * mult) end
    return round(bh), round(bw)
  end

  local function relative(path, dir)
    local prefix = dir:gsub("/+$", "") .. "/"
    if path:sub(1, #prefix) == prefix then return path:sub(#prefix + 1) end
    return path
  end

  local function message_of(err) return (tostring(err):gsub("^[%w_]+: ", "")) end

  -- The shards of a folder: {file, bucket, height, width, samples = {{id, path, caption}}}
  -- in bucket order (height, then width), and the images left out while
  -- planning (only bucketing decodes them now) as {{id, error}}.
  local function plan(data, o, mult)
    local folder = grove.data.folder { dir = data, shuffle = false, recursive = o.recursive,
                                       missing_caption = o.missing_caption, follow_links = o.follow_links }
    local by_bucket, keys, skipped = {}, {}, {}
    for i, path in ipairs(folder.paths) do
      local id = relative(path, data)
      -- the manifest is JSON: find text it cannot hold now, not after a shard is written
      if not pcall(json.encode, id) then fail(path .. ": the file name is not valid UTF-8 (the manifest lists it)") end
      if not pcall(json.encode, folder.captions[i]) then
        fail((path:gsub("%.[^./]*$", "")) .. ".txt: the caption is not valid UTF-8 (the manifest holds every caption)")
      end
      local h, w = o.size, o.size
      local ok = true
      if o.buckets then
        local img
        ok, img = pcall(grove.image.load, path)
        if ok then
          h, w = bucket_of(img:size(1), img:size(2), o, mult)
          img:free()
        else
          skipped[#skipped + 1] = { id = id, error = message_of(img) }
          o.log("skipping " .. message_of(img))
        end
      end
      if ok then
        local key = h .. "x" .. w
        if not by_bucket[key] then
          by_bucket[key] = { height = h, width = w, samples = {} }
          keys[#keys + 1] = key
        end
        local list = by_bucket[key].samples
        list[#list + 1] = { id = id, path = path, caption = folder.captions[i] }
      end
    end
    table.sort(keys, function(a, b)
      local x, y = by_bucket[a], by_bucket[b]
      if x.height ~= y.height then return x.height < y.height end
      return x.width < y.width
    end)
    local shards = {}
    for _, key in ipairs(keys) do
      local b = by_bucket[key]
      local k = 0
      for first = 1, #b.samples, o.shard_size do
        k = k + 1
        local part = {}
        for j = first, math.min(first + o.shard_size - 1, #b.samples) do part[#part + 1] = b.samples[j] end
        shards[#shards + 1] = { file = string.format("%s-%05d.safetensors", key, k), bucket = key, height = b.height,
                                width = b.width, samples = part }
      end
    end
    return shards, skipped, #folder.paths
  end

  -- ---- encoding one shard ----------------------------------------------------------------------
  -- (1, h, w, 3) f32 in [-1, 1]: the picture at path resized and cut to h × w.
  local function load_image(path, h, w)
    local img = grove.image.load(path)
    local x = grove.image.to_float(img)
    img:free()
    x = x:view { 1, x:size(1), x:size(2), x:size(3) }
    return diffusers.resize_crop(x, h, w)
  end

  local function encode_shard(pipe, sh, o, facts, out)
    local vae = pipe.vae
    local parts = { text_encoder = pipe.text_encoder, tokenizer = pipe.tokenizer }
    local sf, f = facts.vae.scaling_factor, facts.vae.factor
    local tensors, ids, captions, skipped = {}, {}, {}, {}
    for first = 1, #sh.samples, o.batch do
      local imgs, caps, got = {}, {}, {}
      for j = first, math.min(first + o.batch - 1, #sh.samples) do
        local s = sh.samples[j]
        local ok, x = pcall(load_image, s.path, sh.height, sh.width)
        if ok then
          imgs[#imgs + 1], caps[#caps + 1], got[#got + 1] = x, s.caption, s
        else
          skipped[#skipped + 1] = s.id
          o.log("skipping " .. message_of(x))
        end
      end
      if #imgs > 0 then
        local x = #imgs == 1 and imgs[1] or grove.cat(imgs, 1)
        local z = grove.no_grad(function() return vae:encode(x) * sf end):to("cpu")
        local feats, mask = grove.no_grad(diffusers.encode_prompt, parts, caps,
                                          { max_length = o.max_sequence_length, instruction = o.instruction, trim = o.trim })
        feats = feats:to("cpu")
        if o.features_dtype ~= "f32" then feats = feats:to(o.features_dtype) end
        mask = mask:to("cpu"):to("u8")
        local rows = o.trim and mask:to("f32"):tolist()
        for r, s in ipairs(got) do
          local k = #ids
          local f, mk = feats:select(1, r), mask:select(1, r)
          if rows then
            -- up to the caption's last token: the padding after it is never read
            local n = 1
            for j, v in ipairs(rows[r]) do if v ~= 0 then n = j end end
            f, mk = f:narrow(1, 1, n), mk:narrow(1, 1, n)
          end
          tensors[#tensors + 1] = { "latents." .. k, z:select(1, r) }
          tensors[#tensors + 1] = { "features." .. k, f }
          tensors[#tensors + 1] = { "mask." .. k, mk }
          ids[k + 1], captions[k + 1] = s.id, s.caption
        end
      end
    end
    grove.save_safetensors(out .. "/" .. sh.file, tensors,
                           { format = manifest.FORMAT, bucket = sh.bucket, count = #ids })
    return { file = sh.file, bucket = sh.bucket, height = sh.height, width = sh.width,
             latent_height = sh.height / f, latent_width = sh.width / f, count = #ids,
             ids = json.array(ids), captions = json.array(captions), skipped = json.array(skipped) }
  end

  -- A listed shard whose file is gone or damaged is encoded again; nil
  -- when it reads as the manifest says, else what is wrong.
  local function shard_problem(path, e)
    local ok, r = pcall(grove.safetensors_open, path)
    if not ok then return message_of(r) end
    local n = #r.names
    r:close()
    if n ~= 3 * e.count then return "it holds " .. n .. " tensors, not " .. 3 * e.count end
    return nil
  end

  local function file_size(path)
    local fh = io.open(path, "rb")
    if not fh then return 0 end
    local n = fh:seek("end")
    fh:close()
    return n or 0
  end

  -- grove.diffusers.cache(model, data, out, opts): model is a pipeline
  -- folder (or a grove.diffusers.pipeline), data the image folder, out the
  -- cache folder (made when missing). opts: size (512), buckets (false),
  -- batch (images per encoder call, 4), shard_size (samples per shard, 64),
  -- max_sequence_length (300), instruction (SANA's; as encode_prompt),
  -- features_dtype ("f32" or "bf16": how features are stored; the data set
  -- gives f32), trim (false; true: each caption's features and mask end at
  -- its last token, encode_prompt's trim, a fraction of the disk for short
  -- captions; the data set pads them back with zeros), recursive, missing_caption, follow_links (as
  -- grove.data.folder), dtype and device (the pipeline's), log
  -- (function(message): skipped images, damaged shards; default stderr),
  -- on_shard (function(i, n, entry, written) after each shard). Returns
  -- {samples, shards, written, skipped, bytes, seconds, manifest}.
  function diffusers.cache(model, data, out, opts)
    local o = options(opts)
    if type(data) ~= "string" or data == "" then fail("expected the image folder as the second argument, got " .. type(data)) end
    if type(out) ~= "string" or out == "" then fail("expected the cache folder as the third argument, got " .. type(out)) end
    local t0 = grove.now()
    local pipe = manifest.pipeline_of(model, o.pipeline, "diffusers.cache")
    local facts = manifest.facts(pipe, "all")
    local T = facts.transformer
    if T and T.in_channels ~= facts.vae.latent_channels then
      fail(pipe.dir .. ": the transformer takes " .. T.in_channels .. " latent channels but the vae makes " ..
           facts.vae.latent_channels)
    end
    if T and T.caption_channels ~= facts.text_encoder.hidden_size then
      fail(pipe.dir .. ": the transformer takes captions of " .. T.caption_channels .. " channels but the text encoder's " ..
           "hidden size is " .. facts.text_encoder.hidden_size)
    end
    local mult = facts.vae.factor * (T and T.patch_size or 1)
    if o.size % mult ~= 0 then
      fail("size " .. o.size .. " is not a multiple of " .. mult .. " (the DC-AE's down-sampling factor " .. facts.vae.factor ..
           (T and (" times the transformer's patch size " .. T.patch_size) or "") .. ")")
    end
    local settings = {
      format = manifest.FORMAT, version = manifest.VERSION,
      model = { vae = facts.vae, text_encoder = facts.text_encoder, tokenizer = facts.tokenizer },
      latent_channels = facts.vae.latent_channels, text_hidden_size = facts.text_encoder.hidden_size,
      scaling_factor = facts.vae.scaling_factor, vae_factor = facts.vae.factor,
      max_sequence_length = o.max_sequence_length, instruction = o.instruction, size = o.size, buckets = o.buckets,
      shard_size = o.shard_size, batch = o.batch, features_dtype = o.features_dtype, trim = o.trim,
    }

    if C.grove_dir_make(out) ~= 0 then fail(grove.c_error()) end
    local mpath = out .. "/" .. manifest.NAME
    local old
    if manifest.is_file(mpath) then
      old = manifest.read(mpath, "diffusers.cache")
      -- everything the bytes depend on must agree (the transformer may differ)
      local keys = {}
      for k in pairs(settings) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do
        local ov = old[k]
        if ov == nil and k == "trim" then ov = false end -- caches from before the option
        local d = manifest.difference(json.decode(json.encode(ov == nil and json.null or ov)),
                                      json.decode(json.encode(settings[k])), k == "model" and "" or k)
        if d then
          fail(mpath .. " was made with another " .. (k == "model" and "model" or "setting") .. " (" .. d .. "); run " ..
               "with the same model and options to finish it, or give a new folder")
        end
      end
    end

    -- a shard's temporary from a killed run is written again from the start
    for _, name in ipairs(diffusers._list_dir(out)) do
      if name:match("%.safetensors%.tmp$") then os.remove(out .. "/" .. name) end
    end

    local shards, skipped, n_images = plan(data, o, mult)
    if #shards == 0 then fail("none of the " .. n_images .. " images of " .. data .. " could be read") end
    local done = {}
    if old then
      local planned = {}
      for _, sh in ipairs(shards) do planned[sh.file] = sh end
      for _, e in ipairs(old.shards) do
        local sh = planned[e.file]
        if not sh then
          fail(mpath .. " lists shard " .. e.file .. ", which the images of " .. data .. " no longer make (the folder " ..
               "changed since the cache was started); give a new folder")
        end
        local left = {}
        for _, id in ipairs(e.skipped) do left[id] = true end
        local want = {}
        for _, s in ipairs(sh.samples) do if not left[s.id] then want[#want + 1] = s.id end end
        local d = manifest.difference(e.ids, want, e.file .. " ids")
        if d then
          fail(mpath .. ": shard " .. e.file .. " was made from other images than " .. data .. " holds now (" .. d ..
               "); give a new folder")
        end
        local why = shard_problem(out .. "/" .. e.file, e)
        if why then o.log(out .. "/" .. e.file .. " is listed but cannot be used (" .. why .. "); encoding it again")
        else done[e.file] = e end
      end
    end

    local function write_manifest()
      local m = {}
      for k, v in pairs(settings) do m[k] = v end
      m.data = old and old.data or data
      m.images = n_images
      m.skipped = json.array(skipped)
      m.shards_planned = #shards
      local list, samples = json.array {}, 0
      for _, sh in ipairs(shards) do
        local e = done[sh.file]
        if e then list[#list + 1] = e; samples = samples + e.count end
      end
      m.shards, m.samples = list, samples
      m.complete = #list == #shards
      files.write_atomic(mpath, json.encode(m))
      return m
    end

    local m = write_manifest()
    local written = 0
    for i, sh in ipairs(shards) do
      if not done[sh.file] then
        done[sh.file] = encode_shard(pipe, sh, o, facts, out)
        m = write_manifest()
        written = written + 1
        if o.on_shard then o.on_shard(i, #shards, done[sh.file], true) end
      elseif o.on_shard then
        o.on_shard(i, #shards, done[sh.file], false)
      end
    end
    local bytes, n_skipped = file_size(mpath), #skipped
    for _, e in ipairs(m.shards) do
      bytes = bytes + file_size(out .. "/" .. e.file)
      n_skipped = n_skipped + #e.skipped
    end
    return { samples = m.samples, shards = #shards, written = written, skipped = n_skipped, bytes = bytes,
             seconds = grove.now() - t0, manifest = mpath, images = n_images }
  end

  return diffusers.cache
end
