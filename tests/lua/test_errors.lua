-- Bad input from Lua: each wrong call raises a readable error naming the op,
-- and the process goes on (the runner itself keeps running after each).
local spec = require "spec"

local function t(shape, opts) return grove.randn(shape, opts) end
local function i64(v) return grove.tensor(v, {dtype = "i64"}) end

local cases = {
  -- shapes
  {"add shapes",        function() return t{2, 3} + t{4, 5} end, "add: [2,3] + [4,5]: shapes cannot broadcast"},
  {"mul shapes",        function() return t{2, 3} * t{2} end, "mul: [2,3] * [2]"},
  {"matmul inner",      function() return grove.matmul(t{2, 3}, t{4, 5}) end, "matmul: [2,3] @ [4,5]: inner dimensions differ (3 vs 4)"},
  {"matmul batch",      function() return grove.matmul(t{2, 2, 3}, t{3, 3, 4}) end, "matmul"},
  {"matmul 0-d",        function() return grove.matmul(grove.tensor(1), t{2}) end, "matmul"},
  {"linear weight",     function() return grove.linear(t{4, 3}, t{5, 4}) end, "linear"},
  {"linear bias",       function() return grove.linear(t{4, 3}, t{5, 3}, t{4}) end, "linear"},
  {"view count",        function() return t{2, 3}:view{4, 2} end, "view"},
  {"view strides",      function() return t{2, 3}:t():view{6} end, "view"},
  {"reshape two -1",    function() return t{2, 3}:reshape{-1, -1} end, "reshape"},
  {"expand",            function() return t{2, 3}:expand{4, 3} end, "expand"},
  {"cat shapes",        function() return grove.cat({t{2, 3}, t{2, 4}}, 1) end, "cat"},
  {"cat empty",         function() return grove.cat({}, 1) end, "cat"},
  {"stack shapes",      function() return grove.stack({t{2}, t{3}}) end, "stack"},
  {"mse shapes",        function() return grove.mse_loss(t{2, 3}, t{3, 2}) end, "mse_loss"},
  {"layer_norm weight", function() return grove.layer_norm(t{2, 4}, t{3}) end, "layer_norm"},
  {"rms_norm weight",   function() return grove.rms_norm(t{2, 4}, t{5}) end, "rms_norm"},
  {"conv channels",     function() return grove.conv2d(t{1, 4, 4, 3}, t{8, 5, 1, 1}) end, "conv2d"},
  {"conv bad stride",  function() return grove.conv2d(t{1, 4, 4, 3}, t{8, 3, 3, 3}, nil, {stride = 0}) end, "stride 0"},
  {"where shapes",      function() return grove.where(grove.ones({2}, {dtype = "u8"}), t{3}, t{3}) end, "where"},
  {"cosine shapes",     function() return grove.cosine_similarity(t{2, 3}, t{2, 4}) end, "cosine_similarity"},
  -- dims and indices
  {"sum dim",           function() return t{2, 3}:sum(3) end, "out of range"},
  {"softmax dim",       function() return grove.softmax(t{2, 3}, 5) end, "out of range"},
  {"dim zero",          function() return t{2, 3}:sum(0) end, "1-based"},
  {"narrow range",      function() return t{2, 3}:narrow(2, 3, 2) end, "narrow"},
  {"select range",      function() return t{2, 3}[3] end, "select: index"},
  {"permute repeat",    function() return t{2, 3}:permute{1, 1} end, "permute"},
  {"size dim",          function() return t{2, 3}:size(4) end, "size"},
  {"embedding index",   function() return grove.embedding(t{5, 3}, i64{1, 7}) end, "embedding"},
  {"cross_entropy tgt", function() return grove.cross_entropy(t{2, 3}, i64{0, 3}) end, "cross_entropy"},
  {"too many dims",     function() return grove.zeros{1, 1, 1, 1, 1, 1, 1, 1, 1} end, "at most 8"},
  {"negative size",     function() return grove.zeros{2, -3} end, "negative size"},
  -- dtypes
  {"i32 add",           function() return grove.zeros({2}, {dtype = "i32"}) + t{2} end, "f32"},
  {"u8 exp",            function() return grove.zeros({2}, {dtype = "u8"}):exp() end, "f32"},
  {"embedding ids f32", function() return grove.embedding(t{5, 3}, t{2}) end, "embedding"},
  {"mask dtype",        function() return grove.masked_fill(t{2}, t{2}, 0) end, "masked_fill"},
  {"unknown dtype",     function() return grove.zeros({2}, {dtype = "f128"}) end, "unknown dtype"},
  {"requires_grad i64", function() return grove.zeros({2}, {dtype = "i64"}):requires_grad_() end, "only f32"},
  -- autograd
  {"backward no grad",  function() t{2}:sum():backward() end, "does not require grad"},
  {"backward nonscalar",function() (t({2}, {requires_grad = true}) * 2):backward() end, "not a scalar"},
  {"backward twice",    function()
     local x = t({3}, {requires_grad = true})
     local y = (x * x):sum()
     y:backward(); y:backward()
   end, "already freed"},
  {"backward grad shape", function() (t({2}, {requires_grad = true}) * 2):backward(t{3}) end, "does not match"},
  {"in-place on leaf",  function() t({2}, {requires_grad = true}):fill_(1) end, "requires grad"},
  {"set grad shape",    function() local x = t{2}; x.grad = t{3} end, "set_grad"},
  -- lifetime and values
  {"use after free",    function() local x = t{2}; x:free(); return x * 2 end, "freed"},
  {"item non-scalar",   function() return t{2}:item() end, "item"},
  {"huge allocation",   function() return grove.zeros{2^40, 2^20} end, "too many elements"},
  {"out of memory",     function() return grove.empty{2^45} end, "empty: out of memory"},
  -- an allocation that fails names the op that asked for it
  {"oom full",          function() return grove.full({2^45}, 1) end, "full: out of memory"},
  {"oom contiguous",    function() return grove.zeros{1}:expand{2^45}:contiguous() end, "contiguous: out of memory"},
  {"oom clone",         function() return grove.zeros{1}:expand{2^45}:clone() end, "clone: out of memory"},
  {"oom to",            function() return grove.zeros{1}:expand{2^45}:to("f16") end, "to: out of memory"},
  {"oom add",           function() return grove.zeros{1}:expand{2^45} + 1 end, "add: out of memory"},
  {"oom exp",           function() return grove.zeros{1}:expand{2^45}:exp() end, "exp: out of memory"},
  {"oom sum",           function() return grove.zeros{1, 1}:expand{2^45, 2}:sum(2) end, "sum: out of memory"},
  {"clamp bounds",      function() return t{2}:clamp(1, -1) end, "clamp"},
  {"pad negative",      function() return grove.pad(t{2, 3}, {-1, 0}) end, "pad"},
  {"dropout p",         function() return grove.dropout(t{3}, 1.5) end, "dropout"},
  {"arange step",       function() return grove.arange(0, 1, 0) end, "arange"},
  {"randn std",         function() return grove.zeros{2}:normal_(0, -1) end, "negative"},
  {"nan in seed",       function() grove.manual_seed(0/0) end, "manual_seed"},
  {"ragged table",      function() return grove.tensor{{1, 2}, {3}} end, "ragged"},
  {"tensor from string",function() return grove.tensor("x") end, "tensor"},
  {"threads",           function() grove.set_num_threads(0) end, "set_num_threads"},
}

