-- Growth and pruning of diffusers transformer folders as files
-- (grove.grow.folder, grove.prune.folder, `grove grow|prune --in DIR`): a
-- small sharded BF16 folder written by grove and the shared b_sana15 fixture
-- are grown and pruned; kept blocks are bit-identical and renumbered,
-- config.json's num_layers and the index are right, dtypes are kept, the
-- grown tensors are exactly grove.grow's, and the folders load into models
-- that compute what the source (identity growth) or its kept blocks (pruning)
-- compute.
local spec = require "spec"

local exe = arg and arg[-1]
local diffusers = grove.diffusers
local fixtures = spec.fixture_path()
local b_sana15 = fixtures .. "/diffusers-sana/b_sana15"
local have_fixture = grove.C.grove_path_kind(b_sana15 .. "/transformer") == grove.C.GROVE_PATH_DIR

local max_diff, run, join = spec.max_diff, spec.run, spec.join
local function exists(p) return grove.C.grove_path_kind(p) ~= grove.C.GROVE_PATH_NONE end

-- grove's model of the folder below: no learned null caption (diffusers has none)
local cfg = { depth = 3, width = 64, head_dim = 32, cross_heads = 2, patch_size = 2, in_channels = 4,
              out_channels = 4, caption_channels = 16, text_len = 6, caption_dropout = 0 }
-- the same model as SanaTransformer2DModel's config.json, made by hand
local config = {
  _class_name = "SanaTransformer2DModel", _diffusers_version = "0.32.0.dev0", attention_bias = false,
  attention_head_dim = 32, caption_channels = 16, cross_attention_dim = 64, cross_attention_head_dim = 32,
  dropout = 0.0, in_channels = 4, mlp_ratio = 2.5, norm_elementwise_affine = false, norm_eps = 1e-6,
  num_attention_heads = 2, num_cross_attention_heads = 2, num_layers = 3, out_channels = 4, patch_size = 2,
  qk_norm = "rms_norm_across_heads", sample_size = 8,
}

-- A trained-looking source whose weights are BF16 values (so the f32 model
-- and its BF16 folder hold the same numbers).
local function round_bf16(m)
  grove.no_grad(function()
    for _, p in ipairs(m:parameters()) do p:copy_(p:detach():to("bf16"):float()) end
  end)
  return m
end

local function source_model(seed)
  local m = grove.nn.Sana(cfg, { seed = seed })
  local g = grove.Generator(seed + 100)
  grove.no_grad(function()
    for _, p in ipairs(m:parameters()) do p:copy_(p + grove.randn(p:shape(), { generator = g }) * 0.05) end
  end)
  return round_bf16(m)
end

local function write_folder(dir, model, max_shard_bytes)
  local tensors = {}
  for _, np in ipairs(model:named_parameters()) do tensors[np[1]] = np[2]:detach():to("bf16") end
  local c = {}
  for k, v in pairs(config) do c[k] = v end
  c.num_layers = #model.blocks
  return diffusers.write_component(dir, c, tensors, { max_shard_bytes = max_shard_bytes })
end

