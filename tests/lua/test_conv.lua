-- conv2d on NHWC input with PyTorch-layout weights: 1x1 (a GEMM) and
-- depthwise kxk, forward against a float64 direct convolution, gradients
-- against finite differences, and the refused cases.
local grove = grove or require "grove"
local spec = require "spec"
local ref = require "ref"

-- Direct convolution: X (B, H, W, Cin), Wt (Cout, Cin/groups, k, k), Bi (Cout)
-- or nil; stride 1, zero padding pad.
local function conv_ref(groups, pad)
  return function(X, Wt, Bi)
    local b, h, w, cin = X.shape[1], X.shape[2], X.shape[3], X.shape[4]
    local cout, cpg, k = Wt.shape[1], Wt.shape[2], Wt.shape[3]
    local opg = cout / groups
    local ho, wo = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    local out = ref.new({ b, ho, wo, cout }, 0)
    local x, wt, y = X.data, Wt.data, out.data
    for bi = 0, b - 1 do
      for oh = 0, ho - 1 do
        for ow = 0, wo - 1 do
          for co = 0, cout - 1 do
            local s = Bi and Bi.data[co + 1] or 0
            local g = math.floor(co / opg)
            for ci = 0, cpg - 1 do
              local c = g * cpg + ci
              for i = 0, k - 1 do
                local ih = oh + i - pad
                if ih >= 0 and ih < h then
                  for j = 0, k - 1 do
                    local iw = ow + j - pad
                    if iw >= 0 and iw < w then
                      s = s + x[((bi * h + ih) * w + iw) * cin + c + 1] * wt[((co * cpg + ci) * k + i) * k + j + 1]
                    end
                  end
                end
              end
            end
            y[((bi * ho + oh) * wo + ow) * cout + co + 1] = s
          end
        end
      end
    end
    return out
  end
end

spec.describe("conv2d 1x1", function()
  spec.it("with bias matches float64 and finite differences", function()
    spec.check_op{
      fn = function(x, w, b) return grove.conv2d(x, w, b) end,
      ref = conv_ref(1, 0),
      inputs = { { 2, 3, 4, 5 }, { 7, 5, 1, 1 }, { 7 } },
    }
  end)
  spec.it("without bias matches float64 and finite differences", function()
    spec.check_op{
      fn = function(x, w) return grove.conv2d(x, w) end,
      ref = conv_ref(1, 0),
      inputs = { { 1, 3, 2, 6 }, { 4, 6, 1, 1 } },
    }
  end)
  spec.it("reads a non-contiguous input", function()
    spec.check_op{
      fn = function(x, w, b) return grove.conv2d(x:transpose(2, 3), w, b) end,
      ref = function(X, Wt, Bi)
        -- X is (B, W, H, C): swap to (B, H, W, C) first
        local b, w, h, c = X.shape[1], X.shape[2], X.shape[3], X.shape[4]
        local T = ref.new({ b, h, w, c }, 0)
        for bi = 1, b do for i = 1, h do for j = 1, w do for ch = 1, c do
          ref.set(T, { bi, i, j, ch }, ref.get(X, { bi, j, i, ch }))
        end end end end
        return conv_ref(1, 0)(T, Wt, Bi)
      end,
      inputs = { { 2, 4, 3, 5 }, { 3, 5, 1, 1 }, { 3 } },
    }
  end)
end)

