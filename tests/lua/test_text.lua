-- grove.text: the word-level tokenizer (normalisation, round trips, unknown
-- words, truncation and padding, vocabulary files) and the transformer text
-- encoder (shapes, padding invariance, gradients against a float64
-- reference, freezing, seeding, checkpoints, feeding the SANA model).
local spec = require "spec"
local ref = require "ref"

if not grove.text then require "grove.text"(grove) end
if not grove.optim then require "grove.optim"(grove) end
local Tokenizer, Encoder = grove.text.Tokenizer, grove.text.Encoder

local captions = {
  "a red circle left of a blue square",
  "three yellow circles",
  "a blue square and a green triangle",
  "two purple triangles above a cyan circle",
  "an orange square below a magenta triangle",
  "four white squares",
  "a gray circle right of a pink triangle",
  "one black circle",
  "a brown square",
}

local function list_eq(a, b, msg)
  spec.eq(#a, #b, (msg or "list") .. " length")
  for i = 1, #b do spec.eq(a[i], b[i], (msg or "list") .. " entry " .. i) end
end

local function flat(t) return t:contiguous():view { -1 }:tolist() end

local function max_abs_diff(a, b)
  local fa, fb, worst = flat(a), flat(b), 0
  for i = 1, #fa do worst = math.max(worst, math.abs(fa[i] - fb[i])) end
  return worst
end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

spec.describe("Tokenizer", function()
  local tok = Tokenizer.build(captions)

  spec.it("lower-cases and splits punctuation into tokens of their own", function()
    list_eq(Tokenizer.tokenize("A Red circle, LEFT of a blue square."),
            { "a", "red", "circle", ",", "left", "of", "a", "blue", "square", "." })
    list_eq(tok:tokenize("red,blue!don't  (x)"), { "red", ",", "blue", "!", "don", "'", "t", "(", "x", ")" })
    list_eq(Tokenizer.tokenize("  tabs\tand\nnewlines\r\n"), { "tabs", "and", "newlines" })
    list_eq(Tokenizer.tokenize(""), {})
    spec.eq(Tokenizer.normalize("  Two  RED circles!! "), "two red circles ! !")
    -- UTF-8 stays inside its word
    list_eq(Tokenizer.tokenize("café rouge"), { "café", "rouge" })
  end)

  spec.it("reserves <pad> = 0 and <unk> = 1 and orders the rest by frequency", function()
    spec.eq(tok:id("<pad>"), 0)
    spec.eq(tok:id("<unk>"), 1)
    spec.eq(tok.bos_id, 2)
    spec.eq(tok.eos_id, 3)
    spec.eq(tok:token(4), "a") -- the most frequent word
    local alpha = Tokenizer.build(captions, { order = "alphabetical" })
    spec.eq(alpha:token(4), "a")
    spec.eq(alpha:token(5), "above")
    spec.eq(alpha:size(), tok:size())
    local rare = Tokenizer.build(captions, { min_count = 2 })
    spec.eq(rare:id("brown"), 1, "a word seen once is left out at min_count 2")
    spec.assert(rare:id("circle") > 1)
    spec.eq(Tokenizer.build(captions, { max_size = 6 }):size(), 6)
  end)

  spec.it("round trips: decode(encode(s)) is the normalised s", function()
    local texts = { "A Red circle, LEFT of a blue square.", "three yellow circles", "", "a a a a" }
    for i = 1, #captions do texts[#texts + 1] = captions[i] end
    local probe = Tokenizer.build(texts)
    local ids, mask = probe:encode(texts, { max_len = 16 })
    local back = probe:decode(ids)
    for i, s in ipairs(texts) do spec.eq(back[i], Tokenizer.normalize(s), "string " .. i) end
    -- one string, 1-d ids and plain tables work too
    spec.eq(probe:decode(ids:select(1, 1)), "a red circle , left of a blue square .")
    spec.eq(probe:decode(probe:encode_one("three yellow circles")), "three yellow circles")
    spec.eq(mask:dtype(), "f32")
  end)

  spec.it("maps unknown words to <unk>", function()
    local ids = tok:encode({ "a red dodecahedron" }, { max_len = 4 })
    list_eq(ids:tolist()[1], { tok:id("a"), tok:id("red"), 1, 0 })
    spec.eq(tok:decode(ids)[1], "a red <unk>")
    spec.eq(tok:id("dodecahedron"), 1)
  end)

  spec.it("truncates, pads and masks", function()
    local ids, mask = tok:encode({ "a red circle left of a blue square", "three yellow circles" }, { max_len = 5 })
    spec.eq(ids:shape_str(), "[2,5]")
    spec.eq(ids:dtype(), "i64")
    spec.eq(mask:shape_str(), "[2,5]")
    spec.eq(tok:decode(ids)[1], "a red circle left of")
    list_eq(mask:tolist()[1], { 1, 1, 1, 1, 1 })
    list_eq(mask:tolist()[2], { 1, 1, 1, 0, 0 })
    list_eq(ids:tolist()[2], { tok:id("three"), tok:id("yellow"), tok:id("circles"), 0, 0 })
    -- the default length is the tokenizer's max_len (16)
    spec.eq(tok:encode("a red circle"):shape_str(), "[1,16]")
    -- pad to the longest row instead
    local short = tok:encode({ "a red circle", "one black circle left of a brown square" }, { pad = "longest" })
    spec.eq(short:shape_str(), "[2,8]")
    -- an empty string is all padding
    list_eq(select(2, tok:encode("", { max_len = 3 })):tolist()[1], { 0, 0, 0 })
  end)

  spec.it("adds <bos>/<eos> on request and keeps <eos> when truncating", function()
    local ids, mask = tok:encode({ "a red circle left of a blue square", "a red circle" }, { max_len = 5, bos = true, eos = true })
    local rows = ids:tolist()
    list_eq(rows[1], { tok.bos_id, tok:id("a"), tok:id("red"), tok:id("circle"), tok.eos_id })
    list_eq(rows[2], { tok.bos_id, tok:id("a"), tok:id("red"), tok:id("circle"), tok.eos_id })
    list_eq(mask:tolist()[2], { 1, 1, 1, 1, 1 })
    spec.eq(tok:decode(ids)[1], "a red circle")
    spec.eq(tok:decode(ids, { keep_special = true })[1], "<bos> a red circle <eos>")
    local padded = tok:encode("a", { max_len = 4, eos = true })
    list_eq(tok:decode(padded, { keep_special = true }), { "a <eos> <pad> <pad>" })
  end)

  spec.it("saves and loads its vocabulary file", function()
    local path = os.tmpname()
    tok:save(path)
    local f = assert(io.open(path, "rb"))
    local first = f:read("*l")
    f:close()
    spec.eq(first, "<pad>")
    local back = Tokenizer.load(path)
    spec.eq(back:size(), tok:size())
    for id = 0, tok:size() - 1 do spec.eq(back:token(id), tok:token(id), "token " .. id) end
    spec.eq(max_abs_diff(back:encode(captions), tok:encode(captions)), 0)
    -- CRLF line ends and a missing final newline are accepted
    write_file(path, "<pad>\r\n<unk>\r\nred\r\ncircle")
    spec.eq(Tokenizer.load(path):decode(Tokenizer.load(path):encode_one("red circle")), "red circle")
    os.remove(path)
  end)

  spec.it("rejects bad vocabularies and arguments", function()
    local path = os.tmpname()
    write_file(path, "red\n<pad>\n<unk>\n")
    spec.raises(function() Tokenizer.load(path) end, "must start with <pad>")
    write_file(path, "<pad>\n<unk>\nred\nred\n")
    spec.raises(function() Tokenizer.load(path) end, "appears twice")
    write_file(path, "<pad>\n<unk>\n\nred\n")
    spec.raises(function() Tokenizer.load(path) end, "line 3 is empty")
    os.remove(path)
    spec.raises(function() Tokenizer.load("/nonexistent/vocab.txt") end, "No such file")
    spec.raises(function() tok:encode({}) end, "non-empty list")
    spec.raises(function() tok:encode({ "a", 3 }) end, "entry 2")
    spec.raises(function() tok:encode("a", { max_len = 0 }) end, "max_len")
    spec.raises(function() tok:encode("a", { max_len = 1, bos = true, eos = true }) end, "no room")
    spec.raises(function() tok:decode({ 0, 999 }) end, "id 999 out of range")
    spec.raises(function() tok:decode(grove.zeros { 2, 2, 2 }) end, "1-d or 2-d")
  end)

  spec.it("the shapes vocabulary covers the caption words", function()
    local st = grove.text.shapes_tokenizer()
    spec.eq(st:id("<pad>"), 0)
    spec.eq(st:id("<unk>"), 1)
    spec.eq(st.max_len, 16)
    local words = { "a", "an", "and", "of", "left", "right", "above", "below", "one", "two", "three", "four",
                    "circle", "circles", "square", "squares", "triangle", "triangles",
                    "red", "green", "blue", "yellow", "purple", "cyan", "orange", "magenta", "white", "black",
                    "gray", "pink", "brown", ",", "." }
    for _, w in ipairs(words) do spec.assert(st:id(w) > 3, "shapes vocabulary lacks '" .. w .. "'") end
    for _, c in ipairs(captions) do spec.eq(st:decode(st:encode(c))[1], c) end
  end)
end)

-- ---- encoder -------------------------------------------------------------------------

local small = { vocab_size = 20, width = 16, depth = 2, heads = 2, max_len = 8, mlp_ratio = 2 }

spec.describe("text Encoder", function()
  spec.it("names its parameters as CLIPTextModel does and counts them", function()
    local enc = Encoder(small, { seed = 1 })
    local names = {}
    for _, np in ipairs(enc:named_parameters()) do names[np[1]] = np[2]:shape_str() end
    spec.eq(names["embeddings.token_embedding.weight"], "[20,16]")
    spec.eq(names["embeddings.position_embedding.weight"], "[8,16]")
    spec.eq(names["encoder.layers.1.self_attn.q_proj.weight"], "[16,16]")
    spec.eq(names["encoder.layers.0.self_attn.out_proj.bias"], "[16]")
    spec.eq(names["encoder.layers.0.layer_norm1.weight"], "[16]")
    spec.eq(names["encoder.layers.0.mlp.fc1.weight"], "[32,16]")
    spec.eq(names["encoder.layers.0.mlp.fc2.weight"], "[16,32]")
    spec.eq(names["final_layer_norm.bias"], "[16]")
    local per_layer = 4 * (16 * 16 + 16) + 2 * 32 + (32 * 16 + 32) + (16 * 32 + 16)
    spec.eq(enc:num_parameters(), 20 * 16 + 8 * 16 + 2 * per_layer + 32)
    -- defaults: width 64, depth 2, heads 2, max_len 16, mlp_ratio 4
    local d = Encoder({ vocab_size = 88 }, { meta = true })
    spec.eq(d.config.width, 64)
    spec.eq(d.config.max_len, 16)
    spec.eq(d.config.hidden, 256)
  end)

  spec.it("forward gives (B, L, width) features, zero at padding, and the mask", function()
    local enc = Encoder(small, { seed = 2 })
    local ids = grove.tensor({ { 4, 5, 6, 0, 0 }, { 7, 8, 9, 10, 11 } }, { dtype = "i64" })
    local mask = grove.tensor { { 1, 1, 1, 0, 0 }, { 1, 1, 1, 1, 1 } }
    local y, m = enc:forward(ids, mask)
    spec.eq(y:shape_str(), "[2,5,16]")
    spec.eq(m:shape_str(), "[2,5]")
    spec.eq(y:narrow(2, 4, 2):select(1, 1):abs():sum():item(), 0)
    -- real tokens come out layer-normalised: mean 0 per token
    spec.near(y:select(1, 2):mean(-1):abs():max():item(), 0, 1e-5)
    -- no mask means every position is a token; u8 masks are accepted
    local y2 = enc:forward(ids)
    spec.eq(y2:shape_str(), "[2,5,16]")
    local y3 = enc:forward(ids, mask:to("u8"))
    spec.eq(max_abs_diff(y3, y), 0)
  end)

  spec.it("real tokens' features do not depend on the padding", function()
    local enc = Encoder(small, { seed = 3 })
    local mask = grove.tensor { { 1, 1, 1, 0, 0, 0 }, { 1, 1, 0, 0, 0, 0 } }
    local a = enc:forward(grove.tensor({ { 4, 5, 6, 0, 0, 0 }, { 7, 8, 0, 0, 0, 0 } }, { dtype = "i64" }), mask)
    local b = enc:forward(grove.tensor({ { 4, 5, 6, 19, 3, 12 }, { 7, 8, 1, 2, 15, 9 } }, { dtype = "i64" }), mask)
    spec.eq(max_abs_diff(a, b), 0)
    -- nor on how much padding there is
    local c = enc:forward(grove.tensor({ { 4, 5, 6 }, { 7, 8, 0 } }, { dtype = "i64" }), mask:narrow(2, 1, 3))
    spec.assert(max_abs_diff(a:narrow(2, 1, 3), c) < 1e-6, "padding length changed the features")
  end)

  spec.it("backward reaches every parameter", function()
    local tok = Tokenizer.build(captions)
    local cfg = {}
    for k, v in pairs(small) do cfg[k] = v end
    cfg.vocab_size = tok:size()
    local enc = Encoder(cfg, { seed = 4 })
    local ids, mask = tok:encode({ captions[1], captions[2] }, { max_len = 8 })
    local y = enc:forward(ids, mask)
    local loss = (y * grove.randn(y:shape())):sum()
    loss:backward()
    for _, np in ipairs(enc:named_parameters()) do
      local g = np[2].grad
      spec.assert(g, "no gradient for " .. np[1])
      spec.assert(g:abs():sum():item() > 0, "zero gradient for " .. np[1])
    end
  end)

  spec.it("matches a float64 reference, forward and gradients of every parameter", function()
    local cfg = { vocab_size = 7, width = 8, depth = 1, heads = 2, max_len = 5, mlp_ratio = 2 }
    local enc = Encoder(cfg, { seed = 5 })
    -- move the norms and biases off their identity initialisation
    local g = grove.Generator(11)
    grove.no_grad(function()
      for _, np in ipairs(enc:named_parameters()) do
        local p = np[2]
        local noise = grove.randn(p:shape(), { generator = g }) * 0.3
        p:copy_(p + noise)
      end
    end)
    local ids_t = { { 3, 1, 6, 2 }, { 5, 0, 4, 4 } }
    local mask_t = { { 1, 1, 1, 0 }, { 1, 1, 1, 1 } }
    local ids, mask = grove.tensor(ids_t, { dtype = "i64" }), grove.tensor(mask_t)
    local named = enc:named_parameters()
    local index = {}
    local inputs = {}
    for i, np in ipairs(named) do
      index[np[1]] = i
      inputs[i] = function() return np[2] end
    end

    local B, L, D, H = 2, 4, cfg.width, cfg.heads
    local dh = D / H
    local function reference(...)
      local P = { ... }
      local function get(name) return P[index[name]] end
      local function vec(A, off) return A.data[off] end
      local function linear(x, name) -- x: list of L vectors
        local W, b = get(name .. ".weight"), get(name .. ".bias")
        local n_out, n_in = W.shape[1], W.shape[2]
        local out = {}
        for l = 1, #x do
          local y = {}
          for o = 1, n_out do
            local s = b.data[o]
            for i = 1, n_in do s = s + W.data[(o - 1) * n_in + i] * x[l][i] end
            y[o] = s
          end
          out[l] = y
        end
        return out
      end
      local function layer_norm(x, name)
        local w, b = get(name .. ".weight"), get(name .. ".bias")
        local out = {}
        for l = 1, #x do
          local m, v = 0, 0
          for d = 1, D do m = m + x[l][d] end
          m = m / D
          for d = 1, D do v = v + (x[l][d] - m) ^ 2 end
          v = v / D
          local r = 1 / math.sqrt(v + 1e-5)
          local y = {}
          for d = 1, D do y[d] = (x[l][d] - m) * r * w.data[d] + b.data[d] end
          out[l] = y
        end
        return out
      end
      local function gelu(x)
        return 0.5 * x * (1 + math.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ^ 3)))
      end
      local out = ref.new({ B, L, D }, 0)
      local tokE, posE = get("embeddings.token_embedding.weight"), get("embeddings.position_embedding.weight")
      for b = 1, B do
        local x = {}
        for l = 1, L do
          x[l] = {}
          for d = 1, D do x[l][d] = vec(tokE, ids_t[b][l] * D + d) + vec(posE, (l - 1) * D + d) end
        end
        local pre = "encoder.layers.0."
        local h = layer_norm(x, pre .. "layer_norm1")
        local q, k, v = linear(h, pre .. "self_attn.q_proj"), linear(h, pre .. "self_attn.k_proj"), linear(h, pre .. "self_attn.v_proj")
        local o = {}
        for i = 1, L do o[i] = {} end
        for hd = 0, H - 1 do
          for i = 1, L do
            local s, mx = {}, -math.huge
            for j = 1, L do
              local dot = 0
              for c = 1, dh do dot = dot + q[i][hd * dh + c] * k[j][hd * dh + c] end
              s[j] = dot / math.sqrt(dh) + (1 - mask_t[b][j]) * -10000
              mx = math.max(mx, s[j])
            end
            local z = 0
            for j = 1, L do s[j] = math.exp(s[j] - mx); z = z + s[j] end
            for c = 1, dh do
              local acc = 0
              for j = 1, L do acc = acc + s[j] / z * v[j][hd * dh + c] end
              o[i][hd * dh + c] = acc
            end
          end
        end
        local a = linear(o, pre .. "self_attn.out_proj")
        for l = 1, L do for d = 1, D do x[l][d] = x[l][d] + a[l][d] end end
        local f = linear(layer_norm(x, pre .. "layer_norm2"), pre .. "mlp.fc1")
        for l = 1, L do for d = 1, #f[l] do f[l][d] = gelu(f[l][d]) end end
        f = linear(f, pre .. "mlp.fc2")
        for l = 1, L do for d = 1, D do x[l][d] = x[l][d] + f[l][d] end end
        local y = layer_norm(x, "final_layer_norm")
        for l = 1, L do
          for d = 1, D do out.data[((b - 1) * L + (l - 1)) * D + d] = y[l][d] * mask_t[b][l] end
        end
      end
      return out
    end

    spec.check_op {
      fn = function() return (enc:forward(ids, mask)) end,
      ref = reference,
      inputs = inputs,
      fwd_tol = 1e-5, grad_tol = 1e-4,
    }
  end)

  spec.it("freezes and unfreezes", function()
    local enc = Encoder(small, { seed = 6 })
    local ids = grove.tensor({ { 4, 5, 6, 0 } }, { dtype = "i64" })
    local mask = grove.tensor { { 1, 1, 1, 0 } }
    enc:forward(ids, mask):sum():backward()
    spec.assert(enc.final_layer_norm.weight.grad, "gradient before freezing")
    enc:freeze()
    spec.assert(enc.frozen)
    spec.eq(#enc:trainable_parameters(), 0)
    for _, np in ipairs(enc:named_parameters()) do
      spec.assert(not np[2].requires_grad, np[1] .. " still requires grad")
      spec.assert(np[2].grad == nil, np[1] .. " kept its gradient")
    end
    -- a downstream parameter still trains on frozen features
    local w = grove.randn({ 16 }):requires_grad_(true)
    local y = enc:forward(ids, mask)
    spec.assert(not y.requires_grad, "frozen features record no graph")
    local loss = (y * w):sum()
    loss:backward()
    spec.assert(w.grad, "downstream parameter got no gradient")
    spec.assert(enc.final_layer_norm.weight.grad == nil)
    enc:unfreeze()
    spec.assert(not enc.frozen)
    spec.eq(#enc:trainable_parameters(), #enc:parameters())
    enc:forward(ids, mask):sum():backward()
    spec.assert(enc.embeddings.token_embedding.weight.grad, "gradient after unfreezing")
  end)

  spec.it("trains jointly in an optimizer and stays put when frozen", function()
    local function run(frozen)
      local enc = Encoder(small, { seed = 7 })
      if frozen then enc:freeze() end
      local head = grove.nn.Linear(grove.nn.param_factory { generator = grove.Generator(8) }, 16, 1)
      local before = flat(enc.encoder.layers["0"].mlp.fc1.weight)
      local opt = grove.optim.adamw({ { params = enc }, { params = head } }, { lr = 1e-2, weight_decay = 0.1 })
      local ids = grove.tensor({ { 4, 5, 6, 0 }, { 7, 5, 0, 0 } }, { dtype = "i64" })
      local mask = grove.tensor { { 1, 1, 1, 0 }, { 1, 1, 0, 0 } }
      local target = grove.tensor { { 1 }, { -1 } }
      local losses = {}
      for step = 1, 15 do
        opt:zero_grad()
        local y = enc:forward(ids, mask)
        local pooled = y:sum(2) / mask:sum(2, true)
        local loss = grove.mse_loss(head:forward(pooled), target)
        loss:backward()
        opt:step()
        losses[step] = loss:item()
      end
      local after = flat(enc.encoder.layers["0"].mlp.fc1.weight)
      local moved = 0
      for i = 1, #before do moved = math.max(moved, math.abs(after[i] - before[i])) end
      return losses, moved
    end
    local losses, moved = run(false)
    spec.assert(losses[#losses] < 0.5 * losses[1], "joint loss " .. losses[1] .. " → " .. losses[#losses])
    spec.assert(moved > 0, "encoder did not train")
    local _, moved_frozen = run(true)
    spec.eq(moved_frozen, 0, "a frozen encoder changed")
  end)

  spec.it("initialises deterministically from a seed", function()
    local a, b, c = Encoder(small, { seed = 9 }), Encoder(small, { seed = 9 }), Encoder(small, { seed = 10 })
    local pa, pb, pc = a:parameters(), b:parameters(), c:parameters()
    for i = 1, #pa do spec.eq(max_abs_diff(pa[i], pb[i]), 0, "parameter " .. i) end
    spec.assert(max_abs_diff(pa[1], pc[1]) > 0, "different seeds gave equal embeddings")
  end)

  spec.it("saves and loads with its config", function()
    local enc = Encoder(small, { seed = 11 })
    local path = os.tmpname()
    enc:save(path)
    local back = Encoder.load_file(path)
    spec.eq(back.config.width, 16)
    spec.eq(back.config.depth, 2)
    spec.eq(back.config.vocab_size, 20)
    local ids = grove.tensor({ { 4, 5, 6, 0 } }, { dtype = "i64" })
    local mask = grove.tensor { { 1, 1, 1, 0 } }
    spec.eq(max_abs_diff(back:forward(ids, mask), enc:forward(ids, mask)), 0)
    local other = Encoder(small, { seed = 12 })
    other:load(path)
    spec.eq(max_abs_diff(other:forward(ids, mask), enc:forward(ids, mask)), 0)
    spec.raises(function() Encoder({ vocab_size = 20, width = 32, max_len = 8 }):load(path) end, "shape mismatch")
    os.remove(path)
  end)

  spec.it("rejects bad inputs and configs", function()
    local enc = Encoder(small, { seed = 13 })
    local ids = grove.tensor({ { 4, 5, 6, 0 } }, { dtype = "i64" })
    spec.raises(function() enc:forward(grove.tensor({ { 4, 20 } }, { dtype = "i64" })) end, "out of range")
    spec.raises(function() enc:forward(grove.tensor({ { 4, -1 } }, { dtype = "i64" })) end, "out of range")
    spec.raises(function() enc:forward(ids, grove.ones { 1, 3 }) end, "mask [1,3] does not match ids [1,4]")
    spec.raises(function() enc:forward(ids, grove.ones { 4 }) end, "does not match")
    spec.raises(function() enc:forward(grove.tensor { { 4, 5 } }) end, "must be i64")
    spec.raises(function() enc:forward(grove.tensor({ 4, 5 }, { dtype = "i64" })) end, "must be 2-d")
    spec.raises(function() enc:forward(grove.zeros({ 1, 9 }, { dtype = "i64" })) end, "longer than max_len 8")
    spec.raises(function() enc:forward("a red circle") end, "must be a tensor")
    spec.raises(function() Encoder({ width = 16 }) end, "vocab_size")
    spec.raises(function() Encoder({ vocab_size = 10, width = 16, heads = 3 }) end, "not a multiple of heads")
    spec.raises(function() Encoder({ vocab_size = 10, depth = -1 }) end, "depth")
  end)

  spec.it("feeds the SANA model's caption projection, gradients reaching the encoder", function()
    local tok = grove.text.shapes_tokenizer()
    local enc = Encoder({ vocab_size = tok:size(), width = 16, depth = 1, heads = 2, max_len = 6 }, { seed = 14 })
    local model = grove.nn.Sana({ depth = 1, width = 32, head_dim = 32, cross_heads = 1, patch_size = 2, in_channels = 3,
                                  caption_channels = 16, text_len = 6 }, { seed = 15 })
    local feats, mask = enc:encode_text(tok, { "a red circle", "three yellow circles left of a blue square" })
    spec.eq(feats:shape_str(), "[2,6,16]")
    list_eq(mask:tolist()[1], { 1, 1, 1, 0, 0, 0 })
    local x = grove.randn { 2, 8, 8, 3 }
    local out = model:forward(x, grove.tensor { 100, 500 }, feats, mask)
    spec.eq(out:shape_str(), "[2,8,8,3]")
    out:square():mean():backward()
    spec.assert(enc.embeddings.token_embedding.weight.grad, "no gradient reached the text encoder")
    spec.assert(enc.encoder.layers["0"].self_attn.q_proj.weight.grad, "no gradient reached the encoder's attention")
  end)
end)
