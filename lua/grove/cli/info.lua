-- grove info: version, build, BLAS and threads, devices and memory.
return function(argv)
  if argv[1] == "--help" or argv[1] == "-h" then
    print("usage: grove info\nPrints the version, build options, BLAS core and threads, devices and memory.")
    return
  end
  local ffi = require "ffi"
  local C = grove.C
  print("grove " .. grove._VERSION .. " (" .. jit.version .. ")")
  print("build:   " .. ffi.string(C.grove_build_info()))
  print("blas:    " .. grove.blas_info())
  print("threads: " .. grove.num_threads() .. " (GROVE_NUM_THREADS or grove.set_num_threads)")
  local mem = grove.memory("cpu")
  print(string.format("cpu:     %d cores; grove holds %.1f MB live, %.1f MB cached", tonumber(io.popen("nproc"):read("*l")) or 0,
    mem.live_bytes / 2^20, mem.cached_bytes / 2^20))
  print("cuda:    no CUDA backend in this build")
end
