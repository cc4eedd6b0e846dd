-- grove.profile: rows per op and per backward node, times that add up to
-- the run, fn's results passed through, errors raised after the profiler
-- stops.
local spec = require "spec"

local function row(report, name, backward)
  for _, r in ipairs(report) do
    if r.name == name and r.backward == (backward or false) then return r end
  end
end

spec.describe("profile", function()
  spec.it("times each op and each backward node", function()
    local a = grove.randn({ 384, 384 }):requires_grad_(true)
    local b = grove.randn{ 384, 384 }
    local small = grove.randn{ 4 }
    local report, value = grove.profile(function()
      local y
      for _ = 1, 3 do y = a:matmul(b) end
      for _ = 1, 3 do small = small + 1 end
      y:sum():backward()
      return 42
    end)
    spec.eq(value, 42, "fn's result comes back")
    local mm, add, mm_back = row(report, "matmul"), row(report, "add"), row(report, "matmul", true)
    spec.assert(mm and add and mm_back, "matmul, add and the matmul backward node have rows:\n" .. tostring(report))
    spec.assert(mm.calls >= 3 and add.calls >= 3 and mm_back.calls == 1, "dispatch counts:\n" .. tostring(report))
    spec.assert(mm.ms > add.ms, "three 384³ products take longer than three 4-element adds:\n" .. tostring(report))
    local shares = 0
    for i, r in ipairs(report) do
      spec.assert(r.ms >= 0, "no negative time")
      if i > 1 then spec.assert(report[i - 1].ms >= r.ms, "sorted by time") end
      shares = shares + r.share
    end
    spec.near(shares, 1, 1e-9, "shares add up to 1")
    spec.assert(report.total_ms > 0 and report.total_ms <= report.wall_ms + 1e-6,
                string.format("rows %.3f ms within the wall time %.3f ms", report.total_ms, report.wall_ms))
    spec.assert(tostring(report):find("matmul (backward)", 1, true), "the text table names backward rows")
    spec.assert(report:format(1):find("more rows", 1, true), "format(n) cuts the table")
  end)

  spec.it("keeps an op's time after a copy of its input with the op", function()
    -- conv2d copies a non-contiguous input first; the copy has its own row
    -- and the convolution's arithmetic (2.4 GFLOP against 3.3 MB of copies:
    -- enough that the copy stays behind even in an unoptimised, sanitised
    -- build, where grove's own copy loop is many times slower and the
    -- convolution's library is not) stays on the conv2d row instead of
    -- running on under "contiguous". A loaded machine can stall the copy
    -- itself, so the times get three tries; the counts hold every time.
    local x = grove.randn({ 1, 128, 64, 64 }):permute { 1, 3, 4, 2 }
    local w = grove.randn { 256, 128, 3, 3 }
    local held
    for _ = 1, 3 do
      local report = grove.profile(function() return x:conv2d(w, nil, { padding = 1 }) end)
      local conv, copy = row(report, "conv2d"), row(report, "contiguous")
      spec.assert(conv and copy, "conv2d and the copy of its input have rows:\n" .. tostring(report))
      spec.eq(conv.calls, 1, "the op resumed after the copy is not another call")
      spec.eq(copy.calls, 2, "two copies: the input, and the weight in tap-major order")
      held = conv.ms > copy.ms
      if held then break end
    end
    spec.assert(held, "the convolution, not the copy, holds the time (three tries)")
  end)

  spec.it("raises fn's error after stopping, and starts clean the next time", function()
    spec.raises(function() grove.profile(function() error("inside the profiled function") end) end,
                "inside the profiled function")
    local report = grove.profile(function() return grove.ones{ 3 } * 2 end)
    spec.assert(row(report, "mul"), "a fresh table with the product:\n" .. tostring(report))
    spec.eq(row(report, "matmul"), nil, "no rows from the earlier run")
    spec.raises(function() grove.profile(42) end, "profile: expected a function, got number")
  end)
end)