-- The folder's model (BF16 weights, f32 compute), checked to have depth blocks.
local function load_model(dir, depth)
  local m = diffusers.transformer(dir)
  spec.eq(#m.blocks, depth, "blocks of the loaded model")
  return m
end

local function inputs(B, seed)
  local g = grove.Generator(seed)
  local x = grove.randn({ B, 8, 8, 4 }, { generator = g })
  local t = grove.rand({ B }, { generator = g }) * 1000
  local text = grove.randn({ B, 6, 16 }, { generator = g })
  local mask = grove.tensor { { 1, 1, 1, 0, 0, 0 }, { 1, 1, 1, 1, 1, 1 } }
  return x, t, text, mask
end

-- Exact equality of two tensors' values, dtypes and shapes.
local function same(a, b, msg)
  spec.eq(a:dtype(), b:dtype(), msg .. " dtype")
  spec.eq(a:shape_str(), b:shape_str(), msg .. " shape")
  spec.eq(max_diff(a:float(), b:float()), 0, msg)
end

-- Opening the output checks its index against the shards (every tensor
-- once, in the shard named); here also total_size and the files listed.
local function check_folder(dir, depth, want_files)
  local comp = diffusers.component(dir)
  spec.eq(comp.config.num_layers, depth, "config.json num_layers")
  spec.eq(comp.config._class_name, "SanaTransformer2DModel")
  local total, blocks = 0, -1
  for _, n in ipairs(comp:names()) do
    local i = comp:info(n)
    local numel = 1
    for _, s in ipairs(i.shape) do numel = numel * s end
    total = total + numel * tonumber(grove.C.grove_dtype_size(grove._dtype_id(i.dtype)))
    local b = n:match("^transformer_blocks%.(%d+)%.")
    if b then blocks = math.max(blocks, tonumber(b)) end
  end
  spec.eq(blocks + 1, depth, "blocks in the weights")
  if comp.index then
    local idx = grove.json.read(comp.index)
    spec.eq(idx.metadata.total_size, total, "index total_size")
  end
  if want_files then spec.eq(#comp.files, want_files, "weight files") end
  return comp
end

spec.describe("grove.grow.folder", function()
  local dir = spec.tmpdir()
  local src = source_model(21)
  local base = dir .. "/base"
  local written = write_folder(base, src, 40000)
  spec.it("the source folder is sharded BF16", function()
    spec.assert(#written.files > 3, "shards: " .. join(written.files))
    spec.eq(diffusers.component(base):info("transformer_blocks.0.attn1.to_q.weight").dtype, "bf16")
  end)

  for _, case in ipairs { { "partial", 5, "identity" }, { "cyclic", 5, "identity" }, { "block", 6, "identity" },
                          { "partial", 4, "random" }, { "cyclic", 4, "random" }, { "block", 6, "noise" },
                          { "partial", 5, "noise" } } do
    local strategy, depth, init = case[1], case[2], case[3]
    spec.it(strategy .. " + " .. init .. ": BF16 shards holding exactly grove.grow's tensors", function()
      local o = { strategy = strategy, depth = depth, init = init, noise = init == "noise" and 0.01 or nil, seed = 9,
                  max_shard_bytes = 60000 }
      local out = dir .. "/" .. strategy .. "_" .. init
      local res = grove.grow.folder(base, out, o)
      spec.eq(res.depth, depth)
      spec.eq(res.source_depth, 3)
      spec.eq(res.dir, out)
      local comp = check_folder(out, depth)
      spec.assert(#comp.files > 1, "sharded output")
      local want = grove.grow(src, o)
      local names = comp:names()
      spec.eq(#names, #want:named_parameters(), "tensor count")
      for _, np in ipairs(want:named_parameters()) do
        same(comp:load(np[1]), np[2]:detach():to("bf16"), np[1])
      end
      -- kept blocks are the source's bits, renumbered
      local source = diffusers.component(base)
      for i, j in ipairs(grove.grow.strategies[strategy].map(3, depth)) do
        if j and (res.kinds[i] == "keep") then
          for _, n in ipairs(source:names()) do
            local rel = n:match("^transformer_blocks%." .. (j - 1) .. "%.(.+)$")
            if rel then same(comp:load("transformer_blocks." .. (i - 1) .. "." .. rel), source:load(n), "kept " .. rel) end
          end
        end
        if init == "identity" and res.kinds[i] ~= "keep" then
          local zeroed = 0
          for _, rel in ipairs(grove.grow.ZERO) do
            local n = "transformer_blocks." .. (i - 1) .. "." .. rel
            if comp._where[n] then
              spec.eq(comp:load(n):float():abs():max():item(), 0, "block " .. i .. " " .. rel)
              zeroed = zeroed + 1
            end
          end
          spec.eq(zeroed, 5, "output projections (SANA's conv_point has no bias)")
        end
      end
      source:close()
      comp:close()
    end)
  end

  spec.it("identity growth loads into a model that computes exactly what the source did", function()
    local out = dir .. "/partial_identity"
    local big = load_model(out, 5)
    local x, t, text, mask = inputs(2, 3)
    local a = grove.no_grad(function() return src:forward(x, t, text, mask) end)
    local b = grove.no_grad(function() return big:forward(x, t, text, mask) end)
    spec.eq(max_diff(a, b), 0, "grown forward against the source's")
  end)

  spec.it("a pipeline folder in gives OUT/transformer; the other components are not copied", function()
    local pipe = dir .. "/pipe"
    os.execute("mkdir -p '" .. pipe .. "' && cp -r '" .. base .. "' '" .. pipe .. "/transformer'")
    spec.write_all(pipe .. "/model_index.json", '{"_class_name": "SanaPipeline", "transformer": ["diffusers", ' ..
                   '"SanaTransformer2DModel"]}\n')
    local res = grove.grow.folder(pipe, dir .. "/pipe_out", { depth = 4 })
    spec.eq(res.dir, dir .. "/pipe_out/transformer")
    spec.assert(res.pipeline)
    check_folder(res.dir, 4, 1)
    spec.assert(not exists(dir .. "/pipe_out/model_index.json"), "model_index.json is the user's to copy")
  end)

  spec.it("the command line grows a folder", function()
    local out = dir .. "/cli"
    local text, status = run(exe .. " grow --in " .. base .. " --out " .. out ..
                             " --depth 6 --strategy block --max-shard-size 50KB")
    spec.eq(status, 0, text)
    spec.assert(text:find("3 -> 6 blocks (block, identity init: 3 kept, 3 repeated, 0 new)", 1, true), text)
    check_folder(out, 6)
    local again, bad = run(exe .. " grow --in " .. base .. " --out " .. out .. " --depth 6")
    spec.eq(bad, 1)
    spec.assert(again:find("grove grow: " .. out .. " already exists", 1, true), again)
  end)

  spec.it("refuses existing outputs, other classes, disagreeing configs and bad depths, leaving nothing", function()
    spec.raises(function() grove.grow.folder(base, base, { depth = 4 }) end, "already exists")
    spec.raises(function() grove.grow.folder(base, dir .. "/x", { depth = 2 }) end, "at least 3, got 2")
    spec.raises(function() grove.grow.folder(base, dir .. "/x", { depth = 4, max_shard_bytes = "lots" }) end,
                "a shard size is a number of bytes or a size like 5GB")
    spec.raises(function() grove.grow.folder(dir .. "/none", dir .. "/x", { depth = 4 }) end, "is not a folder")
    local other = dir .. "/vae"
    os.execute("cp -r '" .. base .. "' '" .. other .. "'")
    local c = grove.json.read(other .. "/config.json")
    c._class_name = "AutoencoderDC"
    spec.write_all(other .. "/config.json", grove.json.encode(c))
    spec.raises(function() grove.grow.folder(other, dir .. "/x", { depth = 4 }) end,
                "config.json: _class_name is 'AutoencoderDC'; grove grows and prunes SanaTransformer2DModel folders")
    c._class_name, c.num_layers = "SanaTransformer2DModel", 7
    spec.write_all(other .. "/config.json", grove.json.encode(c))
    spec.raises(function() grove.grow.folder(other, dir .. "/x", { depth = 8 }) end,
                "says num_layers = 7, but the weights hold 3 blocks")
    spec.assert(not exists(dir .. "/x") and not exists(dir .. "/x.partial"), "a failed surgery leaves no folder")
  end)
  os.execute("rm -rf '" .. dir .. "'")
end)

spec.describe("grove.prune.folder", function()
  local dir = spec.tmpdir()
  local src = source_model(5)
  src = round_bf16(grove.grow(src, { depth = 5, strategy = "partial", init = "random", seed = 2 })) -- 5 distinct blocks
  local base = dir .. "/base"
  write_folder(base, src, 50000)

  spec.it("remove and keep copy the kept blocks bit for bit, renumbered", function()
    local res = grove.prune.folder(base, dir .. "/r", { remove = { 2, 4 }, max_shard_bytes = 30000 })
    spec.eq(join(res.kept), "1,3,5")
    spec.eq(join(res.removed), "2,4")
    local comp = check_folder(dir .. "/r", 3)
    spec.assert(#comp.files > 1, "sharded output")
    local source = diffusers.component(base)
    local count = 0
    for _, n in ipairs(source:names()) do
      local j, rel = n:match("^transformer_blocks%.(%d+)%.(.+)$")
      if not j then same(comp:load(n), source:load(n), n); count = count + 1
      else
        local k = ({ [0] = 0, [2] = 1, [4] = 2 })[tonumber(j)]
        if k then same(comp:load("transformer_blocks." .. k .. "." .. rel), source:load(n), n); count = count + 1 end
      end
    end
    spec.eq(#comp:names(), count, "no other tensors")
    local kept = grove.prune.folder(base, dir .. "/k", { keep = "1,3,5" })
    spec.eq(join(kept.removed), "2,4")
    local a, b = diffusers.component(dir .. "/k"), comp
    for _, n in ipairs(b:names()) do same(a:load(n), b:load(n), n) end
  end)

  spec.it("the pruned folder computes what the source's kept blocks compute", function()
    local small = load_model(dir .. "/r", 3)
    local x, t, text, mask = inputs(2, 7)
    local a = grove.no_grad(function() return grove.prune.view(src, { 1, 3, 5 }):forward(x, t, text, mask) end)
    local b = grove.no_grad(function() return small:forward(x, t, text, mask) end)
    spec.eq(max_diff(a, b), 0, "pruned forward against the source's kept blocks")
  end)

  spec.it("the command line prunes a folder; blocks out of range are clear errors", function()
    local text, status = run(exe .. " prune --in " .. base .. " --out " .. dir .. "/cli --remove 3")
    spec.eq(status, 0, text)
    spec.assert(text:find("5 -> 4 blocks; removed blocks 3 (transformer_blocks.{2})", 1, true), text)
    check_folder(dir .. "/cli", 4)
    local msg, bad = run(exe .. " prune --in " .. base .. " --out " .. dir .. "/cli2 --remove 6")
    spec.eq(bad, 1)
    spec.assert(msg:find("remove names block 6, but " .. base .. " has blocks 1..5", 1, true), msg)
    spec.raises(function() grove.prune.folder(base, dir .. "/x", { keep = { 0 } }) end, "keep names block 0")
    spec.raises(function() grove.prune.folder(base, dir .. "/x", { remove = { 1, 2, 3, 4, 5 } }) end,
                "removes all 5 blocks")
    spec.raises(function() grove.prune.folder(base, dir .. "/x", {}) end, "say which blocks go")
    spec.raises(function() grove.prune.folder(base, dir .. "/x", { keep = { 1 }, remove = { 1 } }) end,
                "block 1 is both kept and removed")
    spec.raises(function() grove.prune.folder(base, dir .. "/cli", { remove = { 1 } }) end, "already exists")
    spec.assert(not exists(dir .. "/x") and not exists(dir .. "/x.partial"), "a failed surgery leaves no folder")
  end)
  os.execute("rm -rf '" .. dir .. "'")
end)

spec.describe("surgery on the b_sana15 fixture (3 F32 shards)", function()
  if not have_fixture then
    spec.skip("no shared fixtures at " .. b_sana15 .. " (set GROVE_FIXTURES)")
    return
  end
  local dir = spec.tmpdir()
  spec.it("grows 2 -> 4 blocks (block) and prunes back to the source's tensors", function()
    local res = grove.grow.folder(b_sana15, dir .. "/g", { depth = 4, strategy = "block", max_shard_bytes = 100000 })
    spec.eq(res.dir, dir .. "/g/transformer")
    local grown = check_folder(res.dir, 4)
    local fx = diffusers.component(b_sana15, "transformer")
    for _, n in ipairs(grown:names()) do
      local i, rel = n:match("^transformer_blocks%.(%d+)%.(.+)$")
      if not i then same(grown:load(n), fx:load(n), n)
      else
        i = tonumber(i)
        local from = fx:load("transformer_blocks." .. math.floor(i / 2) .. "." .. rel)
        local t = grown:load(n)
        if i % 2 == 0 then same(t, from, n)
        elseif rel:find("to_out", 1, true) or rel:find("conv_point", 1, true) then
          spec.eq(t:abs():max():item(), 0, n .. " zero in a repeat")
        elseif rel ~= "scale_shift_table" then same(t, from, n) end
      end
    end
    local p = grove.prune.folder(res.dir, dir .. "/p", { remove = { 2, 4 } })
    local back = check_folder(p.dir, 2)
    for _, n in ipairs(fx:names()) do same(back:load(n), fx:load(n), n) end
    for k, v in pairs(fx.config) do
      if type(v) ~= "table" then spec.eq(back.config[k], v, "config." .. k) end
    end
  end)
  os.execute("rm -rf '" .. dir .. "'")
end)

spec.describe("grove.prune.folder with calibration features", function()
  local dir = spec.tmpdir()
  local src = source_model(8)
  src = round_bf16(grove.grow(src, { depth = 5, strategy = "partial", init = "random", seed = 4 }))
  local base = dir .. "/base"
  write_folder(base, src, 50000)
  -- 3 prompts of 6 tokens (the last two padded in the first), NCHW latents
  local g = grove.Generator(77)
  local text = grove.randn({ 3, 6, 16 }, { generator = g })
  local mask = grove.tensor { { 1, 1, 1, 1, 0, 0 }, { 1, 1, 1, 1, 1, 1 }, { 1, 1, 1, 1, 1, 0 } }:to("i64")
  local latents = grove.randn({ 3, 4, 8, 8 }, { generator = g })
  local feats = dir .. "/calib.safetensors"
  grove.save_safetensors(feats, { { "prompt_embeds", text:to("bf16") }, { "prompt_attention_mask", mask },
                                  { "latents", latents } })
  local function write(path, list) grove.save_safetensors(path, list); return path end

  spec.it("scores the loaded folder as grove.prune scores the model, and streams the kept blocks", function()
    local res = grove.prune.folder(base, dir .. "/scored", { depth = 3, calib_features = feats, timesteps = 3, seed = 5,
                                                             batch = 2 })
    -- the same calibration built by hand from the same numbers: NHWC latents, f32 features
    local rows = text:to("bf16"):float()
    local calib = grove.prune.calibration(src, function(chunk)
      local first = tonumber(chunk[1])
      return rows:narrow(1, first, #chunk):contiguous(), mask:narrow(1, first, #chunk):contiguous()
    end, { prompts = { "1", "2", "3" }, x0 = latents:permute { 1, 3, 4, 2 }:contiguous(), timesteps = 3, seed = 5,
           batch = 2 })
    local want = grove.prune.importance(src, calib)
    spec.eq(#res.scores, 5)
    for i = 1, 5 do spec.near(res.scores[i], want[i], 1e-6, "score of block " .. i) end
    local _, info = grove.prune(src, { depth = 3, calib = calib })
    spec.eq(join(res.kept), join(info.kept))
    spec.eq(res.metric, "cosine")
    local comp = check_folder(dir .. "/scored", 3)
    local source = diffusers.component(base)
    for k, j in ipairs(res.kept) do
      same(comp:load("transformer_blocks." .. (k - 1) .. ".attn2.to_k.weight"),
           source:load("transformer_blocks." .. (j - 1) .. ".attn2.to_k.weight"), "kept block " .. j)
    end
  end)

  spec.it("takes the file's sigmas, protects --keep blocks, and runs from the command line", function()
    local with_sigmas = write(dir .. "/sig.safetensors", { { "prompt_embeds", text }, { "prompt_attention_mask", mask },
                                                           { "latents", latents }, { "sigmas", grove.tensor { 0.9, 0.3 } } })
    local res = grove.prune.folder(base, dir .. "/sig", { depth = 2, calib_features = with_sigmas, keep = { 2 } })
    spec.assert(join(res.kept):find("2", 1, true), "block 2 protected: " .. join(res.kept))
    local calib = grove.prune.calibration(src, function(chunk)
      local first = tonumber(chunk[1])
      return text:narrow(1, first, #chunk):contiguous(), mask:narrow(1, first, #chunk):contiguous()
    end, { prompts = { "1", "2", "3" }, x0 = latents:permute { 1, 3, 4, 2 }:contiguous(), timesteps = { 0.9, 0.3 } })
    local want = grove.prune.importance(src, calib)
    for i = 1, 5 do spec.near(res.scores[i], want[i], 1e-6, "score of block " .. i) end
    local text_out, status = run(exe .. " prune --in " .. base .. " --out " .. dir .. "/cli --depth 4 --calib-features " ..
                                 with_sigmas)
    spec.eq(status, 0, text_out)
    spec.assert(text_out:find("5 -> 4 blocks (cosine metric, oneshot schedule)", 1, true), text_out)
    spec.assert(text_out:find("importance: 1:", 1, true), text_out)
    check_folder(dir .. "/cli", 4)
  end)

  spec.it("refuses features that do not fit the model, naming the file and tensor", function()
    local function fails(list, pattern, o)
      local path = write(dir .. "/bad.safetensors", list)
      local opts = { depth = 3, calib_features = path }
      for k, v in pairs(o or {}) do opts[k] = v end
      spec.raises(function() grove.prune.folder(base, dir .. "/bad", opts) end, pattern)
      spec.assert(not exists(dir .. "/bad"), "nothing written")
    end
    fails({ { "prompt_embeds", text }, { "latents", latents } }, "no tensor 'prompt_attention_mask'")
    fails({ { "prompt_embeds", text }, { "prompt_attention_mask", mask }, { "latents", latents }, { "noise", latents } },
          "bad.safetensors: tensor 'noise' is not a calibration feature")
    fails({ { "prompt_embeds", grove.randn { 3, 6, 8 } }, { "prompt_attention_mask", mask }, { "latents", latents } },
          "prompt_embeds is [3,6,8], but the model takes 16 caption channels")
    fails({ { "prompt_embeds", text }, { "prompt_attention_mask", mask }, { "latents", grove.randn { 3, 8, 8, 4 } } },
          "latents is [3,8,8,4]; expected (3, 4, H, W)")
    fails({ { "prompt_embeds", text }, { "prompt_attention_mask", grove.ones { 2, 6 } }, { "latents", latents } },
          "prompt_attention_mask is [2,6], but prompt_embeds is [3,6,16]")
    fails({ { "prompt_embeds", text }, { "prompt_attention_mask", mask }, { "latents", latents },
            { "sigmas", grove.tensor { 0.5, 1.5 } } }, "sigmas[2] is 1.5; noise levels are in (0, 1]")
    spec.raises(function() grove.prune.folder(base, dir .. "/bad", { calib_features = feats }) end, "needs depth")
    spec.raises(function() grove.prune.folder(base, dir .. "/bad", { depth = 3, calib_features = dir .. "/none" }) end,
                "calibration features")
  end)
  os.execute("rm -rf '" .. dir .. "'")
end)
