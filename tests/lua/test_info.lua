-- grove.build_info() and `grove info`: the build facts libgrove reports and
-- the command that prints them with BLAS, threads and CUDA devices.
local spec = require "spec"

local exe = arg and arg[-1]

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"exit $?\"")
  local out = p:read("*a")
  p:close()
  return out, tonumber(out:match("exit (%d+)%s*$"))
end

spec.describe("grove.build_info", function()
  spec.it("reports the build's facts as strings", function()
    local b = grove.build_info()
    spec.eq(b.version, grove._VERSION, "version")
    for _, k in ipairs { "compiler", "build_type", "march", "simd", "sanitizers", "openmp", "cuda",
                         "cuda_architectures", "openblas" } do
      spec.assert(type(b[k]) == "string" and #b[k] > 0, "build_info has " .. k)
    end
    spec.assert(b.cuda == "on" or b.cuda == "off", "cuda is on or off: " .. b.cuda)
    spec.assert((b.cuda == "off") == (b.cuda_architectures == "none"), "architectures only with CUDA: " .. b.cuda_architectures)
    spec.eq(b.openmp, "on", "openmp")
    spec.assert(b.openblas:find("openblas", 1, true), "openblas path: " .. b.openblas)
  end)

  spec.it("agrees with the CUDA module", function()
    if grove.build_info().cuda == "off" then spec.eq(grove.cuda.device_count(), 0, "no devices without CUDA") end
  end)
end)

spec.describe("grove info", function()
  spec.it("prints version, build, blas, threads and devices", function()
    if not exe then spec.skip("grove info: the grove executable's path is unknown (arg[-1]); run through tests/lua/run.lua"); return end
    local out, code = run("'" .. exe .. "' info")
    spec.eq(code, 0, out)
    local b = grove.build_info()
    spec.assert(out:find("grove " .. grove._VERSION, 1, true), out)
    spec.assert(out:find("build:%s+" .. b.build_type), out)
    spec.assert(out:find("-march=" .. b.march, 1, true), out)
    spec.assert(out:find("blas:%s+OpenBLAS"), out)
    spec.assert(out:find(b.openblas, 1, true), out)
    spec.assert(out:find("threads:%s+" .. grove.num_threads() .. " of"), out)
    if b.cuda == "off" then
      spec.assert(out:find("cuda:%s+not built"), out)
      spec.assert(out:find("devices:%s+not built"), out)
    elseif grove.cuda.device_count() == 0 then
      spec.assert(out:find("cuda:%s+built for architectures " .. b.cuda_architectures), out)
      spec.assert(out:find("devices:%s+none"), out)
    else
      spec.assert(out:find("devices:%s+cuda:0 "), out)
      spec.assert(out:find("cuda:0 " .. grove.cuda.device_name(0), 1, true), out)
      spec.assert(out:find("GiB total", 1, true), out)
    end
    spec.assert(out:find("library " .. grove._LIBRARY, 1, true), out)
  end)

  spec.it("rejects unknown options", function()
    if not exe then spec.skip("grove info --bogus: the grove executable's path is unknown (arg[-1])"); return end
    local out, code = run("'" .. exe .. "' info --bogus")
    spec.eq(code, 1, out)
    spec.assert(out:find("unknown option '--bogus'", 1, true), out)
  end)
end)
