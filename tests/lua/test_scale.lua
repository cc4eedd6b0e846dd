-- Training at scale, the parts a CPU checks: bf16 rounding and the bf16
-- GEMM reference, model:to(device, "bf16"), the f16 loss scaler, the memory
-- report's exact byte counts, and data parallel in a world of one process.
local spec = require "spec"
local ffi = require "ffi"

-- A union, not a float buffer cast to uint32_t *: LuaJIT's optimiser assumes
-- pointers of different types do not alias, and a compiled loop may read a
-- stale value through the cast pointer.
local pun = ffi.typeof("union { float f; uint32_t u; }")

local function bits(x) -- the f32 bit patterns of a tensor's values
  local out = {}
  local p = pun()
  for i, v in ipairs(x:reshape { -1 }:tolist()) do p.f = v; out[i] = tonumber(p.u) end
  return out
end

local function from_bits(list)
  local p = pun()
  local vals = {}
  for i, b in ipairs(list) do p.u = b; vals[i] = p.f end
  return grove.tensor(vals)
end

-- bf16 of an f32 bit pattern, by the rule written out independently:
-- keep the top 16 bits, round the low 16 to nearest, ties to the even top.
local function ref_bf16(b)
  local hi, lo = math.floor(b / 65536), b % 65536
  if lo > 32768 or (lo == 32768 and hi % 2 == 1) then hi = hi + 1 end
  return hi * 65536
end

local tiny = { depth = 2, width = 128, head_dim = 32, cross_heads = 2, mlp_ratio = 2.5, patch_size = 2,
               in_channels = 4, out_channels = 4, caption_channels = 32, text_len = 8 }

local function batch(seed)
  local g = grove.Generator(seed)
  return grove.randn({ 2, 8, 8, 4 }, g), grove.tensor { 300, 700 }, grove.randn({ 2, 8, 32 }, g),
         grove.tensor { { 1, 1, 1, 1, 1, 0, 0, 0 }, { 1, 1, 1, 1, 1, 1, 1, 1 } }
end