spec.describe("bad input", function()
  for _, c in ipairs(cases) do
    spec.it(c[1], function()
      local msg = spec.raises(c[2], c[3])
      -- readable: one line-ish message, no C crash text
      spec.assert(#msg < 400, "message too long: " .. msg)
    end)
  end
  spec.it("there are at least 40 cases", function()
    spec.assert(#cases >= 40, #cases .. " cases")
  end)
  spec.it("the process still works after all of them", function()
    local x = grove.tensor{1, 2, 3}
    spec.eq((x * 2):sum():item(), 12)
  end)
end)

spec.describe("NaN", function()
  spec.it("propagates through arithmetic instead of failing", function()
    local x = grove.tensor{0/0, 1}
    local y = (x * 2):sum():item()
    spec.assert(y ~= y, "NaN in, NaN out")
  end)
end)

-- The executable survives errors: a failing script exits 1 with a traceback,
-- and the REPL keeps going after an error.
spec.describe("grove executable", function()
  local exe = arg and arg[-1]
  spec.it("a failing script exits with status 1 and a traceback", function()
    local p = io.popen(exe .. " -e 'grove.matmul(grove.randn{2,3}, grove.randn{4,5})' 2>&1; echo \"status=$?\"")
    local out = p:read("*a"); p:close()
    spec.assert(out:find("inner dimensions differ", 1, true), out)
    spec.assert(out:find("stack traceback", 1, true), out)
    spec.assert(out:find("status=1", 1, true), out)
  end)
  -- Allocations the allocator itself refuses (not grove's size bound), in a
  -- process limited to 1.5 GB of address space. Not under ASan, which
  -- reserves terabytes of shadow memory at start.
  spec.it("a failed allocation is a Lua error naming the op, and the process goes on", function()
    if os.getenv("ASAN_OPTIONS") then spec.skip("ulimit -v and ASan's shadow memory do not mix"); return end
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
      local cases = {
        function() return grove.zeros{2^29} end,
        function() return grove.empty{2^29} end,
        function() return grove.zeros{1}:expand{2^29}:contiguous() end,
        function() return grove.zeros{1}:expand{2^29} * 2 end,
        function() return grove.zeros{1}:expand{2^29}:exp() end,
        function() return grove.zeros{1}:expand{2^29}:to("i64") end,
      }
      for _, c in ipairs(cases) do
        local ok, e = pcall(c)
        print(ok and "allocated" or e)
      end
      print("alive", grove.tensor{1, 2}:sum():item())
    ]])
    f:close()
    local out, status = spec.run("ulimit -v 1500000; '" .. exe .. "' '" .. script .. "'")
    os.remove(script)
    spec.eq(status, 0, out)
    for _, op in ipairs { "full", "empty", "contiguous", "mul", "exp", "to" } do
      spec.assert(("\n" .. out):find("[\n ]" .. op .. ": out of memory"), op .. ": " .. out)
    end
    spec.assert(not out:find("allocated", 1, true), out)
    spec.assert(out:find("alive\t3", 1, true), out)
  end)
  spec.it("the REPL survives an error and prints results", function()
    local p = io.popen("printf 'x = grove.randn{2,3}\\nx:matmul(x)\\nprint(\"alive\", x:numel())\\n1 +\\n 2\\n' | " .. exe .. " 2>&1")
    local out = p:read("*a"); p:close()
    spec.assert(out:find("inner dimensions differ", 1, true), out)
    spec.assert(out:find("alive\t6", 1, true), out)
    spec.assert(out:find("\n3\n", 1, true) or out:find(" 3\n", 1, true) or out:find("> 3", 1, true), "multi-line input evaluated: " .. out)
  end)
end)

