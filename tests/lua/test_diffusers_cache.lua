-- The feature cache (grove.diffusers.cache, `grove cache`) and its data set
-- (grove.diffusers.cache_dataset) on the tiny complete folder and a few
-- small pictures with captions: the stored latents and features are the
-- DC-AE's and encode_prompt's, a second run skips finished shards, a kill -9
-- mid-run then a resume gives the bytes of an uninterrupted run, batches
-- come per bucket in a seeded order that state/set_state resumes, and bad
-- caches are refused by name.
local spec = require "spec"
local diffusers = grove.diffusers
local json = grove.json

local exe = arg and arg[-1]
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local function ls(dir)
  local p = io.popen("ls -A " .. q(dir) .. " 2>/dev/null")
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

-- Every file of a against b's, byte for byte.
local function same_files(a, b)
  local la, lb = ls(a), ls(b)
  spec.eq(table.concat(la, " "), table.concat(lb, " "), "the same files in " .. a .. " and " .. b)
  for _, name in ipairs(la) do
    spec.assert(spec.read_all(a .. "/" .. name) == spec.read_all(b .. "/" .. name), name .. " has the same bytes")
  end
end

-- A picture of h × w pixels: smooth colour ramps and a little noise, so
-- that resizing and cropping matter.
local function picture(h, w, seed)
  local g = grove.Generator(seed)
  local y = grove.arange(h):to("f32"):view { h, 1, 1 } * (2 / h) - 1
  local x = grove.arange(w):to("f32"):view { 1, w, 1 } * (2 / w) - 1
  local c = grove.tensor { 0.9, -0.4, 0.3 }:view { 1, 1, 3 }
  local img = (y * c + x * (c * -0.7) + grove.randn({ h, w, 3 }, { generator = g }) * 0.2):clamp(-1, 1)
  return grove.image.to_u8(img)
end

local function quiet() end

