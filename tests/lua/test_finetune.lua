-- Fine-tuning the transformer of a diffusers folder (grove.diffusers.finetune,
-- recipes/train.lua --model --cache) on the tiny complete random folder and
-- a feature cache of it (grove.diffusers.cache): the loss falls on a fixed
-- batch, the saved folder loads and `grove sample --model` draws from it, a
-- run killed with SIGKILL resumes to bit-identical weights, a NaN stops the
-- run (an in-memory data set of the cache's interface poisons a batch), and
-- CAME-8bit's state on sana_1600m shapes is at most 1/7.5 of AdamW's.
local spec = require "spec"
local fake = require "fake_cache"

local exe = arg and arg[-1]
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/lua"
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local C = grove.C

-- the tiny folder's transformer: 8 latent channels, caption features of 32
local DATA = { h = 4, w = 4, channels = 8, L = 6, D = 32 }
local function dataset(extra)
  local o = {}
  for k, v in pairs(DATA) do o[k] = v end
  for k, v in pairs(extra or {}) do o[k] = v end
  return fake.dataset(o)
end

-- Same dtype, shape and values (max |a − b| = 0).
local function equal(a, b)
  if a:dtype() ~= b:dtype() or a:shape_str() ~= b:shape_str() then return false end
  return (a:to("f32") - b:to("f32")):abs():max():item() == 0
end

-- Every tensor of two component folders is equal, bit for bit.
local function same_weights(a, b, what)
  local ca, cb = grove.diffusers.component(a), grove.diffusers.component(b)
  local na, nb = ca:names(), cb:names()
  spec.eq(#na, #nb, what .. ": tensor count")
  for i, n in ipairs(na) do
    spec.eq(nb[i], n, what .. ": names")
    local x, y = ca:load(n), cb:load(n)
    spec.eq(x:dtype(), y:dtype(), what .. ": dtype of " .. n)
    spec.assert(equal(x, y), what .. ": " .. n .. " differs (max |a - b| " ..
                (x:to("f32") - y:to("f32")):abs():max():item() .. ")")
  end
  ca:close(); cb:close()
end

spec.describe("fine-tuning a diffusers folder", function()
  local spm = io.popen("command -v spm_train 2>/dev/null"):read("*l")
  if not spm or spm == "" then spec.skip("spm_train is not installed (scripts/install-deps)"); return end
  local root = spec.tmpdir()
  local src = grove.diffusers.tiny_folder(root .. "/tiny", { seed = 5 })

  -- a feature cache of 4 pictures (shapes scenes of 64 × 64 with their
  -- captions): with batches of 4 every step trains on the same batch
  local photos, cache = root .. "/photos", root .. "/cache"
  os.execute("mkdir -p " .. q(photos))
  local scenes = grove.data.shapes { batch = 4, size = 64, seed = 2 }:next()
  for i = 1, 4 do
    grove.image.save(string.format("%s/%d.png", photos, i), scenes.images:select(1, i))
    spec.write_all(string.format("%s/%d.txt", photos, i), scenes.captions[i] .. "\n")
  end
  grove.diffusers.cache(src, photos, cache, { size = 64 })

  spec.it("recipes/train.lua --model --cache, 20 steps on a fixed batch: the loss falls; the folder samples", function()
    if not exe then spec.skip("the grove executable's path is unknown (arg[-1])"); return end
    local batch = grove.diffusers.cache_dataset(cache, { batch_size = 4, shuffle = false }):next()
    local sch = grove.diffusers.training_schedule(src)
    spec.eq(sch.shift, 3.0, "flow_shift of the folder's scheduler")
    spec.eq(sch.N, 1000, "num_train_timesteps")
    -- the loss on one fixed draw of noise and timesteps, before and after
    local function fixed_loss(T)
      return grove.no_grad(function()
        local total = 0
        for k = 1, 4 do
          total = total + grove.diffusers.flow_loss(T, batch, { generator = grove.Generator(100 + k), schedule = sch }):item()
        end
        return total / 4
      end)
    end
    local before = fixed_loss(grove.diffusers.transformer(src))
    local out = root .. "/run"
    local o, code = spec.run(q(exe) .. " " .. q(here .. "/../../recipes/train.lua") .. " --model " .. q(src) .. " --cache " ..
                             q(cache) .. " --out " .. q(out) .. " --steps 20 --batch 4 --lr 1e-3 --warmup 2 --ema 0 " ..
                             "--save-every 10 --seed 1")
    spec.eq(code, 0, o)
    spec.assert(o:find("fine-tuned 20 steps", 1, true), o)
    local losses = {}
    for line in io.lines(out .. "/loss.csv") do
      local k, l = line:match("^(%d+),(.*)$")
      if k then losses[tonumber(k)] = tonumber(l) end
    end
    spec.eq(#losses, 20, "20 losses in loss.csv")
    local first, last = 0, 0
    for i = 1, 20 do spec.assert(losses[i] == losses[i] and math.abs(losses[i]) < math.huge, "finite loss") end
    for i = 1, 5 do first, last = first + losses[i], last + losses[15 + i] end
    spec.assert(last < first, string.format("mean loss of the first 5 steps %.4f, last 5 %.4f", first / 5, last / 5))
    local folder = out .. "/model"
    local T = grove.diffusers.transformer(folder)
    local after = fixed_loss(T)
    spec.assert(after < 0.9 * before, string.format("fixed-draw loss %.4f before, %.4f after", before, after))
    -- the folder: the source's config.json and index, the other components linked
    spec.eq(spec.read_all(folder .. "/model_index.json"), spec.read_all(src .. "/model_index.json"))
    local cfg_a = grove.json.read(folder .. "/transformer/config.json")
    local cfg_b = grove.json.read(src .. "/transformer/config.json")
    spec.eq(grove.json.encode(cfg_a), grove.json.encode(cfg_b), "config.json")
    for _, name in ipairs { "text_encoder", "tokenizer", "vae", "scheduler" } do
      local p = io.popen("readlink " .. q(folder .. "/" .. name))
      local target = p:read("*l")
      p:close()
      spec.assert(target and target:find("/tiny/" .. name .. "$"), name .. " links to the source's: " .. tostring(target))
    end
    spec.assert(C.grove_path_kind(out .. "/checkpoint.safetensors") == C.GROVE_PATH_FILE, "checkpoint")
    o, code = spec.run(q(exe) .. " sample --model " .. q(folder) .. " -p 'a red cat' -H 64 -W 64 --no-binning " ..
                       "--steps 2 -o " .. q(root .. "/ft.png"))
    spec.eq(code, 0, o)
    spec.eq(grove.image.load(root .. "/ft.png"):shape_str(), "[64,64,3]")
  end)

  spec.it("copies the other components when asked, saves bf16 when asked, and keeps EMA weights apart", function()
    local out = root .. "/run_copy"
    local run = grove.diffusers.finetune(src, cache,
      { out = out, steps = 3, batch = 2, lr = 1e-3, ema = 0.9, copy = true, save_dtype = "bf16", log_every = 100, seed = 2 })
    for _, name in ipairs { "text_encoder", "tokenizer", "vae", "scheduler" } do
      local p = io.popen("test -L " .. q(run.folder .. "/" .. name) .. " && echo link || echo real")
      spec.eq(p:read("*l"), "real", name .. " is a copy")
      p:close()
    end
    local comp = grove.diffusers.component(run.folder, "transformer")
    spec.eq(comp:info("proj_out.weight").dtype, "bf16")
    -- the saved weights are the EMA's, rounded to bf16
    local shadow
    for i, n in ipairs(run.ema.names) do if n == "proj_out.weight" then shadow = run.ema.shadow[i] end end
    spec.assert(equal(comp:load("proj_out.weight"), shadow:to("bf16")), "EMA weights saved")
    spec.assert(not equal(shadow, run.model.proj_out.weight:detach()), "EMA and raw weights differ")
    comp:close()
    -- a second run into the same folder replaces model/ whole
    local again = grove.diffusers.finetune(src, cache, { out = out, steps = 1, batch = 2, ema = 0, log_every = 100, seed = 2 })
    spec.eq(grove.diffusers.component(again.folder, "transformer"):info("proj_out.weight").dtype, "f32")
    for _, left in ipairs { "model.new", "model.new.partial", "model.old" } do
      spec.assert(C.grove_path_kind(out .. "/" .. left) == C.GROVE_PATH_NONE, "no " .. left .. " left")
    end
  end)

  spec.it("a run killed with SIGKILL resumes to bit-identical weights", function()
    if not exe then spec.skip("the grove executable's path is unknown (arg[-1])"); return end
    local steps = 24
    local opts = string.format("{ out = arg[2], steps = %d, batch = 3, accum = 2, ema = 0.9, lr = 1e-3, warmup = 3, " ..
                               "save_every = 1, " ..
                               "log_every = 1000, seed = 4, resume = arg[3] == 'resume', on_step = pause }", steps)
    local child = root .. "/child.lua"
    spec.write_all(child,
      -- a pause after each step (it changes no number) so that the kill lands mid-run
      "local ffi = require 'ffi'; pcall(ffi.cdef, 'int usleep(unsigned int us);')\n" ..
      "local function pause() ffi.C.usleep(30000) end\n" ..
      "grove.diffusers.finetune(arg[1], arg[4], " .. opts .. ")\n")
    local full, cut = root .. "/full", root .. "/cut"
    -- killed once its first checkpoints are on disk
    local o, code = spec.run(string.format("( %s %s %s %s resume-not %s & pid=$!; i=0; " ..
      "while [ ! -e %s ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; sleep 0.1; kill -9 $pid; wait $pid; " ..
      "echo killed=$? )",
      q(exe), q(child), q(src), q(cut), q(cache), q(cut .. "/checkpoint.safetensors")))
    spec.assert(o:find("killed=137", 1, true), "the child was killed by SIGKILL:\n" .. o)
    local _, meta = grove.load_safetensors(cut .. "/checkpoint.safetensors")
    local k = tonumber(meta.step)
    spec.assert(k >= 1 and k < steps, "killed mid-run (checkpoint of step " .. tostring(k) .. " of " .. steps .. ")")
    spec.assert(C.grove_path_kind(cut .. "/model") == C.GROVE_PATH_NONE, "no folder yet")
    o, code = spec.run(string.format("%s %s %s %s resume %s", q(exe), q(child), q(src), q(cut), q(cache)))
    spec.eq(code, 0, o)
    spec.assert(o:find("resumed .* at step " .. k), o)
    o, code = spec.run(string.format("%s %s %s %s resume-not %s", q(exe), q(child), q(src), q(full), q(cache)))
    spec.eq(code, 0, o)
    same_weights(full .. "/model/transformer", cut .. "/model/transformer", "EMA weights of the folder")
    local a = grove.load_safetensors(full .. "/checkpoint.safetensors")
    local b = grove.load_safetensors(cut .. "/checkpoint.safetensors")
    local n = 0
    for name, t in pairs(a) do
      n = n + 1
      spec.assert(b[name] and equal(t, b[name]), "checkpoint tensor " .. name .. " differs")
    end
    spec.assert(n > 0, "checkpoint tensors compared")
  end)

  spec.it("a NaN loss stops the run before the weights change and keeps the last checkpoint", function()
    local out = root .. "/run_nan"
    local run = grove.diffusers.finetune(src, dataset { n = 4, batch_size = 2, poison = { [4] = true } },
      { out = out, steps = 10, save_every = 1, log_every = 100, ema = 0.9 })
    spec.assert(run.nan, "the run reports the NaN")
    spec.eq(run.step, 3, "three good steps")
    spec.assert(run.stopped:find("loss is nan at step 4", 1, true) or run.stopped:find("loss is -nan at step 4", 1, true),
                run.stopped)
    spec.assert(run.stopped:find("last good checkpoint", 1, true), run.stopped)
    local t, meta = grove.load_safetensors(out .. "/checkpoint.safetensors")
    spec.eq(meta.step, "3")
    for _, np in ipairs(run.model:named_parameters()) do
      spec.assert(equal(np[2]:detach(), t["model." .. np[1]]), np[1] .. " as checkpointed at step 3")
    end
    spec.assert(C.grove_path_kind(out .. "/model") == C.GROVE_PATH_NONE, "no folder written")
  end)

  spec.it("bad input: clear errors", function()
    spec.raises(function() grove.diffusers.finetune(src, dataset(), { steps = 1 }) end, "give out")
    spec.raises(function() grove.diffusers.finetune(src, dataset(), { out = root .. "/x", optimizer = "adam" }) end,
      "optimizer must be one of came8bit")
    spec.raises(function() grove.diffusers.finetune(src, dataset(), { out = root .. "/x", steps = 0 }) end,
      "steps must be an integer >= 1")
    spec.raises(function() grove.diffusers.finetune(root .. "/none", dataset(), { out = root .. "/x" }) end,
      "is not a folder")
    spec.raises(function() grove.diffusers.finetune(src, dataset(), { out = root .. "/fresh", resume = true }) end,
      "there is no")
    spec.raises(function() grove.diffusers.finetune(src, { next = function() end }, { out = root .. "/x" }) end,
      "needs a method state")
    spec.raises(function() grove.diffusers.finetune(src, root .. "/no-cache", { out = root .. "/x" }) end, "no-cache")
    spec.raises(function() grove.diffusers.finetune(src, dataset { D = 24 }, { out = root .. "/x", steps = 1 }) end,
      "features must be (2, L, 32)")
    spec.raises(function() grove.diffusers.finetune(src, dataset { channels = 4 }, { out = root .. "/x", steps = 1 }) end,
      "latents must be (B, h, w, 8)")
    -- a resume with other options would not continue the same run
    grove.diffusers.finetune(src, dataset(), { out = root .. "/pin", steps = 1, log_every = 100 })
    spec.raises(function()
      grove.diffusers.finetune(src, dataset(), { out = root .. "/pin", steps = 2, lr = 5e-4, resume = true, log_every = 100 })
    end, "was made with lr = 0.0001")
  end)

  spec.it("recipes/train.lua --model/--cache is the fine-tune's command line; the shapes options stay", function()
    if not exe then spec.skip("the grove executable's path is unknown (arg[-1])"); return end
    local recipe = here .. "/../../recipes/train.lua"
    local o, code = spec.run(q(exe) .. " " .. q(recipe) .. " --model " .. q(src) .. " --help")
    spec.eq(code, 0, o)
    spec.assert(o:find("--cache CACHE", 1, true) and o:find("--accum", 1, true), o)
    o, code = spec.run(q(exe) .. " " .. q(recipe) .. " --help")
    spec.eq(code, 0, o)
    spec.assert(o:find("--preset", 1, true) and not o:find("--accum", 1, true), o)
    o, code = spec.run(q(exe) .. " " .. q(recipe) .. " --model " .. q(src) .. " --out " .. q(root .. "/y"))
    spec.assert(code ~= 0 and o:find("option --cache is required", 1, true), o)
  end)

  os.execute("rm -rf " .. q(root))
end)

spec.describe("fine-tuning memory", function()
  spec.it("CAME-8bit's state on sana_1600m shapes is at most 1/7.5 of AdamW's", function()
    -- SANA 1.5 1.6B's transformer config (shapes only: no weights)
    local config = {
      _class_name = "SanaTransformer2DModel", num_layers = 20, num_attention_heads = 70, attention_head_dim = 32,
      num_cross_attention_heads = 20, cross_attention_head_dim = 112, cross_attention_dim = 2240,
      caption_channels = 2304, in_channels = 32, out_channels = 32, mlp_ratio = 2.5, sample_size = 32,
      qk_norm = "rms_norm_across_heads",
    }
    local T = grove.diffusers.transformer_from(config, nil, { meta = true })
    spec.assert(T:num_parameters() > 1.5e9, "1.6B parameters, got " .. T:num_parameters())
    local came = grove.diffusers.finetune_optimizer(T, { optimizer = "came8bit" }):state_bytes()
    local adamw = grove.diffusers.finetune_optimizer(T, { optimizer = "adamw" }):state_bytes()
    spec.eq(adamw.total, 8 * adamw.params, "AdamW: two f32 moments")
    spec.assert(came.total * 7.5 <= adamw.total,
      string.format("CAME-8bit %.3f GB vs AdamW %.3f GB (ratio 1/%.2f)", came.total / 1e9, adamw.total / 1e9,
                    adamw.total / came.total))
  end)
end)
