-- grove.diffusers.text_encoder (Gemma-2) and encode_prompt: the shared
-- fixtures' float64 outputs of transformers' own Gemma2Model (with and
-- without soft-capping) and of SanaPipeline.encode_prompt; an independent
-- PyTorch reference (tests/reference/gemma2_ref.py) on other random configs
-- in F32 and in sharded BF16; the real Gemma-2-2B built as shapes only; the
-- config and weight errors.
local spec = require "spec"

local root = debug.getinfo(1, "S").source:match("^@(.*)/tests/lua/[^/]*$") or "."
local python = os.getenv("GROVE_TORCH_PYTHON") or "/usr/bin/python3"
local diffusers = grove.diffusers
local json = grove.json
local fixtures = spec.fixture_path()

-- max |a − b| / max |b| over the real positions (mask (B, L) nonzero) of
-- (B, L, C) tensors.
local function err(a, b, mask)
  local m = mask:float():unsqueeze(-1)
  return ((a - b) * m):abs():max():item() / (b * m):abs():max():item()
end

local function write_json(path, v) spec.write_all(path, json.encode(v)) end

-- The fixture's config with changes (DROP removes a key).
local DROP = {}
local function fixture_config(fx, changes)
  local c = json.read(fx .. "/a/config.json")
  for k, v in pairs(changes or {}) do
    if v == DROP then c[k] = nil else c[k] = v end
  end
  return c
end

-- A copy of the fixture's folder a/ with another config.json and,
-- optionally, other weights.
local function variant(fx, changes, tensors)
  local dir = spec.tmpdir()
  write_json(dir .. "/config.json", fixture_config(fx, changes))
  if tensors then grove.save_safetensors(dir .. "/model.safetensors", tensors)
  else spec.run("cp " .. fx .. "/a/model.safetensors " .. dir .. "/") end
  return dir
end