spec.describe("diffusers.cache", function()
  local spm = io.popen("command -v spm_train 2>/dev/null"):read("*l")
  if not spm or spm == "" then spec.skip("spm_train is not installed (scripts/install-deps)"); return end
  if type(diffusers.vae) ~= "function" then spec.skip("this build has no DC-AE (grove.diffusers.vae)"); return end

  local root = spec.tmpdir()
  local tiny = root .. "/tiny"
  diffusers.tiny_folder(tiny, { seed = 1 })
  -- the pictures: square, wide, tall, a JPEG, one without a caption, one that is no image
  local photos = root .. "/photos"
  os.execute("mkdir -p " .. q(photos))
  local pics = {
    { "a.png", 40, 40, "a red cat at dusk" },
    { "b.png", 30, 90, "a blue dog by the sea" },
    { "c.png", 90, 40, "a tall green tree" },
    { "d.png", 64, 48, nil },
    { "e.png", 50, 52, "a shiny robot, 7 photo" },
    { "f.png", 33, 100, "a quiet river in the snow" },
  }
  for i, p in ipairs(pics) do
    grove.image.save(photos .. "/" .. p[1], picture(p[2], p[3], i))
    if p[4] then spec.write_all(photos .. "/" .. p[1]:gsub("%.png$", ".txt"), p[4] .. "\n") end
  end
  os.execute("cp " .. q(here .. "/../data/quadrants.jpg") .. " " .. q(photos .. "/g.jpg"))
  spec.write_all(photos .. "/g.txt", "four quadrants of colour")
  spec.write_all(photos .. "/z.png", "not an image at all")
  spec.write_all(photos .. "/z.txt", "a broken file")

  local pipe = diffusers.pipeline(tiny)
  local parts = { text_encoder = pipe.text_encoder, tokenizer = pipe.tokenizer }
  local sf = pipe.vae.scaling_factor

  -- What the cache must hold for one picture, computed here step by step.
  local function expected(path, caption, h, w)
    local x = grove.image.to_float(grove.image.load(path))
    x = diffusers.resize_crop(x:view { 1, x:size(1), x:size(2), 3 }, h, w)
    local z = pipe.vae:encode(x) * sf
    local feats, mask = grove.no_grad(diffusers.encode_prompt, parts, { caption })
    return z:select(1, 1), feats:select(1, 1), mask:select(1, 1)
  end

  local square = root .. "/square"
  local logged = {}
  local res = diffusers.cache(tiny, photos, square, { size = 64, batch = 2, shard_size = 3,
                                                      log = function(m) logged[#logged + 1] = m end })

  spec.it("stores scaled DC-AE latents and encode_prompt's features and masks of every captioned picture", function()
    spec.eq(res.images, 8)
    spec.eq(res.samples, 7, "the file that is no image is skipped")
    spec.eq(res.skipped, 1)
    spec.eq(res.shards, 3)
    spec.eq(res.written, 3)
    spec.assert(#logged == 1 and logged[1]:find("z.png", 1, true), "one message names the skipped file: " .. table.concat(logged, "\n"))
    local m = json.read(square .. "/manifest.json")
    spec.eq(m.format, "grove.feature_cache")
    spec.eq(m.latent_channels, 8)
    spec.eq(m.text_hidden_size, 32)
    spec.eq(m.max_sequence_length, 300)
    spec.eq(m.scaling_factor, 0.41407)
    spec.eq(m.size, 64)
    spec.eq(m.complete, true)
    spec.eq(m.model.vae.config.scaling_factor, 0.41407, "the vae's config is recorded whole")
    local ids, n = {}, 0
    for _, e in ipairs(m.shards) do
      spec.eq(e.bucket, "64x64")
      spec.eq(e.latent_height .. "x" .. e.latent_width, "2x2")
      local t = grove.load_safetensors(square .. "/" .. e.file)
      for k = 1, e.count do
        local id = e.ids[k]
        ids[#ids + 1] = id
        local caption = e.captions[k]
        local z, f, mk = expected(photos .. "/" .. id, caption, 64, 64)
        local got = t["latents." .. (k - 1)]
        spec.eq(got:shape_str(), "[2,2,8]")
        spec.assert(spec.max_diff(got, z) <= 1e-5 * (1 + z:abs():max():item()), id .. ": latents are vae:encode × scaling_factor")
        spec.assert(spec.max_diff(t["features." .. (k - 1)], f) <= 1e-5 * (1 + f:abs():max():item()), id .. ": features")
        spec.eq(spec.max_diff(t["mask." .. (k - 1)]:to("f32"), mk:to("f32")), 0, id .. ": mask")
        spec.eq(t["mask." .. (k - 1)]:dtype(), "u8")
        n = n + 1
      end
    end
    spec.eq(table.concat(ids, " "), "a.png b.png c.png d.png e.png f.png g.jpg", "path order")
    spec.eq(m.shards[2].captions[1], "", "a picture without a .txt has the empty caption")
    spec.eq(m.shards[3].skipped[1], "z.png")
    spec.eq(n, 7)
  end)

  spec.it("the same batches as a one-picture call, bit for bit", function()
    -- batch 1: each encoder call sees one picture, as expected() does
    local one = root .. "/one"
    diffusers.cache(pipe, photos, one, { size = 64, batch = 1, shard_size = 8, log = quiet })
    local t = grove.load_safetensors(one .. "/64x64-00001.safetensors")
    local z, f = expected(photos .. "/c.png", "a tall green tree", 64, 64)
    spec.eq(spec.max_diff(t["latents.2"], z), 0)
    spec.eq(spec.max_diff(t["features.2"], f), 0)
  end)

  spec.it("reads the folder as grove.data.folder does: missing_caption = \"skip\" leaves uncaptioned pictures out", function()
    local dir = root .. "/captioned"
    local r = diffusers.cache(tiny, photos, dir, { size = 64, shard_size = 8, missing_caption = "skip", log = quiet })
    spec.eq(r.images, 7)
    spec.eq(r.samples, 6)
    local m = json.read(dir .. "/manifest.json")
    spec.eq(table.concat(m.shards[1].ids, " "), "a.png b.png c.png e.png f.png g.jpg")
    spec.raises(function() diffusers.cache(tiny, root .. "/nothing-here", root .. "/y", { log = quiet }) end,
                "nothing-here")
    local latin = root .. "/latin"
    os.execute("mkdir -p " .. q(latin))
    grove.image.save(latin .. "/x.png", picture(32, 32, 9))
    spec.write_all(latin .. "/x.txt", "caf\233 au lait")
    spec.raises(function() diffusers.cache(tiny, latin, root .. "/y", { log = quiet }) end,
                latin .. "/x.txt: the caption is not valid UTF-8")
    spec.eq(io.open(root .. "/y/manifest.json", "rb"), nil, "nothing written")
  end)

  spec.it("stores features in bf16 when asked; the data set gives them as f32", function()
    local dir = root .. "/bf16"
    diffusers.cache(tiny, photos, dir, { size = 64, shard_size = 8, features_dtype = "bf16", log = quiet })
    local t = grove.load_safetensors(dir .. "/64x64-00001.safetensors")
    spec.eq(t["features.0"]:dtype(), "bf16")
    local _, f = expected(photos .. "/a.png", "a red cat at dusk", 64, 64)
    spec.assert(spec.max_diff(t["features.0"]:to("f32"), f) <= 1e-2 * (1 + f:abs():max():item()), "bf16 rounding only")
    local ds = diffusers.cache_dataset(dir, { batch_size = 7, shuffle = false })
    local b = ds:next()
    spec.eq(b.features:dtype(), "f32")
    spec.eq(spec.max_diff(b.features:select(1, 1), t["features.0"]:to("f32")), 0)
  end)

  spec.it("trim = true stores each caption up to its last token; the transformer computes the same from it", function()
    local full, cut = root .. "/full", root .. "/trimmed"
    diffusers.cache(tiny, photos, full, { size = 64, shard_size = 8, log = quiet })
    diffusers.cache(tiny, photos, cut, { size = 64, shard_size = 8, trim = true, log = quiet })
    local t = grove.load_safetensors(cut .. "/64x64-00001.safetensors")
    local tf = grove.load_safetensors(full .. "/64x64-00001.safetensors")
    for k = 0, 6 do
      local n = t["mask." .. k]:size(1)
      spec.eq(t["features." .. k]:size(1), n)
      spec.eq(t["mask." .. k]:to("f32"):sum():item(), n, "only the caption's tokens are kept")
      spec.eq(tf["mask." .. k]:to("f32"):sum():item(), n, "as many as the full mask holds")
      spec.assert(n < 300, "shorter than max_sequence_length")
      local d = spec.max_diff(t["features." .. k], tf["features." .. k]:narrow(1, 1, n))
      spec.assert(d <= 1e-4, "the kept tokens' features are the full run's (" .. d .. ")")
    end
    local a = diffusers.cache_dataset(full, { batch_size = 7, shuffle = false }):next()
    local b = diffusers.cache_dataset(cut, { batch_size = 7, shuffle = false }):next()
    spec.eq(b.features:shape_str(), "[7,300,32]", "padded back to max_sequence_length")
    spec.eq(spec.max_diff(a.mask, b.mask), 0)
    local T = pipe.transformer
    local ts = grove.full({ 7 }, 700)
    local ya = grove.no_grad(function() return T:forward(a.latents, ts, a.features, a.mask) end)
    local yb = grove.no_grad(function() return T:forward(b.latents, ts, b.features, b.mask) end)
    spec.assert(spec.max_diff(ya, yb) <= 1e-4 * (1 + ya:abs():max():item()), "same transformer output")
    local c = diffusers.cache_dataset(cut, { batch_size = 7, shuffle = false, trim = true }):next()
    local longest = 0
    for k = 0, 6 do longest = math.max(longest, t["mask." .. k]:size(1)) end
    spec.eq(c.features:shape_str(), "[7," .. longest .. ",32]", "trim: as long as the batch's longest caption")
    local yc = grove.no_grad(function() return T:forward(c.latents, ts, c.features, c.mask) end)
    spec.assert(spec.max_diff(ya, yc) <= 1e-4 * (1 + ya:abs():max():item()), "the same from the trimmed batch")
  end)

  spec.it("cuts each picture to its aspect-ratio bucket with buckets = true", function()
    local dir = root .. "/buckets"
    local r = diffusers.cache(tiny, photos, dir, { size = 64, buckets = true, shard_size = 2, log = quiet })
    spec.eq(r.samples, 7)
    local m = json.read(dir .. "/manifest.json")
    spec.eq(#m.skipped, 1, "the broken file is found while planning")
    spec.eq(m.skipped[1].id, "z.png")
    local where = {}
    for _, e in ipairs(m.shards) do
      for _, id in ipairs(e.ids) do where[id] = e end
    end
    -- 30 × 90 is nearest the 0.33 bucket of 512 (288 × 864), scaled to 64 and rounded to multiples of 32
    spec.eq(where["b.png"].bucket, "32x96")
    spec.eq(where["f.png"].bucket, "32x96")
    spec.eq(where["c.png"].bucket, "96x32")
    spec.eq(where["a.png"].bucket, "64x64")
    local e = where["b.png"]
    local t = grove.load_safetensors(dir .. "/" .. e.file)
    spec.eq(t["latents.0"]:shape_str(), "[1,3,8]")
    local z = expected(photos .. "/b.png", "a blue dog by the sea", 32, 96)
    spec.assert(spec.max_diff(t["latents.0"], z) <= 1e-5 * (1 + z:abs():max():item()), "bucketed latents")
    -- a size with a table of its own uses it as it is
    spec.eq(table.concat({ diffusers.bin_size(30, 90, nil, { resolution = 512 }) }, "x", 1, 2), "288x864")
  end)

  spec.it("a second run skips the finished shards; a shard missing from the manifest is written again, the same", function()
    local before = {}
    for _, name in ipairs(ls(square)) do before[name] = spec.read_all(square .. "/" .. name) end
    local r = diffusers.cache(tiny, photos, square, { size = 64, batch = 2, shard_size = 3, log = quiet })
    spec.eq(r.written, 0)
    spec.eq(r.samples, 7)
    for name, bytes in pairs(before) do spec.assert(spec.read_all(square .. "/" .. name) == bytes, name .. " untouched") end
    -- as if killed after the last rename but before the manifest listed it
    local m = json.read(square .. "/manifest.json")
    local last = table.remove(m.shards)
    m.complete = false
    require("grove.files").write_atomic(square .. "/manifest.json", json.encode(m))
    os.remove(square .. "/" .. last.file)
    spec.write_all(square .. "/" .. last.file .. ".tmp", "half a shard")
    local n = 0
    r = diffusers.cache(tiny, photos, square, { size = 64, batch = 2, shard_size = 3, log = quiet,
                                                on_shard = function(_, _, _, written) if written then n = n + 1 end end })
    spec.eq(n, 1)
    spec.eq(r.written, 1)
    spec.eq(table.concat(ls(square), " "), (function()
      local names = {}
      for name in pairs(before) do names[#names + 1] = name end
      table.sort(names)
      return table.concat(names, " ")
    end)(), "no temporary left")
    for name, bytes in pairs(before) do spec.assert(spec.read_all(square .. "/" .. name) == bytes, name .. " the same bytes") end
  end)

  spec.it("refuses to finish a cache with another model or other options, naming the manifest", function()
    local other = root .. "/other"
    os.execute("cp -r " .. q(tiny) .. " " .. q(other))
    local c = json.read(other .. "/vae/config.json")
    c.scaling_factor = 0.5
    spec.write_all(other .. "/vae/config.json", json.encode(c))
    spec.raises(function() diffusers.cache(other, photos, square, { size = 64, batch = 2, shard_size = 3, log = quiet }) end,
                square .. "/manifest.json was made with another model (vae.config.scaling_factor 0.41407 there, 0.5 here)")
    spec.raises(function() diffusers.cache(tiny, photos, square, { size = 96, batch = 2, shard_size = 3, log = quiet }) end,
                "made with another setting (size 64 there, 96 here)")
    spec.raises(function() diffusers.cache(tiny, photos, square, { size = 64, batch = 2, shard_size = 4, log = quiet }) end,
                "shard_size 3 there, 4 here")
    spec.raises(function() diffusers.cache(tiny, photos, root .. "/x", { size = 48, log = quiet }) end,
                "size 48 is not a multiple of 32")
    spec.raises(function() diffusers.cache(tiny, photos, root .. "/x", { sise = 64 }) end, "unknown option 'sise'")
    -- the data set checks the model it is asked to suit
    spec.raises(function() diffusers.cache_dataset(square, { model = other }) end,
                "was made with another model than " .. other .. " asks: vae.config.scaling_factor")
    local c2 = json.read(other .. "/transformer/config.json")
    c2.caption_channels = 64
    spec.write_all(other .. "/transformer/config.json", json.encode(c2))
    spec.raises(function() diffusers.cache_dataset(square, { model = other }) end,
                "text features of 32 channels there, the transformer takes 64")
    local ds = diffusers.cache_dataset(square, { model = tiny })
    spec.eq(ds.size, 7)
  end)

  spec.it("grove.describe and grove.load know a cache and its shards", function()
    local info = grove.describe(square)
    spec.eq(info.kind, "feature_cache")
    spec.eq(info.what, "a grove feature cache (7 samples in 3 of 3 shards)")
    local ds, kind = grove.load(square)
    spec.eq(kind, "feature_cache")
    spec.eq(ds.size, 7)
    local shard = grove.describe(square .. "/64x64-00001.safetensors")
    spec.eq(shard.kind, "feature_cache_shard")
    spec.eq(shard.what, "a feature cache shard (3 samples of bucket 64x64)")
  end)

  spec.it("kill -9 mid-run, then a run to finish: the files of an uninterrupted run", function()
    if not exe then spec.skip("the grove executable's path is unknown (arg[-1])"); return end
    local cmd = q(exe) .. " cache --model " .. q(tiny) .. " --data " .. q(photos) ..
                " --size 64 --batch 1 --shard-size 1 --quiet --out "
    local ref = root .. "/ref"
    local out, code = spec.run(cmd .. q(ref))
    spec.eq(code, 0, out)
    local killed = false
    for trial = 1, 5 do
      local dir = root .. "/killed" .. trial
      local p = io.popen(cmd .. q(dir) .. " > /dev/null 2>&1 & echo $!")
      local pid = tonumber(p:read("*l"))
      p:close()
      -- kill it once a shard is listed and before the last one is
      local listed = 0
      for _ = 1, 3000 do
        local f = io.open(dir .. "/manifest.json", "rb")
        if f then
          local ok, m = pcall(json.decode, f:read("*a"))
          f:close()
          if ok and type(m) == "table" and m.shards then
            listed = #m.shards
            if m.complete then break end
            if listed >= 1 then
              os.execute("kill -9 " .. pid .. " 2>/dev/null")
              killed = true
              break
            end
          end
        end
        os.execute("sleep 0.005")
      end
      -- gone, or a zombie nobody has reaped yet
      for _ = 1, 1000 do
        local f = io.open("/proc/" .. pid .. "/stat", "rb")
        local stat = f and f:read("*a") or ""
        if f then f:close() end
        if stat == "" or stat:match("^%d+ %b() (%a)") == "Z" then break end
        os.execute("sleep 0.01")
      end
      if killed then
        local m = json.read(dir .. "/manifest.json")
        spec.eq(m.complete, false, "the killed run's manifest is incomplete")
        spec.assert(#m.shards >= 1 and #m.shards < m.shards_planned, "killed mid-way")
        spec.raises(function() diffusers.cache_dataset(dir) end, "the cache is incomplete")
        out, code = spec.run(cmd .. q(dir))
        spec.eq(code, 0, out)
        same_files(dir, ref)
        break
      end
    end
    spec.assert(killed, "a run was caught mid-way in 5 tries")
  end)

  spec.describe("cache_dataset", function()
    local dir = root .. "/buckets"

    spec.it("gives batches of one bucket each, every sample once an epoch, as stored", function()
      local ds = diffusers.cache_dataset(dir, { batch_size = 2, seed = 3 })
      spec.eq(ds.size, 7)
      spec.eq(ds.latent_channels, 8)
      spec.eq(ds.scaling_factor, 0.41407)
      local per = ds:batches_per_epoch()
      local seen = {}
      local m = json.read(dir .. "/manifest.json")
      local stored = {}
      for _, e in ipairs(m.shards) do
        local t = grove.load_safetensors(dir .. "/" .. e.file)
        for k, id in ipairs(e.ids) do stored[id] = { t["latents." .. (k - 1)], t["features." .. (k - 1)], e.bucket } end
      end
      for _ = 1, per do
        local b = ds:next()
        local B = #b.ids
        spec.assert(B >= 1 and B <= 2, "batch size")
        local lh, lw = b.latents:size(2), b.latents:size(3)
        spec.eq(b.latents:dtype(), "f32")
        spec.eq(b.features:shape_str(), "[" .. B .. ",300,32]")
        spec.eq(b.features:dtype(), "f32")
        spec.eq(b.mask:shape_str(), "[" .. B .. ",300]")
        spec.eq(b.mask:dtype(), "f32")
        spec.eq(b.bucket, b.height .. "x" .. b.width)
        spec.eq(lh * 32 .. "x" .. lw * 32, b.bucket)
        for i, id in ipairs(b.ids) do
          spec.assert(not seen[id], id .. " once an epoch")
          seen[id] = true
          spec.eq(stored[id][3], b.bucket, id .. " is in its batch's bucket")
          spec.eq(spec.max_diff(b.latents:select(1, i), stored[id][1]), 0)
          spec.eq(spec.max_diff(b.features:select(1, i), stored[id][2]), 0)
        end
      end
      local n = 0
      for _ in pairs(seen) do n = n + 1 end
      spec.eq(n, 7, "every sample in one epoch")
      -- the forward of the folder's transformer takes a batch as it comes
      local T = pipe.transformer
      local b = ds:next()
      local y = grove.no_grad(function() return T:forward(b.latents, grove.full({ #b.ids }, 500), b.features, b.mask) end)
      spec.eq(y:shape_str(), b.latents:shape_str())
    end)

    local function sequence(ds, n)
      local out = {}
      for i = 1, n do
        local b = ds:next()
        out[i] = table.concat(b.ids, ",") .. "|" .. b.latents:sum():item() .. "|" .. b.features:sum():item()
      end
      return out
    end

    spec.it("shuffles by seed; state and set_state resume the same sequence", function()
      local a = sequence(diffusers.cache_dataset(dir, { batch_size = 2, seed = 3 }), 12)
      local b = sequence(diffusers.cache_dataset(dir, { batch_size = 2, seed = 3 }), 12)
      spec.eq(table.concat(a, " "), table.concat(b, " "), "same seed, same batches")
      local c = sequence(diffusers.cache_dataset(dir, { batch_size = 2, seed = 4 }), 12)
      spec.assert(table.concat(a, " ") ~= table.concat(c, " "), "another seed, another order")
      local ds = diffusers.cache_dataset(dir, { batch_size = 2, seed = 3 })
      sequence(ds, 7)
      local s = json.decode(json.encode(ds:state())) -- as a checkpoint stores it
      local rest = sequence(ds, 5)
      local ds2 = diffusers.cache_dataset(dir, { batch_size = 2, seed = 3 }):set_state(s)
      spec.eq(table.concat(sequence(ds2, 5), " "), table.concat(rest, " "), "resumed")
      local plain = diffusers.cache_dataset(dir, { batch_size = 2, shuffle = false })
      local first = plain:next()
      spec.eq(first.bucket, "32x96", "without shuffle, buckets in the manifest's order")
      spec.eq(table.concat(first.ids, ","), "b.png,f.png")
      local dl = diffusers.cache_dataset(dir, { batch_size = 2, seed = 1, drop_last = true })
      for _ = 1, 6 do spec.eq(#dl:next().ids, 2, "drop_last: full batches only") end
      spec.raises(function() diffusers.cache_dataset(dir, { batch_size = 8, drop_last = true }) end, "no batch")
      spec.raises(function() ds:set_state { epoch = 0, pos = 99, started = true } end, "past the")
    end)

    spec.it("refuses a missing or truncated manifest or shard, naming the file", function()
      local bad = root .. "/bad"
      os.execute("cp -r " .. q(dir) .. " " .. q(bad))
      local m = json.read(bad .. "/manifest.json")
      local shard = bad .. "/" .. m.shards[1].file
      local bytes = spec.read_all(shard)
      spec.write_all(shard, bytes:sub(1, #bytes - 100))
      spec.raises(function() diffusers.cache_dataset(bad) end, "shard " .. shard)
      os.remove(shard)
      spec.raises(function() diffusers.cache_dataset(bad) end, shard .. " is missing")
      spec.write_all(shard, bytes)
      local mtext = spec.read_all(bad .. "/manifest.json")
      spec.write_all(bad .. "/manifest.json", mtext:sub(1, 200))
      spec.raises(function() diffusers.cache_dataset(bad) end, (bad .. "/manifest.json"))
      os.remove(bad .. "/manifest.json")
      spec.raises(function() diffusers.cache_dataset(bad) end, "manifest.json is missing")
      spec.raises(function() diffusers.cache_dataset(root .. "/nowhere") end, "nowhere/manifest.json is missing")
      -- a manifest that names a file outside the cache
      m.shards[1].file = "../square/64x64-00001.safetensors"
      spec.write_all(bad .. "/manifest.json", json.encode(m))
      spec.raises(function() diffusers.cache_dataset(bad) end, "file must be a file name")
      -- a shard holding other shapes than the manifest says
      m = json.read(dir .. "/manifest.json")
      m.shards[1].latent_width = 5
      spec.write_all(bad .. "/manifest.json", json.encode(m))
      spec.raises(function() diffusers.cache_dataset(bad) end, "latents.0 is f32 (1, 3, 8), expected f32 (1, 5, 8)")
      spec.raises(function() diffusers.cache_dataset(dir, { batch = 2 }) end, "unknown option 'batch'")
      spec.raises(function() diffusers.cache_dataset(dir, { batch_size = 0 }) end, "batch_size must be an integer")
    end)
  end)

  spec.describe("grove cache", function()
    if not exe then spec.skip("the grove executable's path is unknown (arg[-1])"); return end
    spec.it("reports what it wrote; bad options end with a clear message", function()
      local out, code = spec.run(q(exe) .. " cache --model " .. q(tiny) .. " --data " .. q(photos) .. " --out " ..
                                 q(root .. "/cli") .. " --size 64 --shard-size 4")
      spec.eq(code, 0, out)
      spec.assert(out:find("7 samples of 8 images in 2 shards (2 written now, 0 already done), 1 skipped", 1, true), out)
      spec.assert(out:find("shard 1/2 64x64-00001.safetensors: 4 samples", 1, true), out)
      for _, c in ipairs {
        { "cache --data x --out y", "option --model is required" },
        { "cache --model " .. q(tiny) .. " --data x --out y --features-dtype f16", "option --features-dtype must be f32 or bf16" },
        { "cache --model " .. q(tiny) .. " --data " .. q(root .. "/none") .. " --out " .. q(root .. "/y"), "none" },
        { "cache --model " .. q(tiny) .. " --data " .. q(photos) .. " --out " .. q(root .. "/cli") .. " --size 96 --shard-size 4",
          "made with another setting (size 64 there, 96 here)" },
      } do
        out, code = spec.run(q(exe) .. " " .. c[1])
        spec.assert(code ~= 0, c[1] .. ": non-zero exit")
        spec.assert(out:find(c[2], 1, true), c[1] .. ": says '" .. c[2] .. "':\n" .. out)
        spec.assert(not out:find("%.lua:%d+:"), "no Lua file:line:\n" .. out)
      end
    end)
  end)

  os.execute("rm -rf " .. q(root))
end)
