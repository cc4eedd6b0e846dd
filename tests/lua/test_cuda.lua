-- The CUDA device API: its behaviour on a machine without a GPU (always
-- run), then round trips, the allocator and moving models on a real GPU
-- (skipped when grove.cuda.device_count() == 0).
local spec = require "spec"

local function flat(t) -- values of any tensor as a flat Lua list
  local out, n = {}, 0
  local function walk(v)
    if type(v) == "table" then for _, x in ipairs(v) do walk(x) end
    else n = n + 1; out[n] = v end
  end
  walk(t:tolist())
  return out
end

local function same_values(a, b, msg)
  spec.eq(a:shape_str(), b:shape_str(), msg and (msg .. " shape") or "shape")
  spec.eq(a:dtype(), b:dtype(), msg and (msg .. " dtype") or "dtype")
  local x, y = flat(a), flat(b)
  for i = 1, #y do
    if not (x[i] == y[i] or (x[i] ~= x[i] and y[i] ~= y[i])) then
      error((msg or "values") .. ": element " .. i .. ": " .. tostring(x[i]) .. " vs " .. tostring(y[i]), 2)
    end
  end
end

spec.describe("cuda api", function()
  spec.it("answers without a GPU as well", function()
    local n = grove.cuda.device_count()
    spec.assert(type(n) == "number" and n >= 0, "device_count is a count")
    spec.eq(grove.cuda.is_available(), n > 0)
    spec.eq(grove.device(), n > 0 and "cuda" or "cpu")
    grove.cuda.synchronize()
    grove.cuda.set_tf32(false)
    local m = grove.cuda.memory()
    spec.assert(m.live >= 0 and m.peak >= 0 and m.cached >= 0, "memory counters")
  end)

  spec.it("keeps CPU tensors where they are", function()
    local t = grove.tensor{ { 1, 2 }, { 3, 4 } }
    spec.eq(t:device(), "cpu")
    spec.eq(t.is_cuda, false)
    spec.eq(grove.device(t), "cpu")
    spec.assert(t:to("cpu") == t and t:cpu() == t, "to(\"cpu\") of a CPU tensor is the tensor")
    local l = t:to("cpu", "i64")
    spec.eq(l:dtype(), "i64")
    spec.eq(t:to("f32", "cpu"):dtype(), "f32")
    spec.eq(grove.zeros({ 2 }, { device = "cpu" }):device(), "cpu")
    spec.eq(grove.zeros_like(t):device(), "cpu")
    spec.raises(function() t:to("tpu") end, "unknown dtype")
    spec.raises(function() grove.zeros({ 2 }, { device = "tpu" }) end, "unknown device 'tpu'")
    local m = grove.nn.Linear(grove.nn.param_factory(), 3, 2)
    spec.assert(m:to("cpu") == m, "Module:to returns the module")
  end)

  if grove.cuda.device_count() == 0 then
    spec.it("says why there is no CUDA", function()
      local t = grove.ones{ 2, 3 }
      local err = spec.raises(function() return t:cuda() end, "cuda: ")
      spec.assert(err:find("no CUDA device (grove.cuda.device_count() == 0)", 1, true)
                  or err:find("this build has no CUDA", 1, true), "clear message: " .. err)
      spec.raises(function() return t:to("cuda") end, "cuda: ")
      spec.raises(function() return grove.zeros({ 2 }, { device = "cuda" }) end, "cuda: ")
      spec.raises(function() return grove.randn({ 2 }, { device = "cuda" }) end, "cuda: ")
      spec.raises(function() return grove.nn.Linear(grove.nn.param_factory(), 2, 2):to("cuda") end, "cuda: ")
      local m = grove.cuda.memory()
      spec.eq(m.live, 0)
      spec.eq(m.peak, 0)
      spec.eq(m.cached, 0)
      spec.raises(function() grove.cuda.device_name(0) end, "cuda: ")
    end)
  end
end)

if grove.cuda.device_count() == 0 then
  spec.skip("no CUDA device")
  return
end

-- ---- on a GPU ----------------------------------------------------------------------
local function mem() grove.collect(); return grove.cuda.memory() end

