-- GPU benchmark: one training step (forward + MSE + backward + AdamW step)
-- and one sampling step (one forward without the tape) of SANA models, grove
-- on CUDA against PyTorch (bench/torch_gpu.py, tests/reference's SanaRef) on
-- the same config, batch, caption length and dtype (f32, TF32 off on both
-- sides), in one run. Asserts nothing.
--
-- Cases:
--   small       the `small` preset, batch 16, 32x32 latents (patch 2: 256 tokens), caption 32
--   sana_1600m  a stack of sana_1600m blocks (width 2240, --big-depth blocks, default 20),
--               batch --big-batch (default 2), 32x32x32 latents (patch 1: 1024 tokens), caption 300
-- The GPU's matrix throughput is measured in the same run: torch.mm of two
-- 8192x8192 f32 matrices with TF32 off (cuBLAS sgemm); grove's matmul of the
-- same size is shown beside it.
--
-- FLOPs (2 per multiply-add, the matrix work only; norms, activations and
-- the optimizer are not counted): per block with T = B·N image tokens,
-- L caption tokens, D width, H hidden, d head dim,
--   self-attention   2·T·D²·4 (q, k, v, out) + 4·T·D·d (linear attention)
--   cross-attention  2·T·D²·2 (q, out) + 2·2·B·L·D² (k, v) + 4·T·L·D (scores, values)
--   Mix-FFN          2·T·D·2H + 2·T·2H·9 (depthwise 3x3) + 2·T·H·D
-- plus patch embedding 2·T·C·p²·D, output 2·T·D·p²·C, caption projection
-- 2·B·L·(Cc·D + D²) and timestep MLP 2·B·(256·D + D² + 6·D²). A training
-- step counts 3x the forward (the backward does two products per forward one).
--
--   grove bench/gpu.lua [--device cuda|cpu] [--quick] [--steps K] [--big-depth N] [--big-batch B]
-- --device cpu --quick runs a tiny model on the CPU: a check that the script works.
-- Prints a table, then one line per case for scripts/gpu-check:
--   GPUBENCH case=NAME grove_train_ms=.. torch_train_ms=.. train_ratio=.. grove_sample_ms=.. ...
local args = require "grove.cli.args"
local o, usage = args.parse(arg, {
  { "device", "string", "cuda", "cuda, or cpu for a check of the script" },
  { "quick", "boolean", false, "a tiny model only (checks that everything runs)" },
  { "steps", "number", 5, "timed steps per measurement (after 2 warm-up steps)" },
  { "big_depth", "number", 20, "blocks in the sana_1600m-shaped stack" },
  { "big_batch", "number", 2, "batch of the sana_1600m-shaped stack" },
  { "gemm", "number", 8192, "size of the square sgemm that measures the matrix throughput" },
  { "skip_torch", "boolean", false, "grove only" },
  { "case", "string", "all", "small, sana_1600m or all" },
  { "profile_rows", "number", 15, "rows of the per-op profile of one grove training step printed per case" },
}, { usage = "grove bench/gpu.lua [options]" })
if not o then print(usage); return end

local dev = o.device
local cuda = dev ~= "cpu"
if cuda and not grove.cuda.is_available() then
  io.stderr:write("bench/gpu.lua: no CUDA device (grove.cuda.device_count() == 0)\n")
  os.exit(2)
end
local here = arg[0]:match("^(.*)/[^/]*$") or "."
if cuda then grove.cuda.set_tf32(false) end -- full f32 GEMMs (the default; torch_gpu.py turns TF32 off too)
local warmup = 2

local function sync() if cuda then grove.cuda.synchronize() end end

-- median and best milliseconds of o.steps calls after the warm-up, the GPU
-- synchronised around every call (as torch_gpu.py times)
local function timed(fn)
  for _ = 1, warmup do fn() end
  sync()
  local ts = {}
  for i = 1, o.steps do
    local t0 = grove.now()
    fn()
    sync()
    ts[i] = (grove.now() - t0) * 1e3
  end
  table.sort(ts)
  return ts[math.floor(#ts / 2) + 1], ts[1]
end

local cases
if o.quick then
  cases = { { name = "quick", config = { depth = 2, width = 64, head_dim = 32, cross_heads = 2, mlp_ratio = 2.5, patch_size = 2,
                                         in_channels = 4, out_channels = 4, caption_channels = 32 }, batch = 2, size = 8, text_len = 16 } }
else
  local function preset(name, over)
    local c = {}
    for k, v in pairs(grove.nn.presets[name]) do c[k] = v end
    for k, v in pairs(over or {}) do c[k] = v end
    return c
  end
  cases = {
    { name = "small", config = preset("small"), batch = 16, size = 32, text_len = 32 },
    { name = "sana_1600m", config = preset("sana_1600m", { depth = o.big_depth }), batch = o.big_batch, size = 32, text_len = 300 },
  }
  if o.case ~= "all" then
    local keep = {}
    for _, cs in ipairs(cases) do if cs.name == o.case then keep[1] = cs end end
    if not keep[1] then io.stderr:write("bench/gpu.lua: unknown case '" .. o.case .. "' (small, sana_1600m or all)\n"); os.exit(2) end
    cases = keep
  end
end

local function forward_flops(c, B, size, L)
  local p = c.patch_size
  local N = (size / p) ^ 2
  local T, D, H, d = B * N, c.width, c.hidden, c.head_dim
  local block = 2 * T * D * D * 4 + 4 * T * D * d
    + 2 * T * D * D * 2 + 2 * 2 * B * L * D * D + 4 * T * L * D
    + 2 * T * D * 2 * H + 2 * T * 2 * H * 9 + 2 * T * H * D
  return c.depth * block + 2 * T * c.in_channels * p * p * D + 2 * T * D * p * p * c.out_channels
    + 2 * B * L * (c.caption_channels * D + D * D) + 2 * B * (256 * D + D * D + 6 * D * D)
end

-- ---- PyTorch first: its processes end (and free the GPU) before grove allocates
local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local python
local function find_python()
  local env_ld = os.getenv("GROVE_DEPS_SAVED_LD_LIBRARY_PATH")
  -- python must not load the libraries unpacked by scripts/fetch-debs
  local prefix = env_ld and ("LD_LIBRARY_PATH=" .. shell_quote(env_ld) .. " ") or ""
  local want = cuda and "torch.cuda.is_available()" or "True"
  for _, cand in ipairs { os.getenv("GROVE_TORCH_PYTHON") or false, "python3", "/usr/bin/python3" } do
    if cand then
      local ok = os.execute(string.format("%s%s -c 'import sys, torch; sys.exit(0 if %s else 1)' >/dev/null 2>&1",
        prefix, cand, want))
      if ok == 0 or ok == true then return prefix .. cand end
    end
  end
end

local torch_res, torch_gemm, torch_note = {}, nil, nil
if not o.skip_torch then
  python = find_python()
  if not python then
    torch_note = "no python3 with torch" .. (cuda and " seeing a GPU" or "") .. " (tried $GROVE_TORCH_PYTHON, python3, /usr/bin/python3)"
  else
    local function run_torch(extra)
      local cmd = string.format("%s %s/torch_gpu.py --device %s %s 2>&1", python, here, dev, extra)
      local p = io.popen(cmd)
      local out = p:read("*a")
      p:close()
      io.write(out)
      return out
    end
    local gemm_n = o.quick and 256 or o.gemm
    local out = run_torch("--sgemm " .. gemm_n)
    torch_gemm = tonumber(out:match("RESULT sgemm n=%d+ ms=[%d.]+ best_ms=[%d.]+ tflops=([%d.]+)"))
    for _, cs in ipairs(cases) do
      local cfg_path = os.tmpname()
      local f = assert(io.open(cfg_path, "w"))
      f:write(grove.nn._encode_config(grove.nn.resolve_config(cs.config)))
      f:close()
      out = run_torch(string.format("--config %s --name %s --batch %d --size %d --text-len %d --steps %d --warmup %d",
        cfg_path, cs.name, cs.batch, cs.size, cs.text_len, o.steps, warmup))
      os.remove(cfg_path)
      local r = {}
      for k, v in out:gmatch("(%w+_?%w*_?%w*)=([%d.]+)") do r[k] = tonumber(v) end
      if out:match("RESULT model") then torch_res[cs.name] = r
      else torch_res[cs.name] = { error = out:sub(-400) } end
    end
  end
end

-- ---- grove
print(string.format("grove %s on %s", grove._VERSION,
  cuda and grove.cuda.device_name(0) or ("cpu, " .. grove.num_threads() .. " threads")))
local grove_gemm
do
  local n = o.quick and 256 or o.gemm
  local g = grove.Generator(0)
  local a = grove.randn({ n, n }, { generator = g }):to(dev)
  local b = grove.randn({ n, n }, { generator = g }):to(dev)
  local ms = timed(function() return a:matmul(b) end)
  grove_gemm = 2 * n ^ 3 / (ms * 1e-3) / 1e12
  print(string.format("grove matmul %dx%d f32: %.3f ms, %.2f TFLOP/s", n, n, ms, grove_gemm))
  a, b = nil, nil
end

local grove_res = {}
for _, cs in ipairs(cases) do
  local ok, err = pcall(function()
    local c = grove.nn.resolve_config(cs.config)
    c.caption_dropout = 0 -- no null-caption table: the same parameters as SanaRef
    local t_init = grove.now()
    local model = grove.nn.Sana(c, { seed = 0 }):to(dev)
    local opt = grove.optim.adamw(model, { lr = 1e-4, weight_decay = 0 })
    local B, S, L = cs.batch, cs.size, cs.text_len
    local g = grove.Generator(0)
    local x0 = grove.randn({ B, S, S, c.in_channels }, { generator = g }):to(dev)
    local noise = grove.randn({ B, S, S, c.in_channels }, { generator = g }):to(dev)
    local sigma = grove.rand({ B }, { generator = g }):to(dev)
    local s4 = sigma:view { B, 1, 1, 1 }
    local xt = x0 * (1 - s4) + noise * s4
    local target = noise - x0
    local t = sigma * 1000
    local text = grove.randn({ B, L, c.caption_channels }, { generator = g }):to(dev)
    local mask = grove.ones { B, L }
    mask:narrow(2, math.floor(L / 2) + 1, L - math.floor(L / 2)):fill_(0) -- half the caption is padding
    mask = mask:to(dev)
    sync()
    local init_s = grove.now() - t_init
    local function train_step()
      opt:zero_grad()
      local loss = grove.mse_loss(model:forward(xt, t, text, mask), target)
      loss:backward()
      opt:step()
    end
    local function sample_step()
      grove.no_grad(function() return model:forward(xt, t, text, mask) end)
    end
    grove.collect()
    if cuda then grove.cuda.reset_peak() end
    local base = cuda and grove.cuda.memory().live or 0
    local tr, tr_best = timed(train_step)
    local peak = cuda and (grove.cuda.memory().peak / 2 ^ 20) or 0
    local sa, sa_best = timed(sample_step)
    -- where one training step's time goes, op by op (grove.profile), for the
    -- fused kernels to follow: printed under the table
    local prof = grove.profile(function() train_step(); sync() end)
    grove_res[cs.name] = { train_ms = tr, train_best_ms = tr_best, sample_ms = sa, sample_best_ms = sa_best, peak_mb = peak,
                           base_mb = base / 2 ^ 20, params = model:num_parameters(), init_s = init_s,
                           profile = prof:format(o.profile_rows) }
  end)
  if not ok then grove_res[cs.name] = { error = tostring(err) } end
  grove.collect()
  if cuda then grove.cuda.empty_cache() end
end

-- ---- the table
local peak = torch_gemm or grove_gemm
print()
print(string.format("matrix throughput in this run: torch.mm %s, grove matmul %.2f TFLOP/s (f32, TF32 off); fractions below are of %.2f TFLOP/s (%s)",
  torch_gemm and string.format("%.2f TFLOP/s", torch_gemm) or "n/a", grove_gemm, peak, torch_gemm and "torch.mm" or "grove matmul"))
if torch_note then print("torch: " .. torch_note) end
print(string.format("%-11s %-6s %10s %10s %10s %10s %9s %9s %9s", "case", "side", "train ms", "sample ms", "train TF/s", "sample TF/s",
  "train %pk", "samp %pk", "peak MB"))
local function frac(flops, ms) return flops / (ms * 1e-3) / 1e12 end
for _, cs in ipairs(cases) do
  local c = grove.nn.resolve_config(cs.config)
  local fl = forward_flops(c, cs.batch, cs.size, cs.text_len)
  local gr, tr = grove_res[cs.name], torch_res[cs.name]
  local function row(side, r)
    if not r then return end
    if r.error then print(string.format("%-11s %-6s failed: %s", cs.name, side, r.error:gsub("\n", " | "))) return end
    local ttf, stf = frac(3 * fl, r.train_ms), frac(fl, r.sample_ms)
    print(string.format("%-11s %-6s %10.2f %10.2f %10.2f %10.2f %8.1f%% %8.1f%% %9.0f", cs.name, side, r.train_ms, r.sample_ms,
      ttf, stf, 100 * ttf / peak, 100 * stf / peak, r.peak_mb or 0))
  end
  row("grove", gr)
  row("torch", tr)
  local ok_g, ok_t = gr and not gr.error, tr and not tr.error
  local tratio = ok_g and ok_t and gr.train_ms / tr.train_ms or nil
  local sratio = ok_g and ok_t and gr.sample_ms / tr.sample_ms or nil
  if tratio then print(string.format("%-11s grove/torch: train %.2fx, sample %.2fx (time; above 1 = grove slower)", cs.name, tratio, sratio)) end
  print(string.format("%-11s depth %d, width %d, batch %d, %d tokens, caption %d, %.1f GFLOP per forward%s", cs.name, c.depth, c.width,
    cs.batch, (cs.size / c.patch_size) ^ 2, cs.text_len, fl / 1e9, ok_g and string.format(", %d parameters, grove init %.1f s", gr.params, gr.init_s) or ""))
  if ok_g then print(string.format("%-11s grove, one training step by op:\n%s", cs.name, gr.profile)) end
  local function f(v, fmt) return v and string.format(fmt or "%.3f", v) or "nan" end
  print(string.format("GPUBENCH case=%s grove_ok=%d grove_train_ms=%s torch_train_ms=%s train_ratio=%s grove_sample_ms=%s torch_sample_ms=%s sample_ratio=%s grove_train_frac=%s torch_train_frac=%s grove_sample_frac=%s peak_tflops=%s",
    cs.name, ok_g and 1 or 0, f(ok_g and gr.train_ms), f(ok_t and tr.train_ms), f(tratio), f(ok_g and gr.sample_ms), f(ok_t and tr.sample_ms),
    f(sratio), f(ok_g and frac(3 * fl, gr.train_ms) / peak), f(ok_t and frac(3 * fl, tr.train_ms) / peak), f(ok_g and frac(fl, gr.sample_ms) / peak),
    f(peak)))
end
local failed = false
for _, cs in ipairs(cases) do if not grove_res[cs.name] or grove_res[cs.name].error then failed = true end end
if failed then os.exit(1) end
