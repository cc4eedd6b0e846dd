-- The DC-AE decode of a SANA pipeline, grove against PyTorch 1.13 (Debian's
-- python3-torch) on the same random weights and the same latents: the
-- released autoencoder's config (dc-ae-f32c32-sana-1.0: 32 latent
-- channels, stages of 128, 256, 512, 512, 1024, 1024 channels, 3 ResBlock
-- stages then 3 EfficientViT stages, 3 decoder layers each; 159,223,171
-- decoder parameters), F32, one image per decode at 512² (a 16×16 latent)
-- and 1024² (32×32), untiled.
-- bench/torch_dcae.py writes the folder (PyTorch's default initial values
-- from one seed, under diffusers' names, encoder and decoder as diffusers
-- stores them) and is PyTorch's side (an AutoencoderDC built from
-- nn.Conv2d / nn.Linear modules as diffusers builds it); grove's side is
-- grove.diffusers.vae(dir):decode (this script with --child). The two run
-- in separate processes, interleaved per size: grove, torch, grove, torch
-- (--reps pairs), each with the same thread count (default 2, GROVE_NUM_THREADS)
-- and the OpenBLAS core grove chose (OPENBLAS_CORETYPE passed to PyTorch),
-- each loading the folder and decoding --steps times. Reported: decode time
-- (best of all; and the first of each process), GFLOP/s from the published
-- count (8.37 TFLOP at 1024², 2.09 at 512²: the fixtures README's; other
-- sizes scale with the area), peak resident memory (VmHWM), and the two
-- outputs against each other (max |grove − torch| / max |torch|).
-- The folder is removed afterwards unless --keep. Asserts nothing about time.
-- --compute bf16: grove decodes with compute = "bf16" (convolutions and
-- projections on bf16-rounded operands, f32 sums: oneDNN's bf16 convolution
-- and matmul where the CPU multiplies bf16) and PyTorch with the VAE and
-- the latents in torch.bfloat16; both sides print the kernels they use.
--
--   grove bench/dcae.lua [--sizes 512,1024] [--reps 1] [--steps 2] [--compute f32|bf16] [--dir /tmp/grove-bench-dcae] [--keep] [--tiny]
-- --tiny: the same steps on a small autoencoder (channels 8…64; a check of
-- the script, seconds).
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local exe = arg[-1]
local benchlib = dofile(here .. "/benchlib.lua")
local quote, sh, proc_status = benchlib.quote, benchlib.sh, benchlib.proc_status

-- ---------------------------------------------------------------------------
-- child: load the folder, decode, report (the parent parses RESULT)

if arg[1] == "--child" then
  local dir, inputs_path, out_path = arg[2], arg[3], arg[4]
  local steps, compute = 2, "f32"
  local i = 5
  while arg[i] do
    if arg[i] == "--steps" then steps = tonumber(arg[i + 1]); i = i + 1
    elseif arg[i] == "--compute" then compute = arg[i + 1]; i = i + 1
    else error("dcae bench child: unknown argument " .. arg[i], 0) end
    i = i + 1
  end
  local kernels
  if compute == "bf16" then
    kernels = string.format("bf16 compute; CPU bf16 arithmetic %s; convolutions: %s; GEMMs: %s", tostring(grove.cpu_has_bf16()),
                            grove.conv_bf16_dnnl_available() and "oneDNN bf16" or "rounded operands + f32 convolution",
                            grove.gemm_bf16_dnnl_available() and "oneDNN bf16 matmul" or "rounded operands + f32 sgemm")
  else
    kernels = "f32 compute; convolutions: " .. (grove.conv_dnnl_available() and "oneDNN f32 (3x3 and grouped), sgemm (1x1)"
                                                or "im2col + sgemm")
  end
  print(string.format("grove %s, %d threads, %s; %s", grove._VERSION, grove.num_threads(), grove.blas_info(), kernels))
  io.stdout:flush()
  local z = grove.load_safetensors(inputs_path).latents:permute { 1, 3, 4, 2 }:contiguous()   -- NCHW -> NHWC
  local t0 = grove.now()
  local vae = grove.diffusers.vae(dir, { compute = compute })
  local load_s = grove.now() - t0
  local rss_loaded = proc_status("VmRSS")
  local times, y = {}, nil
  for s = 1, steps do
    if y then y:free() end
    grove.collect()
    local t1 = grove.now()
    y = vae:decode(z)
    times[s] = grove.now() - t1
    print(string.format("decode %.3f s", times[s]))
    io.stdout:flush()
  end
  grove.save_safetensors(out_path, { sample = y:permute { 1, 4, 2, 3 }:contiguous() })
  local ts = {}
  for k, v in ipairs(times) do ts[k] = string.format("%.4f", v) end
  print(string.format("RESULT model=dcae load_s=%.3f forward_s=%s hwm_bytes=%d rss_loaded_bytes=%d threads=%d",
                      load_s, table.concat(ts, ","), proc_status("VmHWM"), rss_loaded, grove.num_threads()))
  return