spec.describe("conv2d depthwise", function()
  spec.it("3x3 padding 1 with bias on (2,5,4,6)", function()
    spec.check_op{
      fn = function(x, w, b) return grove.conv2d(x, w, b, { padding = 1, groups = 6 }) end,
      ref = conv_ref(6, 1),
      inputs = { { 2, 5, 4, 6 }, { 6, 1, 3, 3 }, { 6 } },
    }
  end)
  spec.it("3x3 padding 1 without bias on a non-square grid", function()
    spec.check_op{
      fn = function(x, w) return grove.conv2d(x, w, nil, { padding = 1, groups = 4 }) end,
      ref = conv_ref(4, 1),
      inputs = { { 1, 3, 7, 4 }, { 4, 1, 3, 3 } },
    }
  end)
  spec.it("padding wider than the kernel's reach and even kernels", function()
    spec.check_op{
      fn = function(x, w, b) return grove.conv2d(x, w, b, { padding = 2, groups = 3 }) end,
      ref = conv_ref(3, 2),
      inputs = { { 1, 3, 2, 3 }, { 3, 1, 3, 3 }, { 3 } },
    }
    spec.check_op{
      fn = function(x, w) return grove.conv2d(x, w, nil, { padding = 1, groups = 9 }) end,
      ref = conv_ref(9, 1),
      inputs = { { 1, 3, 4, 9 }, { 9, 1, 2, 2 } },
    }
  end)
  spec.it("3x3 padding 0 and 5x5 padding 2", function()
    spec.check_op{
      fn = function(x, w, b) return grove.conv2d(x, w, b, { padding = 0, groups = 3 }) end,
      ref = conv_ref(3, 0),
      inputs = { { 2, 4, 5, 3 }, { 3, 1, 3, 3 }, { 3 } },
    }
    spec.check_op{
      fn = function(x, w, b) return grove.conv2d(x, w, b, { padding = 2, groups = 2 }) end,
      ref = conv_ref(2, 2),
      inputs = { { 1, 4, 3, 2 }, { 2, 1, 5, 5 }, { 2 } },
    }
  end)

  -- Large enough for the threaded paths and for two channel blocks; the
  -- gradients are compared with float64 formulas instead of finite
  -- differences, and must not depend on the thread count.
  spec.it("multi-threaded sizes agree with float64 and across thread counts", function()
    grove.manual_seed(7)
    local B, H, W, C, k, p = 2, 12, 10, 80, 3, 1
    local function run()
      grove.manual_seed(7)
      local x = grove.randn{ B, H, W, C }:requires_grad_(true)
      local w = grove.randn{ C, 1, k, k }:requires_grad_(true)
      local b = grove.randn{ C }:requires_grad_(true)
      local y = grove.conv2d(x, w, b, { padding = p, groups = C })
      local g = grove.randn(y:shape())
      y:backward(g)
      return x, w, b, y, g
    end
    local x, w, b, y, g = run()
    local X, Wr, Br, G = ref.from_tensor(x), ref.from_tensor(w), ref.from_tensor(b), ref.from_tensor(g)
    spec.assert(spec.rel_error(ref.from_tensor(y), conv_ref(C, p)(X, Wr, Br)) < 1e-5, "forward")
    local dx, dw, db = ref.new(X.shape, 0), ref.new(Wr.shape, 0), ref.new(Br.shape, 0)
    for bi = 0, B - 1 do for oh = 0, H - 1 do for ow = 0, W - 1 do for c = 0, C - 1 do
      local gv = G.data[((bi * H + oh) * W + ow) * C + c + 1]
      db.data[c + 1] = db.data[c + 1] + gv
      for i = 0, k - 1 do for j = 0, k - 1 do
        local ih, iw = oh + i - p, ow + j - p
        if ih >= 0 and ih < H and iw >= 0 and iw < W then
          local xi = ((bi * H + ih) * W + iw) * C + c + 1
          local wi = (c * k + i) * k + j + 1
          dx.data[xi] = dx.data[xi] + gv * Wr.data[wi]
          dw.data[wi] = dw.data[wi] + gv * X.data[xi]
        end
      end end
    end end end end
    spec.assert(spec.rel_error(ref.from_tensor(x.grad), dx) < 1e-5, "dx")
    spec.assert(spec.rel_error(ref.from_tensor(w.grad), dw) < 1e-5, "dw")
    spec.assert(spec.rel_error(ref.from_tensor(b.grad), db) < 1e-5, "db")
    local threads = grove.num_threads()
    grove.set_num_threads(1)
    local x1, w1, b1, y1 = run()
    grove.set_num_threads(threads)
    for _, pair in ipairs{ { y, y1 }, { x.grad, x1.grad }, { w.grad, w1.grad }, { b.grad, b1.grad } } do
      local a, c = ref.from_tensor(pair[1]), ref.from_tensor(pair[2])
      for i = 1, #a.data do spec.eq(a.data[i], c.data[i], "thread-count dependence at " .. i) end
    end
  end)
end)

