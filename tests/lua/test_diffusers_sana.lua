-- The diffusers transformer (SanaTransformer2DModel) and its samplers
-- against the shared fixtures: diffusers' own code run in float64 on small
-- random models in the released layouts (../shared/fixtures/README.md).
-- Error measure everywhere: max |grove − ref| / max |ref|, bar 1e-4.
-- Also: every released config built with meta = true gives its published
-- parameter count, config and scheduler keys are read exactly, and a
-- transformer written as a folder reads back bit for bit.
local spec = require "spec"

local diffusers, json = grove.diffusers, grove.json
local fixtures = spec.fixture_path()
local sana = fixtures .. "/diffusers-sana"
local function exists(p)
  local f = io.open(p, "r")
  if f then f:close() return true end
  return false
end
local have_fixtures = exists(sana .. "/b_sana15/transformer/config.json")
local BAR = 1e-4

local function rel_err(a, ref)
  local d = (a:to("f32") - ref:to("f32")):abs():max():item()
  return d / ref:to("f32"):abs():max():item()
end
local function nhwc(t) return t:permute { 1, 3, 4, 2 }:contiguous() end
local function nchw(t) return t:permute { 1, 4, 2, 3 } end
local function rm_rf(dir) os.execute("rm -rf '" .. dir .. "'") end
local function close_to(what, a, ref)
  local e = rel_err(a, ref)
  spec.assert(e < BAR, string.format("%s: error %.3g (bar %g)", what, e, BAR))
  return e
end