spec.describe("cuda transfers", function()
  spec.it("round-trips f32, i64 and u8 bit-exactly", function()
    grove.manual_seed(3)
    local f = grove.randn{ 37, 5 }
    f[1][1] = 0 / 0 -- NaN survives
    local big = grove.tensor({ 9007199254740993, -3, 0, 2 ^ 62 }, { dtype = "i64" })
    local u = grove.tensor({ 0, 1, 127, 255 }, { dtype = "u8" })
    for _, t in ipairs { f, big, u } do
      local c = t:cuda()
      spec.eq(c:device(), "cuda")
      spec.eq(c.is_cuda, true)
      same_values(c:cpu(), t, t:dtype())
      same_values(c, t, t:dtype() .. " read from the device") -- tolist copies to the host
    end
    spec.eq(big:cuda()[1], big[1])
    spec.assert(tostring(u:cuda()):find(", cuda ]", 1, true), "tostring names the device")
  end)

  spec.it("moves non-contiguous views and converts dtypes on the device", function()
    local t = grove.arange(0, 60):view{ 3, 4, 5 }
    local v = t:permute{ 3, 1, 2 }:narrow(2, 2, 2)
    same_values(v:cuda():cpu(), v:contiguous(), "view to cuda")
    local c = t:cuda():permute{ 3, 1, 2 }:narrow(2, 2, 2)
    same_values(c:cpu(), v:contiguous(), "view of a cuda tensor")
    same_values(c:contiguous():cpu(), v:contiguous(), "contiguous on cuda")
    spec.eq(c:contiguous():device(), "cuda")
    spec.eq(c:clone():device(), "cuda")
    for _, dt in ipairs { "i64", "u8", "bf16", "f16", "i32", "i8" } do
      local a = c:to(dt)
      spec.eq(a:device(), "cuda")
      same_values(a:cpu(), v:to(dt), "astype " .. dt)
    end
    spec.eq(t:to("cuda", "i64"):dtype(), "i64")
  end)

  spec.it("copies and fills across devices", function()
    local src = grove.randn{ 4, 6 }
    local dst = grove.zeros({ 4, 6 }, { device = "cuda" })
    dst:copy_(src)
    same_values(dst:cpu(), src, "cpu -> cuda copy_")
    local back = grove.zeros{ 6, 4 }
    back:t():copy_(dst) -- strided destination on the CPU
    same_values(back:t():contiguous(), src, "cuda -> cpu copy_")
    local row = grove.tensor{ 1, 2, 3, 4, 5, 6 }
    dst:copy_(row) -- broadcast from the CPU
    same_values(dst:cpu(), row:expand{ 4, 6 }:contiguous(), "broadcast copy_")
    dst:fill_(2.5)
    same_values(dst:cpu(), grove.full({ 4, 6 }, 2.5), "fill_")
    dst:narrow(2, 2, 3):fill_(-1)
    spec.eq(dst:cpu()[2][3], -1)
    spec.eq(dst:cpu()[2][1], 2.5)
  end)

  spec.it("makes constructors on the device", function()
    spec.eq(grove.zeros({ 2, 3 }, { device = "cuda" }):device(), "cuda")
    spec.eq(grove.ones({ 2, 3 }, { device = "cuda" }):sum():item(), 6)
    spec.eq(grove.full({ 2 }, 7, { device = "cuda", dtype = "i64" }):cpu()[2], 7)
    spec.eq(grove.empty({ 5 }, { device = "cuda" }):device(), "cuda")
    -- Philox is counter-based: the same draws on both devices
    local g1, g2 = grove.Generator(11), grove.Generator(11)
    same_values(grove.randn({ 33 }, { device = "cuda", generator = g1 }):cpu(), grove.randn({ 33 }, { generator = g2 }), "randn")
    same_values(grove.rand({ 9 }, { device = "cuda", generator = g1 }):cpu(), grove.rand({ 9 }, { generator = g2 }), "rand")
    spec.eq(grove.tensor({ 1, 2 }, { device = "cuda" }):device(), "cuda")
    local z = grove.zeros_like(grove.ones({ 2 }, { device = "cuda" }))
    spec.eq(z:device(), "cuda")
  end)

  spec.it("sends the gradient back through :cuda()", function()
    local x = grove.randn({ 3, 4 }, { requires_grad = true })
    local y = x:cuda()
    spec.eq(y:grad_fn(), "to_device")
    local loss = y:cpu():mul(grove.full({ 3, 4 }, 3)):sum()
    loss:backward()
    spec.eq(x.grad:device(), "cpu")
    same_values(x.grad, grove.full({ 3, 4 }, 3), "gradient")
  end)

  spec.it("refuses mixed devices, naming both", function()
    local a, b = grove.ones{ 2 }, grove.ones({ 2 }, { device = "cuda" })
    spec.raises(function() return a + b end, "tensors on different devices (cpu and cuda)")
  end)
end)

