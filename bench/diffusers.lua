-- Released-size forwards of a SANA pipeline's two big components, grove
-- against PyTorch 1.13 (Debian's python3-torch) on the same random weights
-- and the same inputs:
--   sana:  a SANA1.5 1.6B transformer (SANA1.5_1.6B_1024px_diffusers' config
--          and tensor names, 20 blocks of width 2240, 1,604,641,952
--          parameters, F32 in shards, 6.4 GB): one forward at 1024² (a 32×32
--          latent), CFG batch 2, 300 caption tokens;
--   gemma: Gemma-2-2B's encoder (hidden 2304, 26 layers, 8 heads, 4 KV heads
--          of 256, intermediate 9216, vocabulary 256000, window 4096,
--          query_pre_attn_scalar 256; 2,614,341,888 parameters, F32, 10.5 GB):
--          one prompt of the SANA pipeline's length with the instruction
--          (--length, default 504 tokens: instruction + 298, as the fixtures'
--          tokenizer gives it), all tokens real, no soft-capping.
-- This process writes each folder (one tensor at a time: N(0, 0.02²) per
-- tensor from its own seed) and the inputs under --dir, then runs grove
-- (this script with --child) and PyTorch (bench/torch_diffusers.py, on
-- tests/reference's sana_ref.py and gemma2_ref.py) in separate processes,
-- interleaved: grove, torch, grove, torch, ... (--reps pairs), each with
-- the same thread count and the OpenBLAS core grove chose
-- (OPENBLAS_CORETYPE passed to PyTorch), each loading the folder and
-- running --steps forwards. It reports load time, forward time (best of
-- all; and the first), GFLOP/s from the analytic count (matrix products
-- only, 2 per multiply-add: see flops_sana and flops_gemma), their fraction
-- of the sgemm peak measured now (build/bench/bench_matmul's OpenBLAS
-- column, the best of n = 512, 1024, 2048), and peak resident memory
-- (VmHWM) against the weight bytes; the two outputs are compared
-- (max |grove - torch| / max |torch|).
-- Folders are removed afterwards unless --keep. Asserts nothing about time.
--
-- --compute bf16: grove computes the GEMMs in bf16 with bf16-stored GEMM
-- weights (Module:to("cpu", "bf16", { weights = "bf16" }): oneDNN's bf16
-- matmul where the CPU has AVX512-BF16, else the reference path), PyTorch
-- runs the model converted to torch.bfloat16 (its CPU bf16 inference: the
-- matmuls through oneDNN, the activations stored bf16 between ops). The
-- outputs are then compared against a tolerance from bf16 rounding:
-- 2^-8 (bf16's relative rounding step) times √n, n the GEMMs in sequence
-- along the model's depth, as independent roundings add up.
--
--   grove bench/diffusers.lua [--small] [--only sana|gemma] [--reps 2] [--steps 2]
--                             [--dir /tmp/grove-bench-diffusers] [--length 504] [--keep]
--                             [--profile 12] [--compute f32|bf16]
-- --small: the same steps on models of width 64 (a check of the script,
-- seconds). --profile N: grove's last forward runs under grove.profile and
-- its N largest rows are printed.
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local exe = arg[-1]
local benchlib = dofile(here .. "/benchlib.lua")

local quote, sh, proc_status = benchlib.quote, benchlib.sh, benchlib.proc_status

-- ---------------------------------------------------------------------------
-- child: load one folder, run the forward, report (the parent parses RESULT)

if arg[1] == "--child" then
  local model, dir, inputs_path, out_path = arg[2], arg[3], arg[4], arg[5]
  local steps, profile, compute = 2, 0, "f32"
  local i = 6
  while arg[i] do
    if arg[i] == "--steps" then steps = tonumber(arg[i + 1]); i = i + 1
    elseif arg[i] == "--profile" then profile = tonumber(arg[i + 1]); i = i + 1
    elseif arg[i] == "--compute" then compute = arg[i + 1]; i = i + 1
    else error("diffusers bench child: unknown argument " .. arg[i], 0) end
    i = i + 1
  end
  print(string.format("grove %s, %d threads, %s", grove._VERSION, grove.num_threads(), grove.blas_info()))
  if compute == "bf16" then
    print("kernels: bf16-stored GEMM weights, GEMMs by " .. (grove.gemm_bf16_dnnl_available() and
          "oneDNN's bf16 matmul (AVX512-BF16)" or "the bf16 reference path (rounded copies, f32 sgemm)"))
  else
    print("kernels: f32 weights, GEMMs by " .. grove.blas_info())
  end
  io.stdout:flush()
  -- the model's GEMMs in bf16 from bf16-stored weights, or f32
  local function prepare(m)
    if compute == "bf16" then m:to("cpu", "bf16", { weights = "bf16" }) end
    return m
  end
  local inputs = grove.load_safetensors(inputs_path)
  local t0 = grove.now()
  local forward, out_name, to_file
  if model == "sana" then
    local T = prepare(grove.diffusers.transformer(dir))
    local x = inputs.hidden_states:permute { 1, 3, 4, 2 }:contiguous()    -- NCHW -> NHWC
    local t, text, mask = inputs.timestep, inputs.encoder_hidden_states, inputs.encoder_attention_mask
    forward = function() return T:forward(x, t, text, mask) end
    out_name, to_file = "sample", function(y) return y:permute { 1, 4, 2, 3 }:contiguous() end
  elseif model == "gemma" then
    local enc = prepare(grove.diffusers.text_encoder(dir, { softcap = false }))
    local ids, mask = inputs.input_ids, inputs.attention_mask
    forward = function() return enc:forward(ids, mask) end
    out_name, to_file = "last_hidden_state", function(y) return y end
  else
    error("diffusers bench child: model must be sana or gemma, got " .. tostring(model), 0)
  end
  local load_s = grove.now() - t0
  local rss_loaded = proc_status("VmRSS")
  local times, y = {}, nil
  for s = 1, steps do
    if y then y:free() end
    grove.collect()
    local t1 = grove.now()
    if profile > 0 and s == steps then
      local report
      report, y = grove.profile(function() return grove.no_grad(forward) end)
      times[s] = grove.now() - t1
      print(report:format(profile))
    else
      y = grove.no_grad(forward)
      times[s] = grove.now() - t1
    end
    print(string.format("forward %.3f s", times[s]))
    io.stdout:flush()
  end
  grove.save_safetensors(out_path, { [out_name] = to_file(y) })
  local ts = {}
  for k, v in ipairs(times) do ts[k] = string.format("%.4f", v) end
  print(string.format("RESULT model=%s load_s=%.3f forward_s=%s hwm_bytes=%d rss_loaded_bytes=%d threads=%d",
                      model, load_s, table.concat(ts, ","), proc_status("VmHWM"), rss_loaded, grove.num_threads()))
  return
end

-- ---------------------------------------------------------------------------
-- parent

local o = { dir = "/tmp/grove-bench-diffusers", reps = 2, steps = 2, small = false, keep = false, profile = 12,
            compute = "f32" }
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--dir" then o.dir = arg[i + 1]; i = i + 1
    elseif a == "--reps" then o.reps = tonumber(arg[i + 1]); i = i + 1
    elseif a == "--steps" then o.steps = tonumber(arg[i + 1]); i = i + 1
    elseif a == "--length" then o.length = tonumber(arg[i + 1]); i = i + 1
    elseif a == "--only" then o.only = arg[i + 1]; i = i + 1
    elseif a == "--profile" then o.profile = tonumber(arg[i + 1]); i = i + 1
    elseif a == "--compute" then o.compute = arg[i + 1]; i = i + 1
    elseif a == "--small" then o.small = true
    elseif a == "--keep" then o.keep = true
    else error("diffusers bench: unknown argument " .. a, 0) end
    i = i + 1
  end
  if o.only and o.only ~= "sana" and o.only ~= "gemma" then error("diffusers bench: --only sana or gemma", 0) end
  if o.compute ~= "f32" and o.compute ~= "bf16" then
    error("diffusers bench: --compute f32 or bf16, got " .. tostring(o.compute), 0)
  end
  for _, k in ipairs { "reps", "steps" } do
    if not o[k] or o[k] < 1 or o[k] % 1 ~= 0 then error("diffusers bench: --" .. k .. " must be a positive integer", 0) end
  end
end

-- SANA1.5_1.6B_1024px_diffusers/transformer/config.json
local SANA = benchlib.sana15_1600m_config()
-- Gemma-2-2B's text_encoder/config.json (the key set of the fixtures')
local GEMMA = benchlib.gemma2_2b_config()
-- the forward's inputs: latent side (1024 px / 32), CFG batch, caption tokens
local sana_in = { batch = 2, size = 32, text_len = 300 }
local gemma_len = o.length or 504
if o.small then
  SANA.num_attention_heads, SANA.cross_attention_dim, SANA.num_cross_attention_heads = 2, 64, 2
  SANA.cross_attention_head_dim, SANA.caption_channels, SANA.num_layers = 32, 48, 2
  GEMMA.hidden_size, GEMMA.num_hidden_layers, GEMMA.num_attention_heads, GEMMA.num_key_value_heads = 64, 2, 4, 2
  GEMMA.head_dim, GEMMA.intermediate_size, GEMMA.vocab_size, GEMMA.query_pre_attn_scalar = 16, 128, 1000, 16
  GEMMA.sliding_window = 16
  sana_in = { batch = 2, size = 8, text_len = 16 }
  gemma_len = o.length or 40
end

-- Forward FLOPs of the matrix products (2 per multiply-add); norms,
-- activations, rotary and softmax are left out. B batch, N = H·W/p² tokens
-- per image, T = B·N, L caption tokens, D width, d linear-attention head dim,
-- Dc = cross heads × cross head dim, F = int(D·mlp_ratio).
local function flops_sana(c, inp)
  local p = c.patch_size
  local B, L = inp.batch, inp.text_len
  local N = (inp.size / p) ^ 2
  local T = B * N
  local D = c.num_attention_heads * c.attention_head_dim
  local d = c.attention_head_dim
  local Dc = c.num_cross_attention_heads * c.cross_attention_head_dim
  local F = math.floor(D * c.mlp_ratio)
  local block = 4 * 2 * T * D * D           -- attn1: q, k, v, out projections
    + 4 * T * D * (d + 1)                   -- linear attention, O(N·d²) form with v padded by a row of ones: kᵀv and q(kᵀv)
    + 2 * T * D * Dc + 2 * T * Dc * D       -- attn2: q and out projections
    + 2 * 2 * B * L * D * Dc                -- attn2: k, v of the caption
    + 2 * 2 * T * L * Dc                    -- attn2: scores and weighted sum
    + 2 * T * D * 2 * F + 2 * T * 2 * F * 9 + 2 * T * F * D   -- Mix-FFN: 1×1 up, 3×3 depthwise, 1×1 down
  local outer = 2 * T * c.in_channels * p * p * D              -- patch embedding
    + B * 2 * (256 * D + D * D + D * 6 * D)                      -- timestep embedding and modulation
    + 2 * B * L * (c.caption_channels * D + D * D)                -- caption projection
    + 2 * T * D * p * p * c.out_channels                          -- final projection
  return c.num_layers * block + outer
end
-- Gemma-2: projections and MLP per token, and attention over the visible
-- (query, key) pairs only (causal, the window on even layers): 4 per pair
-- and channel of a head (scores and weighted sum). The embedding is a
-- lookup (no FLOPs).
local function flops_gemma(c, L)
  local hid, H, KV, hd, I = c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.intermediate_size
  local proj = 2 * L * hid * (H * hd + 2 * KV * hd) + 2 * L * H * hd * hid + 3 * 2 * L * hid * I
  local total = 0
  for layer = 0, c.num_hidden_layers - 1 do
    local pairs = 0
    for q = 1, L do pairs = pairs + ((layer % 2 == 0) and math.min(q, c.sliding_window) or q) end
    total = total + proj + 4 * H * hd * pairs
  end
  return total
end

local threads = grove.num_threads()
local blas = grove.blas_info()
local core = blas:match("OpenBLAS core (%S+)")
local python = os.getenv("GROVE_BENCH_PYTHON") or "/usr/bin/python3"
local loadavg = benchlib.loadavg

print(string.format("diffusers bench: %s, %d threads, %s; %s", os.date("!%Y-%m-%d %H:%M UTC"), threads, blas,
                    o.small and "SMALL shapes (a check of the script)" or "released sizes"))
print("load average at start: " .. loadavg())

-- sgemm peak now: OpenBLAS's cblas_sgemm with its own threads (bench_matmul's
-- sgemm column), the best of n >= 512; grove's matmul beside it
local peak, peak_note
do
  local bm = (exe:match("^(.*)/[^/]*$") or ".") .. "/bench/bench_matmul"
  local f = io.open(bm)
  if f and not o.small then
    f:close()
    local out = sh(string.format("GROVE_NUM_THREADS=%d %s 0.3", threads, quote(bm)))
    local best_n, best_g
    for n, g, s in out:gmatch("\n%s*(%d+)%s+([%d%.]+)%s+([%d%.]+)") do
      if tonumber(n) >= 512 and (not peak or tonumber(s) > peak) then peak, best_n, best_g = tonumber(s), n, tonumber(g) end
    end
    if peak then
      peak_note = string.format("cblas_sgemm, best of n = 512, 1024, 2048 (bench_matmul, %d threads): %.1f GFLOP/s at n = %s;"
                                .. " grove_matmul there %.1f", threads, peak, best_n, best_g)
    end
  elseif f then
    f:close()
  end
  if not peak then
    local n = 1024
    local a, b = grove.randn { n, n }, grove.randn { n, n }
    local best = math.huge
    for _ = 1, 5 do
      local t0 = grove.now()
      a:matmul(b):free()
      best = math.min(best, grove.now() - t0)
    end
    peak = 2 * n ^ 3 / best / 1e9
    peak_note = string.format("grove matmul n=%d (bench_matmul not run): %.1f GFLOP/s", n, peak)
  end