-- ---- released configs --------------------------------------------------------------
-- The transformer configs of the released folders (Efficient-Large-Model/…
-- _diffusers on the Hugging Face hub), with the sizes of diffusers'
-- conversion script (scripts/convert_sana_to_diffusers.py). The Sana 1.0
-- entries have the key set of a folder written before qk_norm,
-- guidance_embeds and timestep_scale existed: a missing key means
-- diffusers' default.
local RELEASED = {
  { "Sana_600M_1024px_diffusers", 591747872, [[{
  "_class_name": "SanaTransformer2DModel", "_diffusers_version": "0.32.0.dev0",
  "attention_bias": false, "attention_head_dim": 32, "caption_channels": 2304, "cross_attention_dim": 1152,
  "cross_attention_head_dim": 72, "dropout": 0.0, "in_channels": 32, "mlp_ratio": 2.5,
  "norm_elementwise_affine": false, "norm_eps": 1e-06, "num_attention_heads": 36, "num_cross_attention_heads": 16,
  "num_layers": 28, "out_channels": 32, "patch_size": 1, "sample_size": 32}]] },
  { "Sana_1600M_1024px_diffusers", 1604462752, [[{
  "_class_name": "SanaTransformer2DModel", "_diffusers_version": "0.32.0.dev0",
  "attention_bias": false, "attention_head_dim": 32, "caption_channels": 2304, "cross_attention_dim": 2240,
  "cross_attention_head_dim": 112, "dropout": 0.0, "in_channels": 32, "mlp_ratio": 2.5,
  "norm_elementwise_affine": false, "norm_eps": 1e-06, "num_attention_heads": 70, "num_cross_attention_heads": 20,
  "num_layers": 20, "out_channels": 32, "patch_size": 1, "sample_size": 32}]] },
  { "Sana_1600M_4Kpx_BF16_diffusers", 1604462752, [[{
  "_class_name": "SanaTransformer2DModel", "_diffusers_version": "0.32.0.dev0",
  "attention_bias": false, "attention_head_dim": 32, "caption_channels": 2304, "cross_attention_dim": 2240,
  "cross_attention_head_dim": 112, "dropout": 0.0, "in_channels": 32, "interpolation_scale": 2.0, "mlp_ratio": 2.5,
  "norm_elementwise_affine": false, "norm_eps": 1e-06, "num_attention_heads": 70, "num_cross_attention_heads": 20,
  "num_layers": 20, "out_channels": 32, "patch_size": 1, "sample_size": 128}]] },
  { "SANA1.5_1.6B_1024px_diffusers", 1604641952, [[{
  "_class_name": "SanaTransformer2DModel", "_diffusers_version": "0.33.0.dev0",
  "attention_bias": false, "attention_head_dim": 32, "caption_channels": 2304, "cross_attention_dim": 2240,
  "cross_attention_head_dim": 112, "dropout": 0.0, "guidance_embeds": false, "guidance_embeds_scale": 0.1,
  "in_channels": 32, "interpolation_scale": null, "mlp_ratio": 2.5, "norm_elementwise_affine": false,
  "norm_eps": 1e-06, "num_attention_heads": 70, "num_cross_attention_heads": 20, "num_layers": 20,
  "out_channels": 32, "patch_size": 1, "qk_norm": "rms_norm_across_heads", "sample_size": 32,
  "timestep_scale": 1.0}]] },
  { "SANA1.5_4.8B_1024px_diffusers", 4721825952, [[{
  "_class_name": "SanaTransformer2DModel", "_diffusers_version": "0.33.0.dev0",
  "attention_bias": false, "attention_head_dim": 32, "caption_channels": 2304, "cross_attention_dim": 2240,
  "cross_attention_head_dim": 112, "dropout": 0.0, "guidance_embeds": false, "guidance_embeds_scale": 0.1,
  "in_channels": 32, "interpolation_scale": null, "mlp_ratio": 2.5, "norm_elementwise_affine": false,
  "norm_eps": 1e-06, "num_attention_heads": 70, "num_cross_attention_heads": 20, "num_layers": 60,
  "out_channels": 32, "patch_size": 1, "qk_norm": "rms_norm_across_heads", "sample_size": 32,
  "timestep_scale": 1.0}]] },
  { "Sana_Sprint_0.6B_1024px_diffusers", 593501216, [[{
  "_class_name": "SanaTransformer2DModel", "_diffusers_version": "0.33.0.dev0",
  "attention_bias": false, "attention_head_dim": 32, "caption_channels": 2304, "cross_attention_dim": 1152,
  "cross_attention_head_dim": 72, "dropout": 0.0, "guidance_embeds": true, "guidance_embeds_scale": 0.1,
  "in_channels": 32, "interpolation_scale": null, "mlp_ratio": 2.5, "norm_elementwise_affine": false,
  "norm_eps": 1e-06, "num_attention_heads": 36, "num_cross_attention_heads": 16, "num_layers": 28,
  "out_channels": 32, "patch_size": 1, "qk_norm": "rms_norm_across_heads", "sample_size": 32,
  "timestep_scale": 1.0}]] },
  { "Sana_Sprint_1.6B_1024px_diffusers", 1610237472, [[{
  "_class_name": "SanaTransformer2DModel", "_diffusers_version": "0.33.0.dev0",
  "attention_bias": false, "attention_head_dim": 32, "caption_channels": 2304, "cross_attention_dim": 2240,
  "cross_attention_head_dim": 112, "dropout": 0.0, "guidance_embeds": true, "guidance_embeds_scale": 0.1,
  "in_channels": 32, "interpolation_scale": null, "mlp_ratio": 2.5, "norm_elementwise_affine": false,
  "norm_eps": 1e-06, "num_attention_heads": 70, "num_cross_attention_heads": 20, "num_layers": 20,
  "out_channels": 32, "patch_size": 1, "qk_norm": "rms_norm_across_heads", "sample_size": 32,
  "timestep_scale": 1.0}]] },
}

spec.describe("released transformer configs", function()
  for _, r in ipairs(RELEASED) do
    spec.it(r[1] .. " built with meta = true has the published count", function()
      local dir = spec.tmpdir()
      os.execute("mkdir -p '" .. dir .. "/transformer'")
      spec.write_all(dir .. "/transformer/config.json", r[3])
      local T = diffusers.transformer(dir, { meta = true })
      spec.eq(T:num_parameters(), r[2])
      spec.assert(grove.nn.is_meta(T.proj_out.weight), "shapes only")
      -- the component folder itself reads the same
      spec.eq(diffusers.transformer(dir .. "/transformer", { meta = true }):num_parameters(), r[2])
      rm_rf(dir)
    end)
  end
end)

-- ---- config.json key by key -------------------------------------------------------
local BASE = json and json.decode(RELEASED[4][3]) or nil

local function meta_with(changes)
  local c = {}
  for k, v in pairs(BASE) do c[k] = v end
  for k, v in pairs(changes) do c[k] = v end
  local dir = spec.tmpdir()
  spec.write_all(dir .. "/config.json", json.encode(json.object(c)))
  local ok, r = pcall(diffusers.transformer, dir, { meta = true })
  rm_rf(dir)
  if not ok then error(r, 0) end
  return r
end