spec.describe("cuda allocator", function()
  spec.it("counts live, peak and cached bytes", function()
    grove.cuda.empty_cache()
    local m0 = mem()
    local t = grove.empty({ 1024, 1024 }, { device = "cuda" }) -- 4 MiB: a multiple of 2 MiB
    local m1 = grove.cuda.memory()
    spec.eq(m1.live - m0.live, 4 * 2 ^ 20, "live rises by the tensor's size")
    spec.assert(m1.peak >= m1.live, "peak")
    t:free()
    local m2 = grove.cuda.memory()
    spec.eq(m2.live, m0.live, "live falls back")
    spec.eq(m2.cached - m0.cached, 4 * 2 ^ 20, "the block is cached")
    local again = grove.empty({ 1024, 1024 }, { device = "cuda" })
    spec.eq(grove.cuda.memory().cached, m0.cached, "the cached block is reused")
    again:free()
    grove.cuda.empty_cache()
    spec.eq(grove.cuda.memory().cached, 0, "empty_cache releases it")
    grove.cuda.reset_peak()
    spec.eq(grove.cuda.memory().peak, grove.cuda.memory().live)
    local small = grove.empty({ 3 }, { device = "cuda" })
    spec.eq(grove.cuda.memory().live - m0.live, 512, "small blocks round to 512 bytes")
    small:free()
  end)

  spec.it("reports running out of memory and goes on", function()
    local err = spec.raises(function() return grove.empty({ 2 ^ 38 }, { device = "cuda" }) end, -- 1 TiB
                            "cuda: out of memory allocating 1048576.0 MiB (free ")
    spec.assert(err:find("MiB cached by grove)", 1, true), err)
    local t = grove.ones({ 8 }, { device = "cuda" })
    spec.eq(t:sum():item(), 8)
  end)

  spec.it("reports the device", function()
    local info = grove.cuda.device_info(0)
    spec.assert(#grove.cuda.device_name(0) > 0 and info.total_bytes > 0 and info.free_bytes > 0, "device info")
  end)
end)

spec.describe("cuda models", function()
  spec.it("moves a model and its optimizer together", function()
    grove.manual_seed(5)
    local m = grove.nn.Linear(grove.nn.param_factory(), 4, 3)
    local w = m.weight
    local opt = grove.optim.adamw(m, { lr = 1e-2 })
    local x, y = grove.randn{ 8, 4 }, grove.randn{ 8, 3 }
    grove.mse_loss(m:forward(x), y):backward()
    opt:step()
    opt:zero_grad()
    spec.assert(m:to("cuda") == m, "returns the module")
    spec.assert(m.weight == w, "the module keeps its tensor objects")
    spec.eq(m.weight:device(), "cuda")
    spec.eq(m.weight.requires_grad, true)
    spec.eq(m.weight.is_leaf, true)
    opt:to("cuda")
    spec.eq(opt:state_of(opt:names()[1]).exp_avg:device(), "cuda")
    local before = m.weight:cpu()
    local loss = grove.mse_loss(m:forward(x:cuda()), y:cuda())
    loss:backward()
    spec.eq(m.weight.grad:device(), "cuda")
    opt:step()
    spec.assert(m.weight:cpu():sub(before):abs():sum():item() > 0, "the step changed the weight")
    m:to("cpu") -- state follows at the next step
    opt:zero_grad()
    grove.mse_loss(m:forward(x), y):backward()
    opt:step()
    spec.eq(opt:state_of(opt:names()[1]).exp_avg:device(), "cpu")
  end)

  spec.it("profiles ops on the device by events on the stream", function()
    local a, b = grove.randn({ 64, 64 }, { device = "cuda" }), grove.randn({ 64, 64 }, { device = "cuda" })
    local report = grove.profile(function() return (a:matmul(b) + 1):sum():item() end)
    local names = {}
    for _, r in ipairs(report) do names[r.name] = r end
    spec.assert(names.matmul and names.add and names.sum, "rows for matmul, add and sum:\n" .. tostring(report))
    spec.assert(report.total_ms > 0 and report.total_ms <= report.wall_ms + 1e-3, tostring(report))
  end)

  -- Block importance (grove.prune) with the model and text encoder on the
  -- GPU: the captions' ids, the rendered latents and the noise (drawn on the
  -- CPU) follow the model, and the scores are the CPU's.
  spec.it("scores and prunes blocks on the device as on the CPU", function()
    local o = { preset = "tiny", seed = 3, text_depth = 1, text_heads = 2 }
    local popts = { prompts = { "a red circle", "a blue square" }, timesteps = 2, size = 16 }
    local cpu = grove.train.build(o)
    local gpu = grove.train.build(o)
    grove.train.to_device(gpu, "cuda")
    local want = grove.prune.importance(cpu.model, cpu, popts)
    local got = grove.prune.importance(gpu.model, gpu, popts)
    for i = 1, #want do spec.near(got[i], want[i], 1e-5 * math.max(1, math.abs(want[i])), "block " .. i) end
    local pruned = grove.prune.parts(gpu, { depth = 2, prompts = popts.prompts, timesteps = 2, size = 16 })
    spec.eq(pruned.model.config.depth, 2)
    spec.eq(pruned.model:device(), "cuda")
  end)

  -- Inference-time search with the model on the GPU and a judge on either
  -- device: the judge moves images and token ids to its own weights.
  spec.it("searches on the device, judged on either device, as on the CPU", function()
    local judge = grove.judge.Judge({ vocab_size = grove.text.shapes_tokenizer():size() }, { seed = 1 })
    local o = { preset = "tiny", seed = 5, text_depth = 1, text_heads = 2 }
    local cpu, gpu = grove.train.build(o), grove.train.build(o)
    grove.train.to_device(gpu, "cuda")
    local sopts = { n = 4, steps = 2, size = 32, judge = judge }
    local want = grove.search.run(cpu, "a red circle", sopts)
    local got = grove.search.run(gpu, "a red circle", sopts)
    spec.eq(got[1].seed, want[1].seed, "the same pick")
    spec.near(got[1].score, want[1].score, 1e-4, "its score")
    judge:to("cuda")
    local again = grove.search.run(gpu, "a red circle", sopts)
    spec.eq(again[1].seed, want[1].seed, "the same pick with the judge on the GPU")
  end)

  -- The whole training step (SANA blocks, text encoder, loss, CAME-8bit, EMA)
  -- on both devices from the same seed: only rounding may differ.
  spec.it("trains the tiny preset as the CPU does", function()
    local function losses(device)
      local dir = spec.tmpdir()
      local run = grove.train.run { preset = "tiny", batch = 4, steps = 3, lr = 5e-4, warmup = 1, seed = 7,
                                    optimizer = "came8bit", sample_every = 0, log_every = 1000, eval = false,
                                    save_every = 1000, device = device, out = dir }
      os.execute("rm -rf " .. dir)
      return run.losses
    end
    local cpu, cuda = losses("cpu"), losses("cuda")
    for i = 1, 3 do
      local rel = math.abs(cuda[i] - cpu[i]) / math.abs(cpu[i])
      spec.assert(rel < 1e-4, string.format("step %d: loss %.7f on cuda, %.7f on cpu (relative %.2g)", i, cuda[i],
                                            cpu[i], rel))
    end
  end)

  spec.it("computes in bf16 from bf16-stored weights with the bits of f32-stored ones", function()
    local cfg = { depth = 2, width = 64, head_dim = 16, cross_heads = 2, mlp_ratio = 2.5, patch_size = 1,
                  in_channels = 4, out_channels = 4, caption_channels = 16, text_len = 6 }
    local g = grove.Generator(11)
    local x, t, text = grove.randn({ 2, 4, 4, 4 }, g), grove.tensor { 200, 800 }, grove.randn({ 2, 6, 16 }, g)
    local mask = grove.ones { 2, 6 }
    local function run(m)
      return grove.no_grad(function() return m:forward(x:cuda(), t:cuda(), text:cuda(), mask:cuda()) end):cpu()
    end
    local ref = grove.nn.Sana(cfg, { seed = 12 }):to("cuda", "bf16")
    local m = grove.nn.Sana(cfg, { seed = 12 }):to("cuda", "bf16", { weights = "bf16" })
    spec.eq(m.blocks[1].ff.conv_inverted.weight:dtype(), "bf16")
    spec.eq(m.blocks[1].ff.conv_inverted.weight:device(), "cuda")
    local want = run(ref)
    spec.eq((run(m) - want):abs():max():item(), 0, "bf16-stored weights on the device")
    -- and the CPU's bf16 compute, within the f32 summation bound's order
    local cpu = grove.no_grad(function()
      return grove.nn.Sana(cfg, { seed = 12 }):to("cpu", "bf16", { weights = "bf16" }):forward(x, t, text, mask)
    end)
    local rel = (cpu - want):abs():max():item() / want:abs():max():item()
    spec.assert(rel < 1e-4, string.format("cuda vs cpu in bf16: %.3g", rel))
  end)

  spec.it("runs the Gemma-2 text encoder (BF16 weights from a folder) as the CPU does", function()
    local json = grove.json
    local cfg = {
      architectures = json.array { "Gemma2Model" }, model_type = "gemma2", attention_bias = false,
      attention_dropout = 0.0, hidden_activation = "gelu_pytorch_tanh", hidden_size = 24, intermediate_size = 40,
      num_hidden_layers = 2, num_attention_heads = 4, num_key_value_heads = 2, head_dim = 8, vocab_size = 50,
      rms_norm_eps = 1e-6, rope_theta = 10000.0, query_pre_attn_scalar = 12, sliding_window = 3,
      attn_logit_softcapping = 2.0,
    }
    local dir = spec.tmpdir()
    spec.write_all(dir .. "/config.json", json.encode(cfg))
    local weights, g = {}, grove.Generator(3)
    for _, np in ipairs(grove.diffusers.text_encoder(dir, { meta = true }):named_parameters()) do
      weights[np[1]] = (grove.randn(np[2]:shape(), { generator = g }) * 0.3):bf16()
    end
    grove.diffusers.write_component(dir, cfg, weights, { weights_name = "model" })
    local enc = grove.diffusers.text_encoder(dir, { softcap = true })
    os.execute("rm -rf " .. dir)
    local ids = grove.tensor({ { 2, 5, 9, 13, 40, 0, 0 }, { 2, 7, 7, 1, 3, 8, 49 } }, { dtype = "i64" })
    local mask = grove.tensor({ { 1, 1, 1, 1, 1, 0, 0 }, { 1, 1, 1, 1, 1, 1, 1 } }, { dtype = "i64" })
    local cpu = enc:forward(ids, mask)
    enc:to("cuda")
    spec.eq(enc.layers["1"].mlp.up_proj.weight:device(), "cuda")
    spec.eq(enc.layers["1"].mlp.up_proj.weight:dtype(), "bf16")
    local gpu = enc:forward(ids, mask)
    spec.eq(gpu:device(), "cuda")
    local m = mask:float():unsqueeze(-1)
    local rel = ((gpu:cpu() - cpu) * m):abs():max():item() / (cpu * m):abs():max():item()
    spec.assert(rel < 1e-5, string.format("cuda vs cpu: %.3g", rel))
  end)
end)
