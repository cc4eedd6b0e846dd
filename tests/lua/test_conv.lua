-- conv2d on NHWC input with PyTorch-layout weights: 1x1 (a GEMM),
-- depthwise kxk, and the general im2col path (any kernel, stride, padding,
-- groups); forward against a float64 direct convolution, gradients against
-- finite differences, and the errors.
local grove = grove or require "grove"
local spec = require "spec"
local ref = require "ref"

-- Direct convolution: X (B, H, W, Cin), Wt (Cout, Cin/groups, kh, kw), Bi
-- (Cout) or nil; zero padding pad, stride (default 1).
local function conv_ref(groups, pad, stride)
  stride = stride or 1
  return function(X, Wt, Bi)
    local b, h, w, cin = X.shape[1], X.shape[2], X.shape[3], X.shape[4]
    local cout, cpg, kh, kw = Wt.shape[1], Wt.shape[2], Wt.shape[3], Wt.shape[4]
    local opg = cout / groups
    local ho = math.floor((h + 2 * pad - kh) / stride) + 1
    local wo = math.floor((w + 2 * pad - kw) / stride) + 1
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
              for i = 0, kh - 1 do
                local ih = oh * stride + i - pad
                if ih >= 0 and ih < h then
                  for j = 0, kw - 1 do
                    local iw = ow * stride + j - pad
                    if iw >= 0 and iw < w then
                      s = s + x[((bi * h + ih) * w + iw) * cin + c + 1] * wt[((co * cpg + ci) * kh + i) * kw + j + 1]
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

-- The general path's forward runs through oneDNN where the build has it;
-- each case runs with it and with im2col + sgemm.
local forward_paths = grove.conv_dnnl_available() and { true, false } or { false }
local function on_each_path(fn)
  for _, dnnl in ipairs(forward_paths) do
    grove.set_conv_dnnl(dnnl)
    local ok, err = pcall(fn, dnnl and "oneDNN" or "im2col")
    grove.set_conv_dnnl(true)
    if not ok then error(err, 0) end
  end
end