spec.describe("conv2d errors", function()
  spec.it("rejects a channel mismatch", function()
    spec.raises(function() grove.conv2d(grove.randn{ 1, 2, 2, 6 }, grove.randn{ 8, 4, 1, 1 }) end,
      "conv2d: input [1,2,2,6] has 6 channels but weight [8,4,1,1]")
  end)
  spec.it("names what it supports for other convolutions", function()
    spec.raises(function() grove.conv2d(grove.randn{ 1, 5, 5, 4 }, grove.randn{ 8, 4, 3, 3 }, nil, { padding = 1 }) end,
      "conv2d: weight [8,4,3,3] with groups 1: only 1x1 and depthwise kxk convolutions are supported")
    spec.raises(function() grove.conv2d(grove.randn{ 1, 4, 4, 4 }, grove.randn{ 4, 2, 3, 3 }, nil, { groups = 2 }) end,
      "only 1x1 and depthwise")
    spec.raises(function() grove.conv2d(grove.randn{ 1, 4, 4, 4 }, grove.randn{ 8, 4, 1, 1 }, nil, { stride = 2 }) end,
      "only stride 1 and padding 0 are supported for 1x1")
    spec.raises(function() grove.conv2d(grove.randn{ 1, 4, 4, 4 }, grove.randn{ 4, 1, 3, 3 }, nil, { groups = 4, stride = 2 }) end,
      "only stride 1 is supported for depthwise")
    spec.raises(function() grove.conv2d(grove.randn{ 1, 4, 4, 4 }, grove.randn{ 4, 1, 3, 2 }, nil, { groups = 4 }) end,
      "square")
  end)
  spec.it("validates bias, padding, rank and output size", function()
    spec.raises(function() grove.conv2d(grove.randn{ 1, 2, 2, 4 }, grove.randn{ 3, 4, 1, 1 }, grove.randn{ 4 }) end,
      "conv2d: bias [4] does not match weight [3,4,1,1]")
    spec.raises(function() grove.conv2d(grove.randn{ 1, 4, 4, 4 }, grove.randn{ 4, 1, 3, 3 }, nil, { groups = 4, padding = -1 }) end,
      "padding >= 0")
    spec.raises(function() grove.conv2d(grove.randn{ 2, 4, 4 }, grove.randn{ 4, 4, 1, 1 }) end, "must be 4-d NHWC")
    spec.raises(function() grove.conv2d(grove.randn{ 1, 2, 2, 4 }, grove.randn{ 4, 1, 5, 5 }, nil, { groups = 4, padding = 1 }) end,
      "smaller than the 5x5 kernel")
    spec.raises(function() grove.conv2d(grove.randn{ 1, 2, 2, 6 }, grove.randn{ 6, 1, 3, 3 }, nil, { groups = 4 }) end,
      "not divisible by groups 4")
  end)
end)

spec.describe("conv2d memory", function()
  spec.it("leaves no tensors or tape nodes alive", function()
    local function work()
      local x = grove.randn{ 2, 4, 3, 8 }:requires_grad_(true)
      local dw = grove.randn{ 8, 1, 3, 3 }:requires_grad_(true)
      local pw = grove.randn{ 5, 8, 1, 1 }:requires_grad_(true)
      local y = grove.conv2d(grove.conv2d(x, dw, grove.randn{ 8 }, { padding = 1, groups = 8 }), pw)
      y:sum():backward()
      pcall(grove.conv2d, x, grove.randn{ 4, 8, 3, 3 })
    end
    spec.no_leaks(work)
  end)
end)
