-- Prompt → image through grove.diffusers.pipeline on a released-size random
-- SANA folder, per stage: the Gemma-2-2B text encoder (prompt and the
-- negative prompt ""), the denoising steps of a Sana 600M-shaped (or
-- SANA1.5 1.6B-shaped) transformer (CFG batch 2) and the DC-AE decode, with
-- peak resident memory.
-- PyTorch is not run here: the goal it is measured against (docs/performance.md)
-- is a wall time, and bench/diffusers.lua and bench/dcae.lua compare the
-- components with PyTorch one by one.
--
--   grove bench/pipeline.lua [--size 512] [--steps 20] [--cfg 4.5] [--transformer 600m|1600m] [--drop]
--                            [--dir /tmp/grove-bench-pipeline] [--keep] [--reuse] [--small]
--                            [--compute f32|bf16]
--
-- The folder: tokenizer, scheduler and model_index.json of
-- grove.diffusers.tiny_folder (a SentencePiece model trained here; its ids
-- all lie inside Gemma's vocabulary), then the three models at released
-- sizes with N(0, 0.02²) F32 weights (benchlib.write_random_component, one
-- tensor at a time; the DC-AE by bench/torch_dcae.py write, PyTorch's
-- initial values): Sana_600M_512px's transformer config (28 blocks of width
-- 1152, 590 M parameters; --transformer 1600m: SANA1.5_1.6B_1024px's, 20
-- blocks of width 2240, 1.6 B), Gemma-2-2B (2.6 B) and dc-ae-f32c32-sana-1.0
-- (312 M). --drop: the pipeline's drop_after_use (the text encoder is
-- released once the prompts are encoded, the transformer before decoding). The run happens in a child process (a fresh peak-memory count)
-- with --dtype f32 and binning on; its stage times come from wrapping the
-- loaded components' forward and decode. Asserts nothing about time.
-- --small: the same with the tiny folder's own models (a check of the script).
-- --compute bf16: the pipeline's compute = "bf16" (the transformer's and
-- text encoder's GEMMs in bf16 from bf16-stored weights; the DC-AE as the
-- pipeline runs it).
-- --keep leaves the folder; --reuse runs on a folder a --keep run left
-- (same --transformer) instead of writing it again.
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local exe = arg[-1]
local benchlib = dofile(here .. "/benchlib.lua")

local quote, sh, proc_status = benchlib.quote, benchlib.sh, benchlib.proc_status

local o = { size = 512, steps = 20, cfg = 4.5, dir = "/tmp/grove-bench-pipeline", keep = false, small = false,
            transformer = "600m", drop = false, reuse = false, compute = "f32" }
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--keep" then o.keep = true
    elseif a == "--drop" then o.drop = true
    elseif a == "--reuse" then o.reuse = true
    elseif a == "--small" then o.small = true
    elseif a == "--child" then o.child = true
    elseif a:match("^%-%-") and arg[i + 1] and o[a:sub(3)] ~= nil then
      local k = a:sub(3)
      o[k] = type(o[k]) == "number" and tonumber(arg[i + 1]) or arg[i + 1]
      if o[k] == nil then error("pipeline bench: " .. a .. " takes a number", 0) end
      i = i + 1
    else
      error("usage: grove bench/pipeline.lua [--size 512] [--steps 20] [--cfg 4.5] [--transformer 600m|1600m] " ..
            "[--drop] [--dir D] [--keep] [--reuse] [--small] [--compute f32|bf16]", 0)
    end
    i = i + 1
  end
end
if o.compute ~= "f32" and o.compute ~= "bf16" then error("pipeline bench: --compute f32 or bf16, got " .. o.compute, 0) end
local PROMPT = "a cyberpunk cat with a neon sign, highly detailed, studio lighting"

-- ---------------------------------------------------------------------------
-- child: load, generate once, report