spec.describe("transformer config.json", function()
  spec.it("refuses an unknown key, naming the file and the key", function()
    spec.raises(function() meta_with { use_linear_projection = true } end, "config.json: key 'use_linear_projection'")
  end)
  spec.it("refuses values grove does not implement, naming the key", function()
    spec.raises(function() meta_with { qk_norm = "layer_norm" } end, "key 'qk_norm'")
    spec.raises(function() meta_with { dropout = 0.1 } end, "key 'dropout'")
    spec.raises(function() meta_with { cross_attention_dim = 1024 } end, "key 'cross_attention_dim'")
    spec.raises(function() meta_with { _class_name = "SD3Transformer2DModel" } end, "_class_name")
    spec.raises(function() meta_with { num_layers = 2.5 } end, "key 'num_layers'")
    -- a transformer without blocks (found by fuzz_config: corpus/config/regress-zero-layers.json)
    spec.raises(function() meta_with { num_layers = 0 } end, "key 'num_layers'")
    spec.raises(function() meta_with { attention_bias = "yes" } end, "key 'attention_bias'")
  end)
  spec.it("maps every option onto the model", function()
    local c = meta_with { attention_bias = true, norm_elementwise_affine = true, norm_eps = 1e-5,
                          interpolation_scale = 1.0, qk_norm = json.null, out_channels = json.null,
                          num_cross_attention_heads = 10, cross_attention_head_dim = 64 }
    local b = c.blocks[1]
    spec.assert(b.attn1.to_q.bias and b.attn1.to_k.bias and b.attn1.to_v.bias, "q/k/v biases")
    spec.assert(b.attn1.norm_q == nil and b.attn2.norm_q == nil, "no q/k norms")
    spec.eq(b.norm2.weight:shape()[1], 2240); spec.eq(b.norm2.eps, 1e-5)
    spec.eq(b.attn2.to_q.weight:shape()[1], 640); spec.eq(b.attn2.to_out["0"].weight:shape()[2], 640)
    spec.eq(c.config.out_channels, 32); spec.eq(c.config.interpolation_scale, 1.0)
    spec.eq(c.y_embedding, nil)
  end)
end)

