-- Fits a 2-layer MLP to y = sin(3x)·x on [-2, 2] with autograd and plain
-- SGD, printing the loss as it falls. Run: grove examples/mlp.lua [steps]
local grove = grove or require "grove"

local steps = tonumber(arg and arg[1]) or 3000
local hidden, lr, n = 64, 0.05, 256
grove.manual_seed(0)

-- the function to fit, sampled at n points
local xs, ys = {}, {}
for i = 1, n do
  local v = -2 + 4 * (i - 1) / (n - 1)
  xs[i], ys[i] = { v }, { math.sin(3 * v) * v }
end
local x, y = grove.tensor(xs), grove.tensor(ys)

-- parameters: Linear(1, hidden) → tanh → Linear(hidden, 1)
local function param(shape, scale)
  return (grove.randn(shape) * scale):detach():requires_grad_(true)
end
local w1, b1 = param({ hidden, 1 }, 1.0), grove.zeros({ hidden }, { requires_grad = true })
local w2, b2 = param({ 1, hidden }, 1 / math.sqrt(hidden)), grove.zeros({ 1 }, { requires_grad = true })
local params = { w1, b1, w2, b2 }

local function sgd_step()
  grove.no_grad(function()
    for _, p in ipairs(params) do
      p:copy_(p - p.grad * lr)
      p:zero_grad()
    end
  end)
end

local first
for step = 1, steps do
  local pred = x:linear(w1, b1):tanh():linear(w2, b2)
  local loss = grove.mse_loss(pred, y)
  loss:backward()
  sgd_step()
  local l = loss:item()
  first = first or l
  if step == 1 or step % (steps / 10) == 0 then
    print(string.format("step %5d  loss %.6f", step, l))
  end
end
local final = grove.no_grad(function()
  return grove.mse_loss(x:linear(w1, b1):tanh():linear(w2, b2), y):item()
end)
print(string.format("loss fell from %.4f to %.6f (%.0fx)", first, final, first / final))
