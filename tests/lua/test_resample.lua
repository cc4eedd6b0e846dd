-- Resampling NHWC images: nearest upsampling and pixel shuffle / unshuffle.
-- Forwards against float64 references written from PyTorch's index
-- formulas (exactly: these ops only move values), gradients against finite
-- differences, the shuffles against each other, DC-AE's channel repeat and
-- group mean from existing ops, and the refused cases.
local grove = grove or require "grove"
local spec = require "spec"
local ref = require "ref"

-- 0-based NHWC position into a flat 1-based ref array of shape (b, h, w, c).
local function at(h, w, c, bi, y, x, ch) return ((bi * h + y) * w + x) * c + ch + 1 end

-- torch.nn.functional.interpolate(mode="nearest", scale_factor=s) on NCHW:
-- out[n, c, y, x] = in[n, c, floor(y / s), floor(x / s)], here in NHWC.
local function upsample_ref(s)
  return function(X)
    local b, h, w, c = X.shape[1], X.shape[2], X.shape[3], X.shape[4]
    local out = ref.new({ b, h * s, w * s, c }, 0)
    for bi = 0, b - 1 do for y = 0, h * s - 1 do for x = 0, w * s - 1 do for ch = 0, c - 1 do
      out.data[at(h * s, w * s, c, bi, y, x, ch)] = X.data[at(h, w, c, bi, math.floor(y / s), math.floor(x / s), ch)]
    end end end end
    return out
  end
end

-- torch.nn.functional.pixel_shuffle on NCHW (N, C·r², H, W) → (N, C, H·r, W·r):
-- out[n, c, h·r + i, w·r + j] = in[n, c·r² + i·r + j, h, w], here in NHWC.
local function shuffle_ref(r)
  return function(X)
    local b, h, w, cin = X.shape[1], X.shape[2], X.shape[3], X.shape[4]
    local c = cin / (r * r)
    local out = ref.new({ b, h * r, w * r, c }, 0)
    for bi = 0, b - 1 do for y = 0, h - 1 do for x = 0, w - 1 do
      for ch = 0, c - 1 do for i = 0, r - 1 do for j = 0, r - 1 do
        out.data[at(h * r, w * r, c, bi, y * r + i, x * r + j, ch)] = X.data[at(h, w, cin, bi, y, x, ch * r * r + i * r + j)]
      end end end
    end end end
    return out
  end
end

-- torch.nn.functional.pixel_unshuffle, the inverse: out[n, c·r² + i·r + j, h, w]
-- = in[n, c, h·r + i, w·r + j], here in NHWC.
local function unshuffle_ref(r)
  return function(X)
    local b, hr, wr, c = X.shape[1], X.shape[2], X.shape[3], X.shape[4]
    local h, w = hr / r, wr / r
    local out = ref.new({ b, h, w, c * r * r }, 0)
    for bi = 0, b - 1 do for y = 0, h - 1 do for x = 0, w - 1 do
      for ch = 0, c - 1 do for i = 0, r - 1 do for j = 0, r - 1 do
        out.data[at(h, w, c * r * r, bi, y, x, ch * r * r + i * r + j)] = X.data[at(hr, wr, c, bi, y * r + i, x * r + j, ch)]
      end end end
    end end end
    return out
  end
end

spec.describe("upsample_nearest", function()
  for _, case in ipairs {
    { 2, { 2, 3, 5, 4 } },  -- DC-AE's scale, batch 2, non-square
    { 3, { 1, 4, 2, 3 } },
    { 1, { 2, 2, 3, 5 } },  -- identity
    { 2, { 1, 1, 1, 7 } },
  } do
    local s, shape = case[1], case[2]
    spec.it("scale " .. s .. " on [" .. table.concat(shape, ",") .. "] is exact, gradient sums each block", function()
      spec.check_op{ fn = function(x) return x:upsample_nearest(s) end, ref = upsample_ref(s), inputs = { shape },
                     fwd_tol = 0 }
    end)
  end
  spec.it("reads a non-contiguous input", function()
    spec.check_op{
      fn = function(x) return x:transpose(2, 3):upsample_nearest(2) end,
      ref = function(X)
        local b, w, h, c = X.shape[1], X.shape[2], X.shape[3], X.shape[4]
        local T = ref.new({ b, h, w, c }, 0)
        for bi = 1, b do for i = 1, h do for j = 1, w do for ch = 1, c do
          ref.set(T, { bi, i, j, ch }, ref.get(X, { bi, j, i, ch }))
        end end end end
        return upsample_ref(2)(T)
      end,
      inputs = { { 2, 3, 4, 3 } }, fwd_tol = 0,
    }
  end)
  spec.it("the gradient of a block of ones is s²", function()
    local x = grove.zeros({ 1, 2, 3, 2 }, { requires_grad = true })
    x:upsample_nearest(3):sum():backward()
    spec.eq(x.grad:min():item(), 9)
    spec.eq(x.grad:max():item(), 9)
  end)
  spec.it("a large image (threaded rows) matches expand and reshape", function()
    local x = grove.randn(2, 40, 24, 64)
    local y = x:upsample_nearest(2)
    local want = x:view(2, 40, 1, 24, 1, 64):expand(2, 40, 2, 24, 2, 64):reshape(2, 80, 48, 64)
    spec.eq(spec.max_diff(y, want), 0)
    local g = grove.randn(2, 80, 48, 64)
    local xr = x:clone():requires_grad_(true)
    xr:upsample_nearest(2):backward(g)
    local gw = g:view(2, 40, 2, 24, 2, 64):sum { 3, 5 }
    spec.assert(spec.max_diff(xr.grad, gw) < 1e-5, "block sums")
  end)
end)

