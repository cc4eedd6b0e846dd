-- Tensors from Lua: constructors, geometry, views and their gradients,
-- copies, dtypes, indexing, printing and explicit freeing.
local spec = require "spec"
local ref = require "ref"

local function list_eq(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

spec.describe("constructors", function()
  spec.it("tensor from nested tables keeps shape and values", function()
    local t = grove.tensor{{1, 2, 3}, {4, 5, 6}}
    spec.assert(list_eq(t:shape(), {2, 3}))
    spec.eq(t:dtype(), "f32")
    spec.eq(t[2][3], 6)
    spec.eq(t:numel(), 6)
    spec.eq(t:dim(), 2)
    spec.eq(#t, 2)
    local l = t:tolist()
    spec.eq(l[1][2], 2)
    spec.eq(grove.tensor(3.5):item(), 3.5)
    spec.eq(grove.tensor(3.5):dim(), 0)
  end)
  spec.it("zeros, ones, full, eye, arange, linspace", function()
    spec.eq(grove.zeros{2, 3}:sum():item(), 0)
    spec.eq(grove.ones(2, 3):sum():item(), 6)
    spec.eq(grove.full({4}, 2.5)[3], 2.5)
    local e = grove.eye(3)
    spec.eq(e[2][2], 1); spec.eq(e[2][3], 0)
    local a = grove.arange(0, 5)
    spec.assert(list_eq(a:tolist(), {0, 1, 2, 3, 4}))
    spec.assert(list_eq(grove.arange(1, 2, 0.25):tolist(), {1, 1.25, 1.5, 1.75}))
    local l = grove.linspace(0, 1, 5):tolist()
    spec.near(l[2], 0.25, 1e-7); spec.eq(l[5], 1)
    spec.eq(grove.zeros_like(e):sum():item(), 0)
    spec.eq(grove.ones({2}, {dtype = "i64"}):dtype(), "i64")
  end)
  spec.it("integer dtypes hold integers exactly", function()
    local t = grove.tensor({1, -2, 2^40}, {dtype = "i64"})
    spec.eq(t[3], 2^40)
    local u = grove.tensor({0, 255, 300, -5}, {dtype = "u8"})
    spec.assert(list_eq(u:tolist(), {0, 255, 255, 0}), "u8 saturates")
  end)
  spec.it("bf16 and f16 round-trip representable values", function()
    local v = {1, -2.5, 0.15625, 65504, 1/1024}
    local h = grove.tensor(v):half():float():tolist()
    for i = 1, #v do spec.eq(h[i], v[i]) end
    local b = grove.tensor({1, -2.5, 0.15625, 3.0e38}):bf16():float():tolist()
    spec.eq(b[1], 1); spec.eq(b[2], -2.5); spec.eq(b[3], 0.15625)
    spec.near(b[4], 3.0e38, 1e-2)
    spec.eq(grove.tensor{1e6}:half()[1], math.huge, "f16 overflows to inf")
  end)
  spec.it("rand and randn are seeded", function()
    grove.manual_seed(42)
    local a = grove.randn{100}
    grove.manual_seed(42)
    local b = grove.randn{100}
    spec.eq((a - b):abs():max():item(), 0)
    local c = grove.randn{100}
    spec.assert((a - c):abs():max():item() > 0, "later draws differ")
    local g = grove.Generator(7)
    local u = grove.rand({1000}, {generator = g})
    spec.assert(u:min():item() > 0 and u:max():item() <= 1)
    spec.assert(tonumber(g.offset) == 250, "generator advanced by 250 counters")
  end)
end)

spec.describe("views", function()
  spec.it("share storage", function()
    local t = grove.zeros{3, 4}
    local v = t:narrow(2, 2, 2)
    v:fill_(7)
    spec.eq(t[1][2], 7); spec.eq(t[1][1], 0); spec.eq(t[3][3], 7); spec.eq(t[3][4], 0)
    local tt = t:t()
    spec.assert(not tt:is_contiguous())
    tt[2] = 5            -- row 2 of the transpose is column 2 of t
    spec.eq(t[3][2], 5)
  end)
  spec.it("reshape, view, permute, squeeze, unsqueeze, expand", function()
    local t = grove.arange(0, 24):reshape{2, 3, 4}
    spec.assert(list_eq(t:view{6, -1}:shape(), {6, 4}))
    local p = t:permute{3, 1, 2}
    spec.assert(list_eq(p:shape(), {4, 2, 3}))
    spec.eq(p[4][2][3], t[2][3][4])
    spec.raises(function() p:view{24} end, "view")
    spec.eq(p:reshape{24}:numel(), 24)
    local u = t:unsqueeze(1)
    spec.assert(list_eq(u:shape(), {1, 2, 3, 4}))
    spec.assert(list_eq(u:squeeze():shape(), {2, 3, 4}))
    spec.assert(list_eq(t:unsqueeze(-1):shape(), {2, 3, 4, 1}))
    local e = grove.tensor{{1}, {2}}:expand{2, 3}
    spec.assert(list_eq(e:stride(), {1, 0}))
    spec.eq(e:sum():item(), 9)
    local s = t:select(2, -1)
    spec.assert(list_eq(s:shape(), {2, 4}))
    spec.eq(s[1][1], 8)
  end)
  spec.it("contiguous copies only when needed", function()
    local t = grove.randn{3, 4}
    local c = t:contiguous()
    spec.eq(tostring(c.p), tostring(t.p), "same object when already contiguous")
    local tc = t:t():contiguous()
    spec.assert(tc:is_contiguous())
    spec.eq(tc[2][3], t[3][2])
  end)
  spec.it("gradients flow through view ops", function()
    spec.check_op{
      fn = function(x) return x:transpose(1, 2):reshape{4, 6}:narrow(1, 2, 2):unsqueeze(1) end,
      ref = function(X)
        local out = ref.new({1, 2, 6}, 0)
        -- x is [2,3,4]; transpose -> [3,2,4]; reshape [4,6] row-major over (3,2,4)
        local flat = {}
        for i = 1, 3 do for j = 1, 2 do for k = 1, 4 do flat[#flat + 1] = ref.get(X, {j, i, k}) end end end
        for r = 2, 3 do for c = 1, 6 do out.data[(r - 2) * 6 + c] = flat[(r - 1) * 6 + c] end end
        return out
      end,
      inputs = { {2, 3, 4} },
    }
  end)
  spec.it("gradient of expand and select", function()
    spec.check_op{
      fn = function(x) return x:expand{3, 2, 4}:select(3, 2) * 2 end,
      ref = function(X)
        local out = ref.new({3, 2}, 0)
        for i = 1, 3 do for j = 1, 2 do ref.set(out, {i, j}, 2 * ref.get(X, {j, 2})) end end
        return out
      end,
      inputs = { {2, 4} },
    }
  end)
end)

spec.describe("copies and in-place writes", function()
  spec.it("copy_ broadcasts and converts", function()
    local t = grove.zeros({2, 3}, {dtype = "i32"})
    t:copy_(grove.tensor{1.7, 2, 3})
    spec.assert(list_eq(t:tolist()[2], {1, 2, 3}))
  end)
  spec.it("copy_ between overlapping views reads the source as it was", function()
    local t = grove.arange(0, 6):float()
    t:narrow(1, 2, 5):copy_(t:narrow(1, 1, 5))
    spec.assert(list_eq(t:tolist(), {0, 0, 1, 2, 3, 4}))
  end)
  spec.it("indexing assignment", function()
    local t = grove.zeros{2, 2}
    t[1] = grove.tensor{3, 4}
    t[2] = 9
    spec.assert(list_eq(t:tolist()[1], {3, 4}))
    spec.assert(list_eq(t:tolist()[2], {9, 9}))
    local v = grove.zeros{3}
    v[-1] = 5
    spec.eq(v[3], 5)
  end)
  spec.it("refuses in-place writes to tensors that require grad", function()
    local w = grove.randn({3}, {requires_grad = true})
    spec.raises(function() w:fill_(0) end, "requires grad")
    grove.no_grad(function() w:fill_(0) end)
    spec.eq(w:sum():item(), 0)
  end)
end)

spec.describe("printing", function()
  spec.it("shows values, dtype and shape", function()
    local s = tostring(grove.tensor{{1, 2.5}, {3, 4}})
    spec.assert(s:find("1.0000", 1, true) and s:find("[ f32 tensor of size 2x2, cpu ]", 1, true), s)
    local big = tostring(grove.zeros{100, 100})
    spec.assert(big:find("...", 1, true) and #big < 2000, "large tensors are abbreviated")
    local g = grove.randn({2}, {requires_grad = true}) * 2
    spec.assert(tostring(g):find("grad_fn=mul", 1, true), tostring(g))
  end)
  spec.it("print and the REPL use one printer", function()
    local t = grove.tensor{{1, 2.5}, {3, 4}}
    spec.eq(tostring(t), require("grove.repl.pretty").tensor(t))
    spec.eq(tostring(t), grove.repl.format(t))
  end)
end)

spec.describe("free", function()
  spec.it("releases memory now and makes later use an error", function()
    grove.collect()
    local before = grove.memory().live_bytes
    local t = grove.zeros{1024, 1024}
    spec.assert(grove.memory().live_bytes >= before + 4 * 1024 * 1024)
    t:free()
    spec.eq(grove.memory().live_bytes, before)
    spec.raises(function() return t + 1 end, "freed")
    spec.eq(tostring(t), "<freed tensor>")
  end)
end)