spec.describe("bf16", function()
  spec.it("rounds f32 to nearest, ties to even", function()
    local pats = { 0x3f800000, 0x3f808000, 0x3f818000, 0x3f807fff, 0x3f808001, 0xbf808000, 0x7f7fffff, 0x00000001,
                   0x3f8080ff, 0x40490fdb }
    local x = from_bits(pats)
    local r = bits(grove.amp.round_bf16(x))
    for i, b in ipairs(pats) do
      local want = ref_bf16(b)
      if want >= 2 ^ 32 then want = want - 2 ^ 32 end
      spec.eq(r[i], want, string.format("bf16 of 0x%08x", b))
    end
    -- the largest finite f32 rounds up to infinity, as torch does
    spec.eq(grove.amp.round_bf16(from_bits { 0x7f7fffff }):item(), math.huge)
    local nan = grove.amp.round_bf16(grove.tensor { 0 / 0 }):item()
    spec.assert(nan ~= nan, "NaN stays NaN")
  end)

  spec.it("matmul_bf16 is the f32 GEMM of bf16-rounded operands", function()
    local g = grove.Generator(21)
    for _, s in ipairs { { 7, 33, 5 }, { 16, 64, 48 }, { 1, 3, 1 }, { 130, 300, 70 } } do
      local a, b = grove.randn({ s[1], s[2] }, g), grove.randn({ s[2], s[3] }, g)
      local ar, br = grove.amp.round_bf16(a), grove.amp.round_bf16(b)
      local ref = grove.matmul(ar, br)
      -- the reference path: bit for bit the f32 GEMM of the rounded operands
      grove.set_gemm_bf16_dnnl(false)
      local y = grove.matmul_bf16(a, b)
      grove.set_gemm_bf16_dnnl(true)
      spec.eq((y - ref):abs():max():item(), 0, "same GEMM on rounded inputs")
      -- and it is not the f32 product (the rounding is real)
      spec.assert((y - grove.matmul(a, b)):abs():max():item() > 0, "bf16 differs from f32")
      -- oneDNN's bf16 matmul, where the CPU has one: the same products summed
      -- in another order, so within twice the f32 dot-product bound
      -- (k · 2^-24 · Σ|a||b| each) of the reference, entry by entry
      if grove.gemm_bf16_dnnl_available() then
        local fast = grove.matmul_bf16(a, b)
        local bound = grove.matmul(ar:abs(), br:abs()) * (2 * s[2] * 2 ^ -24)
        spec.assert(((fast - ref):abs() - bound):max():item() <= 0, "oneDNN within the summation bound")
      end
    end
    spec.raises(function() grove.matmul_bf16(grove.randn { 2, 3 }, grove.randn { 4, 5 }) end, "inner dimensions differ")
    spec.raises(function() grove.matmul_bf16(grove.randn { 2 }, grove.randn { 2, 5 }) end, "2-d")
    -- an empty inner dimension gives zeros
    spec.eq(grove.matmul_bf16(grove.zeros { 2, 0 }, grove.zeros { 0, 3 }):abs():sum():item(), 0)
  end)

  spec.it("matmul_bf16 gradients are bf16 GEMMs", function()
    grove.set_gemm_bf16_dnnl(false) -- the reference path, exact
    local g = grove.Generator(22)
    local a = grove.randn({ 5, 7 }, g):requires_grad_(true)
    local b = grove.randn({ 7, 3 }, g):requires_grad_(true)
    local w = grove.randn({ 5, 3 }, g)
    ;(grove.matmul_bf16(a, b) * w):sum():backward()
    local ga = grove.matmul(grove.amp.round_bf16(w), grove.amp.round_bf16(b:detach():t():contiguous()))
    local gb = grove.matmul(grove.amp.round_bf16(a:detach():t():contiguous()), grove.amp.round_bf16(w))
    spec.eq((a.grad - ga):abs():max():item(), 0, "da")
    spec.eq((b.grad - gb):abs():max():item(), 0, "db")
    grove.set_gemm_bf16_dnnl(true)
  end)

  -- |ã·b̃ − a·b| ≤ (2u + u²)|a||b| per product with u = 2^-8 (bf16's unit
  -- roundoff), plus twice the f32 summation bound k·2^-24·Σ|a||b|.
  local function bf16_bound(aa, bb, k)
    return grove.matmul(aa:abs(), bb:abs()) * (2 * 2 ^ -8 + 2 ^ -16 + 2 * k * 2 ^ -24)
  end

  spec.it("matmul_bf16 reads transposed and strided views in place, with the same bits", function()
    local g = grove.Generator(23)
    for _, s in ipairs { { 7, 33, 5 }, { 16, 64, 48 }, { 1, 3, 1 }, { 130, 300, 70 } } do
      local m, k, n = s[1], s[2], s[3]
      -- a read transposed from (k, m), b from (n, k); a row-strided b: columns of a wider matrix
      local at, bt = grove.randn({ k, m }, g), grove.randn({ n, k }, g)
      local wide = grove.randn({ k, n + 5 }, g)
      local cases = {
        { at:t(), bt:t(), "aᵀ · bᵀ" }, { at:t():contiguous(), bt:t(), "a · bᵀ" },
        { at:t(), bt:t():contiguous(), "aᵀ · b" }, { at:t():contiguous(), wide:narrow(2, 3, n), "a · b[:, 3..]" },
      }
      for _, c in ipairs(cases) do
        local a, b = c[1], c[2]
        local ar, br = grove.amp.round_bf16(a:contiguous()), grove.amp.round_bf16(b:contiguous())
        grove.set_gemm_bf16_dnnl(false)
        local y = grove.matmul_bf16(a, b)
        local yc = grove.matmul_bf16(a:contiguous(), b:contiguous())
        grove.set_gemm_bf16_dnnl(true)
        -- the reference path: the f32 GEMM of the rounded operands, read the same way
        spec.eq((y - grove.matmul(grove.amp.round_bf16(a), grove.amp.round_bf16(b))):abs():max():item(), 0, c[3])
        spec.eq((y - yc):abs():max():item(), 0, c[3] .. ": the bits of contiguous copies")
        -- the f32 product within the bf16 rounding bound
        spec.assert(((y - grove.matmul(a, b)):abs() - bf16_bound(a, b, k)):max():item() <= 0, c[3] .. " vs f32")
        if grove.gemm_bf16_dnnl_available() then
          local fast = grove.matmul_bf16(a, b)
          local bound = grove.matmul(ar:abs(), br:abs()) * (2 * k * 2 ^ -24)
          spec.assert(((fast - y):abs() - bound):max():item() <= 0, c[3] .. ": oneDNN within the summation bound")
        end
      end
    end
    -- linear_bf16 reads the weight transposed, with the bits of the old transposed copy
    local x, w, b = grove.randn({ 3, 9, 40 }, g), grove.randn({ 24, 40 }, g), grove.randn({ 24 }, g)
    grove.set_gemm_bf16_dnnl(false)
    local y = grove.linear_bf16(x, w, b)
    local old = (grove.matmul_bf16(x:reshape { -1, 40 }, w:t():contiguous()) + b):reshape { 3, 9, 24 }
    grove.set_gemm_bf16_dnnl(true)
    spec.eq((y - old):abs():max():item(), 0, "linear_bf16")
  end)

  spec.it("matmul_bf16 gradients through transposed views, against f32 within the bf16 bound", function()
    local g = grove.Generator(24)
    for _, dnnl in ipairs { false, true } do
      grove.set_gemm_bf16_dnnl(dnnl)
      local x = grove.randn({ 6, 11, 40 }, g)
      local w = grove.randn({ 24, 40 }, g)
      local go = grove.randn({ 6, 11, 24 }, g)
      local function grads(f)
        local xx, ww = x:clone():requires_grad_(true), w:clone():requires_grad_(true)
        ;(f(xx, ww) * go):sum():backward()
        return xx.grad, ww.grad
      end
      local gx, gw = grads(function(xx, ww) return grove.linear_bf16(xx, ww) end)
      local fx, fw = grads(function(xx, ww) return grove.linear(xx, ww) end)
      -- dx = go · w (k = 24), dw = goᵀ · x (k = 66)
      local g2, x2 = go:reshape { -1, 24 }, x:reshape { -1, 40 }
      spec.assert(((gx - fx):abs():reshape { -1, 40 } - bf16_bound(g2, w, 24)):max():item() <= 0, "dx")
      spec.assert(((gw - fw):abs() - bf16_bound(g2:t(), x2, 66)):max():item() <= 0, "dw")
      spec.assert((gw - fw):abs():max():item() > 0, "the gradient GEMMs round too")
    end
    grove.set_gemm_bf16_dnnl(true)
  end)

  spec.it("matmul_bf16 takes bf16-stored operands: the same bits as their f32 originals", function()
    local g = grove.Generator(25)
    for _, dnnl in ipairs { false, true } do
      grove.set_gemm_bf16_dnnl(dnnl)
      for _, s in ipairs { { 7, 33, 5 }, { 130, 300, 70 }, { 1, 1, 1 } } do
        local m, k, n = s[1], s[2], s[3]
        local x, w = grove.randn({ m, k }, g), grove.randn({ n, k }, g)
        local wh = w:bf16()
        local y = grove.matmul_bf16(x, w:t())
        spec.eq((grove.matmul_bf16(x, wh:t()) - y):abs():max():item(), 0, "bf16 weight read transposed")
        spec.eq((grove.matmul_bf16(x:bf16(), wh:t()) - y):abs():max():item(), 0, "both bf16")
        spec.eq((grove.matmul_bf16(x:bf16(), w:t():contiguous()) - y):abs():max():item(), 0, "bf16 left operand")
        -- a bf16 weight already holds rounded values: the same as the rounded f32 one
        spec.eq((grove.matmul_bf16(x, grove.amp.round_bf16(w):t()) - y):abs():max():item(), 0, "pre-rounded f32")
      end
    end
    grove.set_gemm_bf16_dnnl(true)
    -- gradients flow to an f32 input past a bf16-stored weight
    local x = grove.randn({ 4, 8 }, g):requires_grad_(true)
    local w = grove.randn({ 3, 8 }, g)
    grove.linear_bf16(x, w:bf16()):sum():backward()
    local gx = x.grad
    x.grad = nil
    grove.linear_bf16(x, w):sum():backward()
    spec.eq((gx - x.grad):abs():max():item(), 0, "the input's gradient")
    spec.raises(function() grove.matmul_bf16(grove.randn { 2, 3 }:half(), grove.randn { 3, 2 }) end, "operand a is f16")
    spec.raises(function() grove.matmul_bf16(grove.randn { 2, 3 }, grove.zeros({ 3, 2 }, { dtype = "i32" })) end,
                "operand b is i32")
    spec.raises(function() grove.matmul_bf16(grove.randn { 2, 3 }, grove.randn { 1, 3, 2 }) end, "operand b")
  end)

  spec.it("model:to(device, 'bf16') keeps f32 master weights and computes GEMMs in bf16", function()
    local m = grove.nn.Sana(tiny, { seed = 1 })
    local x, t, text, mask = batch(2)
    local y32 = grove.no_grad(function() return m:forward(x, t, text, mask) end)
    m:to("cpu", "bf16")
    spec.eq(m.blocks[1].attn1.to_q.compute_dtype, "bf16")
    for _, p in ipairs(m:parameters()) do spec.eq(p:dtype(), "f32", "parameters stay f32") end
    local y16 = grove.no_grad(function() return m:forward(x, t, text, mask) end)
    local rel = (y16 - y32):abs():max():item() / y32:abs():max():item()
    print(string.format("    bf16 vs f32 forward of a 2-block model: max relative difference %.2e", rel))
    spec.assert(rel > 0 and rel < 5e-2, "bf16 close to f32 but not equal: " .. rel)
    -- gradients flow into the f32 parameters
    local loss = m:forward(x, t, text, mask):pow(2):mean()
    loss:backward()
    spec.eq(m.blocks[1].attn1.to_q.weight.grad:dtype(), "f32")
    m:to("cpu", "f32")
    spec.eq(m.blocks[1].attn1.to_q.compute_dtype, nil)
    spec.raises(function() m:to("cpu", "f8") end, "compute dtype")
  end)

  spec.it("weights = 'bf16' stores the GEMM weights bf16: the same outputs bit for bit, half the bytes", function()
    local x, t, text, mask = batch(3)
    for _, dnnl in ipairs { false, true } do
      grove.set_gemm_bf16_dnnl(dnnl)
      local ref = grove.nn.Sana(tiny, { seed = 4 }):to("cpu", "bf16")
      local m = grove.nn.Sana(tiny, { seed = 4 })
      local before = 0
      for _, p in ipairs(m:parameters()) do before = before + p:numel() * (p:dtype() == "f32" and 4 or 2) end
      m:to("cpu", "bf16", { weights = "bf16" })
      local q = m.blocks[1].attn1.to_q
      spec.eq(q.weight:dtype(), "bf16", "a Linear's weight")
      spec.eq(q.compute_dtype, "bf16")
      local halved, after = 0, 0
      for _, p in ipairs(m:parameters()) do
        if p:dtype() == "bf16" then halved = halved + p:numel() end
        after = after + p:numel() * (p:dtype() == "f32" and 4 or 2)
      end
      spec.eq(after, before - 2 * halved, "bf16 weights take half the bytes")
      spec.assert(halved > 0.8 * m:num_parameters(), "most parameters are GEMM weights")
      local want = grove.no_grad(function() return ref:forward(x, t, text, mask) end)
      local got = grove.no_grad(function() return m:forward(x, t, text, mask) end)
      spec.eq((got - want):abs():max():item(), 0, "bf16-stored output is the f32-stored compute = bf16 output")
      -- widened back, the values are the rounded ones: the same output again
      m:to("cpu", "bf16", { weights = "f32" })
      spec.eq(q.weight:dtype(), "f32")
      local back = grove.no_grad(function() return m:forward(x, t, text, mask) end)
      spec.eq((back - want):abs():max():item(), 0, "widened weights")
    end
    grove.set_gemm_bf16_dnnl(true)
    -- training keeps f32 master weights: the optimizers refuse bf16 ones
    local m = grove.nn.Sana(tiny, { seed = 4 }):to("cpu", "bf16", { weights = "bf16" })
    spec.raises(function() grove.optim.adamw(m:parameters(), { lr = 1e-3 }) end, "is bf16, expected f32")
    spec.raises(function() m:to("cpu", "bf16", { weights = "f16" }) end, "weights must be \"bf16\" or \"f32\"")
    spec.raises(function() m:to("cpu", "bf16", "bf16") end, "options must be a table")
  end)
end)