-- ---- options without a fixture: checked against their definition ---------------------
spec.describe("transformer options", function()
  local base = { depth = 1, width = 16, head_dim = 8, cross_heads = 2, in_channels = 3, caption_channels = 5,
                 caption_dropout = 0, qk_norm = false, cross_norm = false }
  local function make(extra)
    local c = {}
    for k, v in pairs(base) do c[k] = v end
    for k, v in pairs(extra or {}) do c[k] = v end
    return grove.nn.Sana(c, { seed = 3 })
  end
  local x = grove.randn({ 2, 3, 4, 3 }, { generator = grove.Generator(1) })
  local text = grove.randn({ 2, 4, 5 }, { generator = grove.Generator(2) })
  local t = grove.tensor { 500, 20 }
  spec.it("attention_bias adds q/k/v biases that enter the self-attention", function()
    local a, b = make(), make { attention_bias = true }
    b:load_state_dict(a:state_dict(), { strict = false })
    local ya = grove.no_grad(function() return a:forward(x, t, text, nil) end)
    local yb = grove.no_grad(function() return b:forward(x, t, text, nil) end)
    spec.eq(spec.max_diff(ya, yb), 0)   -- zero biases: the same model
    grove.no_grad(function() b.blocks[1].attn1.to_v.bias:fill_(0.5) end)
    spec.assert(spec.max_diff(ya, grove.no_grad(function() return b:forward(x, t, text, nil) end)) > 1e-3, "the bias acts")
  end)
  spec.it("norm_elementwise_affine is LayerNorm with weight and bias before the modulation", function()
    local a, b = make(), make { norm_elementwise_affine = true }
    b:load_state_dict(a:state_dict(), { strict = false })
    local ya = grove.no_grad(function() return a:forward(x, t, text, nil) end)
    spec.assert(spec.max_diff(ya, grove.no_grad(function() return b:forward(x, t, text, nil) end)) < 1e-6, "w = 1, b = 0")
    -- a weight w and bias b: the FF branch sees (LN(x)·w + b)(1 + scale) + shift
    local seen = {}
    local ff = b.blocks[1].ff
    local orig = ff.conv_inverted.forward
    ff.conv_inverted.forward = function(self, v) seen[#seen + 1] = v; return orig(self, v) end
    grove.no_grad(function() b.blocks[1].norm2.weight:fill_(2); b.blocks[1].norm2.bias:fill_(0.25) end)
    local hooks = {}
    grove.no_grad(function() b:forward(x, t, text, nil, { hook = function(i, xin, xout) hooks[i] = xin end }) end)
    ff.conv_inverted.forward = orig
    -- recompute the FF input from the block's own pieces
    grove.no_grad(function()
      local blk, B = b.blocks[1], 2
      local _, t0, y = b:condition(t, text)
      local m = t0:view { B, 6, 16 } + blk.scale_shift_table
      local h = hooks[1]
      h = h:gated_residual(m:select(2, 3), blk.attn1.to_out["0"]:forward(grove.linear_attention(
        blk.attn1.to_q:forward(h:norm_modulate(m:select(2, 1), m:select(2, 2), 1e-6)),
        blk.attn1.to_k:forward(h:norm_modulate(m:select(2, 1), m:select(2, 2), 1e-6)),
        blk.attn1.to_v:forward(h:norm_modulate(m:select(2, 1), m:select(2, 2), 1e-6)), 8, 1e-15)))
      local a2 = blk.attn2
      h = h + a2.to_out["0"]:forward(grove.cross_attention(a2.to_q:forward(h), a2.to_k:forward(y), a2.to_v:forward(y), nil, 2))
      local want = (h:layer_norm(nil, nil, 1e-6) * 2 + 0.25) * (m:select(2, 5):unsqueeze(2) + 1) + m:select(2, 4):unsqueeze(2)
      spec.assert(spec.max_diff(seen[1], want) < 1e-5, "FF input " .. spec.max_diff(seen[1], want))
    end)
  end)
  spec.it("the mask may be of any integer or float dtype: nonzero keeps", function()
    local m = make()
    local mask = grove.tensor({ { 1, 1, 0, 0 }, { 1, 0, 1, 0 } })
    local ref = grove.no_grad(function() return m:forward(x, t, text, mask) end)
    for _, dt in ipairs { "u8", "i8", "i32", "i64", "f16", "bf16" } do
      local y = grove.no_grad(function() return m:forward(x, t, text, mask:to(dt)) end)
      spec.eq(spec.max_diff(y, ref), 0)
    end
    local y = grove.no_grad(function() return m:forward(x, t, text, (mask * 7):to("i64")) end)
    spec.eq(spec.max_diff(y, ref), 0)
    spec.raises(function() m:forward(x, t, text, grove.ones { 2, 3 }) end, "mask must be (2, 4)")
  end)
  spec.it("guidance is refused by a model without guidance_embeds and required by one with it", function()
    spec.raises(function() make():forward(x, t, text, nil, { guidance = 0.45 }) end, "no guidance embedding")
    spec.raises(function() make { guidance_embeds = true }:forward(x, t, text, nil) end, "give opts.guidance")
  end)
  spec.it("sampling with cfg > 1 and neither negative features nor a learned null is an error", function()
    local m = make()
    spec.raises(function() m:sample { noise = x, text = text, steps = 2 } end, "needs opts.negative_text")
    local neg = grove.zeros { 2, 4, 5 }
    local a = m:sample { noise = x, text = text, steps = 2, negative_text = neg }
    local b = m:sample { noise = x, text = text, steps = 2, cfg = 1 }
    spec.assert(spec.max_diff(a, b) > 1e-4, "guided differs from unguided")
  end)
end)

-- ---- the fixtures ---------------------------------------------------------------------
local CASES = { "b_sana15", "c_sana4k", "d_sprint", "e_teacher" }

spec.describe("diffusers-sana fixtures", function()
  if not have_fixtures then
    spec.skip("the shared fixtures are not at " .. sana .. " (set GROVE_FIXTURES)")
    return
  end
  for _, name in ipairs(CASES) do
    spec.it(name .. ": forward and intermediates within 1e-4 of diffusers' float64", function()
      local T = diffusers.transformer(sana .. "/" .. name)
      for _, suffix in ipairs { "", "_8x8" } do
        local pin = sana .. "/" .. name .. "/forward_in" .. suffix .. ".safetensors"
        if exists(pin) then
          local i = grove.load_safetensors(pin)
          local o = grove.load_safetensors(sana .. "/" .. name .. "/forward_out" .. suffix .. ".safetensors")
          local inter = {}
          local y = grove.no_grad(function()
            return T:forward(nhwc(i.hidden_states), i.timestep, i.encoder_hidden_states, i.encoder_attention_mask,
                             { guidance = i.guidance, inter = inter })
          end)
          close_to(name .. suffix .. " sample", nchw(y), o.sample)
          local n = 0
          for k, ref in pairs(o) do
            if k:sub(1, 6) == "inter." then
              spec.assert(inter[k:sub(7)], "no intermediate " .. k)
              close_to(name .. " " .. k, inter[k:sub(7)], ref)
              n = n + 1
            end
          end
          if name ~= "e_teacher" and suffix == "" then spec.eq(n, 9) end
        end
      end
    end)
  end

  spec.it("d_sprint's BF16 weights stay BF16 and no f32 copy outlives a forward", function()
    local T = diffusers.transformer(sana .. "/d_sprint/transformer")
    for _, np in ipairs(T:named_parameters()) do spec.eq(np[2]:dtype(), "bf16", np[1]) end
    local i = grove.load_safetensors(sana .. "/d_sprint/forward_in.safetensors")
    local x = nhwc(i.hidden_states)
    collectgarbage(); collectgarbage()
    local before = grove.memory("cpu").live_bytes
    grove.no_grad(function()
      T:forward(x, i.timestep, i.encoder_hidden_states, i.encoder_attention_mask, { guidance = i.guidance })
    end)
    collectgarbage(); collectgarbage()
    spec.eq(grove.memory("cpu").live_bytes, before)
  end)

  -- Step by step: what the pipeline feeds the transformer, what comes out,
  -- and the latents after each scheduler step (tests/lua/sana_steps.lua).
  local steps = require "sana_steps"
  local function check_steps(name, kind)
    steps.check(sana, name, kind, function(dir, opts) return diffusers.sample(diffusers.transformer(dir), opts) end)
  end

  spec.it("b_sana15: DPM-Solver++ (4 steps, CFG 4.5) step by step", function()
    check_steps("b_sana15", "dpm")
  end)
  spec.it("b_sana15: flow Euler (4 steps, CFG 4.5) step by step", function()
    check_steps("b_sana15", "euler")
  end)
  spec.it("e_teacher: DPM-Solver++ with timestep_scale 0.001 step by step", function()
    check_steps("e_teacher", "dpm")
  end)
  spec.it("d_sprint: SCM (2 steps, guidance 4.5) step by step", function()
    check_steps("d_sprint", "scm")
  end)

  spec.it("a scheduler folder's settings are honoured (flow_shift 6, SanaPipeline 4K)", function()
    local dir = spec.tmpdir()
    os.execute("mkdir -p '" .. dir .. "/scheduler'")
    spec.write_all(dir .. "/scheduler/scheduler_config.json", [[{"_class_name": "DPMSolverMultistepScheduler",
      "algorithm_type": "dpmsolver++", "beta_end": 0.02, "beta_schedule": "linear", "beta_start": 0.0001,
      "dynamic_thresholding_ratio": 0.995, "euler_at_final": false, "final_sigmas_type": "zero", "flow_shift": 6.0,
      "lambda_min_clipped": "-Infinity", "lower_order_final": true, "num_train_timesteps": 1000,
      "prediction_type": "flow_prediction", "rescale_betas_zero_snr": false, "sample_max_value": 1.0,
      "solver_order": 2, "solver_type": "midpoint", "steps_offset": 0, "thresholding": false,
      "timestep_spacing": "linspace", "trained_betas": null, "use_beta_sigmas": false,
      "use_exponential_sigmas": false, "use_flow_sigmas": true, "use_karras_sigmas": false,
      "use_lu_lambdas": false, "variance_type": null}]])
    local T = diffusers.transformer(sana .. "/b_sana15")
    local i = grove.load_safetensors(sana .. "/b_sana15/sample_dpm_in.safetensors")
    local _, info = diffusers.sample(T, { scheduler = dir, prompt_embeds = i.prompt_embeds, mask = i.prompt_attention_mask,
      negative_embeds = i.negative_prompt_embeds, negative_mask = i.negative_prompt_attention_mask,
      latents = nhwc(i.latents), steps = 4 })
    -- σ = 6s / (1 + 5s) on s = 1 − linspace(1, 0.001, 5)
    spec.eq(spec.join(info.timesteps), "999,947,856,666")
    spec.near(info.sigmas[1], 6 * 0.999 / (1 + 5 * 0.999), 1e-7)
    -- a transformer read from that pipeline folder samples with its scheduler
    os.execute("cp -r '" .. sana .. "/b_sana15/transformer' '" .. dir .. "/transformer'")
    local T2 = diffusers.transformer(dir)
    local _, info2 = diffusers.sample(T2, { prompt_embeds = i.prompt_embeds, mask = i.prompt_attention_mask,
      negative_embeds = i.negative_prompt_embeds, latents = nhwc(i.latents), steps = 4 })
    spec.eq(spec.join(info2.timesteps), "999,947,856,666")
    -- another sampler asked for by name takes its own official config
    local _, info3 = diffusers.sample(T2, { sampler = "euler", prompt_embeds = i.prompt_embeds,
      negative_embeds = i.negative_prompt_embeds, latents = nhwc(i.latents), steps = 4 })
    spec.near(info3.sigmas[4], 0.0089285718277097, 1e-9)
    rm_rf(dir)
  end)

  spec.it("DPM-Solver++ second order step, midpoint and heun, as diffusers writes it", function()
    local T = diffusers.transformer(sana .. "/b_sana15")
    local i = grove.load_safetensors(sana .. "/b_sana15/sample_dpm_in.safetensors")
    for _, solver in ipairs { "midpoint", "heun" } do
      local xs, outs = { nhwc(i.latents) }, {}
      local _, info = diffusers.sample(T, { prompt_embeds = i.prompt_embeds, mask = i.prompt_attention_mask, cfg = 1,
        latents = nhwc(i.latents), steps = 3,
        scheduler = { _class_name = "DPMSolverMultistepScheduler", use_flow_sigmas = true, flow_shift = 3.0,
                      prediction_type = "flow_prediction", solver_type = solver },
        callback = function(k, inf) xs[k + 1] = inf.latents; outs[k] = inf.model_out end })
      -- step 2 from the model outputs: x_t = (σ_t/σ_s0)·x − α_t(e^{−h} − 1)·D0 + c·D1
      local sg = info.sigmas
      local lam = function(z) return math.log(1 - z) - math.log(z) end
      local h, h0 = lam(sg[3]) - lam(sg[2]), lam(sg[2]) - lam(sg[1])
      local a_t, e = 1 - sg[3], math.exp(-h)
      local D0 = xs[2] - outs[2] * sg[2]
      local D1 = (D0 - (xs[1] - outs[1] * sg[1])) * (h / h0)
      local c = solver == "midpoint" and -0.5 * a_t * (e - 1) or a_t * ((e - 1) / h + 1)
      local want = xs[2] * (sg[3] / sg[2]) - D0 * (a_t * (e - 1)) + D1 * c
      spec.assert(rel_err(xs[3], want) < 1e-5, solver .. ": " .. rel_err(xs[3], want))
    end
  end)

  spec.it("scheduler configs are read key by key", function()
    local T = diffusers.transformer(sana .. "/b_sana15")
    local i = grove.load_safetensors(sana .. "/b_sana15/sample_dpm_in.safetensors")
    local function run(sc, extra)
      local o = { scheduler = sc, prompt_embeds = i.prompt_embeds, mask = i.prompt_attention_mask,
                  negative_embeds = i.negative_prompt_embeds, latents = nhwc(i.latents), steps = 2 }
      for k, v in pairs(extra or {}) do o[k] = v end
      return diffusers.sample(T, o)
    end
    spec.raises(function() run { _class_name = "DPMSolverMultistepScheduler", use_flow_sigmas = true,
      prediction_type = "flow_prediction", karras = true } end, "key 'karras' is not implemented")
    spec.raises(function() run { _class_name = "DPMSolverMultistepScheduler", use_flow_sigmas = true,
      prediction_type = "flow_prediction", thresholding = true } end, "key 'thresholding'")
    spec.raises(function() run { _class_name = "DPMSolverMultistepScheduler", use_flow_sigmas = true,
      prediction_type = "flow_prediction", solver_order = 3 } end, "key 'solver_order'")
    spec.raises(function() run { _class_name = "EulerDiscreteScheduler" } end, "_class_name 'EulerDiscreteScheduler'")
    spec.raises(function() run({ _class_name = "FlowMatchEulerDiscreteScheduler", shift = 3.0 }, { sampler = "dpm" }) end,
                "opts.sampler is 'dpm'")
    -- without negative features (and no learned null) guidance is refused
    spec.raises(function()
      diffusers.sample(T, { prompt_embeds = i.prompt_embeds, latents = nhwc(i.latents), steps = 2 })
    end, "needs negative text features")
    -- cfg = 1: the unguided pipeline, one batch
    local x = diffusers.sample(T, { prompt_embeds = i.prompt_embeds, mask = i.prompt_attention_mask,
                                    latents = nhwc(i.latents), steps = 2, cfg = 1 })
    spec.eq(x:shape_str(), "[1,4,6,4]")
  end)

  spec.it("a scheduler is a Lua file + register", function()
    local T = diffusers.transformer(sana .. "/b_sana15")
    local i = grove.load_safetensors(sana .. "/b_sana15/sample_euler_in.safetensors")
    local mine = {}
    for k, v in pairs(diffusers.schedulers.euler) do mine[k] = v end
    mine.class = "MyFlowEuler"
    local calls = 0
    mine.step = function(ctx, k, x, v) calls = calls + 1; return diffusers.schedulers.euler.step(ctx, k, x, v) end
    diffusers.register_scheduler("my_euler", mine)
    local function run(sc)
      return diffusers.sample(T, { scheduler = sc, prompt_embeds = i.prompt_embeds, mask = i.prompt_attention_mask,
        negative_embeds = i.negative_prompt_embeds, negative_mask = i.negative_prompt_attention_mask,
        latents = nhwc(i.latents), steps = 3 })
    end
    local a = run { _class_name = "MyFlowEuler", shift = 3.0 }
    local b = run { _class_name = "FlowMatchEulerDiscreteScheduler", shift = 3.0 }
    spec.eq(calls, 3); spec.eq(spec.max_diff(a, b), 0)
    diffusers.schedulers.my_euler = nil
    spec.raises(function() diffusers.register_scheduler("bad", { class = "X" }) end, "scheduler 'bad' needs a table used")
  end)

  spec.it("model:sample of a folder's transformer runs its pipeline", function()
    local T = diffusers.transformer(sana .. "/b_sana15")
    local i = grove.load_safetensors(sana .. "/b_sana15/sample_dpm_in.safetensors")
    local o = grove.load_safetensors(sana .. "/b_sana15/sample_dpm_out.safetensors")
    local x = T:sample { noise = nhwc(i.latents), text = i.prompt_embeds, mask = i.prompt_attention_mask,
                         negative_text = i.negative_prompt_embeds, negative_mask = i.negative_prompt_attention_mask,
                         steps = 4, cfg = 4.5 }
    close_to("model:sample", nchw(x), o.latents)
  end)

  spec.it("config, names and shapes: each mismatch is an error naming the tensor", function()
    local dir = spec.tmpdir()
    os.execute("cp -r '" .. sana .. "/c_sana4k/transformer' '" .. dir .. "/t'")
    local cfgp = dir .. "/t/config.json"
    local orig = json.read(cfgp)
    local function with(k, v)
      local c = {}
      for kk, vv in pairs(orig) do c[kk] = vv end
      c[k] = v
      os.execute("chmod u+w '" .. cfgp .. "'")
      spec.write_all(cfgp, json.encode(json.object(c)))
    end
    with("qk_norm", "rms_norm_across_heads")
    spec.raises(function() diffusers.transformer(dir .. "/t") end, "tensor 'transformer_blocks.0.attn1.norm_q.weight' is missing")
    with("mlp_ratio", 3.0)
    spec.raises(function() diffusers.transformer(dir .. "/t") end, "tensor 'transformer_blocks.0.ff.conv_inverted.weight' has shape")
    with("guidance_embeds", true)
    spec.raises(function() diffusers.transformer(dir .. "/t") end, "time_embed")
    with("caption_channels", 24)
    spec.assert(diffusers.transformer(dir .. "/t"), "the original config reads")
    -- b_sana15's weights under a config without qk-norm: its norms are extra tensors
    local dir2 = spec.tmpdir()
    os.execute("cp -r '" .. sana .. "/b_sana15/transformer' '" .. dir2 .. "/t' && chmod u+w '" .. dir2 .. "/t/config.json'")
    local c = json.read(dir2 .. "/t/config.json")
    c.qk_norm = json.null
    spec.write_all(dir2 .. "/t/config.json", json.encode(c))
    spec.raises(function() diffusers.transformer(dir2 .. "/t") end,
                "tensor 'transformer_blocks.0.attn1.norm_k.weight' is not part of a SanaTransformer2DModel with this config")
    rm_rf(dir); rm_rf(dir2)
  end)

  spec.it("a transformer saved as a folder reads back bit for bit (sharded, BF16)", function()
    for _, name in ipairs { "b_sana15", "d_sprint" } do
      local T = diffusers.transformer(sana .. "/" .. name)
      local dir = spec.tmpdir()
      local r = diffusers.save(dir .. "/transformer", T, { max_shard_bytes = 40000 })
      spec.assert(#r.files > 2, "sharded")
      local back = diffusers.transformer(dir)
      local a, b = T:named_parameters(), back:named_parameters()
      spec.eq(#a, #b)
      for k = 1, #a do
        spec.eq(a[k][1], b[k][1]); spec.eq(a[k][2]:dtype(), b[k][2]:dtype(), a[k][1])
        spec.eq(spec.max_diff(a[k][2]:to("f32"), b[k][2]:to("f32")), 0, a[k][1])
      end
      local c1, c2 = diffusers.transformer_diffusers_config(T), json.read(dir .. "/transformer/config.json")
      for k, v in pairs(c1) do
        if k ~= "_diffusers_version" then spec.eq(tostring(c2[k]), tostring(v), k) end
      end
      rm_rf(dir)
    end
  end)
end)

spec.describe("grove models as diffusers folders", function()
  spec.it("a grove model with its learned null caption saves and reads back", function()
    local m = grove.nn.Sana({ depth = 2, width = 32, head_dim = 8, cross_heads = 4, in_channels = 4, caption_channels = 6,
                              text_len = 5, interpolation_scale = 1.0, sample_size = 8 }, { seed = 4 })
    local dir = spec.tmpdir()
    diffusers.save(dir, m)
    local back = diffusers.transformer(dir)
    spec.assert(back.y_embedding, "null caption kept")
    local x = grove.randn({ 1, 4, 6, 4 }, { generator = grove.Generator(3) })
    local text = grove.randn({ 1, 5, 6 }, { generator = grove.Generator(4) })
    local t = grove.tensor { 321 }
    local a = grove.no_grad(function() return m:forward(x, t, text, nil) end)
    local b = grove.no_grad(function() return back:forward(x, t, text, nil) end)
    spec.eq(spec.max_diff(a, b), 0)
    -- the same folder in bf16: text features of any float dtype, and the
    -- learned null caption, compute in f32
    local tensors = {}
    for _, np in ipairs(back:named_parameters()) do tensors[np[1]] = np[2]:detach():to("bf16") end
    diffusers.write_component(dir .. "/bf16", json.read(dir .. "/config.json"), tensors)
    local half = diffusers.transformer(dir .. "/bf16")
    spec.eq(half.y_embedding:dtype(), "bf16")
    local c = grove.no_grad(function() return half:forward(x, t, text:to("bf16"), nil) end)
    spec.assert(rel_err(c, a) < 2e-2, "bf16 weights: " .. rel_err(c, a))
    local s1 = half:sample { noise = x, text = text, steps = 2 }   -- CFG against the null caption
    spec.eq(s1:shape_str(), "[1,4,6,4]")
    -- f16: the same exact conversion (each weight is what its f32 copy rounds to)
    for _, np in ipairs(back:named_parameters()) do tensors[np[1]] = np[2]:detach():to("f16") end
    diffusers.write_component(dir .. "/f16", json.read(dir .. "/config.json"), tensors)
    local h16 = diffusers.transformer(dir .. "/f16")
    spec.eq(h16.proj_out.weight:dtype(), "f16")
    local f32s = {}
    for n, t in pairs(tensors) do f32s[n] = t:to("f32") end
    local r16 = diffusers.transformer_from(json.read(dir .. "/config.json"), {
      names = function() local l = {} for n in pairs(f32s) do l[#l + 1] = n end return l end,
      info = function(_, n) return { dtype = "f32", shape = f32s[n]:shape() } end,
      load = function(_, n) return f32s[n] end })
    local y16 = grove.no_grad(function() return h16:forward(x, t, text, nil) end)
    local y32 = grove.no_grad(function() return r16:forward(x, t, text, nil) end)
    spec.eq(spec.max_diff(y16, y32), 0)
    rm_rf(dir)
  end)
  spec.it("refuses a model diffusers cannot describe", function()
    local m = grove.nn.Sana({ depth = 1, width = 16, head_dim = 8, cross_heads = 2, in_channels = 4, caption_channels = 6,
                              cross_norm = false }, { seed = 1 })
    local dir = spec.tmpdir()
    spec.raises(function() diffusers.save(dir .. "/t", m) end, "qk-norm on one attention only")
    spec.raises(function() diffusers.save(dir .. "/t", {}) end, "expected a module")
    spec.assert(not exists(dir .. "/t/config.json"), "nothing written")
    rm_rf(dir)
  end)
end)
