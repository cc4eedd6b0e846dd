-- grove.cuda: the CUDA device as Lua sees it (docs/cuda.md). grove uses
-- device 0 and one stream; a build without CUDA, or a machine without a GPU
-- or driver, has device_count() == 0 and every call below still works.
local ffi = require "ffi"

return function(grove)
  local C = grove.C
  local cuda = {}
  grove.cuda = cuda

  local fail = grove.fail  -- fail(): the error at the public function's caller

  function cuda.device_count() return tonumber(C.grove_cuda_device_count()) end
  function cuda.is_available() return cuda.device_count() > 0 end

  local name_buf = ffi.new("char[256]")
  local total, free = ffi.new("int64_t[1]"), ffi.new("int64_t[1]")
  -- Devices are numbered from 0, as CUDA (and torch) number them.
  function cuda.device_info(i)
    i = i or 0
    if C.grove_cuda_device_info(i, name_buf, 256, total, free) ~= 0 then fail() end
    return { name = ffi.string(name_buf), total_bytes = tonumber(total[0]),
             free_bytes = tonumber(free[0]) >= 0 and tonumber(free[0]) or nil }
  end
  function cuda.device_name(i) return cuda.device_info(i).name end

  -- Bytes of live CUDA tensors, the peak since reset_peak(), and freed
  -- blocks the caching allocator keeps for reuse.
  local stats = ffi.new("grove_memory_stats")
  function cuda.memory()
    if C.grove_memory(C.GROVE_CUDA, stats) ~= 0 then fail() end
    return { live = tonumber(stats.live_bytes), peak = tonumber(stats.peak_bytes), cached = tonumber(stats.cached_bytes) }
  end
  function cuda.reset_peak() C.grove_memory_reset_peak(1) end
  -- Hands the cached blocks back to the driver (collect garbage first to
  -- free the tensors Lua no longer references).
  function cuda.empty_cache() C.grove_memory_empty_cache(1) end
  function cuda.synchronize()
    if C.grove_cuda_synchronize() ~= 0 then fail() end
  end
  function cuda.set_tf32(on)
    if type(on) == "number" then on = on ~= 0 end
    C.grove_cuda_set_tf32((on == nil or on) and 1 or 0)
  end

  -- grove.device() is "cuda" when a GPU can be used, else "cpu";
  -- grove.device(t) is t's device.
  function grove.device(t)
    if t ~= nil then return grove.Tensor.device(t) end
    return cuda.is_available() and "cuda" or "cpu"
  end

  return cuda
end