spec.describe("loss scaler", function()
  spec.it("skips the step and halves on inf, grows after N good steps", function()
    local w = grove.tensor({ 1, 2, 3 }):requires_grad_(true)
    local opt = grove.optim.sgd({ w }, { lr = 0.1 })
    local scaler = grove.amp.LossScaler { init_scale = 1024, growth_interval = 2 }
    -- a good step: gradients unscaled exactly (powers of two)
    scaler:scale((w * w):sum()):backward()
    spec.eq(w.grad:tolist()[3], 6 * 1024, "scaled gradient")
    spec.eq(scaler:step(opt, { w }), true)
    spec.near(w:tolist()[3], 3 - 0.1 * 6, 1e-6, "the step used the unscaled gradient")
    opt:zero_grad()
    -- an injected inf: skipped, halved, gradients dropped
    local before = w:tolist()
    scaler:scale((w * w):sum()):backward()
    w.grad = grove.tensor { 1, math.huge, 0 }
    spec.eq(scaler:step(opt, { w }), false)
    spec.eq(scaler:get_scale(), 512)
    spec.eq(w.grad, nil)
    spec.eq(w:tolist()[1], before[1], "no update")
    spec.eq(scaler.skipped, 1)
    -- NaN too
    scaler:scale((w * w):sum()):backward()
    w.grad = grove.tensor { 0 / 0, 1, 1 }
    spec.eq(scaler:step(opt, { w }), false)
    spec.eq(scaler:get_scale(), 256)
    -- two good steps in a row double the scale
    for _ = 1, 2 do
      scaler:scale((w * w):sum()):backward()
      spec.eq(scaler:step(opt, { w }), true)
      opt:zero_grad()
    end
    spec.eq(scaler:get_scale(), 512)
    spec.raises(function() grove.amp.LossScaler { backoff_factor = 2 } end, "backoff_factor")
  end)
end)