spec.describe("Gemma-2 encoder: the fixtures (transformers' Gemma2Model, float64)", function()
  local fx = fixtures .. "/gemma2"
  if grove.C.grove_path_kind(fx) ~= grove.C.GROVE_PATH_DIR then
    spec.skip("the shared fixtures are not at " .. fx .. " (set GROVE_FIXTURES)")
    return
  end
  local bars = { sana = 1e-3, negative = 1e-4, short = 1e-4 }
  local encs = {}
  local function enc(softcap)
    encs[softcap] = encs[softcap] or diffusers.text_encoder(fx .. "/a", { softcap = softcap })
    return encs[softcap]
  end

  for _, case in ipairs { "short", "negative", "sana" } do
    for _, softcap in ipairs { false, true } do
      local name = "out_" .. case .. (softcap and "" or "_nosoftcap")
      spec.it(name .. " within " .. bars[case] .. " on the real positions", function()
        local toks = grove.load_safetensors(fx .. "/a/tokens_" .. case .. ".safetensors")
        local out = grove.load_safetensors(fx .. "/a/" .. name .. ".safetensors")
        local h = enc(softcap):forward(toks.input_ids, toks.attention_mask)
        spec.eq(spec.join(h:shape()), spec.join(out.last_hidden_state:shape()), "shape")
        local e = err(h, out.last_hidden_state, toks.attention_mask)
        spec.assert(e <= bars[case], string.format("%s: error %.3e over the bar %g", name, e, bars[case]))
        print(string.format("    %-22s %.2e", name, e))
      end)
    end
  end

  spec.it("compute bf16: bf16-stored projections give the f32-stored bf16 output bit for bit", function()
    local toks = grove.load_safetensors(fx .. "/a/tokens_short.safetensors")
    local out = grove.load_safetensors(fx .. "/a/out_short_nosoftcap.safetensors")
    local e32 = diffusers.text_encoder(fx .. "/a"):to("cpu", "bf16")
    local e16 = diffusers.text_encoder(fx .. "/a"):to("cpu", "bf16", { weights = "bf16" })
    spec.eq(e16.layers["0"].self_attn.q_proj.weight:dtype(), "bf16")
    spec.eq(e16.layers["0"].input_layernorm.weight:dtype(), "f32", "norms stay f32")
    spec.eq(e16.embed_tokens.weight:dtype(), "f32", "the embedding is no GEMM")
    local h32 = e32:forward(toks.input_ids, toks.attention_mask)
    local h16 = e16:forward(toks.input_ids, toks.attention_mask)
    spec.eq((h16 - h32):abs():max():item(), 0, "same bits")
    -- bf16 GEMMs: near the float64 reference, further than f32
    local e = err(h16, out.last_hidden_state, toks.attention_mask)
    local e_f32 = err(enc(false):forward(toks.input_ids, toks.attention_mask), out.last_hidden_state,
                      toks.attention_mask)
    print(string.format("    compute bf16 vs float64 %.2e (f32 %.2e)", e, e_f32))
    -- (a 3-layer random encoder of width 64: the max error relative to the max value, 7.8e-2 here)
    spec.assert(e > e_f32 and e < 0.2, "bf16 error " .. e)
  end)

  spec.it("soft-capping is off by default and the description says so", function()
    local e = diffusers.text_encoder(fx .. "/a")
    spec.eq(e.softcap, false, "default")
    spec.assert(tostring(e):find("soft-cap off", 1, true), tostring(e))
    spec.assert(tostring(enc(true)):find("soft-cap 50 on", 1, true), tostring(enc(true)))
    -- and it matters: the two fixtures differ, and so do grove's outputs
    local toks = grove.load_safetensors(fx .. "/a/tokens_short.safetensors")
    local a = e:forward(toks.input_ids, toks.attention_mask)
    local b = enc(true):forward(toks.input_ids, toks.attention_mask)
    spec.assert(err(a, b, toks.attention_mask) > 1e-3, "soft-capping changes the output")
  end)

  spec.it("encode_prompt gives SanaPipeline.encode_prompt's prompt_embeds and mask (out_sana_nosoftcap)", function()
    local tok = diffusers.tokenizer(fx .. "/tokenizer.model")
    local prompts = json.read(fx .. "/prompts.json")
    local out = grove.load_safetensors(fx .. "/a/out_sana_nosoftcap.safetensors")
    local feats, fmask = diffusers.encode_prompt({ text_encoder = enc(false), tokenizer = tok }, prompts.sana.prompts,
                                                 { max_length = 300 })
    spec.eq(spec.join(feats:shape()), spec.join(out.prompt_embeds:shape()), "features shape")
    spec.eq(fmask:dtype(), "i64", "mask dtype")
    spec.eq(spec.max_diff(fmask:float(), out.prompt_attention_mask:float()), 0, "mask")
    local e = err(feats, out.prompt_embeds, out.prompt_attention_mask)
    spec.assert(e <= 1e-3, string.format("prompt_embeds: error %.3e", e))
    print(string.format("    prompt_embeds          %.2e", e))
  end)

  spec.it("encode_prompt's negative path: no instruction, no selection (out_negative_nosoftcap)", function()
    local tok = diffusers.tokenizer(fx .. "/tokenizer.model")
    local toks = grove.load_safetensors(fx .. "/a/tokens_negative.safetensors")
    local out = grove.load_safetensors(fx .. "/a/out_negative_nosoftcap.safetensors")
    local feats, fmask = diffusers.encode_prompt({ text_encoder = enc(false), tokenizer = tok }, { "" },
                                                 { negative = true, max_length = 300 })
    spec.eq(spec.max_diff(fmask:float(), toks.attention_mask:float()), 0, "mask")
    spec.assert(err(feats, out.last_hidden_state, toks.attention_mask) <= 1e-4, "features")
    spec.raises(function()
      diffusers.encode_prompt({ text_encoder = enc(false), tokenizer = tok }, { "" }, { negative = true, instruction = true })
    end, "the negative path has no instruction")
    spec.raises(function()
      diffusers.encode_prompt({ text_encoder = enc(false), tokenizer = tok }, { "" }, { max_len = 3 })
    end, "unknown option 'max_len'")
  end)

  spec.it("reads the encoder from a pipeline folder (text_encoder/ beside the others)", function()
    local dir = spec.tmpdir()
    spec.run("mkdir -p " .. dir .. "/text_encoder && cp " .. fx .. "/a/config.json " .. fx .. "/a/model.safetensors "
             .. dir .. "/text_encoder/")
    local e = diffusers.text_encoder(dir)
    local toks = grove.load_safetensors(fx .. "/a/tokens_short.safetensors")
    local out = grove.load_safetensors(fx .. "/a/out_short_nosoftcap.safetensors")
    spec.assert(err(e:forward(toks.input_ids, toks.attention_mask), out.last_hidden_state, toks.attention_mask) <= 1e-4,
                "pipeline folder")
    spec.run("rm -rf " .. dir)
  end)

  spec.it("saves as a text_encoder folder (grove.diffusers.save) that reads back bit for bit", function()
    local e = enc(false)
    local dir = spec.tmpdir()
    local written = diffusers.save(dir .. "/te", e, { max_shard_bytes = 200000 })
    spec.assert(#written.files > 2, "shards and an index: " .. spec.join(written.files))
    local back = diffusers.text_encoder(dir .. "/te")
    local a, b = e:named_parameters(), back:named_parameters()
    spec.eq(#a, #b, "tensors")
    for i = 1, #a do
      spec.eq(a[i][1], b[i][1], "names")
      spec.eq(a[i][2]:dtype(), b[i][2]:dtype(), a[i][1])
      spec.eq(spec.max_diff(a[i][2]:float(), b[i][2]:float()), 0, a[i][1])
    end
    spec.eq(spec.join(json.read(dir .. "/te/config.json").architectures), "Gemma2Model", "config")
    spec.run("rm -rf " .. dir)
    spec.raises(function() diffusers.save(dir, diffusers.text_encoder(fx .. "/a", { meta = true })) end, "meta = true")
  end)

  spec.it("accepts a mask of any integer or float dtype, and none", function()
    local toks = grove.load_safetensors(fx .. "/a/tokens_short.safetensors")
    local e = enc(false)
    local base = e:forward(toks.input_ids, toks.attention_mask)
    for _, dt in ipairs { "f32", "u8", "i32" } do
      spec.eq(spec.max_diff(e:forward(toks.input_ids, toks.attention_mask:to(dt)), base), 0, dt)
    end
    -- rows 2 and 3 have no padding: no mask gives the same there
    local ids, mask = toks.input_ids:narrow(1, 2, 2), toks.attention_mask:narrow(1, 2, 2)
    spec.eq(spec.max_diff(e:forward(ids), e:forward(ids, mask)), 0, "no mask")
  end)

  spec.it("refuses bad ids and masks with clear errors", function()
    local e = enc(false)
    spec.raises(function() e:forward(grove.tensor { 1, 2, 3 }) end, "ids must be a (batch, length) tensor")
    spec.raises(function() e:forward(grove.tensor({ { 1, 2 } })) end, "ids must be i64 or i32")
    spec.raises(function() e:forward(grove.tensor({ { 1, 2 } }, { dtype = "i64" }), grove.ones { 1, 3 }) end,
                "mask must be (batch, length) = [1,2]")
    spec.raises(function() e:forward(grove.tensor({ { 1, 1000 } }, { dtype = "i64" })) end, "1000")
  end)

  spec.it("refuses config keys it does not implement, naming the file and the key", function()
    local cases = {
      { { rope_scaling = { type = "linear", factor = 2 } }, "rope_scaling" },
      { { attention_bias = true }, "'attention_bias' is true" },
      { { hidden_activation = "gelu" }, "hidden_activation 'gelu' is not implemented" },
      { { sliding_window_size = 4 }, "key 'sliding_window_size' is not implemented" },
      { { model_type = "gemma" }, "'model_type' is gemma" },
      { { architectures = json.array { "GemmaModel" } }, "architectures must be [\"Gemma2Model\"]" },
      { { head_dim = 12 }, "has shape [64,64], but config.json gives [48,64]" },
      { { num_key_value_heads = 3 }, "not a multiple of num_key_value_heads 3" },
      { { rms_norm_eps = json.null }, "'rms_norm_eps' must be a positive number" },
      { { query_pre_attn_scalar = DROP }, "key 'query_pre_attn_scalar' is missing" },
      { { num_hidden_layers = 0 }, "'num_hidden_layers' must be an integer >= 1, got 0" },
    }
    for _, c in ipairs(cases) do
      local dir = variant(fx, c[1])
      spec.raises(function() diffusers.text_encoder(dir) end, c[2])
      spec.raises(function() diffusers.text_encoder(dir) end, dir)
      spec.run("rm -rf " .. dir)
    end
    -- the inert keys may go: they change nothing
    local dir = variant(fx, { use_cache = DROP, cache_implementation = DROP, final_logit_softcapping = DROP })
    spec.assert(diffusers.text_encoder(dir), "inert keys absent")
    spec.run("rm -rf " .. dir)
    dir = variant(fx, { attn_logit_softcapping = json.null })
    spec.assert(tostring(diffusers.text_encoder(dir)):find("soft-cap off", 1, true), "no cap in the config")
    spec.raises(function() diffusers.text_encoder(dir, { softcap = true }) end, "attn_logit_softcapping is null")
    spec.run("rm -rf " .. dir)
    spec.raises(function() diffusers.text_encoder(fx .. "/a", { softcap = "yes" }) end, "softcap must be true or false")
    spec.raises(function() diffusers.text_encoder(fx .. "/a", { soft_cap = true }) end, "unknown option 'soft_cap'")
  end)

  spec.it("refuses missing, extra and wrongly shaped weights, naming them", function()
    local w = grove.load_safetensors(fx .. "/a/model.safetensors")
    local function with(change)
      local t = {}
      for k, v in pairs(w) do t[k] = v end
      change(t)
      return t
    end
    local dir = variant(fx, {}, with(function(t) t["layers.1.mlp.up_proj.weight"] = nil end))
    spec.raises(function() diffusers.text_encoder(dir) end, "weight 'layers.1.mlp.up_proj.weight' is missing")
    spec.run("rm -rf " .. dir)
    dir = variant(fx, {}, with(function(t) t["lm_head.weight"] = grove.zeros { 2, 2 } end))
    spec.raises(function() diffusers.text_encoder(dir) end, "tensor 'lm_head.weight' is not a weight of Gemma2Model")
    spec.run("rm -rf " .. dir)
    dir = variant(fx, {}, with(function(t) t["norm.weight"] = grove.zeros { 63 } end))
    spec.raises(function() diffusers.text_encoder(dir) end, "weight 'norm.weight' in model.safetensors has shape [63]")
    spec.run("rm -rf " .. dir)
    dir = variant(fx, {}, with(function(t) t["norm.weight"] = grove.zeros({ 64 }, { dtype = "i32" }) end))
    spec.raises(function() diffusers.text_encoder(dir) end, "weight 'norm.weight' is I32")
    spec.run("rm -rf " .. dir)
  end)
end)

spec.describe("Gemma-2 encoder: shapes only", function()
  spec.it("the real Gemma-2-2B (SANA's text encoder) has 2,614,341,888 parameters", function()
    local dir = spec.tmpdir()
    write_json(dir .. "/config.json", {
      architectures = json.array { "Gemma2Model" }, attention_bias = false, attention_dropout = 0.0,
      attn_logit_softcapping = 50.0, bos_token_id = 2, cache_implementation = "hybrid", eos_token_id = 1,
      final_logit_softcapping = 30.0, head_dim = 256, hidden_act = "gelu_pytorch_tanh",
      hidden_activation = "gelu_pytorch_tanh", hidden_size = 2304, initializer_range = 0.02, intermediate_size = 9216,
      max_position_embeddings = 8192, model_type = "gemma2", num_attention_heads = 8, num_hidden_layers = 26,
      num_key_value_heads = 4, pad_token_id = 0, query_pre_attn_scalar = 256, rms_norm_eps = 1e-06,
      rope_theta = 10000.0, sliding_window = 4096, torch_dtype = "bfloat16", transformers_version = "4.44.2",
      use_cache = true, vocab_size = 256000, _name_or_path = "google/gemma-2-2b-it",
    })
    local e = diffusers.text_encoder(dir, { meta = true })
    spec.eq(e:num_parameters(), 2614341888, "parameters")
    spec.eq(#e:named_parameters(), 1 + 26 * 11 + 1, "tensors")
    spec.eq(spec.join(e.layers["25"].self_attn.q_proj.weight:shape()), "2048,2304", "q_proj of the last layer")
    spec.assert(tostring(e):find("26 layers, hidden 2304, 8 heads (4 key/value) of 256", 1, true), tostring(e))
    spec.raises(function() e:forward(grove.zeros({ 1, 2 }, { dtype = "i64" })) end, "meta = true")
    spec.run("rm -rf " .. dir)
  end)
end)

spec.describe("Gemma-2 encoder: PyTorch reference (tests/reference/gemma2_ref.py)", function()
  local _, torch_status = spec.run(python .. " -c 'import torch'")
  if torch_status ~= 0 then spec.skip(python .. " cannot import torch"); return end

  -- GQA 2:1, heads × head_dim (64) ≠ hidden (48), a window (5) shorter than
  -- the prompt (19), query_pre_attn_scalar (24) ≠ head_dim, a soft-cap that
  -- bites, another rope theta, 4 layers (two windowed).
  local cfg = {
    architectures = json.array { "Gemma2Model" }, model_type = "gemma2", attention_bias = false,
    attention_dropout = 0.0, hidden_activation = "gelu_pytorch_tanh", hidden_act = "gelu_pytorch_tanh",
    hidden_size = 48, intermediate_size = 80, num_hidden_layers = 4, num_attention_heads = 4,
    num_key_value_heads = 2, head_dim = 16, vocab_size = 300, rms_norm_eps = 1e-6, rope_theta = 500.0,
    query_pre_attn_scalar = 24, sliding_window = 5, attn_logit_softcapping = 3.0, final_logit_softcapping = 30.0,
    pad_token_id = 0, bos_token_id = 2, eos_token_id = 1, use_cache = true, max_position_embeddings = 512,
  }

  local function make(dtype, shards, seed)
    local dir = spec.tmpdir()
    local out, code = spec.run(python .. " " .. root .. "/tests/reference/gemma2_ref.py make " .. dir .. "/pipe/text_encoder"
                               .. " --config '" .. json.encode(cfg):gsub("\n", " ") .. "' --dtype " .. dtype
                               .. " --shards " .. shards .. " --seed " .. seed)
    spec.assert(code == 0, out)
    return dir
  end

  local function compare(dir, want_dtype)
    local te = dir .. "/pipe/text_encoder"
    local inputs = grove.load_safetensors(te .. "/inputs.safetensors")
    local outputs = grove.load_safetensors(te .. "/outputs.safetensors")
    for _, softcap in ipairs { false, true } do
      local e = diffusers.text_encoder(dir .. "/pipe", { softcap = softcap })
      spec.eq(e.embed_tokens.weight:dtype(), want_dtype, "weights stay in their stored dtype")
      spec.eq(e.layers["3"].mlp.down_proj.weight:dtype(), want_dtype, "weights stay in their stored dtype")
      local h = e:forward(inputs.input_ids, inputs.attention_mask)
      local ref = outputs[softcap and "last_hidden_state" or "last_hidden_state_nosoftcap"]
      local x = err(h, ref, inputs.attention_mask)
      spec.assert(x <= 1e-5, string.format("softcap %s: error %.3e", tostring(softcap), x))
      print(string.format("    %s softcap %-5s %.2e", want_dtype, tostring(softcap), x))
    end
    -- the cap bites in this config: the two references differ
    spec.assert(err(outputs.last_hidden_state, outputs.last_hidden_state_nosoftcap, inputs.attention_mask) > 1e-3,
                "the soft-cap changes the reference")
  end

  spec.it("F32, one file: matches within 1e-5 with and without soft-capping", function()
    local dir = make("f32", 1, 3)
    compare(dir, "f32")
    spec.run("rm -rf " .. dir)
  end)

  spec.it("BF16 in 3 shards with an index: matches within 1e-5, weights kept in BF16", function()
    local dir = make("bf16", 3, 4)
    compare(dir, "bf16")
    spec.run("rm -rf " .. dir)
  end)
end)