end
print("sgemm peak: " .. peak_note)

-- room: the folders go one at a time; the process of a side holds the
-- weights once, plus activations
local function free_disk(path)
  local out = sh("df -Pk " .. quote(path) .. " | tail -1")
  return (tonumber(out:match("^%S+%s+%d+%s+%d+%s+(%d+)")) or 0) * 1024
end
local function mem_available()
  local f = io.open("/proc/meminfo")
  local s = f and f:read("*a") or ""
  if f then f:close() end
  return (tonumber(s:match("MemAvailable:%s*(%d+) kB")) or 0) * 1024
end
if grove.C.grove_path_kind(o.dir) ~= grove.C.GROVE_PATH_NONE then
  error("diffusers bench: " .. o.dir .. " exists; remove it or pass another --dir", 0)
end
local parent = o.dir:match("^(.*)/[^/]+$") or "."

local parse_result = benchlib.parse_result

local function compare(a_path, b_path, name)
  local a, b = grove.load_safetensors(a_path)[name], grove.load_safetensors(b_path)[name]
  if not a or not b then return nil end
  if table.concat(a:shape(), "x") ~= table.concat(b:shape(), "x") then return math.huge end
  return (a - b):abs():max():item() / b:abs():max():item()
end

local rows, notes = {}, {}
local function bench(model, dir, config, weight_bytes, flops, out_name)
  local inputs = o.dir .. "/inputs_" .. model .. ".safetensors"
  local per, kernels = { grove = {}, torch = {} }, {}
  for rep = 1, o.reps do
    for _, side in ipairs { "grove", "torch" } do
      local out_path = string.format("%s/out_%s_%s.safetensors", o.dir, model, side)
      local cmd
      if side == "grove" then
        cmd = string.format("GROVE_NUM_THREADS=%d %s %s/diffusers.lua --child %s %s %s %s --steps %d --profile %d --compute %s",
                            threads, quote(exe), quote(here), model, quote(dir), quote(inputs), quote(out_path), o.steps,
                            rep == o.reps and o.profile or 0, o.compute)
      else
        cmd = string.format("env %sOPENBLAS_NUM_THREADS=%d OMP_NUM_THREADS=%d %s %s/torch_diffusers.py %s %s %s %s --threads %d --steps %d --dtype %s",
                            core and ("OPENBLAS_CORETYPE=" .. core .. " ") or "", threads, threads, quote(python),
                            quote(here), model, quote(dir), quote(inputs), quote(out_path), threads, o.steps, o.compute)
      end
      local t0 = grove.now()
      local out, status = sh(cmd)
      local wall = grove.now() - t0
      local r = parse_result(out)
      kernels[side] = kernels[side] or out:match("kernels: ([^\n]*)")
      print(string.format("-- %s %s, repetition %d (%.1f s, load average %s)", model, side, rep, wall, loadavg()))
      for l in out:gmatch("[^\n]+") do
        if not l:match("^RESULT") then print("   " .. l) end
      end
      if status ~= 0 or not r then
        notes[#notes + 1] = string.format("%s %s repetition %d failed (status %s)", model, side, rep, tostring(status))
      else
        per[side][#per[side] + 1] = r
      end
      io.stdout:flush()
    end
  end
  local err = compare(o.dir .. "/out_" .. model .. "_grove.safetensors", o.dir .. "/out_" .. model .. "_torch.safetensors",
                      out_name)
  local function summary(list)
    if #list == 0 then return nil end
    local best, first, load, hwm, rss = math.huge, {}, {}, 0, 0
    for _, r in ipairs(list) do
      for _, t in ipairs(r.times) do best = math.min(best, t) end
      first[#first + 1] = string.format("%.2f", r.times[1])
      load[#load + 1] = string.format("%.1f", r.load_s)
      hwm, rss = math.max(hwm, r.hwm), math.max(rss, r.rss_loaded)
    end
    return { best = best, first = table.concat(first, "/"), load = table.concat(load, "/"), hwm = hwm, rss = rss }
  end
  -- bf16 GEMMs in sequence along the depth: per SANA block attn1's qkv and
  -- out, attn2's q and out, the FFN's two 1×1s, plus the patch embedding and
  -- the final projection; per Gemma layer qkv, o, gate/up and down
  local n_seq = model == "sana" and 6 * config.num_layers + 2 or 4 * config.num_hidden_layers
  rows[#rows + 1] = { model = model, grove = summary(per.grove), torch = summary(per.torch), flops = flops,
                      weight_bytes = weight_bytes, err = err, kernels = kernels,
                      tol = o.compute == "bf16" and 2 ^ -8 * math.sqrt(n_seq) or nil, n_seq = n_seq }
end

local ok, err = pcall(function()
  grove.C.grove_dir_make(o.dir)
  local jobs = {}
  if o.only ~= "gemma" then jobs[#jobs + 1] = "sana" end
  if o.only ~= "sana" then
    local ref = io.open(here .. "/../tests/reference/gemma2_ref.py")
    if ref then ref:close() end
    if grove.diffusers.text_encoder and ref then
      jobs[#jobs + 1] = "gemma"
    else
      notes[#notes + 1] = "gemma skipped: this tree has no grove.diffusers.text_encoder or tests/reference/gemma2_ref.py"
    end
  end
  for _, model in ipairs(jobs) do
    local config = model == "sana" and SANA or GEMMA
    local dir = o.dir .. "/" .. model
    local t0 = grove.now()
    local build = model == "sana" and function(d) return grove.diffusers.transformer(d, { meta = true }) end
                  or function(d) return grove.diffusers.text_encoder(d, { meta = true }) end
    local wname = model == "sana" and "diffusion_pytorch_model" or "model"
    local written, count = benchlib.write_random_component(dir, config, build,
      { dtype = "f32", seed = model == "sana" and 1000 or 5000, weights_name = wname, max_shard_bytes = 2 ^ 31 })
    local bytes = written.total_size
    print(string.format("%s: wrote %s (%d parameters, %.2f GB F32) in %.1f s; disk free %.1f GB, memory available %.1f GB",
                        model, dir, count, bytes / 1e9, grove.now() - t0, free_disk(parent) / 1e9, mem_available() / 1e9))
    -- inputs, the same file for both sides
    local g = grove.Generator(7)
    local inputs, flops, out_name
    if model == "sana" then
      local B, S, L = sana_in.batch, sana_in.size, sana_in.text_len
      -- [negative, positive], as SanaPipeline batches them; the negative
      -- prompt "" has one real token
      local mask = {}
      for b = 1, B do
        mask[b] = {}
        for j = 1, L do mask[b][j] = (b % 2 == 0 or j == 1) and 1 or 0 end
      end
      inputs = {
        hidden_states = grove.randn({ B, SANA.in_channels, S, S }, { generator = g }),
        timestep = grove.full({ B }, 999),
        encoder_hidden_states = grove.randn({ B, L, SANA.caption_channels }, { generator = g }),
        encoder_attention_mask = grove.tensor(mask, { dtype = "i64" }),
      }
      flops, out_name = flops_sana(SANA, sana_in), "sample"
    else
      local u, ids, mask = grove.rand({ gemma_len }, { generator = g }):tolist(), {}, {}
      for j = 1, gemma_len do ids[j], mask[j] = 4 + math.floor(u[j] * (GEMMA.vocab_size - 4)), 1 end  -- no special ids
      inputs = { input_ids = grove.tensor({ ids }, { dtype = "i64" }), attention_mask = grove.tensor({ mask }, { dtype = "i64" }) }
      flops, out_name = flops_gemma(GEMMA, gemma_len), "last_hidden_state"
    end
    grove.save_safetensors(o.dir .. "/inputs_" .. model .. ".safetensors", inputs)
    bench(model, dir, config, bytes, flops, out_name)
    if not o.keep then sh("rm -rf " .. quote(dir)) end
  end
end)
if not o.keep then sh("rm -rf " .. quote(o.dir)) end
if not ok then error(err, 0) end

print("")
print("load average at the end: " .. loadavg())
print(string.format("sgemm peak: %s", peak_note))
print("")
print(string.format("compute %s", o.compute))
print("| model | side | load s | forward s (best; first of each process) | GFLOP/s | of sgemm peak | peak RSS GB | RSS / weights | torch / grove |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for _, r in ipairs(rows) do
  for _, side in ipairs { "grove", "torch" } do
    local s = r[side]
    if s then
      local gf = r.flops / s.best / 1e9
      local ratio = ""
      if side == "torch" and r.grove then ratio = string.format("%.2fx", s.best / r.grove.best) end
      print(string.format("| %s | %s | %s | %.3g (%s) | %.1f | %.0f%% | %.2f | %.2f | %s |", r.model,
                          side == "torch" and "PyTorch" or "grove", s.load, s.best, s.first, gf, 100 * gf / peak,
                          s.hwm / 1e9, s.hwm / r.weight_bytes, ratio))
    end
  end
end
for _, r in ipairs(rows) do
  print(string.format("%s: %.1f GFLOP per forward (matrix products); weights %.2f GB (F32 folder); grove vs torch output: %s",
                      r.model, r.flops / 1e9, r.weight_bytes / 1e9,
                      r.err and string.format("%.2e (max abs diff / max abs)", r.err) or "n/a"))
  if r.tol and r.err then
    print(string.format("%s: bf16 tolerance 2^-8·√%d = %.2e: %s", r.model, r.n_seq, r.tol,
                        r.err <= r.tol and "within" or "OVER"))
  end
  for _, side in ipairs { "grove", "torch" } do
    print(string.format("%s %s kernels: %s", r.model, side == "torch" and "PyTorch" or "grove", r.kernels[side] or "n/a"))
  end
end
for _, n in ipairs(notes) do print("note: " .. n) end
