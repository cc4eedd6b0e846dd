-- Library-wide settings and counters: threads, BLAS, memory, random seeds.
local ffi = require "ffi"

return function(grove)
  local C = grove.C

  function grove.num_threads() return C.grove_num_threads() end

  function grove.set_num_threads(n)
    grove.check(C.grove_set_num_threads(n))
  end

  function grove.blas_info() return ffi.string(C.grove_blas_info()) end

  -- Whether this build runs the general CPU conv2d forward through oneDNN
  -- (libdnnl-dev found at build time); set_conv_dnnl(false) makes it use
  -- im2col + sgemm instead (for comparing the two), true restores it.
  function grove.conv_dnnl_available() return C.grove_conv_dnnl_available() end
  function grove.set_conv_dnnl(on) C.grove_conv_set_dnnl(on and 1 or 0) end
  -- Dense 3×3 stride-1 convolutions with at least 128×128 output pixels run
  -- oneDNN's Winograd algorithm where oneDNN has it for the CPU (within f32
  -- rounding of the direct convolution, not the same bits);
  -- set_conv_winograd(false) keeps oneDNN's direct convolution.
  function grove.set_conv_winograd(on) C.grove_conv_set_winograd(on and 1 or 0) end

  -- Whether bf16 GEMMs (grove.matmul_bf16, linear_bf16, the bf16 compute
  -- mode) run through oneDNN's bf16 matmul: the build has oneDNN and the
  -- CPU multiplies bf16 in hardware (cpu_has_bf16: AVX512-BF16 or AMX).
  -- set_gemm_bf16_dnnl(false) keeps the reference path (rounded operands,
  -- then the f32 sgemm: the same products, summed in another order).
  function grove.gemm_bf16_dnnl_available() return C.grove_gemm_bf16_dnnl_available() end
  function grove.set_gemm_bf16_dnnl(on) C.grove_gemm_bf16_set_dnnl(on and 1 or 0) end
  function grove.cpu_has_bf16() return C.grove_cpu_has_bf16() end

  -- Whether conv2d_bf16 (and the bf16 compute mode's convolutions) run
  -- through oneDNN's bf16 convolution: the build has oneDNN and the CPU
  -- multiplies bf16 in hardware. set_conv_bf16_dnnl(false) keeps the
  -- reference path (rounded operands, then the f32 convolution).
  function grove.conv_bf16_dnnl_available() return C.grove_conv_bf16_dnnl_available() end
  function grove.set_conv_bf16_dnnl(on) C.grove_conv_bf16_set_dnnl(on and 1 or 0) end

  -- The build of the loaded libgrove as a table of strings (grove.h's
  -- grove_build_info keys): version, compiler, build_type, march, simd,
  -- sanitizers, openmp, cuda ("on"/"off"), cuda_architectures, openblas.
  function grove.build_info()
    local t = {}
    for k, v in ffi.string(C.grove_build_info()):gmatch("([%w_]+)=([^\n]*)") do t[k] = v end
    return t
  end

  local device_ids = { cpu = C.GROVE_CPU, cuda = C.GROVE_CUDA }
  local stats = ffi.new("grove_memory_stats")

  -- Live, peak and cached bytes of a device plus live tensor and tape-node
  -- counts: a leak is a number that does not come back.
  function grove.memory(device)
    local id = device_ids[device or "cpu"]
    if not id then error("memory: unknown device '" .. tostring(device) .. "'", 2) end
    grove.check(C.grove_memory(id, stats))
    return {
      live_bytes = tonumber(stats.live_bytes), peak_bytes = tonumber(stats.peak_bytes),
      cached_bytes = tonumber(stats.cached_bytes), live_tensors = tonumber(stats.live_tensors),
      live_nodes = tonumber(stats.live_nodes),
    }
  end

  function grove.reset_peak_memory(device) C.grove_memory_reset_peak(device_ids[device or "cpu"] or C.GROVE_CPU) end
  function grove.empty_cache(device) C.grove_memory_empty_cache(device_ids[device or "cpu"] or C.GROVE_CPU) end

  -- The collector's view and the core's: Lua heap KB, live bytes, tensors, nodes.
  local cstats = ffi.new("grove_memory_stats")
  local function counts()
    local heap = collectgarbage("count")
    C.grove_memory(C.GROVE_CPU, cstats)
    return heap, tonumber(C.grove_memory_live_total()), tonumber(cstats.live_tensors), tonumber(cstats.live_nodes)
  end

  -- Runs the collector until finalizers have released every unreachable
  -- tensor. One cycle runs the finalizers of what it found unreachable; what
  -- only those objects held becomes unreachable in the next, so a chain of
  -- holders (a module holding a table holding tensors) needs one cycle per
  -- link: collect until a cycle frees nothing more. "Nothing" counts tensor
  -- objects and tape nodes as well as bytes (a view frees no bytes), and
  -- takes two quiet cycles in a row: a cycle whose finalizers free only Lua
  -- objects, while allocating as much, looks quiet and left a link of the
  -- chain for later.
  function grove.collect()
    local heap, bytes, tensors, nodes = -1, -1, -1, -1
    local quiet = 0
    for _ = 1, 32 do
      collectgarbage("collect")
      local h, b, t, n = counts()
      if h >= heap and b == bytes and t == tensors and n == nodes then
        quiet = quiet + 1
        if quiet == 2 then break end
      else
        quiet = 0
      end
      heap, bytes, tensors, nodes = h, b, t, n
    end
  end

  function grove.manual_seed(seed)
    if type(seed) ~= "number" or seed < 0 or seed % 1 ~= 0 then
      error("manual_seed: expected a non-negative integer, got " .. tostring(seed), 2)
    end
    C.grove_manual_seed(seed)
  end

  -- A generator object; pass it as the `generator` of random ops.
  function grove.Generator(seed)
    local g = ffi.new("grove_generator")
    g.seed = seed or 0
    g.offset = 0
    return g
  end

  function grove.default_generator() return C.grove_default_generator() end

  -- Seconds on the monotonic clock, for timing and progress.
  ffi.cdef [[ typedef struct grove_timespec { long sec; long nsec; } grove_timespec;
              int clock_gettime(int clock_id, grove_timespec *ts); ]]
  local ts = ffi.new("grove_timespec")
  function grove.now()
    ffi.C.clock_gettime(1, ts)
    return tonumber(ts.sec) + 1e-9 * tonumber(ts.nsec)
  end
end