spec.describe("pixel_shuffle and pixel_unshuffle", function()
  for _, case in ipairs {
    { 2, { 2, 3, 5, 8 } },  -- C = 2, batch 2, non-square
    { 3, { 1, 2, 3, 18 } }, -- C = 2, r = 3
    { 2, { 1, 1, 1, 4 } },
    { 1, { 2, 2, 3, 3 } },  -- identity
  } do
    local r, shape = case[1], case[2]
    local name = "r = " .. r .. " on [" .. table.concat(shape, ",") .. "]"
    spec.it("pixel_shuffle " .. name .. " follows PyTorch's channel order exactly", function()
      spec.check_op{ fn = function(x) return x:pixel_shuffle(r) end, ref = shuffle_ref(r), inputs = { shape },
                     fwd_tol = 0 }
    end)
    local spread = { shape[1], shape[2] * r, shape[3] * r, shape[4] / (r * r) }
    spec.it("pixel_unshuffle of [" .. table.concat(spread, ",") .. ", r = " .. r .. "] is exact", function()
      spec.check_op{ fn = function(x) return x:pixel_unshuffle(r) end, ref = unshuffle_ref(r), inputs = { spread },
                     fwd_tol = 0 }
    end)
  end
  spec.it("a channel pattern lands where PyTorch puts it", function()
    -- x[0, 0, 0, k] = k: the 2x2 block of output channel c reads inputs 4c … 4c+3
    local x = grove.arange(8):view(1, 1, 1, 8)
    local y = x:pixel_shuffle(2)
    spec.eq(table.concat(y:view(-1):tolist(), " "), "0 4 1 5 2 6 3 7") -- (row, col, c) order
    spec.eq(table.concat(y:pixel_unshuffle(2):view(-1):tolist(), " "), "0 1 2 3 4 5 6 7")
  end)
  spec.it("each undoes the other; large images run threaded", function()
    local x = grove.randn(2, 30, 22, 36)
    spec.eq(spec.max_diff(x:pixel_shuffle(3):pixel_unshuffle(3), x), 0)
    spec.eq(spec.max_diff(x:pixel_unshuffle(2):pixel_shuffle(2), x), 0)
    -- against the view formulation (B, H, W, C, r, r) → (B, H, r, W, r, C)
    local want = x:view(2, 30, 22, 4, 3, 3):permute(1, 2, 5, 3, 6, 4):reshape(2, 90, 66, 4)
    spec.eq(spec.max_diff(x:pixel_shuffle(3), want), 0)
  end)
  spec.it("reads a non-contiguous input and its gradients round-trip", function()
    spec.check_op{
      fn = function(x) return x:narrow(4, 2, 8):pixel_shuffle(2) end,
      ref = function(X)
        local b, h, w = X.shape[1], X.shape[2], X.shape[3]
        local T = ref.new({ b, h, w, 8 }, 0)
        for bi = 1, b do for i = 1, h do for j = 1, w do for ch = 1, 8 do
          ref.set(T, { bi, i, j, ch }, ref.get(X, { bi, i, j, ch + 1 }))
        end end end end
        return shuffle_ref(2)(T)
      end,
      inputs = { { 2, 2, 3, 10 } }, fwd_tol = 0,
    }
  end)
  spec.it("second derivatives flow through (each backward is the other op)", function()
    local x = grove.randn({ 1, 2, 2, 4 }, { requires_grad = true })
    local y = x:pixel_shuffle(2)
    spec.eq(y:grad_fn(), "pixel_shuffle")
    local g = grove.randn(1, 4, 4, 1)
    y:backward(g)
    spec.eq(spec.max_diff(x.grad, g:pixel_unshuffle(2)), 0)
  end)
  spec.it("leaks nothing", function()
    spec.no_leaks(function()
      local x = grove.randn({ 1, 4, 6, 4 }, { requires_grad = true })
      local y = x:pixel_unshuffle(2):pixel_shuffle(2):upsample_nearest(2)
      y:sum():backward()
    end)
  end)
end)

