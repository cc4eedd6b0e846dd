-- cat, stack and pad: forward against float64 references, gradients
-- against finite differences, and the errors.
local grove = grove or require "grove"
local spec = require "spec"
local ref = require "ref"

-- Concatenation of ref arrays along Lua dimension d (negative from the end).
local function cat_ref(d)
  return function(...)
    local arrays = { ... }
    local nd = #arrays[1].shape
    if d < 0 then d = nd + 1 + d end
    local shape = {}
    for i = 1, nd do shape[i] = arrays[1].shape[i] end
    shape[d] = 0
    for _, a in ipairs(arrays) do shape[d] = shape[d] + a.shape[d] end
    local out = ref.new(shape, 0)
    local at = 0
    for _, a in ipairs(arrays) do
      for k = 1, #a.data do
        local idx = ref.unflatten(a.shape, k)
        idx[d] = idx[d] + at
        ref.set(out, idx, a.data[k])
      end
      at = at + a.shape[d]
    end
    return out
  end
end

-- Stacking = giving each array a size-1 dimension at d, then cat.
local function stack_ref(d)
  return function(...)
    local arrays = { ... }
    local nd = #arrays[1].shape + 1
    if d < 0 then d = nd + 1 + d end
    local lifted = {}
    for i, a in ipairs(arrays) do
      local shape = {}
      for k = 1, #a.shape do shape[k] = a.shape[k] end
      table.insert(shape, d, 1)
      lifted[i] = { shape = shape, data = a.data }
    end
    return cat_ref(d)(unpack(lifted))
  end
end

-- Constant padding, pads as torch: (before, after) from the last dimension.
local function pad_ref(pads, value)
  return function(X)
    local nd = #X.shape
    local shape, before = {}, {}
    for i = 1, nd do shape[i] = X.shape[i]; before[i] = 0 end
    for p = 1, #pads / 2 do
      local d = nd + 1 - p
      before[d] = pads[2 * p - 1]
      shape[d] = shape[d] + pads[2 * p - 1] + pads[2 * p]
    end
    local out = ref.new(shape, value or 0)
    for k = 1, #X.data do
      local idx = ref.unflatten(X.shape, k)
      for i = 1, nd do idx[i] = idx[i] + before[i] end
      ref.set(out, idx, X.data[k])
    end
    return out
  end
end

spec.describe("cat", function()
  spec.it("joins three inputs along dims 1, 2, 3 and -1", function()
    spec.check_op{ fn = function(a, b, c) return grove.cat({ a, b, c }, 1) end, ref = cat_ref(1),
      inputs = { { 1, 3, 4 }, { 2, 3, 4 }, { 3, 3, 4 } } }
    spec.check_op{ fn = function(a, b, c) return grove.cat({ a, b, c }, 2) end, ref = cat_ref(2),
      inputs = { { 2, 3, 4 }, { 2, 5, 4 }, { 2, 1, 4 } } }
    spec.check_op{ fn = function(a, b, c) return grove.cat({ a, b, c }, 3) end, ref = cat_ref(3),
      inputs = { { 2, 3, 1 }, { 2, 3, 4 }, { 2, 3, 2 } } }
    spec.check_op{ fn = function(a, b, c) return grove.cat({ a, b, c }, -1) end, ref = cat_ref(-1),
      inputs = { { 3, 2 }, { 3, 1 }, { 3, 4 } } }
  end)
  spec.it("handles non-contiguous, non-differentiated and empty pieces", function()
    spec.check_op{
      fn = function(a, b, c) return grove.cat({ a:t(), b, c }, 2) end,
      ref = function(A, B, Cc)
        local T = ref.new({ A.shape[2], A.shape[1] }, 0)
        for i = 1, A.shape[1] do for j = 1, A.shape[2] do ref.set(T, { j, i }, ref.get(A, { i, j })) end end
        return cat_ref(2)(T, B, Cc)
      end,
      inputs = { { 2, 3 }, { 3, 4 }, function() return grove.zeros{ 3, 0 } end },
      nograd = { [2] = true },
    }
  end)
  spec.it("takes more differentiated pieces than one tape node holds", function()
    spec.check_op{
      fn = function(...) return grove.cat({ ... }, 2) end,
      ref = cat_ref(2),
      inputs = { { 2, 1 }, { 2, 2 }, { 2, 3 }, { 2, 1 }, { 2, 2 }, { 2, 1 }, { 2, 2 }, { 2, 1 }, { 2, 3 }, { 2, 1 } },
    }
  end)
  spec.it("joins integer tensors", function()
    local a = grove.tensor({ { 1, 2 } }, { dtype = "i64" })
    local b = grove.tensor({ { 3, 4 }, { 5, 6 } }, { dtype = "i64" })
    local c = grove.cat({ a, b }, 1)
    spec.eq(c:dtype(), "i64")
    local l = c:tolist()
    spec.eq(l[3][2], 6)
    spec.eq(l[1][1], 1)
  end)
  spec.it("rejects mismatched pieces", function()
    spec.raises(function() grove.cat({ grove.randn{ 2, 3 }, grove.randn{ 3, 3 } }, 2) end,
      "cat: tensor 2 has shape [3,3] but tensor 1 has [2,3]; shapes must match except in dimension 2")
    spec.raises(function() grove.cat({ grove.randn{ 2, 3 }, grove.randn{ 2, 3, 1 } }, 1) end, "shapes must match")
    spec.raises(function() grove.cat({ grove.randn{ 2 }, grove.tensor({ 1 }, { dtype = "i64" }) }, 1) end,
      "cat: tensor 2 is i64")
    spec.raises(function() grove.cat({}, 1) end, "expected at least one tensor")
    spec.raises(function() grove.cat({ grove.randn{ 2, 3 } }, 3) end, "out of range")
  end)
end)

