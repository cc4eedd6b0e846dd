-- grove.diffusers.pipeline: SANA's resolution binning (diffusers' tables and
-- choice), resize_and_crop_tensor against a float64 reference, the denoising
-- loop through pipe:generate against the diffusers-sana fixtures (the same
-- step-by-step checks as the sampler's, tests/lua/sana_steps.lua), lazy
-- components, offloading, replacing, and the errors bad input gets.
local spec = require "spec"
local steps = require "sana_steps"

local diffusers, json = grove.diffusers, grove.json
local sana = spec.fixture_path("diffusers-sana")
local function exists(p)
  local f = io.open(p, "r")
  if f then f:close() return true end
  return false
end
local have_fixtures = exists(sana .. "/b_sana15/transformer/config.json")

spec.describe("resolution binning", function()
  spec.it("picks diffusers' bin (ASPECT_RATIO_*_BIN, closest ratio, the first of equals)", function()
    -- the answers of diffusers' classify_height_width_bin, computed with Python
    local cases = {
      { 1024, 1024, 32, 1024, 1024 }, { 1080, 1920, 32, 768, 1344 }, { 1920, 1080, 32, 1344, 768 },
      { 1035, 1000, 32, 1024, 1024 },  -- 1.035: as near 1.0 as 1.07; the first wins
      { 300, 1000, 32, 512, 1856 },    -- 0.3: between 0.28 and 0.32, 0.28 by a rounding
      { 100, 1000, 32, 512, 2048 }, { 5000, 100, 32, 2048, 512 }, { 768, 1000, 32, 896, 1152 },
      { 512, 512, 16, 512, 512 }, { 400, 800, 16, 352, 704 }, { 2048, 2048, 64, 2048, 2048 },
      { 1000, 3000, 64, 1152, 3456 }, { 4096, 4096, 128, 4096, 4096 }, { 2160, 3840, 128, 3072, 5376 },
    }
    for _, c in ipairs(cases) do
      local h, w = diffusers.bin_size(c[1], c[2], c[3])
      spec.eq(h .. "x" .. w, c[4] .. "x" .. c[5], string.format("%dx%d at sample_size %d", c[1], c[2], c[3]))
    end
    spec.eq(#diffusers.aspect_ratio_bins[512], 33)
    spec.eq(#diffusers.aspect_ratio_bins[1024], 33)
    spec.eq(#diffusers.aspect_ratio_bins[2048], 40)
    spec.eq(#diffusers.aspect_ratio_bins[4096], 40)
    for _, bins in pairs(diffusers.aspect_ratio_bins) do
      for _, b in ipairs(bins) do spec.assert(b[2] % 32 == 0 and b[3] % 32 == 0, "bins are multiples of 32") end
    end
  end)

  spec.it("has no table for a sample_size SanaPipeline does not bin", function()
    spec.raises(function() diffusers.bin_size(512, 512, 8) end, "no table for a transformer of sample_size 8")
    spec.raises(function() diffusers.bin_size(0, 512, 32) end, "height must be a positive integer")
  end)

  spec.it("resizes and crops as resize_and_crop_tensor (bilinear, align_corners false, centre crop)", function()
    local H, W, C = 6, 9, 2
    local x = grove.randn({ 2, H, W, C }, { generator = grove.Generator(3) })
    local xv = x:tolist()
    -- float64 reference, pixel by pixel
    local function src(i, n_out, n_in)
      local s = math.max((i + 0.5) * n_in / n_out - 0.5, 0)
      local i0 = math.floor(s)
      return i0, math.min(i0 + 1, n_in - 1), s - i0
    end
    for _, size in ipairs { { 5, 5 }, { 10, 7 }, { 4, 13 }, { 12, 18 }, { 6, 9 }, { 3, 9 } } do
      local h, w = size[1], size[2]
      local y = diffusers.resize_crop(x, h, w)
      spec.eq(y:shape_str(), grove.zeros { 2, h, w, C }:shape_str())
      local r = math.max(h / H, w / W)
      local rh, rw = math.floor(H * r), math.floor(W * r)
      local top, left = math.floor((rh - h) / 2), math.floor((rw - w) / 2)
      local yv, worst = y:tolist(), 0
      for b = 1, 2 do
        for i = 1, h do
          local y0, y1, ly = src(i - 1 + top, rh, H)
          for j = 1, w do
            local x0, x1, lx = src(j - 1 + left, rw, W)
            for c = 1, C do
              local p = xv[b]
              local v = (1 - ly) * ((1 - lx) * p[y0 + 1][x0 + 1][c] + lx * p[y0 + 1][x1 + 1][c])
                      + ly * ((1 - lx) * p[y1 + 1][x0 + 1][c] + lx * p[y1 + 1][x1 + 1][c])
              worst = math.max(worst, math.abs(v - yv[b][i][j][c]))
            end
          end
        end
      end
      spec.assert(worst < 1e-5, string.format("%dx%d: error %.3g", h, w, worst))
    end
  end)
end)

-- A pipeline folder around a fixture's transformer: model_index.json, the
-- transformer linked in, a scheduler config.
local DPM = [[{"_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "dpmsolver++", "beta_end": 0.02,
 "beta_schedule": "linear", "beta_start": 0.0001, "dynamic_thresholding_ratio": 0.995, "euler_at_final": false,
 "final_sigmas_type": "zero", "flow_shift": 3.0, "lambda_min_clipped": "-Infinity", "lower_order_final": true,
 "num_train_timesteps": 1000, "prediction_type": "flow_prediction", "rescale_betas_zero_snr": false,
 "sample_max_value": 1.0, "solver_order": 2, "solver_type": "midpoint", "steps_offset": 0, "thresholding": false,
 "timestep_spacing": "linspace", "trained_betas": null, "use_beta_sigmas": false, "use_exponential_sigmas": false,
 "use_flow_sigmas": true, "use_karras_sigmas": false, "use_lu_lambdas": false, "variance_type": null}]]
local SCM = [[{"_class_name": "SCMScheduler", "prediction_type": "trigflow", "sigma_data": 0.5, "num_train_timesteps": 1000}]]

local function fixture_pipeline(name)
  local dir = spec.tmpdir()
  local sprint = name == "d_sprint"
  os.execute("mkdir -p '" .. dir .. "/scheduler' && ln -s '" .. sana .. "/" .. name .. "/transformer' '" .. dir .. "/transformer'")
  spec.write_all(dir .. "/scheduler/scheduler_config.json", sprint and SCM or DPM)
  spec.write_all(dir .. "/model_index.json", json.encode {
    _class_name = sprint and "SanaSprintPipeline" or "SanaPipeline", _diffusers_version = "0.40.0.dev0",
    transformer = json.array { "diffusers", "SanaTransformer2DModel" },
    scheduler = json.array { "diffusers", sprint and "SCMScheduler" or "DPMSolverMultistepScheduler" },
  })
  return dir
end

spec.describe("pipe:generate against the diffusers-sana fixtures", function()
  if not have_fixtures then
    spec.skip("the shared fixtures are not at " .. sana .. " (set GROVE_FIXTURES)")
    return
  end
  -- the sampler's options as pipe:generate takes them
  local function through_pipeline(name)
    return function(_, o)
      local dir = fixture_pipeline(name)
      local pipe = diffusers.pipeline(dir)
      spec.assert(not pipe:loaded("transformer"), "nothing loads before it is needed")
      local out = pipe:generate {
        prompt_embeds = o.prompt_embeds, prompt_mask = o.mask, negative_prompt_embeds = o.negative_embeds,
        negative_prompt_mask = o.negative_mask, latents = o.latents, steps = o.steps, cfg = o.cfg, sampler = o.sampler,
        guidance_scale = o.guidance_scale, noise = o.noise, output = "latent",
        callback = function(i, sigma, x, info)
          spec.eq(x, info.latents)
          spec.eq(sigma, info.sigma or info.t)
          return o.callback(i, info)
        end,
      }
      spec.assert(pipe:loaded("transformer") and not pipe:loaded("text_encoder"), "only the transformer loaded")
      os.execute("rm -rf '" .. dir .. "'")
      return out.latents, out.info
    end
  end
  spec.it("b_sana15: DPM-Solver++ (4 steps, CFG 4.5) step by step", function()
    steps.check(sana, "b_sana15", "dpm", through_pipeline("b_sana15"))
  end)
  spec.it("b_sana15: flow Euler (4 steps, CFG 4.5), asked for by name over the folder's DPM", function()
    steps.check(sana, "b_sana15", "euler", through_pipeline("b_sana15"))
  end)
  spec.it("e_teacher: DPM-Solver++ with timestep_scale 0.001 step by step", function()
    steps.check(sana, "e_teacher", "dpm", through_pipeline("e_teacher"))
  end)
  spec.it("d_sprint: SCM (2 steps, guidance 4.5) step by step, a SanaSprintPipeline folder", function()
    steps.check(sana, "d_sprint", "scm", through_pipeline("d_sprint"))
  end)

  spec.it("same seed, same noise; components replace and offload", function()
    local dir = fixture_pipeline("b_sana15")
    local pipe = diffusers.pipeline(dir)
    local i = grove.load_safetensors(sana .. "/b_sana15/sample_dpm_in.safetensors")
    local base = { prompt_embeds = i.prompt_embeds, prompt_mask = i.prompt_attention_mask,
                   negative_prompt_embeds = i.negative_prompt_embeds, negative_prompt_mask = i.negative_prompt_attention_mask,
                   steps = 2, output = "latent", height = 128, width = 192, binning = false }
    local function run(extra)
      local o = {}
      for k, v in pairs(base) do o[k] = v end
      for k, v in pairs(extra) do o[k] = v end
      return pipe:generate(o)
    end
    local a, b, c = run { seed = 7 }, run { seed = 7 }, run { seed = 8 }
    spec.eq(a.latents:shape_str(), grove.zeros { 1, 4, 6, 4 }:shape_str())
    spec.eq(spec.max_diff(a.latents, b.latents), 0, "same seed, same latents")
    spec.assert(spec.max_diff(a.latents, c.latents) > 1e-3, "another seed, other latents")
    -- the noise is grove's Philox stream for that seed
    local noise = grove.randn({ 1, 4, 6, 4 }, { generator = grove.Generator(7) })
    local d = run { latents = noise }
    spec.eq(spec.max_diff(a.latents, d.latents), 0, "seed 7 draws the latents grove.randn draws")
    -- num_images repeats the prompt, each image its own noise
    local n2 = run { seed = 7, num_images = 2 }
    spec.eq(n2.latents:size(1), 2)
    spec.assert(spec.max_diff(n2.latents:narrow(1, 1, 1), n2.latents:narrow(1, 2, 1)) > 1e-3, "two images differ")
    -- a replaced transformer is the one used; offload drops and reloads
    local T = pipe.transformer
    local calls = 0
    local wrapped = setmetatable({ forward = function(self, ...) calls = calls + 1; return T.forward(T, ...) end },
                                 { __index = T })
    pipe.transformer = wrapped
    run { seed = 7 }
    spec.eq(calls, 2, "the replacement ran each step")
    pipe:offload("transformer")
    spec.assert(not pipe:loaded("transformer"), "offloaded")
    local e = run { seed = 7 }
    spec.eq(spec.max_diff(a.latents, e.latents), 0, "reloaded from the folder")
    spec.raises(function() pipe:offload("unet") end, "'unet' is not a component")
    os.execute("rm -rf '" .. dir .. "'")
  end)

  spec.it("compute = 'bf16' stores the transformer's GEMM weights bf16, with the images of f32-stored ones", function()
    local dir = fixture_pipeline("b_sana15")
    local i = grove.load_safetensors(sana .. "/b_sana15/sample_dpm_in.safetensors")
    local o = { prompt_embeds = i.prompt_embeds, negative_prompt_embeds = i.negative_prompt_embeds, steps = 2,
                output = "latent", height = 128, width = 192, binning = false, seed = 5 }
    local pipe = diffusers.pipeline(dir, { compute = "bf16" })
    local q = pipe.transformer.blocks[1].attn1.to_q
    spec.eq(q.weight:dtype(), "bf16")
    spec.eq(q.compute_dtype, "bf16")
    local got = pipe:generate(o)
    -- the same transformer with f32 weights computing in bf16
    local ref = diffusers.pipeline(dir)
    ref.transformer:set_compute_dtype("bf16")
    spec.eq(ref.transformer.blocks[1].attn1.to_q.weight:dtype(), "f32")
    local want = ref:generate(o)
    spec.eq((got.latents - want.latents):abs():max():item(), 0, "the same latents bit for bit")
    os.execute("rm -rf '" .. dir .. "'")
  end)

  spec.it("bad input: clear errors naming the option", function()
    local dir = fixture_pipeline("b_sana15")
    local pipe = diffusers.pipeline(dir)
    local i = grove.load_safetensors(sana .. "/b_sana15/sample_dpm_in.safetensors")
    local function gen(extra)
      local o = { prompt_embeds = i.prompt_embeds, negative_prompt_embeds = i.negative_prompt_embeds, steps = 1,
                  output = "latent", height = 128, width = 192, binning = false }
      for k, v in pairs(extra) do o[k] = v end
      return pipe:generate(o)
    end
    spec.raises(function() gen { steps = 0 } end, "steps must be an integer >= 1, got 0")
    spec.raises(function() gen { num_images = 0 } end, "num_images must be an integer >= 1, got 0")
    spec.raises(function() gen { num_images = -3 } end, "num_images must be an integer >= 1, got -3")
    spec.raises(function() gen { cfg = 0 / 0 } end, "cfg must be a finite number")
    spec.raises(function() gen { seed = -1 } end, "seed must be an integer >= 0, got -1")
    spec.raises(function() gen { height = 100 } end, "multiples of 32")
    spec.raises(function() gen { sampler = "ddim" } end, "sampler 'ddim' is not a registered scheduler")
    spec.raises(function() gen { frobnicate = 1 } end, "unknown option 'frobnicate'")
    spec.raises(function() gen { prompt = "a cat" } end, "prompt or prompt_embeds, not both")
    -- binning needs a table for the transformer's sample_size (8 here)
    spec.raises(function() gen { binning = true } end, "no table for a transformer of sample_size 8")
    -- a prompt needs the text encoder, which this folder lacks
    spec.raises(function() pipe:generate { prompt = "a cat", output = "latent" } end,
                "has no text_encoder (text_encoder/config.json is missing)")
    -- folders
    spec.raises(function() diffusers.pipeline(sana .. "/b_sana15") end, "has no model_index.json")
    spec.raises(function() diffusers.pipeline(dir .. "/nowhere") end, "is not a folder")
    spec.raises(function() diffusers.pipeline(dir, { dtype = "f64" }) end, "dtype must be")
    local index = json.read(dir .. "/model_index.json")
    index.vae = json.array { "diffusers", "AutoencoderDC" }
    spec.write_all(dir .. "/model_index.json", json.encode(index))
    spec.raises(function() diffusers.pipeline(dir) end, "is missing its vae: model_index.json names one, but vae/config.json")
    index.vae, index._class_name = nil, "StableDiffusionPipeline"
    spec.write_all(dir .. "/model_index.json", json.encode(index))
    spec.raises(function() diffusers.pipeline(dir) end, "'StableDiffusionPipeline' is not a pipeline grove runs")
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)

-- The complete tiny folder (scripts/tiny-sana-folder): every component, read
-- by the pipeline from a prompt.
spec.describe("the tiny SANA folder", function()
  local have_spm = io.popen("command -v spm_train 2>/dev/null"):read("*l")
  if not have_spm or have_spm == "" then
    spec.skip("spm_train is not installed (Debian's sentencepiece; scripts/install-deps)")
    return
  end
  local root = spec.tmpdir()
  local dir = root .. "/tiny"
  diffusers.tiny_folder(dir, { seed = 1 })

  spec.it("holds every component as diffusers names them", function()
    for _, p in ipairs { "model_index.json", "scheduler/scheduler_config.json", "transformer/config.json",
                         "transformer/diffusion_pytorch_model.safetensors", "text_encoder/config.json",
                         "text_encoder/model.safetensors", "tokenizer/tokenizer.model", "tokenizer/tokenizer_config.json",
                         "tokenizer/special_tokens_map.json", "vae/config.json", "vae/diffusion_pytorch_model.safetensors" } do
      spec.assert(exists(dir .. "/" .. p), "tiny folder has " .. p)
    end
    local tok = diffusers.tokenizer(dir)
    spec.eq(tok.pad_id, 0); spec.eq(tok.eos_id, 1); spec.eq(tok.bos_id, 2); spec.eq(tok.unk_id, 3)
    spec.eq(diffusers.text_encoder(dir, { meta = true }).settings.vocab, tok.vocab_size)
    -- the DC-AE's names and shapes are diffusers' AutoencoderDC's: the enumeration
    -- the folder is written with gives the shared fixture's exactly
    local fx = spec.fixture_path("dcae/tiny-a")
    if exists(fx .. "/config.json") then
      local want = {}
      local c = diffusers.component(fx)
      for _, n in ipairs(c:names()) do want[n] = table.concat(c:info(n).shape, "x") end
      local got = 0
      for _, e in ipairs(diffusers._dcae_tensors(json.read(fx .. "/config.json"))) do
        spec.eq(table.concat(e[2], "x"), want[e[1]], e[1])
        got = got + 1
      end
      spec.eq(got, #c:names())
    end
    spec.raises(function() diffusers.tiny_folder(dir) end, "already holds a pipeline")
  end)

  spec.it("prompt to latents: same seed same latents, binning to the 512 table, a long prompt warned about", function()
    local pipe = diffusers.pipeline(dir)
    local warned = {}
    local function run(o)
      o.output, o.steps, o.warn = "latent", o.steps or 2, function(m) warned[#warned + 1] = m end
      return pipe:generate(o)
    end
    local a = run { prompt = "a red cat at dusk", seed = 5 }
    spec.eq(a.latents:shape_str(), "[1,16,16,8]", "512 x 512 by default (sample_size 16, the 512 bin)")
    spec.assert(pipe:loaded("text_encoder") and pipe:loaded("tokenizer") and not pipe:loaded("vae"), "lazy components")
    local b = run { prompt = "a red cat at dusk", seed = 5 }
    spec.eq(spec.max_diff(a.latents, b.latents), 0, "same seed, same latents")
    local c = run { prompt = "a blue dog", seed = 5 }
    spec.assert(spec.max_diff(a.latents, c.latents) > 1e-4, "another prompt, other latents")
    local wide = run { prompt = "a red cat", height = 300, width = 1000, seed = 5 }
    spec.eq(wide.generated_height .. "x" .. wide.generated_width, "256x928", "0.3 -> the 0.28 bin of 512")
    spec.eq(wide.latents:shape_str(), "[1,8,29,8]")
    spec.eq(#warned, 0)
    local long = string.rep("a fluffy dog next to a shiny robot ", 60)
    run { prompt = long, steps = 1 }
    spec.eq(#warned, 1, "one warning")
    spec.assert(warned[1]:find("prompt 1 is longer than the text encoder takes", 1, true), warned[1])
    -- the features of a long prompt are cut to max_sequence_length, as diffusers
    local feats = diffusers.encode_prompt({ text_encoder = pipe.text_encoder, tokenizer = pipe.tokenizer }, long)
    spec.eq(feats:size(2), 300)
    -- two prompts and two images each: four rows, prompt-major
    local four = run { prompt = { "a red cat", "a blue dog" }, num_images = 2, seed = 5, height = 64, width = 64,
                       binning = false }
    spec.eq(four.latents:shape_str(), "[4,2,2,8]")
    -- offloading the text encoder between stages
    local lean = diffusers.pipeline(dir, { drop_after_use = true })
    local d = lean:generate { prompt = "a red cat at dusk", seed = 5, steps = 2, output = "latent" }
    spec.eq(spec.max_diff(a.latents, d.latents), 0, "the same with offloading")
    spec.assert(not lean:loaded("text_encoder"), "the text encoder was dropped after encoding")
    -- weights held as bf16
    local half = diffusers.pipeline(dir, { dtype = "bf16" })
    half:generate { prompt = "a red cat", seed = 5, steps = 1, output = "latent", height = 64, width = 64, binning = false }
    spec.eq(half.transformer.proj_out.weight:dtype(), "bf16")
    spec.eq(half.text_encoder.embed_tokens.weight:dtype(), "bf16")
  end)

  spec.it("trimming the text padding changes nothing but the work", function()
    local pipe = diffusers.pipeline(dir)
    local parts = { text_encoder = pipe.text_encoder, tokenizer = pipe.tokenizer }
    local prompts = { "a red cat", "a blue dog next to a shiny robot at dusk" }
    for _, negative in ipairs { false, true } do
      local full, fmask = diffusers.encode_prompt(parts, prompts, { negative = negative })
      local cut, cmask = diffusers.encode_prompt(parts, prompts, { negative = negative, trim = true })
      local L = cut:size(2)
      spec.assert(L < full:size(2), "trimmed: " .. L .. " of " .. full:size(2))
      -- the kept mask is the full one's first L columns, and nothing after them is kept
      spec.eq(spec.max_diff(cmask:float(), fmask:narrow(2, 1, L):float()), 0)
      spec.eq(fmask:narrow(2, L + 1, full:size(2) - L):float():sum():item(), 0, "only padding cut")
      spec.eq(cmask:narrow(2, L, 1):float():sum():item() > 0, true, "the last kept column is some prompt's")
      -- every position a mask keeps has the full run's features, to rounding
      local keep = cmask:float():unsqueeze(3)
      local err = spec.max_diff(cut * keep, full:narrow(2, 1, L) * keep) / full:abs():max():item()
      spec.assert(err < 1e-5, (negative and "negative" or "prompt") .. " features differ: " .. err)
    end
    -- the images: trimmed (the default) and diffusers' full padding
    local o = { prompt = "a red cat at dusk", seed = 3, steps = 2, height = 64, width = 64, binning = false, output = "latent" }
    local a = pipe:generate(o)
    o.trim_text = false
    local b = pipe:generate(o)
    local err = spec.max_diff(a.latents, b.latents) / b.latents:abs():max():item()
    spec.assert(err < 1e-5, "trimmed and full latents differ: " .. err)
  end)

  spec.it("decodes through pipe.vae (latents / scaling_factor) and resizes binned images back to the asked size", function()
    local pipe = diffusers.pipeline(dir)
    -- a stand-in decoder: each latent pixel becomes a 32 x 32 block of its first three channels
    local seen
    pipe.vae = { scaling_factor = 0.5, decode = function(_, z)
      seen = z
      local B, h, w = z:size(1), z:size(2), z:size(3)
      local rgb = z:narrow(4, 1, 3):contiguous()
      local up = rgb:reshape { B, h, 1, w, 1, 3 } + grove.zeros { B, h, 32, w, 32, 3 }
      return up:reshape { B, h * 32, w * 32, 3 }
    end }
    local out = pipe:generate { prompt = "a red cat", seed = 2, steps = 1, height = 100, width = 150 }
    spec.eq(out.generated_height .. "x" .. out.generated_width, "416x608", "100 x 150: the 0.68 bin of 512")
    spec.eq(out.images:shape_str(), "[1,100,150,3]")
    spec.eq(spec.max_diff(seen, out.latents * 2), 0, "the decoder gets latents / scaling_factor")
    spec.assert(out.images:max():item() <= 1 and out.images:min():item() >= -1, "clamped to [-1, 1]")
    local want = diffusers.resize_crop(pipe.vae:decode(out.latents * 2), 100, 150):clamp(-1, 1)
    spec.eq(spec.max_diff(out.images, want), 0, "decoded, resized and cropped as resize_and_crop_tensor")
    local same = pipe:generate { prompt = "a red cat", seed = 2, steps = 1, height = 100, width = 150 }
    spec.eq(spec.max_diff(out.images, same.images), 0, "same seed, same image")
    local exact = pipe:generate { prompt = "a red cat", seed = 2, steps = 1, height = 64, width = 96, binning = false }
    spec.eq(exact.images:shape_str(), "[1,64,96,3]")
  end)

  spec.it("a Sprint folder samples with SCM in 2 steps by default and refuses a negative prompt", function()
    local sdir = root .. "/sprint"
    diffusers.tiny_folder(sdir, { seed = 2, sprint = true })
    local pipe = diffusers.pipeline(sdir)
    local seen = {}
    local out = pipe:generate { prompt = "a red cat", seed = 0, output = "latent", height = 64, width = 64, binning = false,
                                callback = function(i, t) seen[i] = t end }
    spec.eq(out.sampler, "scm")
    spec.eq(#seen, 2)
    spec.near(seen[1], 1.5708, 1e-6)
    spec.near(seen[2], 1.3, 1e-6)
    spec.raises(function() pipe:generate { prompt = "x", negative_prompt = "blurry", output = "latent" } end,
                "takes no negative prompt")
  end)

  os.execute("rm -rf '" .. root .. "'")
end)
