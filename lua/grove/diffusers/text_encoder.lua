-- Gemma-2, the text encoder of every SANA release: transformers'
-- Gemma2Model forward (the last hidden state) from a diffusers folder's
-- text_encoder/config.json and its transformers-named weights.
--
--   local enc = grove.diffusers.text_encoder(dir, { softcap = false })
--   local h = enc:forward(ids, mask)            -- (B, L, hidden), f32
--
-- Per layer: RMSNorm x·(1 + w) (f32, eps from the config) before attention
-- and before the MLP and again on each branch's output before it joins the
-- residual; grouped-query attention with rotary embeddings (channel pairs
-- (j, j + D/2), theta from the config), query scale
-- query_pre_attn_scalar^-½, causal, the key padding mask, a sliding window
-- on layers 0, 2, 4, … (0-based), all inside one fused op
-- (grove.causal_attention); the MLP down(gelu_tanh(gate(x)) · up(x)). The
-- embedding is scaled by √hidden, and a final RMSNorm closes the stack.
--
-- Attention logit soft-capping (cap · tanh(s / cap)) is an option, off by
-- default: transformers' default attention path, which diffusers' SANA
-- pipelines run, passes the cap along but never applies it (docs/diffusers.md).
--
-- Weights stay in their stored dtype (F32, BF16, F16); each is converted to
-- f32 exactly where it is used, one matrix at a time. Compute is f32.
local Module = require "grove.nn.module"