spec.describe("conv2d general", function()
  local function case(name, x, w, b, o)
    spec.it(name, function()
      local inputs = { x, w }
      if b then inputs[3] = b end
      on_each_path(function()
        spec.check_op{
          fn = function(X, W, B) return grove.conv2d(X, W, B, o) end,
          ref = conv_ref(o.groups or 1, o.padding or 0, o.stride or 1),
          inputs = inputs,
        }
      end)
    end)
  end
  case("3x3 pad 1 on a non-square grid, batch 2, with bias", { 2, 5, 7, 3 }, { 4, 3, 3, 3 }, { 4 }, { padding = 1 })
  case("3x3 stride 2 pad 1 on odd sizes", { 2, 7, 5, 3 }, { 5, 3, 3, 3 }, { 5 }, { stride = 2, padding = 1 })
  case("3x3 stride 2 pad 0 on even sizes, no bias", { 1, 6, 8, 2 }, { 3, 2, 3, 3 }, nil, { stride = 2 })
  case("kh != kw (2x3), stride 3, pad 2", { 1, 7, 8, 2 }, { 3, 2, 2, 3 }, { 3 }, { stride = 3, padding = 2 })
  case("groups 2 with 3x3 pad 1", { 2, 4, 5, 4 }, { 6, 2, 3, 3 }, { 6 }, { padding = 1, groups = 2 })
  case("grouped 1x1 (groups 3)", { 2, 3, 4, 6 }, { 9, 2, 1, 1 }, { 9 }, { groups = 3 })
  case("1x1 stride 2 and 1x1 with padding", { 1, 5, 5, 3 }, { 4, 3, 1, 1 }, { 4 }, { stride = 2, padding = 1 })
  case("depthwise 3x3 stride 2 (groups = C)", { 2, 7, 6, 4 }, { 4, 1, 3, 3 }, { 4 }, { stride = 2, padding = 1, groups = 4 })
  case("depthwise with a channel multiplier", { 1, 5, 4, 3 }, { 6, 1, 3, 3 }, { 6 }, { padding = 1, groups = 3 })
  case("depthwise non-square 1x3", { 1, 4, 5, 3 }, { 3, 1, 1, 3 }, nil, { padding = 1, groups = 3 })
  case("5x5 pad 2 stride 1", { 1, 6, 5, 2 }, { 3, 2, 5, 5 }, { 3 }, { padding = 2 })
  case("kernel as large as the padded input", { 1, 2, 3, 2 }, { 2, 2, 4, 5 }, { 2 }, { padding = 1 })

  -- Wide enough rows (200 output pixels x 3x3 taps x 192 channels, or 100
  -- x 5x5 x 96 at stride 2) for three chunks of output rows under the
  -- CPU's 4M-float column bound, one of them spanning two batch items;
  -- threaded im2col/col2im and split GEMMs; gradients against float64
  -- formulas, and bit-identical results on one thread.
  spec.it("chunked, threaded sizes agree with float64 and across thread counts", function()
    local B, H, W, Cin, Cout, k, p, G = 2, nil, 200, nil, 4, nil, nil, 2
    local function run(stride)
      grove.manual_seed(11)
      local x = grove.randn{ B, H, W, Cin }:requires_grad_(true)
      local w = grove.randn{ Cout, Cin / G, k, k }:mul(0.1):detach():requires_grad_(true)
      local b = grove.randn{ Cout }:requires_grad_(true)
      local y = grove.conv2d(x, w, b, { padding = p, stride = stride, groups = G })
      local g = grove.randn(y:shape())
      y:backward(g)
      return x, w, b, y, g
    end
    on_each_path(function(path)
    for _, stride in ipairs{ 1, 2 } do
      if stride == 1 then H, Cin, k, p = 13, 192, 3, 1 else H, Cin, k, p = 37, 96, 5, 2 end
      local x, w, b, y, g = run(stride)
      local X, Wr, Br, Gr = ref.from_tensor(x), ref.from_tensor(w), ref.from_tensor(b), ref.from_tensor(g)
      spec.assert(spec.rel_error(ref.from_tensor(y), conv_ref(G, p, stride)(X, Wr, Br)) < 1e-5, "forward")
      local Ho, Wo = y:size(2), y:size(3)
      local cpg, opg = Cin / G, Cout / G
      local dx, dw, db = ref.new(X.shape, 0), ref.new(Wr.shape, 0), ref.new(Br.shape, 0)
      local xd, wd, gd, dxd, dwd = X.data, Wr.data, Gr.data, dx.data, dw.data
      for bi = 0, B - 1 do for oh = 0, Ho - 1 do for ow = 0, Wo - 1 do
        for co = 0, Cout - 1 do
          local gv = gd[((bi * Ho + oh) * Wo + ow) * Cout + co + 1]
          db.data[co + 1] = db.data[co + 1] + gv
          local c0 = math.floor(co / opg) * cpg
          for i = 0, k - 1 do
            local ih = oh * stride + i - p
            if ih >= 0 and ih < H then
              for j = 0, k - 1 do
                local iw = ow * stride + j - p
                if iw >= 0 and iw < W then
                  local xb = ((bi * H + ih) * W + iw) * Cin + c0 + 1
                  for ci = 0, cpg - 1 do
                    local wi = ((co * cpg + ci) * k + i) * k + j + 1
                    dxd[xb + ci] = dxd[xb + ci] + gv * wd[wi]
                    dwd[wi] = dwd[wi] + gv * xd[xb + ci]
                  end
                end
              end
            end
          end
        end
      end end end
      spec.assert(spec.rel_error(ref.from_tensor(x.grad), dx) < 1e-5, "dx")
      spec.assert(spec.rel_error(ref.from_tensor(w.grad), dw) < 1e-5, "dw")
      spec.assert(spec.rel_error(ref.from_tensor(b.grad), db) < 1e-5, "db")
      local threads = grove.num_threads()
      grove.set_num_threads(1)
      local x1, w1, b1, y1 = run(stride)
      grove.set_num_threads(threads)
      for _, pair in ipairs{ { y, y1 }, { x.grad, x1.grad }, { w.grad, w1.grad }, { b.grad, b1.grad } } do
        local a, c = ref.from_tensor(pair[1]), ref.from_tensor(pair[2])
        for i = 1, #a.data do spec.eq(a.data[i], c.data[i], path .. ": thread-count dependence at " .. i) end
      end
    end
    end)
  end)

  spec.it("reads a non-contiguous weight", function()
    spec.check_op{
      fn = function(x, w) return grove.conv2d(x, w:transpose(3, 4), nil, { padding = 1, stride = 2 }) end,
      ref = function(X, Wt)
        local co, ci, a, b = Wt.shape[1], Wt.shape[2], Wt.shape[3], Wt.shape[4]
        local T = ref.new({ co, ci, b, a }, 0)
        for o = 1, co do for c = 1, ci do for i = 1, b do for j = 1, a do
          ref.set(T, { o, c, i, j }, ref.get(Wt, { o, c, j, i }))
        end end end end
        return conv_ref(1, 1, 2)(X, T)
      end,
      inputs = { { 1, 5, 6, 2 }, { 3, 2, 2, 3 } },
    }
  end)
end)