-- `require "grove"` from stock LuaJIT, finding libgrove through the FFI and
-- choosing the OpenBLAS core type before OpenBLAS loads.
spec.describe("stock luajit", function()
  spec.it("loads the module and multiplies", function()
    if grove.build_info().sanitizers ~= "none" then
      -- stock LuaJIT cannot load a sanitized libgrove unless the sanitizer
      -- runtime is preloaded into it
      spec.skip("stock luajit: this libgrove is built with sanitizers (" .. grove.build_info().sanitizers .. ")")
      return
    end
    local h = io.popen("command -v luajit"); local lj = h:read("*l"); h:close()
    spec.assert(lj and #lj > 0, "luajit is installed by scripts/install-deps")
    local here = debug.getinfo(1, "S").source:match("^@(.*)/tests/lua/[^/]*$") or "."
    -- ctest names the build folder (tests/CMakeLists.txt); build/ by hand
    local build = os.getenv("GROVE_BUILD_DIR") or (here .. "/build")
    local path = here .. "/lua/?.lua;" .. here .. "/lua/?/init.lua;" .. build .. "/lua/?.lua;;"
    local cmd = "env -u OPENBLAS_CORETYPE LUA_PATH='" .. path .. "' luajit -e '" ..
      "local grove = require \"grove\"; local t = grove.randn{2,3}; " ..
      "print(t:matmul(t:t()):shape()[2], grove.blas_info())' 2>&1"
    local p = io.popen(cmd)
    local out = p:read("*a"); p:close()
    spec.assert(out:match("^2\t"), out)
    spec.assert(out:find("chosen by grove from cpuid", 1, true) or out:find("no AVX2", 1, true), out)
  end)
end)

spec.describe("the C error in Lua", function()
  spec.it("grove.check raises grove_last_error at the caller's line; grove.fail and c_error are the same message", function()
    local ffi = require "ffi"
    local stats = ffi.new("grove_memory_stats")
    spec.eq(grove.check(grove.C.grove_memory(grove.C.GROVE_CPU, stats)), 0)
    local function public() grove.check(grove.C.grove_memory(99, stats)) end
    local ok, err = pcall(function()
      public()   -- the line the error names
    end)
    spec.assert(not ok)
    spec.assert(err:find("test_errors.lua:%d+: memory: no device 99$"), err)
    spec.eq(grove.c_error(), "memory: no device 99")
    local function public2() grove.fail() end
    ok, err = pcall(function() public2() end)
    spec.assert(err:find("test_errors.lua:%d+: memory: no device 99$"), err)
  end)

  spec.it("dtype and device names come from the C enums", function()
    for id = 0, grove.C.GROVE_DTYPE_COUNT - 1 do
      local name = grove.dtype_names[id]
      spec.eq(name, require("ffi").string(grove.C.grove_dtype_name(id)))
      spec.eq(grove.dtypes[name], id)
      spec.eq(grove.zeros({ 1 }, { dtype = name }):dtype(), name)
    end
    spec.eq(grove.dtypes.long, grove.C.GROVE_I64)
    spec.eq(grove.devices.cuda, grove.C.GROVE_CUDA)
    spec.eq(grove.device_names[grove.C.GROVE_CPU], "cpu")
  end)
end)