return function(grove, diffusers)
  local nn = grove.nn
  local json = grove.json

  -- Config keys the encoder computes with.
  local USED = { "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "head_dim", "vocab_size", "rms_norm_eps", "rope_theta",
                 "query_pre_attn_scalar", "sliding_window", "attn_logit_softcapping", "hidden_activation" }
  -- Keys that change nothing the encoder computes: text generation (the LM
  -- head's cap, token ids), caching, initialisation, the activation name
  -- Gemma2Model reads from hidden_activation instead, provenance.
  local INERT = { "final_logit_softcapping", "cache_implementation", "use_cache", "max_position_embeddings",
                  "bos_token_id", "eos_token_id", "pad_token_id", "hidden_act", "initializer_range", "torch_dtype",
                  "transformers_version", "_name_or_path" }
  -- Keys accepted only with the value that means what grove computes.
  local FIXED = { model_type = "gemma2", attention_bias = false, attention_dropout = 0, rope_scaling = json.null,
                  architectures = "Gemma2Model" }

  local function fail(where, msg) error(where .. ": " .. msg, 0) end

  local function int_key(c, k, where, min)
    local v = c[k]
    if type(v) ~= "number" or v % 1 ~= 0 or v < (min or 1) then
      fail(where, "'" .. k .. "' must be an integer >= " .. (min or 1) .. ", got " .. tostring(v))
    end
    return v
  end
  local function num_key(c, k, where, positive)
    local v = c[k]
    if type(v) ~= "number" or v ~= v or (positive and v <= 0) then
      fail(where, "'" .. k .. "' must be a " .. (positive and "positive " or "") .. "number, got " .. tostring(v))
    end
    return v
  end

  -- The encoder's settings from a parsed config.json; where names the file.
  local function read_config(c, where)
    local known = {}
    for _, k in ipairs(USED) do known[k] = true end
    for _, k in ipairs(INERT) do known[k] = true end
    for k in pairs(FIXED) do known[k] = true end
    diffusers.check_config(c, known, where)
    for _, k in ipairs(USED) do
      if c[k] == nil then fail(where, "key '" .. k .. "' is missing") end
    end
    for k, want in pairs(FIXED) do
      local v = c[k]
      if k == "architectures" then
        if v ~= nil and not (type(v) == "table" and #v == 1 and v[1] == want) then
          fail(where, "architectures must be [\"Gemma2Model\"] (grove implements that encoder), got " .. json.encode(v):gsub("%s+", " "))
        end
      elseif v ~= nil and v ~= want then
        local show = type(v) == "table" and (json.encode(v):gsub("%s+", " ")) or tostring(v)
        fail(where, "'" .. k .. "' is " .. show .. "; grove implements only " .. tostring(want))
      end
    end
    if c.hidden_activation ~= "gelu_pytorch_tanh" then
      fail(where, "hidden_activation '" .. tostring(c.hidden_activation) .. "' is not implemented (grove implements gelu_pytorch_tanh)")
    end
    local s = {
      hidden = int_key(c, "hidden_size", where), intermediate = int_key(c, "intermediate_size", where),
      layers = int_key(c, "num_hidden_layers", where), heads = int_key(c, "num_attention_heads", where),
      kv_heads = int_key(c, "num_key_value_heads", where), head_dim = int_key(c, "head_dim", where),
      vocab = int_key(c, "vocab_size", where), eps = num_key(c, "rms_norm_eps", where, true),
      theta = num_key(c, "rope_theta", where, true), query_scalar = num_key(c, "query_pre_attn_scalar", where, true),
    }
    if s.heads % s.kv_heads ~= 0 then
      fail(where, "num_attention_heads " .. s.heads .. " is not a multiple of num_key_value_heads " .. s.kv_heads)
    end
    if s.head_dim % 2 ~= 0 then fail(where, "head_dim " .. s.head_dim .. " must be even (rotary embeddings)") end
    if c.sliding_window == json.null then s.window = 0 else s.window = int_key(c, "sliding_window", where) end
    if c.attn_logit_softcapping ~= json.null then s.cap = num_key(c, "attn_logit_softcapping", where, true) end
    return s
  end
  diffusers._gemma2_config = read_config

  -- Every weight of the encoder with its shape, in transformers' order.
  local function weight_list(s)
    local out = { { "embed_tokens.weight", { s.vocab, s.hidden } } }
    local qd, kd = s.heads * s.head_dim, s.kv_heads * s.head_dim
    for i = 0, s.layers - 1 do
      local p = "layers." .. i .. "."
      for _, e in ipairs {
        { "self_attn.q_proj.weight", { qd, s.hidden } }, { "self_attn.k_proj.weight", { kd, s.hidden } },
        { "self_attn.v_proj.weight", { kd, s.hidden } }, { "self_attn.o_proj.weight", { s.hidden, qd } },
        { "mlp.gate_proj.weight", { s.intermediate, s.hidden } }, { "mlp.up_proj.weight", { s.intermediate, s.hidden } },
        { "mlp.down_proj.weight", { s.hidden, s.intermediate } },
        { "input_layernorm.weight", { s.hidden } }, { "post_attention_layernorm.weight", { s.hidden } },
        { "pre_feedforward_layernorm.weight", { s.hidden } }, { "post_feedforward_layernorm.weight", { s.hidden } },
      } do out[#out + 1] = { p .. e[1], e[2] } end
    end
    out[#out + 1] = { "norm.weight", { s.hidden } }
    return out
  end

  local Encoder = Module.class("Gemma2Model")
  diffusers.Gemma2Model = Encoder

  -- Places a tensor under its dotted name, making the containers on the way.
  local function place(root, name, t)
    local mod = root
    local parts = {}
    for part in name:gmatch("[^.]+") do parts[#parts + 1] = part end
    for i = 1, #parts - 1 do
      local child = mod[parts[i]]
      if child == nil then child = mod:add_module(parts[i], nn.Container()) end
      mod = child
    end
    mod:add_parameter(parts[#parts], t)
  end

  local shape_str = function(s) return "[" .. table.concat(s, ",") .. "]" end

  -- s: settings (read_config); source: nil (meta: shapes only) or a
  -- component (names, info, load); opts.softcap.
  function Encoder:init(s, source, opts, config)
    self.settings = s
    self.diffusers_config = config
    self.softcap = opts.softcap and true or false
    self.meta = source == nil
    if self.softcap and not s.cap then
      error("text_encoder: softcap = true, but the config's attn_logit_softcapping is null", 0)
    end
    local list = weight_list(s)
    if self.meta then
      local make = nn.param_factory { meta = true }
      for _, e in ipairs(list) do place(self, e[1], make(e[2], "zeros")) end
      return
    end
    local where = source.dir or "text_encoder"
    local want = {}
    for _, e in ipairs(list) do want[e[1]] = e[2] end
    for _, n in ipairs(source:names()) do
      if not want[n] then
        error(where .. ": tensor '" .. n .. "' is not a weight of Gemma2Model (grove knows embed_tokens, layers.N.*, norm)", 0)
      end
    end
    local dtypes = {}
    for _, e in ipairs(list) do
      local name, shape = e[1], e[2]
      local ok, info = pcall(source.info, source, name)
      if not ok then error(where .. ": weight '" .. name .. "' is missing", 0) end
      local got = info.shape
      local same = #got == #shape
      for i = 1, #shape do same = same and got[i] == shape[i] end
      if not same then
        error(where .. ": weight '" .. name .. "'" .. (info.file and (" in " .. info.file) or "") .. " has shape "
              .. shape_str(got) .. ", but config.json gives " .. shape_str(shape), 0)
      end
      if info.dtype ~= "f32" and info.dtype ~= "bf16" and info.dtype ~= "f16" then
        error(where .. ": weight '" .. name .. "' is " .. tostring(info.stored or info.dtype)
              .. "; grove reads F32, BF16 and F16 weights", 0)
      end
      dtypes[info.dtype] = true
      place(self, name, source:load(name))
    end
    local names = {}
    for d in pairs(dtypes) do names[#names + 1] = d end
    table.sort(names)
    self.weight_dtype = table.concat(names, "+")
    -- the projections are GEMMs: Module:to(device, "bf16", { weights = "bf16" }) stores them bf16
    for i = 0, s.layers - 1 do
      local l = self.layers[tostring(i)]
      for _, m in ipairs { l.self_attn.q_proj, l.self_attn.k_proj, l.self_attn.v_proj, l.self_attn.o_proj,
                           l.mlp.gate_proj, l.mlp.up_proj, l.mlp.down_proj } do
        m.gemm_weights = { "weight" }
      end
    end
  end

  function Encoder:describe()
    local s = self.settings
    local window = s.window > 0 and (", window " .. s.window .. " on layers 0,2,4,...") or ", no window"
    local cap = self.softcap and ("soft-cap " .. s.cap .. " on")
      or ("soft-cap off" .. (s.cap and (" (config has " .. s.cap .. "; transformers' default attention does not apply it)") or ""))
    return string.format("Gemma2Model text encoder: %d layers, hidden %d, %d heads (%d key/value) of %d%s, %s, %s, %d parameters",
                         s.layers, s.hidden, s.heads, s.kv_heads, s.head_dim, window, cap,
                         self.meta and "shapes only" or ("weights " .. self.weight_dtype), self:num_parameters())
  end

  -- grove.diffusers.save(dir, enc): a text_encoder folder, config.json as
  -- read and the weights in their stored dtype under transformers' names
  -- (model.safetensors, or shards above opts.max_shard_bytes).
  function Encoder:diffusers_save(dir, opts)
    if self.meta then error("diffusers.save: the text encoder was built with meta = true (shapes only)", 3) end
    local tensors, o = {}, { weights_name = "model" }
    for _, np in ipairs(self:named_parameters()) do tensors[np[1]] = np[2] end
    for k, v in pairs(opts or {}) do o[k] = v end
    return diffusers.write_component(dir, self.diffusers_config, tensors, o)
  end

  -- Weights in their stored dtype are converted exactly for each use and
  -- the copy freed at once (grove.nn's f32 / drop_f32). With bf16 (the
  -- encoder's compute dtype "bf16") the product is grove.linear_bf16, which
  -- reads a bf16-stored weight as stored.
  local function linear(x, w, bf16)
    local wf, converted = (bf16 and nn.bf16_operand or nn.f32)(w)
    return nn.drop_f32(wf, converted, bf16 and grove.linear_bf16(x, wf) or x:linear(wf))
  end

  -- Gemma's RMSNorm: x / rms(x) · (1 + w), in f32.
  local function norm(x, w, eps)
    local wf, converted = nn.f32(w)
    local one_plus = wf + 1
    nn.drop_f32(wf, converted, one_plus)
    return x:rms_norm(one_plus, eps)
  end

  -- The rows of the embedding table for ids (B, L); a table stored in BF16
  -- or F16 is read row by row, never converted whole.
  local function embed(w, ids, vocab)
    if w:dtype() == "f32" then return grove.embedding(w, ids) end
    local B, L = ids:size(1), ids:size(2)
    local flat = ids:reshape { -1 }:tolist()
    local out = grove.empty({ B * L, w:size(2) }, { device = w:device() })
    for i, id in ipairs(flat) do
      if id < 0 or id >= vocab or id % 1 ~= 0 then
        error(string.format("text_encoder: token id %s at position %d is outside the vocabulary (0..%d)", tostring(id), i, vocab - 1), 0)
      end
      out:select(1, i):copy_(w:select(1, id + 1))
    end
    return out:view { B, L, -1 }
  end

  -- cos and sin (L, 1, D/2) of position · theta^(-2j/D), computed in double.
  local function rotary_tables(L, D, theta)
    local half = D / 2
    local cos, sin = {}, {}
    for p = 0, L - 1 do
      for j = 0, half - 1 do
        local a = p / theta ^ (2 * j / D)
        cos[#cos + 1], sin[#sin + 1] = math.cos(a), math.sin(a)
      end
    end
    return grove.tensor(cos):view { L, 1, half }, grove.tensor(sin):view { L, 1, half }
  end

  -- Rotates channel pairs (j, j + D/2) of each head of x (B, L, heads·D).
  local function rotate(x, heads, D, cos, sin)
    local B, L = x:size(1), x:size(2)
    local h = x:view { B, L, heads, D }
    local x1, x2 = h:narrow(4, 1, D / 2), h:narrow(4, D / 2 + 1, D / 2)
    return grove.cat({ x1 * cos - x2 * sin, x2 * cos + x1 * sin }, 4):view { B, L, heads * D }
  end

  -- ids (B, L) integer token ids; mask (B, L) any integer or float dtype,
  -- nonzero = a real token (nil: all real). Returns the last hidden state
  -- (B, L, hidden), f32. Padded positions get values too; SANA masks them
  -- downstream.
  function Encoder:forward(ids, mask)
    if self.meta then error("text_encoder: this encoder was built with meta = true (shapes only); it cannot run", 2) end
    if not grove.is_tensor(ids) or ids:dim() ~= 2 then
      error("text_encoder: ids must be a (batch, length) tensor of token ids, got "
            .. (grove.is_tensor(ids) and ids:shape_str() or type(ids)), 2)
    end
    local dt = ids:dtype()
    if dt ~= "i64" and dt ~= "i32" then error("text_encoder: ids must be i64 or i32, got " .. dt .. " " .. ids:shape_str(), 2) end
    local B, L = ids:size(1), ids:size(2)
    if mask ~= nil then
      if not grove.is_tensor(mask) or mask:dim() ~= 2 or mask:size(1) ~= B or mask:size(2) ~= L then
        error("text_encoder: mask must be (batch, length) = [" .. B .. "," .. L .. "] like ids, got "
              .. (grove.is_tensor(mask) and mask:shape_str() or type(mask)), 2)
      end
    end
    local s = self.settings
    local bf16 = self.compute_dtype == "bf16"
    return grove.no_grad(function()
      local dev = self.embed_tokens.weight:device()
      ids = ids:to(dev)
      local m = mask and mask:to(dev):float() or nil
      local D = s.head_dim
      local cos, sin = rotary_tables(L, D, s.theta)
      cos, sin = cos:to(dev), sin:to(dev)
      local h = embed(self.embed_tokens.weight, ids, s.vocab) * math.sqrt(s.hidden)
      local attn = { heads = s.heads, kv_heads = s.kv_heads, scale = s.query_scalar ^ -0.5,
                     softcap = self.softcap and s.cap or nil }
      for i = 0, s.layers - 1 do
        local l = self.layers[tostring(i)]
        local a, mlp = l.self_attn, l.mlp
        local x = norm(h, l.input_layernorm.weight, s.eps)
        local q = rotate(linear(x, a.q_proj.weight, bf16), s.heads, D, cos, sin)
        local k = rotate(linear(x, a.k_proj.weight, bf16), s.kv_heads, D, cos, sin)
        local v = linear(x, a.v_proj.weight, bf16)
        attn.window = (i % 2 == 0 and s.window > 0) and s.window or nil
        local o = grove.causal_attention(q, k, v, m, attn)
        h = h + norm(linear(o, a.o_proj.weight, bf16), l.post_attention_layernorm.weight, s.eps)
        x = norm(h, l.pre_feedforward_layernorm.weight, s.eps)
        local g = linear(x, mlp.gate_proj.weight, bf16):gelu() * linear(x, mlp.up_proj.weight, bf16)
        h = h + norm(linear(g, mlp.down_proj.weight, bf16), l.post_feedforward_layernorm.weight, s.eps)
      end
      return norm(h, self.norm.weight, s.eps)
    end)
  end

  -- dir: a pipeline folder or its text_encoder folder. opts.softcap (default
  -- false): apply attn_logit_softcapping; opts.meta: shapes only (no
  -- weights are read); opts.variant: weight files of a variant ("bf16");
  -- opts.dtype ("f32", "bf16", "f16"): hold the weights in that dtype
  -- instead of the stored one (each converted as it loads).
  function diffusers.text_encoder(dir, opts)
    opts = opts or {}
    if type(opts) ~= "table" then error("diffusers.text_encoder: options must be a table", 2) end
    for k in pairs(opts) do
      if k ~= "softcap" and k ~= "meta" and k ~= "variant" and k ~= "dtype" then
        error("diffusers.text_encoder: unknown option '" .. tostring(k) .. "' (softcap, meta, variant, dtype)", 2)
      end
    end
    if opts.softcap ~= nil and type(opts.softcap) ~= "boolean" then
      error("diffusers.text_encoder: softcap must be true or false, got " .. tostring(opts.softcap), 2)
    end
    if opts.meta then
      local c, where = diffusers.component_config(dir, "text_encoder")
      return Encoder(read_config(c, where), nil, opts, c)
    end
    local comp = diffusers.component(dir, "text_encoder", { variant = opts.variant, weights_name = "model",
                                                                dtype = opts.dtype })
    local ok, enc = pcall(Encoder, read_config(comp.config, comp.config_path), comp, opts, comp.config)
    comp:close()
    if not ok then error(enc, 0) end
    return enc
  end
end