-- Expected state bytes from the rules in docs/optimizers.md, written out here.
local function is_table(name) return name:find("scale_shift_table$") or name:find("y_embedding$") end
local function factored(shape, name)
  if #shape == 2 and not is_table(name) then return shape[1], shape[2] end
  if #shape == 4 and shape[3] == 1 and shape[4] == 1 then return shape[1], shape[2] end
end

local function expected_state(model, kind)
  local total = 0
  for _, np in ipairs(model:named_parameters()) do
    local name, shape, n = np[1], np[2]:shape(), np[2]:numel()
    if kind == "adamw" then total = total + 8 * n
    else
      local r, c = factored(shape, name)
      if r then
        local first = 4 * n
        if kind == "came8bit" and n > 16384 then first = n + 8 * math.ceil(n / 256) end
        total = total + first + 8 * (r + c)
      else
        total = total + 8 * n
      end
    end
  end
  return total
end

spec.describe("memory report", function()
  spec.it("counts parameters, gradients and state exactly (AdamW, CAME, CAME-8bit)", function()
    for _, kind in ipairs { "adamw", "came", "came8bit" } do
      local m = grove.nn.Sana(tiny, { seed = 4 })
      local opt = grove.optim[kind](m, { lr = 1e-4 })
      local x, t, text, mask = batch(5)
      local N = m:num_parameters()
      local r = grove.memory_report(m, opt, { step = function()
        local loss = m:forward(x, t, text, mask):pow(2):mean()
        loss:backward()
        opt:step()
      end })
      spec.eq(r.parameters, 4 * N, kind .. " parameter bytes")
      local unused = m.y_embedding:numel() -- the null caption: no gradient from a captioned forward
      spec.eq(r.gradients, 4 * (N - unused), kind .. " gradient bytes")
      spec.eq(r.optimizer_state, expected_state(m, kind), kind .. " state bytes")
      spec.eq(r.optimizer_state, opt:state_bytes().total, kind .. " agrees with state_bytes")
      spec.assert(r.activations > 0 and r.peak >= r.parameters + r.optimizer_state, kind .. " activations measured")
      if kind == "came8bit" then print(grove.format_memory_report(r)) end
      m:zero_grad()
    end
  end)

  spec.it("works without a step and for a parameter list", function()
    local m = grove.nn.Sana(tiny, { seed = 6 })
    local r = grove.memory_report(m:parameters())
    spec.eq(r.parameters, 4 * m:num_parameters())
    spec.eq(r.gradients, 0)
    spec.eq(r.optimizer_state, 0)
    spec.assert(grove.format_memory_report(r):find("parameters"), "a table")
  end)
end)