spec.describe("stack", function()
  spec.it("stacks along a new first, middle and last dimension", function()
    for _, d in ipairs{ 1, 2, 3, -1, -3 } do
      spec.check_op{ fn = function(a, b, c) return grove.stack({ a, b, c }, d) end, ref = stack_ref(d),
        inputs = { { 2, 3 }, { 2, 3 }, { 2, 3 } } }
    end
  end)
  spec.it("stacks more differentiated inputs than one tape node holds", function()
    spec.check_op{ fn = function(...) return grove.stack({ ... }, 2) end, ref = stack_ref(2),
      inputs = { { 3 }, { 3 }, { 3 }, { 3 }, { 3 }, { 3 } } }
  end)
  spec.it("rejects unequal shapes and empty lists", function()
    spec.raises(function() grove.stack({ grove.randn{ 2, 3 }, grove.randn{ 2, 4 } }, 1) end,
      "stack: tensor 2 has shape [2,4] but tensor 1 has [2,3]; all shapes must be equal")
    spec.raises(function() grove.stack({}, 1) end, "stack: expected at least one tensor")
    spec.raises(function() grove.stack({ grove.randn{ 2 } }, 4) end, "out of range")
  end)
end)

spec.describe("pad", function()
  spec.it("pads the last dimension asymmetrically", function()
    spec.check_op{ fn = function(x) return x:pad({ 1, 2 }) end, ref = pad_ref({ 1, 2 }), inputs = { { 3, 4 } } }
  end)
  spec.it("pads two dimensions with a value", function()
    spec.check_op{ fn = function(x) return x:pad({ 2, 0, 1, 3 }, 0.5) end, ref = pad_ref({ 2, 0, 1, 3 }, 0.5),
      inputs = { { 2, 3, 4 } } }
    spec.check_op{ fn = function(x) return grove.pad(x:transpose(1, 2), { 0, 1, 2, 1 }, -1) end,
      ref = function(X)
        local T = ref.new({ X.shape[2], X.shape[1] }, 0)
        for i = 1, X.shape[1] do for j = 1, X.shape[2] do ref.set(T, { j, i }, ref.get(X, { i, j })) end end
        return pad_ref({ 0, 1, 2, 1 }, -1)(T)
      end,
      inputs = { { 3, 2 } } }
  end)
  spec.it("pads three dimensions and large tensors", function()
    spec.check_op{ fn = function(x) return x:pad({ 1, 0, 0, 2, 1, 1 }) end, ref = pad_ref({ 1, 0, 0, 2, 1, 1 }),
      inputs = { { 1, 2, 3 } } }
    spec.check_op{ fn = function(x) return x:pad({ 1, 1, 1, 1 }) end, ref = pad_ref({ 1, 1, 1, 1 }),
      inputs = { { 2, 130, 260 } }, no_backward = true }
  end)
  spec.it("rejects negative pads and too many pairs", function()
    spec.raises(function() grove.randn{ 2, 3 }:pad({ 1, -1 }) end, "pad: negative padding (1, -1) for dimension 2 of [2,3]")
    spec.raises(function() grove.randn{ 3 }:pad({ 1, 1, 1, 1 }) end, "2 (before, after) pairs given for [3]")
  end)
end)

spec.describe("join ops memory", function()
  spec.it("leave no tensors or tape nodes alive", function()
    local function work()
      local parts = {}
      for i = 1, 6 do parts[i] = grove.randn{ 2, 3 }:requires_grad_(true) end
      local y = grove.cat(parts, 1):pad({ 1, 2, 0, 1 }):sum() + grove.stack(parts, 2):sum()
      y:backward()
      pcall(grove.cat, { parts[1], grove.randn{ 3 } }, 1)
      pcall(grove.pad, parts[1], { -1, 0 })
    end
    spec.no_leaks(work)
  end)
end)
