-- benchlib.lua — what the Lua benchmarks share: a wall clock and a timing
-- loop. Loaded with `dofile` relative to the calling script (bench/ is not on
-- package.path).
local B = {}

-- Seconds on the monotonic wall clock (os.clock would add up CPU time over
-- all threads, which overstates a parallel op).
B.now = grove.now

-- Seconds per call of fn() in the steady state: warm-up calls (10 of them,
-- or fewer once 1 s has passed; an allocator needs a few calls to settle, and
-- glibc's, under PyTorch, needs several), then single timed calls until at
-- least min_runs of them and min_time seconds; the best call counts (the
-- least disturbed by whatever else the machine runs). bench/torch_ops.py
-- follows the same rule.
function B.best_time(fn, min_time, min_runs)
  min_time, min_runs = min_time or 0.3, min_runs or 5
  local w0 = B.now()
  for _ = 1, 10 do
    fn()
    if B.now() - w0 > 1.0 then break end
  end
  local best, total, runs = math.huge, 0, 0
  while runs < min_runs or total < min_time do
    local t0 = B.now()
    fn()
    local t = B.now() - t0
    total = total + t
    if t < best then best = t end
    runs = runs + 1
  end
  return best, runs
end

-- Microseconds per iteration of loop(n), which must run its body n times:
-- the best of reps timed loops, after a short warm-up that lets the JIT
-- compile the loop. Collects garbage before each loop so one loop's garbage
-- is not charged to the next, but the loop's own collection is charged to it.
function B.per_call_us(loop, n, reps)
  reps = reps or 3
  loop(math.min(n, 10000))
  local best = math.huge
  for _ = 1, reps do
    collectgarbage("collect")
    local t0 = B.now()
    loop(n)
    local t = B.now() - t0
    if t < best then best = t end
  end
  return best / n * 1e6
end

-- One seeded flow-matching batch for a SANA config c (grove.nn.resolve_config)
-- at batch B of size×size latents: the noised input xt, timesteps t, random
-- caption features text with half of each caption padding (mask), and the
-- velocity target. bench/sana.lua and bench/profile_step.lua time steps on it.
function B.flow_batch(c, batch, size)
  local L = c.text_len
  local g = grove.Generator(0)
  local x0 = grove.randn({ batch, size, size, c.in_channels }, { generator = g })
  local noise = grove.randn({ batch, size, size, c.in_channels }, { generator = g })
  local sigma = grove.rand({ batch }, { generator = g })
  local xt = x0 * (1 - sigma:view { batch, 1, 1, 1 }) + noise * sigma:view { batch, 1, 1, 1 }
  local text = grove.randn({ batch, L, c.caption_channels }, { generator = g })
  local mask = grove.ones { batch, L }
  mask:narrow(2, L / 2 + 1, L / 2):fill_(0)
  return xt, sigma * 1000, text, mask, noise - x0
end

-- Writes a diffusers component folder of random weights at dir: config.json
-- (config) and the tensors that the shapes-only model build(dir) has (build
-- reads dir/config.json, e.g. grove.diffusers.transformer(d, {meta = true})),
-- under their names, drawn N(0, scale²) one tensor at a time (tensor k of
-- the model's named_parameters from grove.Generator(seed + k)) and stored as
-- opts.dtype ("f32", "bf16", "f16"), so a model larger than memory can be
-- written. opts: dtype (default "f32"), scale (0.02), seed (1000),
-- weights_name, max_shard_bytes (as grove.diffusers.write_component).
-- Returns write_component's {files, total_size} and the parameter count.
function B.write_random_component(dir, config, build, opts)
  opts = opts or {}
  local dtype, scale, seed = opts.dtype or "f32", opts.scale or 0.02, opts.seed or 1000
  grove.C.grove_dir_make(dir)
  require("grove.files").write_atomic(dir .. "/config.json", grove.json.encode(config))
  local meta = build(dir)
  os.remove(dir .. "/config.json")
  local names, info, index, params = {}, {}, {}, 0
  for k, np in ipairs(meta:named_parameters()) do
    names[k], index[np[1]] = np[1], k
    info[np[1]] = { dtype = dtype, shape = np[2]:shape() }
    params = params + np[2]:numel()
  end
  local source = {
    names = function() return names end,
    info = function(_, n) return info[n] end,
    load = function(_, n)
      local v = grove.randn(info[n].shape, { generator = grove.Generator(seed + index[n]) })
      local s = v * scale
      v:free()
      if dtype == "f32" then return s end
      local c = s:to(dtype)
      s:free()
      return c
    end,
  }
  local written = grove.diffusers.write_component(dir, config, source, { max_shard_bytes = opts.max_shard_bytes,
                                                                         weights_name = opts.weights_name })
  grove.collect()
  grove.empty_cache()
  return written, params
end

-- Gemma-2-2B's text_encoder/config.json (the key set of the shared
-- fixtures'), a new table each call: the text encoder of every released
-- SANA pipeline.
function B.gemma2_2b_config()
  return {
    architectures = { "Gemma2Model" }, attention_bias = false, attention_dropout = 0.0, attn_logit_softcapping = 50.0,
    bos_token_id = 2, cache_implementation = "hybrid", eos_token_id = 1, final_logit_softcapping = 30.0,
    head_dim = 256, hidden_act = "gelu_pytorch_tanh", hidden_activation = "gelu_pytorch_tanh", hidden_size = 2304,
    initializer_range = 0.02, intermediate_size = 9216, max_position_embeddings = 8192, model_type = "gemma2",
    num_attention_heads = 8, num_hidden_layers = 26, num_key_value_heads = 4, pad_token_id = 0,
    query_pre_attn_scalar = 256, rms_norm_eps = 1e-06, rope_theta = 10000.0, sliding_window = 4096,
    torch_dtype = "float32", use_cache = true, vocab_size = 256000,
  }
end

-- The transformer/config.json of released SANA pipelines, a new table each
-- call: Sana_600M_512px's (28 blocks of width 1152) and
-- SANA1.5_1.6B_1024px's (20 blocks of width 2240).
function B.sana_600m_config()
  return {
    _class_name = "SanaTransformer2DModel", _diffusers_version = "0.32.0.dev0", attention_bias = false,
    attention_head_dim = 32, caption_channels = 2304, cross_attention_dim = 1152, cross_attention_head_dim = 72,
    dropout = 0.0, in_channels = 32, interpolation_scale = grove.json.null, mlp_ratio = 2.5,
    norm_elementwise_affine = false, norm_eps = 1e-06, num_attention_heads = 36, num_cross_attention_heads = 16,
    num_layers = 28, out_channels = 32, patch_size = 1, sample_size = 16,
  }
end

function B.sana15_1600m_config()
  return {
    _class_name = "SanaTransformer2DModel", _diffusers_version = "0.33.0.dev0", attention_bias = false,
    attention_head_dim = 32, caption_channels = 2304, cross_attention_dim = 2240, cross_attention_head_dim = 112,
    dropout = 0.0, guidance_embeds = false, guidance_embeds_scale = 0.1, in_channels = 32,
    interpolation_scale = grove.json.null, mlp_ratio = 2.5, norm_elementwise_affine = false, norm_eps = 1e-06,
    num_attention_heads = 70, num_cross_attention_heads = 20, num_layers = 20, out_channels = 32, patch_size = 1,
    qk_norm = "rms_norm_across_heads", sample_size = 32, timestep_scale = 1.0,
  }
end

-- ---- child processes: the benchmarks that run grove and PyTorch side by
-- side start each side as its own process and read back one RESULT line.

-- s quoted for sh.
function B.quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The output (stdout and stderr together) and exit status of a shell command.
function B.sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo __status=$?")
  local out = p:read("*a")
  p:close()
  local status = tonumber(out:match("__status=(%d+)%s*$"))
  return (out:gsub("__status=%d+%s*$", "")), status
end

-- A size field of /proc/self/status (VmHWM, VmRSS) in bytes.
function B.proc_status(key)
  local f = io.open("/proc/self/status")
  local s = f and f:read("*a") or ""
  if f then f:close() end
  return (tonumber(s:match(key .. ":%s*(%d+) kB")) or 0) * 1024
end

-- /proc/loadavg's line: the machine's load while a benchmark ran.
function B.loadavg()
  local f = io.open("/proc/loadavg")
  local s = f and f:read("*l") or "?"
  if f then f:close() end
  return s
end

-- The fields of a child's "RESULT k=v ..." line (nil when there is none);
-- load_s, hwm (hwm_bytes), rss_loaded (rss_loaded_bytes) as numbers and
-- times the list of forward_s.
function B.parse_result(out)
  local line = out:match("RESULT ([^\n]*)")
  if not line then return nil end
  local r = {}
  for k, v in line:gmatch("(%S+)=(%S+)") do r[k] = v end
  r.load_s, r.hwm, r.rss_loaded = tonumber(r.load_s), tonumber(r.hwm_bytes), tonumber(r.rss_loaded_bytes)
  r.times = {}
  for t in (r.forward_s or ""):gmatch("[^,]+") do r.times[#r.times + 1] = tonumber(t) end
  return r
end

return B