spec.describe("data parallel", function()
  spec.it("a world of one process: the collectives are the identity", function()
    spec.eq(grove.dist.world_size(), 1)
    spec.eq(grove.dist.rank(), 0)
    local r, n = grove.dist.init { rank = 0, world_size = 1 }
    spec.eq(r, 0); spec.eq(n, 1)
    local w = grove.tensor({ 1, 2, 3 }):requires_grad_(true)
    ;(w * w):sum():backward()
    grove.dist.all_reduce_grads({ w })
    spec.eq(table.concat(w.grad:tolist(), ","), "2,4,6")
    grove.dist.broadcast_parameters({ w })
    spec.eq(table.concat(w:tolist(), ","), "1,2,3")
    spec.raises(function() grove.dist.init { rank = 2, world_size = 2 } end, "out of range")
    spec.raises(function() grove.dist.broadcast({ w }, 1) end, "root 1")
    if grove.build_info().cuda ~= "on" then
      spec.raises(function() grove.dist.init { rank = 0, world_size = 2 } end, "no CUDA")
    end
  end)

  spec.it("training with dist at world size 1 gives the same losses", function()
    local base = { preset = "tiny", batch = 4, lr = 2e-3, warmup = 2, sample_every = 0, log_every = 1000, eval = false,
                   seed = 3, steps = 4, save_every = 100, config = { depth = 2 } }
    local function run(dist)
      local o = { dist = dist, out = spec.tmpdir() }
      for k, v in pairs(base) do o[k] = v end
      local r = grove.train.run(o)
      os.execute("rm -rf " .. o.out)
      return r.losses
    end
    local a, b = run(false), run(true)
    for i = 1, 4 do spec.eq(b[i], a[i], "loss at step " .. i) end
  end)
end)