-- Dense 3x3 stride-1 convolutions with at least 256x256 output pixels and
-- 128 channels in and out take oneDNN's Winograd algorithm where oneDNN has
-- it (AVX-512), in bands of output rows. These sizes cross band edges (bands of 60 rows for a
-- 260-pixel row), end on a short band, and pad only at the image's edges;
-- each output is held against the direct convolution (set_conv_winograd
-- false: oneDNN's direct kernel, and im2col), at the rows next to band
-- edges and the image's edges against float64 sums, and bit for bit
-- against itself on a second call and on one thread.
spec.describe("conv2d Winograd", function()
  local function at_rows(X, Wt, Bi, pad, rows, got)
    local h, w, cin = X.shape[2], X.shape[3], X.shape[4]
    local cout, k = Wt.shape[1], Wt.shape[3]
    local ho, wo = got.shape[2], got.shape[3]
    local worst, scale = 0, 0
    for bi = 0, X.shape[1] - 1 do
      for _, oh in ipairs(rows) do
        if oh < ho then
          for _, ow in ipairs{ 0, 1, 2, math.floor(wo / 2), wo - 2, wo - 1 } do
            for co = 0, cout - 1 do
              local s = Bi and Bi.data[co + 1] or 0
              for i = 0, k - 1 do
                local ih = oh + i - pad
                if ih >= 0 and ih < h then
                  for j = 0, k - 1 do
                    local iw = ow + j - pad
                    if iw >= 0 and iw < w then
                      local xb = ((bi * h + ih) * w + iw) * cin
                      for ci = 0, cin - 1 do
                        s = s + X.data[xb + ci + 1] * Wt.data[((co * cin + ci) * k + i) * k + j + 1]
                      end
                    end
                  end
                end
              end
              local g = got.data[((bi * ho + oh) * wo + ow) * cout + co + 1]
              worst = math.max(worst, math.abs(g - s))
              scale = math.max(scale, math.abs(s))
            end
          end
        end
      end
    end
    return worst / scale
  end
  local function case(name, shape, cout, pad, bias)
    spec.it(name, function()
      grove.manual_seed(5)
      local x = grove.randn(shape)
      local w = grove.randn{ cout, shape[4], 3, 3 }:mul(0.03)
      local b = bias and grove.randn{ cout } or nil
      local o = { padding = pad }
      local y = grove.conv2d(x, w, b, o)
      grove.set_conv_winograd(false)
      local ok, direct = pcall(grove.conv2d, x, w, b, o)
      grove.set_conv_winograd(true)
      if not ok then error(direct, 0) end
      grove.set_conv_dnnl(false)
      local ok2, im2col = pcall(grove.conv2d, x, w, b, o)
      grove.set_conv_dnnl(true)
      if not ok2 then error(im2col, 0) end
      local function rel(a, c) return (a - c):abs():max():item() / c:abs():max():item() end
      spec.assert(rel(y, direct) < 1e-5, "against the direct convolution: " .. rel(y, direct))
      spec.assert(rel(y, im2col) < 1e-5, "against im2col: " .. rel(y, im2col))
      local Y = ref.from_tensor(y)
      local ho = y:size(2)
      local err = at_rows(ref.from_tensor(x), ref.from_tensor(w), b and ref.from_tensor(b), pad,
                          { 0, 1, 58, 59, 60, 61, 119, 120, ho - 2, ho - 1 }, Y)
      spec.assert(err < 1e-5, "against float64 at band and image edges: " .. err)
      -- the same bits for the same inputs, on a second call (which reuses
      -- grove's blocks) and on one thread
      local y2 = grove.conv2d(x, w, b, o)
      local threads = grove.num_threads()
      grove.set_num_threads(1)
      local ok3, y1 = pcall(grove.conv2d, x, w, b, o)
      grove.set_num_threads(threads)
      if not ok3 then error(y1, 0) end
      local a = Y.data
      for _, other in ipairs{ { y2, "a second call" }, { y1, "one thread" } } do
        local c = ref.from_tensor(other[1]).data
        for i = 1, #a do if a[i] ~= c[i] then error(other[2] .. " differs at " .. i, 0) end end
      end
    end)
  end
  case("batch 2, pad 1, bias, 130 x 260 (three bands, the last short)", { 2, 130, 260, 128 }, 128, 1, true)
  case("pad 0, no bias, 258 x 260 input", { 1, 258, 260, 128 }, 144, 0, false)
  case("channels off the 16-lane blocks (136 in, 130 out)", { 1, 256, 256, 136 }, 130, 1, true)
end)

spec.describe("nn.Conv2d", function()
  spec.it("passes stride, padding, groups and a {kh, kw} kernel to conv2d", function()
    grove.manual_seed(3)
    local m = grove.nn.Conv2d(grove.nn.param_factory(), 4, 6, { 3, 2 }, { stride = 2, padding = 1, groups = 2 })
    spec.eq(table.concat(m.weight:shape(), ","), "6,2,3,2")
    local x = grove.randn{ 2, 7, 6, 4 }
    local y = m:forward(x)
    local expect = grove.conv2d(x, m.weight, m.bias, { stride = 2, padding = 1, groups = 2 })
    spec.eq(table.concat(y:shape(), ","), "2,4,4,6")
    spec.assert(spec.rel_error(ref.from_tensor(y), ref.from_tensor(expect)) == 0, "same as conv2d")
    -- a 1x1 with stride 2 is a convolution, not the Linear over tokens
    local p = grove.nn.Conv2d(grove.nn.param_factory(), 4, 3, 1, { stride = 2 })
    spec.eq(table.concat(p:forward(x):shape(), ","), "2,4,3,3")
  end)
end)

spec.describe("conv2d errors", function()
  spec.it("rejects a channel mismatch", function()
    spec.raises(function() grove.conv2d(grove.randn{ 1, 2, 2, 6 }, grove.randn{ 8, 4, 1, 1 }) end,
      "conv2d: input [1,2,2,6] has 6 channels but weight [8,4,1,1]")
    spec.raises(function() grove.conv2d(grove.randn{ 1, 4, 4, 4 }, grove.randn{ 4, 4, 3, 3 }, nil, { groups = 2 }) end,
      "conv2d: input [1,4,4,4] has 4 channels but weight [4,4,3,3] expects 4 per group x 2 groups = 8")
  end)
  spec.it("names the bad groups, stride or padding", function()
    spec.raises(function() grove.conv2d(grove.randn{ 1, 4, 4, 4 }, grove.randn{ 4, 4, 3, 3 }, nil, { stride = 0 }) end,
      "conv2d: input [1,4,4,4], weight [4,4,3,3]: stride 0 must be >= 1")
    spec.raises(function() grove.conv2d(grove.randn{ 1, 4, 4, 4 }, grove.randn{ 4, 4, 3, 3 }, nil, { groups = 0 }) end,
      "groups 0 must be >= 1")
    spec.raises(function() grove.conv2d(grove.randn{ 1, 4, 4, 4 }, grove.randn{ 4, 1, 3, 3 }, nil, { groups = 4, padding = -1 }) end,
      "padding -1 must be >= 0")
    spec.raises(function() grove.conv2d(grove.randn{ 1, 2, 2, 6 }, grove.randn{ 6, 1, 3, 3 }, nil, { groups = 4 }) end,
      "conv2d: input [1,2,2,6], weight [6,1,3,3]: channels (6 in, 6 out) are not divisible by groups 4")
    spec.raises(function() grove.conv2d(grove.randn{ 1, 4, 4, 4 }, grove.randn{ 6, 1, 3, 3 }, nil, { groups = 4 }) end,
      "channels (4 in, 6 out) are not divisible by groups 4")
  end)
  spec.it("validates bias, rank and output size", function()
    spec.raises(function() grove.conv2d(grove.randn{ 1, 2, 2, 4 }, grove.randn{ 3, 4, 1, 1 }, grove.randn{ 4 }) end,
      "conv2d: bias [4] does not match weight [3,4,1,1]")
    spec.raises(function() grove.conv2d(grove.randn{ 2, 4, 4 }, grove.randn{ 4, 4, 1, 1 }) end, "must be 4-d NHWC")
    spec.raises(function() grove.conv2d(grove.randn{ 1, 4, 4, 4 }, grove.randn{ 4, 4, 3 }) end,
      "weight [4,4,3] must be 4-d (out_channels, in_channels/groups, kh, kw)")
    spec.raises(function() grove.conv2d(grove.randn{ 1, 2, 2, 4 }, grove.randn{ 4, 1, 5, 5 }, nil, { groups = 4, padding = 1 }) end,
      "smaller than the 5x5 kernel")
    spec.raises(function() grove.conv2d(grove.randn{ 1, 6, 2, 4 }, grove.randn{ 4, 4, 3, 5 }, nil, { padding = 1 }) end,
      "conv2d: input [1,6,2,4] with padding 1 is smaller than the 3x5 kernel of weight [4,4,3,5]")
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
      local g = grove.conv2d(x, grove.randn{ 6, 4, 3, 2 }:requires_grad_(true), grove.randn{ 6 }, { stride = 2, padding = 1, groups = 2 })
      g:sum():backward()
      pcall(grove.conv2d, x, grove.randn{ 4, 3, 3, 3 })
    end
    spec.no_leaks(work)
  end)
end)

-- conv2d_bf16: the operands rounded to bf16, the products summed in f32.
-- Against the float64 convolution of the rounded operands (the bias is not
-- rounded), entry by entry within the f32 summation bound
-- 2·(K + 1)·2^-24·(Σ|x||w| + |b|) (K = kh·kw·cin/groups terms), on both
-- paths: oneDNN's bf16 convolution where the CPU multiplies bf16, and the
-- reference (the f32 convolution of the rounded operands).
spec.describe("conv2d_bf16", function()
  local bf16_paths = grove.conv_bf16_dnnl_available() and { true, false } or { false }
  local function abs_ref(r) return ref.map(r, math.abs) end
  local function case(name, xs, ws, bs, o)
    spec.it(name .. " is within the f32 bound of the rounded operands' float64 convolution", function()
      local g = grove.Generator(31)
      local x, w = grove.randn(xs, { generator = g }), grove.randn(ws, { generator = g }) * 0.2
      local b = bs and grove.randn(bs, { generator = g }) or nil
      local xr, wr = grove.amp.round_bf16(x), grove.amp.round_bf16(w)
      local conv = conv_ref(o.groups or 1, o.padding or 0, o.stride or 1)
      local X, Wt, B = ref.from_tensor(xr), ref.from_tensor(wr), b and ref.from_tensor(b) or nil
      local want = conv(X, Wt, B)
      local mag = conv(abs_ref(X), abs_ref(Wt), B and abs_ref(B) or nil)
      local K = ws[2] * ws[3] * ws[4]
      for _, dnnl in ipairs(bf16_paths) do
        grove.set_conv_bf16_dnnl(dnnl)
        local ok, err = pcall(function()
          local y = grove.conv2d_bf16(x, w, b, o)
          spec.eq(y:shape_str(), grove.conv2d(x, w, b, o):shape_str())
          local got = ref.from_tensor(y)
          for i = 1, #want.data do
            local bound = 2 * (K + 1) * 2 ^ -24 * mag.data[i]
            if math.abs(got.data[i] - want.data[i]) > bound then
              error(string.format("%s: entry %d: %.9g vs %.9g (bound %.3g)", dnnl and "oneDNN" or "reference", i,
                                  got.data[i], want.data[i], bound), 0)
            end
          end
          -- the rounding is real: not the f32 convolution
          spec.assert((y - grove.conv2d(x, w, b, o)):abs():max():item() > 0, "bf16 differs from f32")
        end)
        grove.set_conv_bf16_dnnl(true)
        if not ok then error(err, 0) end
      end
    end)
  end
  -- DC-AE's shapes, small: ResBlock's 3x3, GLUMBConv's 1x1s, the attention's
  -- grouped 1x1 (groups 3·heads) and depthwise 5x5 aggregation, the stride-2
  -- 3x3 of the encoder's down blocks
  case("3x3 pad 1, 24 -> 16, bias", { 2, 6, 7, 24 }, { 16, 24, 3, 3 }, { 16 }, { padding = 1 })
  case("3x3 pad 1, 40 -> 3 (conv_out), no bias", { 1, 5, 6, 40 }, { 3, 40, 3, 3 }, nil, { padding = 1 })
  case("1x1, 32 -> 48, bias", { 2, 4, 5, 32 }, { 48, 32, 1, 1 }, { 48 }, {})
  case("grouped 1x1 (groups 6), 48 -> 48", { 1, 5, 4, 48 }, { 48, 8, 1, 1 }, nil, { groups = 6 })
  case("depthwise 5x5 pad 2 (groups = C)", { 1, 7, 6, 24 }, { 24, 1, 5, 5 }, nil, { padding = 2, groups = 24 })
  case("3x3 stride 2 pad 1, 16 -> 24, bias", { 2, 9, 8, 16 }, { 24, 16, 3, 3 }, { 24 }, { stride = 2, padding = 1 })

  spec.it("gradients are conv2d's at the unrounded operands", function()
    local function grads(fn)
      local g = grove.Generator(32)
      local x = grove.randn({ 2, 5, 6, 8 }, { generator = g }):requires_grad_(true)
      local w = grove.randn({ 12, 4, 3, 3 }, { generator = g }):requires_grad_(true)
      local b = grove.randn({ 12 }, { generator = g }):requires_grad_(true)
      local y = fn(x, w, b, { padding = 1, groups = 2 })
      y:backward(grove.randn(y:shape(), { generator = g }))
      return { x.grad, w.grad, b.grad }
    end
    local a, c = grads(grove.conv2d_bf16), grads(grove.conv2d)
    for i = 1, 3 do spec.eq((a[i] - c[i]):abs():max():item(), 0, "gradient " .. i) end
    -- and through the 1x1 case (a GEMM backward)
    local x = grove.randn{ 1, 3, 3, 5 }:requires_grad_(true)
    grove.conv2d_bf16(x, grove.randn{ 4, 5, 1, 1 }):sum():backward()
    spec.eq(x.grad:shape_str(), "[1,3,3,5]")
  end)

  spec.it("refuses bad input naming itself", function()
    spec.raises(function() grove.conv2d_bf16(grove.randn{ 1, 4, 4, 4 }, grove.randn{ 4, 3, 3, 3 }) end,
      "conv2d_bf16: input [1,4,4,4] has 4 channels but weight [4,3,3,3] expects 3 per group")
    spec.raises(function() grove.conv2d_bf16(grove.randn{ 4, 4, 4 }, grove.randn{ 4, 4, 1, 1 }) end,
      "conv2d_bf16: input [4,4,4] must be 4-d NHWC")
    spec.raises(function() grove.conv2d_bf16(grove.randn{ 1, 2, 2, 4 }, grove.randn{ 3, 4, 1, 1 }, grove.randn{ 4 }) end,
      "conv2d_bf16: bias [4] does not match weight [3,4,1,1]")
    spec.raises(function() grove.conv2d_bf16(grove.randn{ 1, 2, 2, 4 }, "w") end, "conv2d_bf16")
  end)

  spec.it("leaves no tensors or tape nodes alive", function()
    spec.no_leaks(function()
      local x = grove.randn{ 1, 4, 3, 6 }:requires_grad_(true)
      grove.conv2d_bf16(x, grove.randn{ 4, 6, 3, 3 }, grove.randn{ 4 }, { padding = 1 }):sum():backward()
      pcall(grove.conv2d_bf16, x, grove.randn{ 4, 5, 3, 3 })
    end)
  end)
end)