if o.child then
  local dir = o.dir .. "/folder"
  print(string.format("grove %s, %d threads, %s", grove._VERSION, grove.num_threads(), grove.blas_info()))
  local t0 = grove.now()
  local pipe = grove.diffusers.pipeline(dir, { dtype = "f32", drop_after_use = o.drop, compute = o.compute })
  local loads = {}
  for _, name in ipairs { "tokenizer", "text_encoder", "transformer", "vae", "scheduler" } do
    local t = grove.now()
    local _ = pipe[name]
    loads[#loads + 1] = string.format("%s %.1f s", name, grove.now() - t)
  end
  local load_s = grove.now() - t0
  local rss_loaded = proc_status("VmRSS")
  local T = pipe.transformer
  local E = pipe.text_encoder
  print(string.format("compute %s: transformer GEMMs %s (block 1's to_q weight %s), text encoder GEMMs %s (layer 0's q_proj weight %s)",
                      o.compute, T.compute_dtype or "f32", T.blocks[1].attn1.to_q.weight:dtype(), E.compute_dtype or "f32",
                      E.layers["0"].self_attn.q_proj.weight:dtype()))
  local spent = { text = 0, decode = 0 }
  local function timed(obj, method, key)
    local f = obj[method]
    obj[method] = function(...)
      local t = grove.now()
      local r = { f(...) }
      spent[key] = spent[key] + grove.now() - t
      return unpack(r)
    end
  end
  timed(pipe.text_encoder, "forward", "text")
  timed(pipe.vae, "decode", "decode")
  local step_t, last = {}, nil
  local t1 = grove.now()
  last = t1
  local out = grove.no_grad(function()
    return pipe:generate { prompt = PROMPT, negative_prompt = "", steps = o.steps, cfg = o.cfg, height = o.size,
                           width = o.size, seed = 0, callback = function(i)
                             local now = grove.now()
                             step_t[i] = now - last
                             last = now
                           end }
  end)
  local total = grove.now() - t1
  -- the first step's interval also holds the text encoding
  step_t[1] = step_t[1] - spent.text
  local steps_s = 0
  for _, v in ipairs(step_t) do steps_s = steps_s + v end
  grove.image.save(o.dir .. "/out.png", out.images:narrow(1, 1, 1))
  print("loads: " .. table.concat(loads, ", "))
  print(string.format("RESULT load_s=%.2f total_s=%.2f text_s=%.2f steps_s=%.2f step_s=%.3f decode_s=%.2f " ..
                      "hwm_bytes=%d rss_loaded_bytes=%d size=%dx%d latent=%dx%d",
                      load_s, total, spent.text, steps_s, steps_s / #step_t, spent.decode, proc_status("VmHWM"),
                      rss_loaded, out.images:size(2), out.images:size(3), out.latents:size(2), out.latents:size(3)))
  return
end

-- ---------------------------------------------------------------------------
-- parent: write the folder, run the child

local python = "/usr/bin/python3"
local dir = o.dir .. "/folder"
if not o.reuse then sh("rm -rf " .. quote(o.dir)) end
grove.C.grove_dir_make(o.dir)
print(string.format("pipeline bench: %s, %d threads, %s; %s", os.date("!%Y-%m-%d %H:%M UTC"), grove.num_threads(),
                    grove.blas_info(), o.small and "SMALL models (a check of the script)" or "released sizes"))
local t0 = grove.now()
local reused = o.reuse and grove.C.grove_path_kind(dir .. "/model_index.json") == grove.C.GROVE_PATH_FILE
if not reused then grove.diffusers.tiny_folder(dir, { seed = 0 }) end
if reused then
  print("reusing the folder in " .. dir)
elseif not o.small then
  if o.transformer ~= "600m" and o.transformer ~= "1600m" then error("pipeline bench: --transformer 600m or 1600m", 0) end
  local SANA = o.transformer == "600m" and benchlib.sana_600m_config() or benchlib.sana15_1600m_config()
  local GEMMA = benchlib.gemma2_2b_config()
  for _, c in ipairs {
    { "transformer", SANA, function(d) return grove.diffusers.transformer(d, { meta = true }) end, "diffusion_pytorch_model" },
    { "text_encoder", GEMMA, function(d) return grove.diffusers.text_encoder(d, { meta = true }) end, "model" },
  } do
    sh("rm -rf " .. quote(dir .. "/" .. c[1]))
    local written, count = benchlib.write_random_component(dir .. "/" .. c[1], c[2], c[3],
      { dtype = "f32", seed = 1000, weights_name = c[4], max_shard_bytes = 2 ^ 31 })
    print(string.format("%s: %d parameters, %.2f GB F32", c[1], count, written.total_size / 1e9))
  end
  sh("rm -rf " .. quote(dir .. "/vae"))
  local out, status = sh(string.format("%s %s/torch_dcae.py write %s --seed 0", quote(python), quote(here), quote(dir .. "/vae")))
  if status ~= 0 then error("pipeline bench: bench/torch_dcae.py write failed:\n" .. out, 0) end
  print("vae: " .. out:gsub("\n+$", ""):gsub("\n", "; "))
end
print(string.format("folder written in %.1f s", grove.now() - t0))

local cmd = string.format("%s %s/pipeline.lua --child --dir %s --size %d --steps %d --cfg %s --compute %s%s", quote(exe),
                          quote(here), quote(o.dir), o.size, o.steps, tostring(o.cfg), o.compute, o.drop and " --drop" or "")
local out, status = sh(cmd)
for l in out:gmatch("[^\n]+") do if not l:match("^RESULT") then print("   " .. l) end end
local r = {}
for k, v in (out:match("RESULT ([^\n]*)") or ""):gmatch("(%S+)=(%S+)") do r[k] = v end
if status ~= 0 or not r.total_s then error("pipeline bench: the run failed (status " .. tostring(status) .. ")", 0) end
if not o.keep then sh("rm -rf " .. quote(o.dir)) end

print("")
print(string.format("prompt -> %s image, %d steps, CFG %g, compute %s, %d threads:", r.size, o.steps, o.cfg, o.compute,
                    grove.num_threads()))
print("| stage | seconds |")
print("| --- | --- |")
print(string.format("| load (all components) | %.1f |", tonumber(r.load_s)))
print(string.format("| text encoder (prompt + negative) | %.1f |", tonumber(r.text_s)))
print(string.format("| %d steps (%.2f s each) | %.1f |", o.steps, tonumber(r.step_s), tonumber(r.steps_s)))
print(string.format("| DC-AE decode (latent %s) | %.1f |", r.latent, tonumber(r.decode_s)))
print(string.format("| **generate, total** | **%.1f** |", tonumber(r.total_s)))
print(string.format("peak resident memory %.2f GB (%.2f GB after loading)", tonumber(r.hwm_bytes) / 1e9,
                    tonumber(r.rss_loaded_bytes) / 1e9))