end

-- ---------------------------------------------------------------------------
-- parent

local o = { dir = "/tmp/grove-bench-dcae", reps = 1, steps = 2, sizes = { 512, 1024 }, keep = false, tiny = false,
            compute = "f32" }
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--dir" then o.dir = arg[i + 1]; i = i + 1
    elseif a == "--reps" then o.reps = tonumber(arg[i + 1]); i = i + 1
    elseif a == "--steps" then o.steps = tonumber(arg[i + 1]); i = i + 1
    elseif a == "--sizes" then
      o.sizes = {}
      for v in tostring(arg[i + 1]):gmatch("[^,]+") do o.sizes[#o.sizes + 1] = tonumber(v) end
      i = i + 1
    elseif a == "--compute" then o.compute = arg[i + 1]; i = i + 1
    elseif a == "--tiny" then o.tiny = true
    elseif a == "--keep" then o.keep = true
    else error("dcae bench: unknown argument " .. a, 0) end
    i = i + 1
  end
  for _, k in ipairs { "reps", "steps" } do
    if not o[k] or o[k] < 1 or o[k] % 1 ~= 0 then error("dcae bench: --" .. k .. " must be a positive integer", 0) end
  end
  if o.compute ~= "f32" and o.compute ~= "bf16" then
    error("dcae bench: --compute must be f32 or bf16, got " .. tostring(o.compute), 0)
  end
  if #o.sizes == 0 then error("dcae bench: --sizes needs at least one size", 0) end
  for _, s in ipairs(o.sizes) do
    if not s or s < 32 or s % 32 ~= 0 then error("dcae bench: --sizes must be multiples of 32, got " .. tostring(s), 0) end
  end
end
if not grove.diffusers.vae then error("dcae bench: this grove has no grove.diffusers.vae", 0) end

local threads = grove.num_threads()
local blas = grove.blas_info()
local core = blas:match("OpenBLAS core (%S+)")
local python = os.getenv("GROVE_BENCH_PYTHON") or "/usr/bin/python3"
local loadavg = benchlib.loadavg

-- the published decode cost of the released config (fixtures README)
local function decode_flops(size) return 8.37e12 * (size / 1024) ^ 2 end

print(string.format("dcae bench: %s, %d threads, %s; %s; compute %s (PyTorch: %s)", os.date("!%Y-%m-%d %H:%M UTC"),
                    threads, blas, o.tiny and "TINY autoencoder (a check of the script)" or "released config", o.compute,
                    o.compute == "bf16" and "torch.bfloat16" or "torch.float32"))
print("load average at start: " .. loadavg())
if grove.C.grove_path_kind(o.dir) ~= grove.C.GROVE_PATH_NONE then
  error("dcae bench: " .. o.dir .. " exists; remove it or pass another --dir", 0)
end

local function compare(a_path, b_path)
  local a, b = grove.load_safetensors(a_path).sample, grove.load_safetensors(b_path).sample
  if not a or not b then return nil end
  if table.concat(a:shape(), "x") ~= table.concat(b:shape(), "x") then return math.huge end
  return (a - b):abs():max():item() / b:abs():max():item()
end

local rows, notes = {}, {}
local folder = o.dir .. "/vae"
local ok, err = pcall(function()
  grove.C.grove_dir_make(o.dir)
  local t0 = grove.now()
  local out, status = sh(string.format("%s %s/torch_dcae.py write %s%s", quote(python), quote(here), quote(folder),
                                       o.tiny and " --tiny" or ""))
  io.write(out)
  if status ~= 0 then error("dcae bench: torch_dcae.py write failed (status " .. tostring(status) .. ")", 0) end
  local params = out:match("decoder (%d+) parameters")
  local fh = io.open(folder .. "/diffusion_pytorch_model.safetensors", "rb")
  local weight_bytes = fh:seek("end")
  fh:close()
  print(string.format("wrote the folder in %.1f s (%.2f GB)", grove.now() - t0, weight_bytes / 1e9))
  local latent_ch = grove.json.decode(assert(io.open(folder .. "/config.json")):read("*a")).latent_channels
  for _, size in ipairs(o.sizes) do
    local inputs = string.format("%s/latents_%d.safetensors", o.dir, size)
    grove.save_safetensors(inputs, { latents = grove.randn({ 1, latent_ch, size / 32, size / 32 },
                                                             { generator = grove.Generator(7) }) })
    local per = { grove = {}, torch = {} }
    for rep = 1, o.reps do
      for _, side in ipairs { "grove", "torch" } do
        local out_path = string.format("%s/out_%d_%s.safetensors", o.dir, size, side)
        local cmd
        if side == "grove" then
          cmd = string.format("GROVE_NUM_THREADS=%d %s %s/dcae.lua --child %s %s %s --steps %d --compute %s", threads,
                              quote(exe), quote(here), quote(folder), quote(inputs), quote(out_path), o.steps, o.compute)
        else
          cmd = string.format("env %sOPENBLAS_NUM_THREADS=%d OMP_NUM_THREADS=%d %s %s/torch_dcae.py decode %s %s %s --threads %d --steps %d --dtype %s",
                              core and ("OPENBLAS_CORETYPE=" .. core .. " ") or "", threads, threads, quote(python),
                              quote(here), quote(folder), quote(inputs), quote(out_path), threads, o.steps, o.compute)
        end
        local t1 = grove.now()
        local text, st = sh(cmd)
        local r = benchlib.parse_result(text)
        print(string.format("-- %d² %s, repetition %d (%.1f s, load average %s)", size, side, rep, grove.now() - t1,
                            loadavg()))
        for l in text:gmatch("[^\n]+") do
          if not l:match("^RESULT") then print("   " .. l) end
        end
        if st ~= 0 or not r then
          notes[#notes + 1] = string.format("%d² %s repetition %d failed (status %s)", size, side, rep, tostring(st))
        else
          per[side][#per[side] + 1] = r
        end
        io.stdout:flush()
      end
    end
    local function summary(list)
      if #list == 0 then return nil end
      local best, first, load, hwm = math.huge, {}, {}, 0
      for _, r in ipairs(list) do
        for _, t in ipairs(r.times) do best = math.min(best, t) end
        first[#first + 1] = string.format("%.2f", r.times[1])
        load[#load + 1] = string.format("%.1f", r.load_s)
        hwm = math.max(hwm, r.hwm)
      end
      return { best = best, first = table.concat(first, "/"), load = table.concat(load, "/"), hwm = hwm }
    end
    rows[#rows + 1] = { size = size, grove = summary(per.grove), torch = summary(per.torch), flops = decode_flops(size),
                        err = compare(o.dir .. "/out_" .. size .. "_grove.safetensors",
                                      o.dir .. "/out_" .. size .. "_torch.safetensors") }
  end
  rows.params, rows.weight_bytes = params, weight_bytes
end)
if not o.keep then sh("rm -rf " .. quote(o.dir)) end
if not ok then error(err, 0) end

print("")
print("load average at the end: " .. loadavg())
print(string.format("decoder parameters: %s; weights file (encoder and decoder, F32): %.2f GB", tostring(rows.params),
                    rows.weight_bytes / 1e9))
print("")
print(string.format("compute: %s (grove: compute = %q; PyTorch: %s)", o.compute, o.compute,
                    o.compute == "bf16" and "the VAE in torch.bfloat16" or "torch.float32"))
print("| size | side | load s | decode s (best; first of each process) | GFLOP/s | peak RSS GB | torch / grove |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for _, r in ipairs(rows) do
  for _, side in ipairs { "grove", "torch" } do
    local s = r[side]
    if s then
      local ratio = ""
      if side == "torch" and r.grove then ratio = string.format("%.2fx", s.best / r.grove.best) end
      print(string.format("| %d² | %s | %s | %.3g (%s) | %s | %.2f | %s |", r.size, side == "torch" and "PyTorch" or "grove",
                          s.load, s.best, s.first, o.tiny and "n/a" or string.format("%.1f", r.flops / s.best / 1e9),
                          s.hwm / 1e9, ratio))
    end
  end
end
for _, r in ipairs(rows) do
  print(string.format("%d²: %s; grove vs torch output: %s", r.size,
                      o.tiny and "tiny autoencoder (no FLOP count)" or string.format("%.2f TFLOP per decode (published)", r.flops / 1e12),
                      r.err and string.format("%.2e (max abs diff / max abs)", r.err) or "n/a"))
end
for _, n in ipairs(notes) do print("note: " .. n) end
