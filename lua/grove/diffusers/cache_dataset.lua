-- grove.diffusers.cache_dataset: the training data of a feature cache
-- (grove.diffusers.cache, `grove cache`) in shuffled batches, every batch
-- from one bucket.
--
--   local ds = grove.diffusers.cache_dataset("photos-cache", { batch_size = 8, seed = 0, model = "Sana_1600M" })
--   local b = ds:next()
--   -- b.latents (B, h, w, C) f32 NHWC, already × scaling_factor; b.features (B, L, D) f32;
--   -- b.mask (B, L) f32 of 1/0 (the transformer's forward takes it); b.captions, b.ids; b.bucket "512x512"
--   local y = T:forward(noisy, t, b.features, b.mask)
--
-- An epoch visits every sample once: each bucket's samples in an order
-- drawn from the seed (grove.data.permutation), cut into batches of
-- batch_size (the last of a bucket smaller unless drop_last), and the
-- batches of all buckets in an order drawn from the seed. ds:state() and
-- ds:set_state(s) resume the stream exactly. Samples are read from the
-- shards one at a time, so memory holds about one batch.
return function(grove, diffusers)
  local C = grove.C
  local manifest = require "grove.diffusers.cache_manifest"(grove, diffusers)
  if not (grove.data and grove.data.permutation) then require "grove.data.permutation"(grove) end

  local function fail(msg) error("cache_dataset: " .. msg, 0) end

  local BUCKET_TAG, ORDER_TAG = 0x43425554, 0x434F5244 -- "CBUT", "CORD"
  local MAX_OPEN = 16 -- shard files held open at once

  local Dataset = {}
  Dataset.__index = Dataset

  local OPTS = { batch_size = true, seed = true, shuffle = true, drop_last = true, model = true, device = true, trim = true }

  local function check_int(v, name, min, max)
    if type(v) ~= "number" or v ~= v or v % 1 ~= 0 or v < min or v > max then
      fail(name .. " must be an integer from " .. min .. " to " .. string.format("%.0f", max) .. ", got " .. tostring(v))
    end
    return v
  end

  -- The cache must suit the model a run trains: its transformer takes the
  -- cache's latent channels and caption width, and the DC-AE, text encoder
  -- and tokenizer the folder has are the ones the cache was made with.
  local function check_model(self, model, mpath)
    local pipe = manifest.pipeline_of(model, nil, "cache_dataset")
    local facts = manifest.facts(pipe, "present")
    local m = self.manifest
    local T = facts.transformer
    local function other(what)
      fail(mpath .. " was made with another model than " .. pipe.dir .. " asks: " .. what)
    end
    if T and T.in_channels ~= m.latent_channels then
      other("latents of " .. m.latent_channels .. " channels there, the transformer takes " .. T.in_channels)
    end
    if T and T.caption_channels ~= m.text_hidden_size then
      other("text features of " .. m.text_hidden_size .. " channels there, the transformer takes " .. T.caption_channels)
    end
    for _, name in ipairs { "vae", "text_encoder", "tokenizer" } do
      if facts[name] then
        local d = manifest.difference(m.model[name], grove.json.decode(grove.json.encode(facts[name])), name)
        if d then other(d) end
      end
    end
  end

  -- Every listed shard must open and hold each sample's three tensors in
  -- the shapes the manifest gives.
  local function check_shard(self, e, path)
    local ok, r = pcall(grove.safetensors_open, path)
    if not ok then
      if C.grove_path_kind(path) == C.GROVE_PATH_NONE then
        fail(path .. " is missing (" .. self.manifest_path .. " lists it)")
      end
      fail("shard " .. path .. ": " .. tostring(r))
    end
    local m = self.manifest
    local L = m.max_sequence_length
    local want = {
      latents = { "f32", { e.latent_height, e.latent_width, m.latent_channels } },
      features = { m.features_dtype, { L, m.text_hidden_size } },
      mask = { "u8", { L } },
    }
    local ok2, err = pcall(function()
      if #r.names ~= 3 * e.count then
        error("holds " .. #r.names .. " tensors; the manifest lists " .. e.count .. " samples (3 tensors each)", 0)
      end
      for k = 0, e.count - 1 do
        local lens = {}
        for name, w in pairs(want) do
          local key = name .. "." .. k
          local okk, info = pcall(r.info, r, key)
          if not okk then error("has no tensor " .. key, 0) end
          local shape = w[2]
          if m.trim and name ~= "latents" then
            -- a trimmed caption holds 1 to L tokens, its features and mask alike
            local n = info.shape[1]
            if type(n) == "number" and n >= 1 and n <= L then
              shape = { n, shape[2] }
              lens[name] = n
            end
          end
          if info.dtype ~= w[1] or table.concat(info.shape, ",") ~= table.concat(shape, ",") then
            error(string.format("%s is %s (%s), expected %s (%s)", key, info.dtype, table.concat(info.shape, ", "),
                                w[1], table.concat(shape, ", ")), 0)
          end
        end
        if lens.features ~= lens.mask then
          error("features." .. k .. " holds " .. tostring(lens.features) .. " tokens but mask." .. k .. " " .. tostring(lens.mask), 0)
        end
      end
    end)
    r:close()
    if not ok2 then fail("shard " .. path .. " " .. tostring(err)) end
  end

  -- grove.diffusers.cache_dataset(path, opts): path is a cache folder.
  -- opts: batch_size (16), seed (0), shuffle (true), drop_last (false: a
  -- bucket's last batch may be smaller), model (a pipeline folder or
  -- grove.diffusers.pipeline the cache must suit; checked when given),
  -- device ("cpu": where the batches' tensors are put), trim (false; true:
  -- a cache made with trim gives features and mask as long as the batch's
  -- longest caption instead of max_sequence_length).
  function diffusers.cache_dataset(path, opts)
    opts = opts or {}
    if type(path) ~= "string" then fail("expected the cache folder, got " .. type(path)) end
    if type(opts) ~= "table" then fail("options must be a table") end
    for k in pairs(opts) do
      if not OPTS[k] then
        fail("unknown option '" .. tostring(k) .. "' (batch_size, seed, shuffle, drop_last, model, device, trim)")
      end
    end
    local self = setmetatable({
      path = path, batch_size = check_int(opts.batch_size or 16, "batch_size", 1, 2 ^ 31),
      seed = check_int(opts.seed or 0, "seed", 0, 2 ^ 53), shuffle = opts.shuffle ~= false,
      drop_last = opts.drop_last and true or false, device = opts.device or "cpu", trim = opts.trim and true or false,
    }, Dataset)
    local mpath = path .. "/" .. manifest.NAME
    self.manifest_path = mpath
    local m = manifest.read(mpath, "cache_dataset")
    self.manifest = m
    if m.trim ~= nil and type(m.trim) ~= "boolean" then fail(mpath .. ": trim must be true or false") end
    if not m.complete or #m.shards ~= m.shards_planned then
      fail(mpath .. ": the cache is incomplete (" .. #m.shards .. " of " .. m.shards_planned .. " shards written); run " ..
           "`grove cache` again with the same options to finish it")
    end
    if opts.model ~= nil then check_model(self, opts.model, mpath) end
    self.latent_channels, self.text_hidden_size = m.latent_channels, m.text_hidden_size
    self.scaling_factor, self.max_sequence_length = m.scaling_factor, m.max_sequence_length

    -- samples in manifest order; buckets in the order the manifest first names them
    self.samples, self.buckets = {}, {}
    local by_key = {}
    for _, e in ipairs(m.shards) do
      check_shard(self, e, path .. "/" .. e.file)
      local b = by_key[e.bucket]
      if not b then
        b = { key = e.bucket, height = e.height, width = e.width, latent_height = e.latent_height,
              latent_width = e.latent_width, samples = {} }
        by_key[e.bucket] = b
        self.buckets[#self.buckets + 1] = b
      elseif b.latent_height ~= e.latent_height or b.latent_width ~= e.latent_width then
        fail(mpath .. ": shards of bucket " .. e.bucket .. " disagree on its latent size")
      end
      for k = 1, e.count do
        local i = #self.samples + 1
        self.samples[i] = { file = e.file, row = k - 1, id = e.ids[k], caption = e.captions[k], bucket = b }
        b.samples[#b.samples + 1] = i
      end
    end
    for _, b in ipairs(self.buckets) do b.count = #b.samples end
    self.size = #self.samples
    if self.size == 0 then fail(mpath .. ": the cache holds no samples") end
    self.readers, self.n_open = {}, 0
    self.epoch, self.pos, self.batches = 0, 0, nil
    if #self:_epoch_batches(0) == 0 then
      fail("no batch: every bucket holds fewer than batch_size (" .. self.batch_size .. ") samples and drop_last is on")
    end
    return self
  end

  -- The batches of one epoch, each a list of sample indices of one bucket.
  function Dataset:_epoch_batches(epoch)
    if epoch >= 2 ^ 32 then fail("epoch " .. epoch .. " is past the last one the order can be drawn for (2^32 - 1)") end
    local batches = {}
    for bi, b in ipairs(self.buckets) do
      local n = #b.samples
      local order
      if self.shuffle then order = grove.data.permutation(n, self.seed, epoch, bi, BUCKET_TAG)
      else
        order = {}
        for i = 1, n do order[i] = i end
      end
      for first = 1, n, self.batch_size do
        local last = math.min(first + self.batch_size - 1, n)
        if last - first + 1 == self.batch_size or not self.drop_last then
          local list = {}
          for j = first, last do list[#list + 1] = b.samples[order[j]] end
          batches[#batches + 1] = list
        end
      end
    end
    if self.shuffle then
      local order = grove.data.permutation(#batches, self.seed, epoch, 0, ORDER_TAG)
      local shuffled = {}
      for i, j in ipairs(order) do shuffled[i] = batches[j] end
      batches = shuffled
    end
    return batches
  end

  -- Batches in one epoch.
  function Dataset:batches_per_epoch() return #self:_epoch_batches(self.epoch) end

  local function reader(self, file)
    local r = self.readers[file]
    if r then return r end
    if self.n_open >= MAX_OPEN then self:close() end
    local path = self.path .. "/" .. file
    local ok, res = pcall(grove.safetensors_open, path)
    if not ok then fail("shard " .. path .. ": " .. tostring(res)) end
    self.readers[file], self.n_open = res, self.n_open + 1
    return res
  end

  local function get(self, s, name)
    local r = reader(self, s.file)
    local ok, t = pcall(r.get, r, name .. "." .. s.row)
    if not ok then fail("shard " .. self.path .. "/" .. s.file .. ": " .. tostring(t)) end
    return t
  end

  local function stacked(list)
    local t = grove.stack(list, 1)
    for _, x in ipairs(list) do x:free() end
    return t
  end

  -- The batch of sample indices `list`, read from the shards.
  function Dataset:_read(list)
    local lat, feat, mask, captions, ids = {}, {}, {}, {}, {}
    for k, i in ipairs(list) do
      local s = self.samples[i]
      lat[k], feat[k], mask[k] = get(self, s, "latents"), get(self, s, "features"), get(self, s, "mask")
      captions[k], ids[k] = s.caption, s.id
    end
    if self.manifest.trim then
      -- trimmed captions padded back with zeros (mask 0): to max_sequence_length,
      -- or with opts.trim to the batch's longest
      local L = self.max_sequence_length
      if self.trim then
        L = 1
        for k = 1, #list do L = math.max(L, feat[k]:size(1)) end
      end
      for k = 1, #list do
        local n = feat[k]:size(1)
        if n < L then
          local f = grove.zeros({ L, feat[k]:size(2) }, { dtype = feat[k]:dtype() })
          f:narrow(1, 1, n):copy_(feat[k])
          local mk = grove.zeros({ L }, { dtype = "u8" })
          mk:narrow(1, 1, n):copy_(mask[k])
          feat[k]:free(); mask[k]:free()
          feat[k], mask[k] = f, mk
        end
      end
    end
    local b = self.samples[list[1]].bucket
    local batch = { latents = stacked(lat), features = stacked(feat), mask = stacked(mask), captions = captions, ids = ids,
                    bucket = b.key, height = b.height, width = b.width }
    if batch.features:dtype() ~= "f32" then batch.features = batch.features:to("f32") end
    batch.mask = batch.mask:to("f32")
    if self.device ~= "cpu" then
      for _, k in ipairs { "latents", "features", "mask" } do batch[k] = batch[k]:to(self.device) end
    end
    return batch
  end

  -- The next batch: {latents = (B, h, w, C) f32 × scaling_factor, features =
  -- (B, L, D) f32, mask = (B, L) f32 of 1/0, captions = {...}, ids = {...},
  -- bucket = "HxW" (pixels), height, width}. The stream is endless, epoch
  -- after epoch.
  function Dataset:next()
    if not self.batches or self.pos >= #self.batches then
      if self.batches then self.epoch = self.epoch + 1 end
      self.batches, self.pos = self:_epoch_batches(self.epoch), 0
    end
    self.pos = self.pos + 1
    return self:_read(self.batches[self.pos])
  end

  -- for step, batch in ds:take(n) do ... end, step = 1 .. n.
  Dataset.take = require "grove.data.take"

  -- Where the stream stands, for checkpoints: set_state(state()) in a new
  -- process continues with the same batches.
  function Dataset:state() return { epoch = self.epoch, pos = self.pos, started = self.batches ~= nil } end

  function Dataset:set_state(s)
    if type(s) ~= "table" or type(s.epoch) ~= "number" or type(s.pos) ~= "number" or s.epoch % 1 ~= 0 or s.pos % 1 ~= 0
       or s.epoch < 0 or s.pos < 0 then
      error("cache_dataset: set_state expects a table from state(), got " .. tostring(s), 2)
    end
    self.epoch, self.pos = s.epoch, s.pos
    self.batches = s.started and self:_epoch_batches(s.epoch) or nil
    if self.batches and self.pos > #self.batches then
      error("cache_dataset: set_state: position " .. s.pos .. " is past the " .. #self.batches ..
            " batches of an epoch (a state of another cache or batch size?)", 2)
    end
    return self
  end

  -- Closes the shard files the data set holds open (they open again when read).
  function Dataset:close()
    for file, r in pairs(self.readers) do
      r:close()
      self.readers[file] = nil
    end
    self.n_open = 0
  end

  return diffusers.cache_dataset
end
