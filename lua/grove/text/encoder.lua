-- A small bidirectional transformer text encoder: token + learned position
-- embeddings, `depth` pre-norm encoder layers (LayerNorm → multi-head
-- self-attention over the real tokens → residual; LayerNorm → MLP with GELU
-- → residual) and a final LayerNorm. Its features (B, L, width) are what the
-- diffusion model's caption projection reads.
--
-- Parameter names follow Hugging Face's CLIPTextModel (without its
-- "text_model." prefix): embeddings.token_embedding.weight,
-- encoder.layers.0.self_attn.q_proj.weight, final_layer_norm.bias, ...
-- The attention is not causal, unlike CLIP's.
local Module = require "grove.nn.module"

return function(grove)
  local nn = grove.nn
  local Linear, Container = nn.Linear, nn.Container

  local LayerNorm = Module.class("LayerNorm")
  function LayerNorm:init(make, dim, eps)
    self.eps = eps or 1e-5
    self:add_parameter("weight", make({ dim }, "ones"))
    self:add_parameter("bias", make({ dim }, "zeros"))
  end
  function LayerNorm:forward(x) return x:layer_norm(self.weight, self.bias, self.eps) end

  local Embedding = Module.class("Embedding")
  function Embedding:init(make, n, dim, init)
    self:add_parameter("weight", make({ n, dim }, init or "normal:0.02"))
  end

  local defaults = { width = 64, depth = 2, heads = 2, max_len = 16, mlp_ratio = 4, eps = 1e-5 }
  local function is_int(v) return type(v) == "number" and v % 1 == 0 end

  local function resolve_config(config)
    if type(config) ~= "table" then error("Encoder: expected a config table with vocab_size", 4) end
    local c = {}
    for k, v in pairs(defaults) do c[k] = v end
    for k, v in pairs(config) do c[k] = v end
    c.kind = "text_encoder"
    if not is_int(c.vocab_size) or c.vocab_size < 2 then
      error("Encoder: config.vocab_size must be an integer ≥ 2, got " .. tostring(c.vocab_size), 4)
    end
    for _, k in ipairs { "width", "heads", "max_len" } do
      if not is_int(c[k]) or c[k] < 1 then error("Encoder: config." .. k .. " must be a positive integer, got " .. tostring(c[k]), 4) end
    end
    if not is_int(c.depth) or c.depth < 0 then error("Encoder: config.depth must be an integer ≥ 0, got " .. tostring(c.depth), 4) end
    if type(c.mlp_ratio) ~= "number" or c.mlp_ratio <= 0 then error("Encoder: config.mlp_ratio must be positive", 4) end
    if c.width % c.heads ~= 0 then
      error("Encoder: width " .. c.width .. " is not a multiple of heads " .. c.heads, 4)
    end
    c.hidden = math.max(1, math.floor(c.width * c.mlp_ratio + 0.5))
    return c
  end

  local EncoderLayer = Module.class("EncoderLayer")
  function EncoderLayer:init(make, c)
    local D = c.width
    self.heads = c.heads
    self:add_module("self_attn", Container {
      { "q_proj", Linear(make, D, D) }, { "k_proj", Linear(make, D, D) },
      { "v_proj", Linear(make, D, D) }, { "out_proj", Linear(make, D, D) } })
    self:add_module("layer_norm1", LayerNorm(make, D, c.eps))
    self:add_module("mlp", Container { { "fc1", Linear(make, D, c.hidden) }, { "fc2", Linear(make, c.hidden, D) } })
    self:add_module("layer_norm2", LayerNorm(make, D, c.eps))
  end

  -- x (B, L, D); mask (B, L) f32, 1 at real tokens: padded keys get no weight.
  function EncoderLayer:forward(x, mask)
    local a = self.self_attn
    local h = self.layer_norm1:forward(x)
    local o = grove.cross_attention(a.q_proj:forward(h), a.k_proj:forward(h), a.v_proj:forward(h), mask, self.heads)
    x = x + a.out_proj:forward(o)
    local m = self.mlp
    return x + m.fc2:forward(m.fc1:forward(self.layer_norm2:forward(x)):gelu())
  end

  local Encoder = Module.class("TextEncoder")
  Encoder.defaults = defaults
  Encoder.LayerNorm, Encoder.Embedding, Encoder.Layer = LayerNorm, Embedding, EncoderLayer

  -- grove.text.Encoder(config, {seed = n, generator = g, meta = bool}).
  -- config: vocab_size (required), width, depth, heads, max_len, mlp_ratio, eps.
  function Encoder:init(config, opts)
    opts = opts or {}
    local c = resolve_config(config)
    self.config = c
    local gen = opts.generator or (opts.seed and grove.Generator(opts.seed)) or nil
    local make = nn.param_factory { meta = opts.meta, generator = gen }
    self:add_module("embeddings", Container {
      { "token_embedding", Embedding(make, c.vocab_size, c.width, "normal:0.02") },
      { "position_embedding", Embedding(make, c.max_len, c.width, "normal:0.01") } })
    local layers = Container()
    for i = 1, c.depth do layers:add_module(tostring(i - 1), EncoderLayer(make, c)) end
    self:add_module("encoder", Container { { "layers", layers } })
    self:add_module("final_layer_norm", LayerNorm(make, c.width, c.eps))
    self.frozen = false
  end

  -- The layers in order.
  function Encoder:layers()
    local out = {}
    for i = 1, self.config.depth do out[i] = self.encoder.layers[tostring(i - 1)] end
    return out
  end

  local function check_inputs(c, ids, mask)
    if not grove.is_tensor(ids) then error("Encoder: ids must be a tensor (B, L) of token ids", 4) end
    local dt = ids:dtype()
    if dt ~= "i64" and dt ~= "i32" then
      error("Encoder: ids " .. ids:shape_str() .. " must be i64 (or i32) token ids, got " .. dt, 4)
    end
    if ids:dim() ~= 2 then error("Encoder: ids " .. ids:shape_str() .. " must be 2-d (B, L)", 4) end
    local B, L = ids:size(1), ids:size(2)
    if L > c.max_len then
      error(string.format("Encoder: ids %s are longer than max_len %d", ids:shape_str(), c.max_len), 4)
    end
    if mask == nil then return grove.ones { B, L } end
    if not grove.is_tensor(mask) then error("Encoder: mask must be a tensor (B, L)", 4) end
    if mask:dim() ~= 2 or mask:size(1) ~= B or mask:size(2) ~= L then
      error("Encoder: mask " .. mask:shape_str() .. " does not match ids " .. ids:shape_str(), 4)
    end
    if mask:dtype() ~= "f32" then mask = mask:float() end
    return mask
  end

  -- forward(ids (B, L) i64, mask (B, L), 1 = token; nil = all tokens)
  -- → features (B, L, width), zero at padded positions, and the mask (f32).
  -- Real tokens never attend to padding, so their features do not depend
  -- on what the padded positions hold.
  function Encoder:forward(ids, mask)
    local c = self.config
    mask = check_inputs(c, ids, mask)
    local function run()
      local ok, x = pcall(grove.embedding, self.embeddings.token_embedding.weight, ids)
      if not ok then error("Encoder: " .. tostring(x), 0) end
      x = x + self.embeddings.position_embedding.weight:narrow(1, 1, ids:size(2))
      for _, layer in ipairs(self:layers()) do x = layer:forward(x, mask) end
      return self.final_layer_norm:forward(x) * mask:unsqueeze(-1)
    end
    -- a frozen encoder records nothing on the tape
    if self.frozen then return grove.no_grad(run), mask end
    return run(), mask
  end

  -- Tokenizes strings with tok at this encoder's max_len and encodes them.
  function Encoder:encode_text(tok, strings, opts)
    local o = { max_len = self.config.max_len }
    for k, v in pairs(opts or {}) do o[k] = v end
    local ids, mask = tok:encode(strings, o)
    return self:forward(ids, mask)
  end

  -- Stops training the encoder: its parameters stop requiring gradients and
  -- lose any they hold, so an optimizer holding them leaves them alone.
  function Encoder:freeze()
    for _, p in ipairs(self:parameters()) do
      p:requires_grad_(false)
      p:zero_grad()
    end
    self.frozen = true
    return self
  end

  function Encoder:unfreeze()
    for _, p in ipairs(self:parameters()) do p:requires_grad_(true) end
    self.frozen = false
    return self
  end

  -- The parameters an optimizer should update: none while frozen.
  function Encoder:trainable_parameters()
    if self.frozen then return {} end
    return self:parameters()
  end

  -- Rebuilds an encoder from a file written by :save (config in metadata).
  function Encoder.load_file(path, opts)
    local state, meta = grove.load_safetensors(path)
    local cfg = meta and meta["grove.config"]
    if not cfg then error("Encoder.load_file: " .. path .. " has no grove.config metadata", 2) end
    local c = nn._decode_config(cfg)
    if c.kind ~= "text_encoder" then
      error("Encoder.load_file: " .. path .. " holds a " .. tostring(c.kind or "model") .. ", not a text encoder", 2)
    end
    local enc = Encoder(c, opts)
    enc:load_state_dict(state, opts)
    return enc
  end

  return Encoder
end
