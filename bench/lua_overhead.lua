-- lua_overhead.lua — what one tiny op costs when called from Lua, next to
-- what calling costs at all. On 1- and 4-element tensors the arithmetic is
-- nothing, so the figures are the price of the Lua layer (argument checks,
-- the ffi.gc handle and its finaliser) plus the C front-end (validation,
-- output allocation, refcounting). The issue's target is under 1 us per call.
--
-- Usage: grove bench/lua_overhead.lua [calls]   (default 3e5 per loop; the
-- best of 3 loops counts, so about 1e6 calls per case in all)
-- Prints a table; asserts nothing.
local dir = (arg and arg[0] or ""):match("^(.*)/") or "."
local B = dofile(dir .. "/benchlib.lua")
local C = grove.C

local N = tonumber(arg and arg[1]) or 3e5

local a1, b1 = grove.randn{1}, grove.randn{1}
local a4, b4 = grove.randn{4}, grove.randn{4}
local x4 = grove.randn{4}

-- loop results go here so that the JIT cannot drop the loops
local sink = 0
local function empty(i) return i end

local cases = {
  { "empty Lua function call", "baseline", function(n)
      local s = 0
      for i = 1, n do s = s + empty(i) end
      sink = sink + s
    end },
  { "raw FFI call C.grove_num_threads()", "baseline", function(n)
      local s = 0
      for _ = 1, n do s = s + C.grove_num_threads() end
      sink = sink + s
    end },
  { "C.grove_binary + release, 1 element", "C only", function(n)
      local pa, pb = a1.p, b1.p
      for _ = 1, n do C.grove_tensor_release(C.grove_binary(pa, pb, 0)) end
    end },
  { "C.grove_binary + release, 4 elements", "C only", function(n)
      local pa, pb = a4.p, b4.p
      for _ = 1, n do C.grove_tensor_release(C.grove_binary(pa, pb, 0)) end
    end },
  { "a + b, 1 element", "op", function(n)
      for _ = 1, n do local _ = a1 + b1 end
    end },
  { "a + b, 4 elements", "op", function(n)
      for _ = 1, n do local _ = a4 + b4 end
    end },
  { "a * 2, 4 elements (scalar)", "op", function(n)
      for _ = 1, n do local _ = a4 * 2 end
    end },
  { "t:relu(), 4 elements", "op", function(n)
      for _ = 1, n do local _ = x4:relu() end
    end },
  { "a + b with :free(), 4 elements", "op", function(n)
      for _ = 1, n do local c = a4 + b4; c:free() end
    end },
}

print(string.format("lua_overhead: cost of one call from Lua (%s), best of 3 loops of %d calls",
                    jit and jit.version or _VERSION, N))
print(string.format("threads: %d; an op on <= 4 elements runs on one thread", grove.num_threads()))
print("C only: the C front-end and kernel called through the FFI, no tensor handle or finaliser")
print("")
print(string.format("%-44s  %-9s  %10s", "case", "kind", "us/call"))
for _, c in ipairs(cases) do
  local us = B.per_call_us(c[3], N, 3)
  print(string.format("%-44s  %-9s  %10.3f", c[1], c[2], us))
  io.stdout:flush()
end
grove.collect()
print("")
print(string.format("live tensors after collect: %d (5 means only the inputs: nothing leaked)",
                    grove.memory().live_tensors))