-- DC-AE's channel steps need no op of their own: "repeat each channel in
-- place" is unsqueeze + expand + reshape (the reshape copies; expand's
-- gradient sums), "mean of consecutive channel groups" is a view + mean.
spec.describe("DC-AE channel repeat and group mean from views", function()
  local function repeat_in_place(x, n)
    local b, h, w, c = unpack(x:shape())
    return x:unsqueeze(-1):expand(b, h, w, c, n):reshape(b, h, w, c * n)
  end
  local function group_mean(x, n)
    local b, h, w, c = unpack(x:shape())
    return x:view(b, h, w, c / n, n):mean(5)
  end
  spec.it("repeat each channel in place: out[..., c·n + k] = in[..., c]", function()
    spec.check_op{
      fn = function(x) return repeat_in_place(x, 3) end,
      ref = function(X)
        local b, h, w, c = unpack(X.shape)
        local out = ref.new({ b, h, w, c * 3 }, 0)
        for p = 0, b * h * w - 1 do for ch = 0, c - 1 do for k = 0, 2 do
          out.data[p * c * 3 + ch * 3 + k + 1] = X.data[p * c + ch + 1]
        end end end
        return out
      end,
      inputs = { { 2, 3, 2, 4 } }, fwd_tol = 0,
    }
  end)
  spec.it("mean of consecutive channel groups: out[..., c] = mean_k in[..., c·n + k]", function()
    spec.check_op{
      fn = function(x) return group_mean(x, 4) end,
      ref = function(X)
        local b, h, w, c = unpack(X.shape)
        local out = ref.new({ b, h, w, c / 4 }, 0)
        for p = 0, b * h * w - 1 do for ch = 0, c / 4 - 1 do
          local s = 0
          for k = 0, 3 do s = s + X.data[p * c + ch * 4 + k + 1] end
          out.data[p * c / 4 + ch + 1] = s / 4
        end end
        return out
      end,
      inputs = { { 2, 2, 3, 8 } },
    }
  end)
  spec.it("the up- and down-sampling shortcuts compose", function()
    -- up: repeat in place then pixel_shuffle(2); down: pixel_unshuffle(2)
    -- then the group mean. Up then down from 4·C repeats gives x back.
    local x = grove.randn(2, 3, 5, 6)
    local up = repeat_in_place(x, 2):pixel_shuffle(2) -- 12 channels → 3 per pixel, twice the size
    spec.eq(table.concat(up:shape(), ","), "2,6,10,3")
    local down = group_mean(up:pixel_unshuffle(2), 2)
    spec.assert(spec.max_diff(down, x) < 1e-6, "down(up(x)) = x")
  end)
end)

spec.describe("resampling errors", function()
  local x = grove.randn(2, 5, 6, 12)
  spec.it("name the argument and the shape", function()
    spec.raises(function() return x:upsample_nearest(0) end, "upsample_nearest: scale must be an integer >= 1, got 0")
    spec.raises(function() return x:upsample_nearest(-2) end, "scale must be an integer >= 1, got -2")
    spec.raises(function() return x:upsample_nearest(1.5) end, "upsample_nearest: scale must be an integer >= 1, got 1.5")
    spec.raises(function() return x:upsample_nearest() end, "upsample_nearest: scale must be an integer >= 1, got nil")
    spec.raises(function() return x:pixel_shuffle(0) end, "pixel_shuffle: r must be an integer >= 1, got 0")
    spec.raises(function() return x:pixel_unshuffle(0) end, "pixel_unshuffle: r must be an integer >= 1, got 0")
    spec.raises(function() return x:pixel_shuffle(3) end,
                "pixel_shuffle: x [2,5,6,12] has C = 12 channels, not a multiple of r² = 9 (r = 3)")
    spec.raises(function() return x:pixel_unshuffle(2) end, "pixel_unshuffle: x [2,5,6,12] has H = 5, not divisible by r = 2")
    spec.raises(function() return grove.randn(1, 6, 4, 2):pixel_unshuffle(3) end,
                "pixel_unshuffle: x [1,6,4,2] has W = 4, not divisible by r = 3")
    spec.raises(function() return grove.randn(5, 6, 12):upsample_nearest(2) end,
                "upsample_nearest: expected an NHWC image (B, H, W, C), got [5,6,12]")
    spec.raises(function() return grove.randn(1, 2, 2, 4):bf16():pixel_shuffle(2) end, "pixel_shuffle: expected an f32 tensor")
  end)
  spec.it("leave the process and the input intact", function()
    local ok = pcall(function() return x:pixel_shuffle(5) end)
    spec.eq(ok, false)
    spec.eq(table.concat(x:pixel_shuffle(2):shape(), ","), "2,10,12,3")
  end)
end)
