-- Whole training steps: no leaks over many iterations, bit-identical
-- results from the same seed, and random draws independent of the thread count.
local spec = require "spec"

-- One small model: Linear → GELU → dropout → Linear → softmax cross-entropy
-- plus an MSE term, trained with plain SGD.
local function make_model(seed)
  grove.manual_seed(seed)
  local p = {
    w1 = (grove.randn{32, 8} * 0.3):detach():requires_grad_(),
    b1 = grove.zeros({32}, {requires_grad = true}),
    w2 = (grove.randn{4, 32} * 0.2):detach():requires_grad_(),
    b2 = grove.zeros({4}, {requires_grad = true}),
  }
  return p
end

local function train_step(p, x, labels, target, gen)
  local h = grove.dropout(x:linear(p.w1, p.b1):gelu(), 0.1, true, gen)
  local logits = h:linear(p.w2, p.b2)
  local loss = grove.cross_entropy(logits, labels) + grove.mse_loss(logits:softmax(-1), target) * 0.5
  loss:backward()
  grove.no_grad(function()
    for _, w in pairs(p) do
      w:copy_(w - w.grad * 0.05)
      w:zero_grad()
    end
  end)
  return loss:item()
end

local function batch(gen)
  local x = grove.randn({16, 8}, {generator = gen})
  local labels = grove.tensor({0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}, {dtype = "i64"})
  local target = grove.rand({16, 4}, {generator = gen})
  return x, labels, target
end

local function run(seed, steps)
  local p = make_model(seed)
  local gen = grove.Generator(seed)
  local losses = {}
  for i = 1, steps do
    local x, labels, target = batch(gen)
    losses[i] = train_step(p, x, labels, target, gen)
  end
  return losses, p.w1:tolist()
end

spec.describe("training loop", function()
  spec.it("10,000 steps leave live bytes, tensors and tape nodes where they started", function()
    local p = make_model(3)
    local gen = grove.Generator(3)
    local x, labels, target = batch(gen)
    -- the first run gives the parameters their own buffers
    spec.no_leaks(function() train_step(p, x, labels, target, gen) end, 10000)
  end)
  spec.it("the same seed gives bit-identical losses and weights", function()
    local l1, w1 = run(11, 30)
    local l2, w2 = run(11, 30)
    for i = 1, #l1 do spec.eq(l1[i], l2[i], "loss " .. i) end
    for i = 1, #w1 do for j = 1, #w1[i] do spec.eq(w1[i][j], w2[i][j]) end end
    spec.assert(l1[30] < l1[1], "loss falls")
    local l3 = run(12, 30)
    spec.assert(l3[1] ~= l1[1], "another seed gives another run")
  end)
  spec.it("random draws do not depend on the thread count", function()
    local n0 = grove.num_threads()
    grove.set_num_threads(1)
    local a = grove.randn({300000}, {generator = grove.Generator(5)})
    local d1 = grove.dropout(grove.ones{300000}, 0.3, true, grove.Generator(6))
    grove.set_num_threads(math.max(2, n0))
    local b = grove.randn({300000}, {generator = grove.Generator(5)})
    local d2 = grove.dropout(grove.ones{300000}, 0.3, true, grove.Generator(6))
    grove.set_num_threads(n0)
    spec.eq((a - b):abs():max():item(), 0)
    spec.eq((d1 - d2):abs():max():item(), 0)
  end)
end)
