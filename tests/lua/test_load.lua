-- File kinds: grove.describe says what a path holds from its header,
-- grove.load returns it, and the commands take every kind that makes sense
-- for them (grove grow grows a training checkpoint's model) and name the
-- kind they got when they cannot.
local spec = require "spec"

local exe = arg and arg[-1]
local run = spec.run

local dir
local files = {}
local function setup()
  if dir then return end
  dir = spec.tmpdir()
  local r = grove.train.run { preset = "tiny", batch = 4, lr = 2e-3, warmup = 1, sample_every = 0, log_every = 1000,
                              eval = false, seed = 3, steps = 2, save_every = 2, out = dir .. "/run",
                              config = { depth = 2, width = 64, cross_heads = 2 }, text_depth = 1, text_heads = 2 }
  files.checkpoint = dir .. "/run/checkpoint.safetensors"
  files.weights = dir .. "/weights.safetensors"
  grove.train.save_weights(files.weights, r.parts)
  files.pruned = dir .. "/pruned.safetensors"
  grove.train.save_weights(files.pruned, r.parts, { ["grove.prune"] = "metric=cosine depth=2" })
  files.model = dir .. "/model.safetensors"
  r.parts.model:save(files.model)
  files.tensors = dir .. "/plain.safetensors"
  grove.save_safetensors(files.tensors, { a = grove.zeros { 2 } })
  files.png = dir .. "/img.png"
  grove.image.save(files.png, grove.zeros { 4, 4, 3 })
  files.opt = dir .. "/opt.safetensors"
  local opt = grove.optim.adamw(r.parts.model:parameters(), { lr = 1e-3 })
  opt:save(files.opt)
end

spec.describe("grove.describe and grove.load", function()
  spec.it("names each kind of file from its header", function()
    setup()
    local function kind(p) return grove.describe(p).kind end
    spec.eq(kind(files.checkpoint), "train_checkpoint")
    spec.eq(grove.describe(files.checkpoint).what, "a grove training checkpoint (step 2)")
    spec.eq(kind(files.weights), "weights")
    spec.eq(kind(files.pruned), "pruned_weights")
    spec.eq(kind(files.model), "model")
    spec.eq(kind(files.tensors), "safetensors")
    spec.eq(kind(files.opt), "optimizer_state")
    spec.eq(grove.describe(files.png).what, "a PNG image")
    spec.raises(function() grove.describe(dir .. "/nothing") end, "no such file or folder")
  end)

  spec.it("loads each kind and says which it was", function()
    setup()
    local parts, kind = grove.load(files.checkpoint)
    spec.eq(kind, "train_checkpoint")
    spec.eq(parts.step, 2)
    spec.assert(parts.ema_used, "EMA weights by default")
    spec.eq(#parts.model.blocks, 2)
    local raw = grove.load(files.checkpoint, { ema = false })
    spec.assert(not raw.ema_used, "raw weights when asked")
    local m, k2 = grove.load(files.model)
    spec.eq(k2, "model")
    spec.eq(#m.blocks, 2)
    spec.eq(select(2, grove.load(files.pruned)), "pruned_weights")
    local t, k3 = grove.load(files.tensors)
    spec.eq(k3, "safetensors")
    spec.eq(t.a:shape_str(), "[2]")
    spec.raises(function() grove.load(files.png) end, "is a PNG image, which grove does not load")
  end)

  spec.it("says what a diffusers folder is and loads its transformer", function()
    local fx = spec.fixtures("diffusers-sana/b_sana15")
    if not fx then spec.skip("no shared fixtures"); return end
    local info = grove.describe(fx)
    spec.eq(info.kind, "diffusers_pipeline")
    spec.assert(info.what:find("transformer", 1, true), info.what)
    local t = grove.describe(fx .. "/transformer")
    spec.eq(t.kind, "diffusers_transformer")
    local m, kind = grove.load(fx .. "/transformer")
    spec.eq(kind, "diffusers_transformer")
    spec.assert(#m.blocks >= 1, "blocks")
  end)

  spec.it("load_for_inference names the kind it was given", function()
    setup()
    spec.raises(function() grove.train.load_for_inference(files.model) end,
      "is a grove model file (a transformer alone, no text encoder), not a grove training checkpoint")
    spec.raises(function() grove.train.load_for_inference(files.opt) end, "is an optimizer state")
    spec.raises(function() grove.train.load_for_inference(dir) end, "is a folder without model_index.json")
  end)
end)

spec.describe("grove grow on grove's own files", function()
  spec.it("grows a training checkpoint's EMA model into a weights file that samples", function()
    setup()
    local out = dir .. "/grown.safetensors"
    local res = grove.grow.file(files.checkpoint, out, { depth = 3, strategy = "partial", init = "identity" })
    spec.eq(res.source_kind, "train_checkpoint")
    spec.assert(res.ema_used, "EMA weights")
    spec.eq(res.depth, 3)
    local info = grove.describe(out)
    spec.eq(info.kind, "grown_weights")
    for _, n in ipairs(info.names) do
      spec.assert(not n:match("^optim%.") and not n:match("^ema%."), "no run state in the grown file: " .. n)
    end
    local src = grove.load_safetensors(files.checkpoint)
    local got = grove.load_safetensors(out)
    spec.eq(got["text.embeddings.token_embedding.weight"]:sub(src["ema.text.embeddings.token_embedding.weight"]):abs():max():item(), 0)
    spec.eq(got["model.transformer_blocks.0.attn1.to_q.weight"]:sub(src["ema.model.transformer_blocks.0.attn1.to_q.weight"]):abs():max():item(), 0)
    local parts = grove.train.load_for_inference(out)
    spec.eq(#parts.model.blocks, 3)
    spec.eq(parts.model.config.depth, 3)
    local img = grove.train.sample_prompts(parts, { "a red circle" }, { steps = 1, size = 8 })
    spec.eq(img:shape_str(), "[1,8,8,3]")
    local raw = grove.grow.file(files.checkpoint, dir .. "/grown_raw.safetensors", { depth = 3, raw = true })
    spec.assert(not raw.ema_used, "raw weights when asked")
    -- weights files grow the same way
    local w = grove.grow.file(files.weights, dir .. "/grown_w.safetensors", { depth = 4 })
    spec.eq(w.depth, 4)
  end)

  spec.it("grove grow --in checkpoint works; an optimizer state or image is named", function()
    if not exe then spec.skip("the grove executable's path is unknown (arg[-1])"); return end
    setup()
    local out, status = run("'" .. exe .. "' grow --in " .. files.checkpoint .. " --out " .. dir .. "/cli.safetensors --depth 3")
    spec.eq(status, 0, out)
    spec.assert(out:find("is a training checkpoint: growing its EMA weights", 1, true), out)
    out, status = run("'" .. exe .. "' grow --in " .. files.opt .. " --out " .. dir .. "/x.safetensors --depth 3")
    spec.eq(status, 1, out)
    spec.assert(out:find("is an optimizer state", 1, true), out)
    spec.assert(not out:find("%.lua:%d+"), out)
    out, status = run("'" .. exe .. "' grow --in " .. files.png .. " --out " .. dir .. "/x.safetensors --depth 3")
    spec.eq(status, 1, out)
    spec.assert(out:find("is a PNG image", 1, true), out)
    out, status = run("'" .. exe .. "' grow --in " .. files.checkpoint .. " --out " .. dir .. "/x.safetensors --depth 0")
    spec.eq(status, 1, out)
    spec.assert(out:find("option --depth must be an integer >= 1, got 0", 1, true), out)
  end)

  spec.it("grove sample names the kind of a file it cannot sample from", function()
    if not exe then spec.skip("the grove executable's path is unknown (arg[-1])"); return end
    setup()
    local out, status = run("'" .. exe .. "' sample --checkpoint " .. files.model .. " --prompt x -n 1 --steps 1 --size 8 -o " ..
                            dir .. "/s.png")
    spec.eq(status, 1, out)
    spec.assert(out:find("is a grove model file", 1, true), out)
    out, status = run("'" .. exe .. "' sample --checkpoint " .. files.pruned .. " --prompt x -n 1 --steps 1 --size 8 -o " ..
                      dir .. "/s.png")
    spec.eq(status, 0, out)
  end)
end)

spec.describe("configs from files are checked against the file before allocating", function()
  spec.it("a checkpoint whose grove.config claims a huge or different model is refused by name", function()
    setup()
    local tensors, meta = grove.load_safetensors(files.weights)
    local function with_config(edit, name)
      local m = {}
      for k, v in pairs(meta) do m[k] = v end
      local c = grove.nn._decode_config(m["grove.config"])
      edit(c)
      m["grove.config"] = grove.nn._encode_config(c)
      local p = dir .. "/" .. name .. ".safetensors"
      grove.save_safetensors(p, tensors, m)
      return p
    end
    local before = grove.memory().live_bytes
    local huge = with_config(function(c) c.width = 2 ^ 20 end, "huge")
    spec.raises(function() grove.train.load_for_inference(huge) end, "its configs give model.")
    local deep = with_config(function(c) c.depth = 1e12 end, "deep")
    spec.raises(function() grove.train.load_for_inference(deep) end, "grove.config gives depth 1000000000000, which the file")
    local other = with_config(function(c) c.depth = 3 end, "other")
    spec.raises(function() grove.train.load_for_inference(other) end, "model.transformer_blocks.2.")
    grove.collect()
    spec.assert(grove.memory().live_bytes <= before, "nothing left allocated")
  end)

  spec.it("nn.load checks a model file's grove.config the same way", function()
    setup()
    local tensors, meta = grove.load_safetensors(files.model)
    local c = grove.nn._decode_config(meta["grove.config"])
    c.width = 4096
    meta["grove.config"] = grove.nn._encode_config(c)
    local p = dir .. "/model_wide.safetensors"
    grove.save_safetensors(p, tensors, meta)
    spec.raises(function() grove.nn.load(p) end, "nn.load: " .. p .. ": grove.config gives ")
  end)
end)
