-- embedding, where and masked_fill: forward against float64 references,
-- gradients against finite differences, and the errors.
local grove = grove or require "grove"
local spec = require "spec"
local ref = require "ref"

-- Rows of Wt (V, D) picked by the 0-based ids I: shape (ids..., D).
local function embedding_ref(Wt, I)
  local d = Wt.shape[2]
  local shape = {}
  for i = 1, #I.shape do shape[i] = I.shape[i] end
  shape[#shape + 1] = d
  local out = ref.new(shape, 0)
  for n = 1, #I.data do
    for k = 1, d do out.data[(n - 1) * d + k] = Wt.data[I.data[n] * d + k] end
  end
  return out
end

-- f over three arrays broadcast together (torch rules).
local function zip3(A, B, Cc, f)
  local arrays = { A, B, Cc }
  local n = 0
  for _, a in ipairs(arrays) do n = math.max(n, #a.shape) end
  local shape = {}
  for i = 1, n do
    local s = 1
    for _, a in ipairs(arrays) do
      local si = a.shape[i - (n - #a.shape)] or 1
      if si ~= 1 then s = si end
    end
    shape[i] = s
  end
  local out = ref.new(shape, 0)
  local function pick(a, idx)
    local lead, sub = n - #a.shape, {}
    for d = 1, #a.shape do sub[d] = a.shape[d] == 1 and 1 or idx[d + lead] end
    return ref.get(a, sub)
  end
  for k = 1, #out.data do
    local idx = ref.unflatten(shape, k)
    out.data[k] = f(pick(A, idx), pick(B, idx), pick(Cc, idx))
  end
  return out
end

local function where_ref(Cd, A, B) return zip3(Cd, A, B, function(c, a, b) return c ~= 0 and a or b end) end

local function u8(t) return grove.tensor(t, { dtype = "u8" }) end

spec.describe("embedding", function()
  spec.it("gathers rows, repeated ids accumulate their gradients (i64)", function()
    spec.check_op{
      fn = grove.embedding,
      ref = embedding_ref,
      inputs = { { 10, 4 }, function() return grove.tensor({ { 1, 3, 3 }, { 0, 9, 1 } }, { dtype = "i64" }) end },
      nograd = { [2] = true },
    }
  end)
  spec.it("takes i32 ids of any rank", function()
    spec.check_op{
      fn = grove.embedding,
      ref = embedding_ref,
      inputs = { { 5, 3 }, function() return grove.tensor({ { { 4, 4 } }, { { 0, 4 } } }, { dtype = "i32" }) end },
      nograd = { [2] = true },
    }
    spec.check_op{
      fn = grove.embedding,
      ref = embedding_ref,
      inputs = { { 6, 2 }, function() return grove.tensor({ 2, 2, 5, 2 }, { dtype = "i64" }) end },
      nograd = { [2] = true },
    }
  end)
  spec.it("scatter-adds large gradients the same with any thread count", function()
    local function run()
      grove.manual_seed(3)
      local w = grove.randn{ 50, 96 }:requires_grad_(true)
      local ids = {}
      for i = 1, 2000 do ids[i] = (i * 7919) % 50 end
      local y = grove.embedding(w, grove.tensor(ids, { dtype = "i64" }))
      y:backward(grove.randn(y:shape()))
      return ref.from_tensor(w.grad)
    end
    local threads = grove.num_threads()
    local a = run()
    grove.set_num_threads(1)
    local b = run()
    grove.set_num_threads(threads)
    for i = 1, #a.data do spec.eq(a.data[i], b.data[i], "element " .. i) end
  end)
  spec.it("rejects bad ids", function()
    local w = grove.randn{ 10, 4 }
    spec.raises(function() grove.embedding(w, grove.tensor({ 1, 10 }, { dtype = "i64" })) end,
      "embedding: index 10 out of range for 10 embeddings")
    spec.raises(function() grove.embedding(w, grove.tensor({ -1 }, { dtype = "i32" })) end, "index -1 out of range")
    spec.raises(function() grove.embedding(w, grove.tensor{ 1, 2 }) end, "indices must be i64 or i32, got f32")
    spec.raises(function() grove.embedding(grove.randn{ 10 }, grove.tensor({ 1 }, { dtype = "i64" })) end, "must be 2-d")
  end)
end)

spec.describe("where", function()
  spec.it("broadcasts cond, a and b together", function()
    spec.check_op{
      fn = grove.where,
      ref = where_ref,
      inputs = { function() return u8{ { 1 }, { 0 }, { 3 } } end, { 1, 4 }, { 3, 4 } },
      nograd = { [1] = true },
    }
    spec.check_op{
      fn = grove.where,
      ref = where_ref,
      inputs = { function() return u8{ 0, 1, 1, 0 } end, { 2, 3, 4 }, { 3, 1 } },
      nograd = { [1] = true },
    }
  end)
  spec.it("reads non-contiguous operands", function()
    spec.check_op{
      fn = function(c, a, b) return grove.where(c, a:t(), b) end,
      ref = function(Cd, A, B)
        local T = ref.new({ A.shape[2], A.shape[1] }, 0)
        for i = 1, A.shape[1] do for j = 1, A.shape[2] do ref.set(T, { j, i }, ref.get(A, { i, j })) end end
        return where_ref(Cd, T, B)
      end,
      inputs = { function() return u8{ { 1, 0, 0 }, { 0, 1, 1 } } end, { 3, 2 }, { 3 } },
      nograd = { [1] = true },
    }
  end)
  spec.it("rejects a non-u8 condition and shapes that do not broadcast", function()
    spec.raises(function() grove.where(grove.tensor{ 1, 0 }, grove.randn{ 2 }, grove.randn{ 2 }) end,
      "where: cond must be u8")
    spec.raises(function() grove.where(u8{ 1, 0, 1 }, grove.randn{ 2 }, grove.randn{ 2 }) end, "cannot broadcast")
    spec.raises(function() grove.where(u8{ 1, 0 }, grove.randn{ 2 }, grove.randn{ 3 }) end, "cannot broadcast")
  end)
end)

spec.describe("masked_fill", function()
  spec.it("fills where the mask is set and passes the gradient elsewhere", function()
    spec.check_op{
      fn = function(x, m) return grove.masked_fill(x, m, -7) end,
      ref = function(X, M)
        return zip3(X, M, X, function(x, m) return m ~= 0 and -7 or x end)
      end,
      inputs = { { 3, 4 }, function() return u8{ 0, 1, 0, 2 } end },
      nograd = { [2] = true },
    }
    spec.check_op{
      fn = function(x, m) return x:masked_fill(m, 0.5) end,
      ref = function(X, M)
        return zip3(X, M, X, function(x, m) return m ~= 0 and 0.5 or x end)
      end,
      inputs = { { 2, 3, 2 }, function() return u8{ { { 1 }, { 0 }, { 1 } } } end },
      nograd = { [2] = true },
    }
  end)
  spec.it("rejects a mask of the wrong dtype or shape", function()
    spec.raises(function() grove.masked_fill(grove.randn{ 2, 2 }, grove.tensor{ 1, 0 }, 0) end,
      "masked_fill: mask must be u8 (nonzero = true), got f32 [2]")
    spec.raises(function() grove.masked_fill(grove.randn{ 2, 2 }, u8{ 1, 0, 1 }, 0) end, "cannot broadcast")
    spec.raises(function() grove.masked_fill(grove.randn{ 2 }, u8{ { 1, 0 }, { 0, 1 } }, 0) end,
      "mask [2,2] does not broadcast to the input's shape [2]")
  end)
end)

spec.describe("index ops memory", function()
  spec.it("leave no tensors or tape nodes alive", function()
    local function work()
      local w = grove.randn{ 6, 3 }:requires_grad_(true)
      local e = grove.embedding(w, grove.tensor({ 1, 1, 5 }, { dtype = "i64" }))
      local m = u8{ 1, 0, 1 }
      local y = grove.where(m, e, grove.randn{ 1, 3 }:requires_grad_(true)) + grove.masked_fill(e, m, 2)
      y:sum():backward()
      pcall(grove.embedding, w, grove.tensor({ 6 }, { dtype = "i64" }))
      pcall(grove.masked_fill, e, grove.tensor{ 1, 0, 1 }, 0)
    end
    spec.no_leaks(work)
  end)
end)
