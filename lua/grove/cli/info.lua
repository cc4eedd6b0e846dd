-- grove info: version, build options, BLAS and threads, CUDA devices and
-- memory, and where the modules and the library were loaded from.
local function gib(bytes) return string.format("%.1f GiB", bytes / 2^30) end

-- The lines of the report (without printing), for the command and its test.
local function report()
  local b = grove.build_info()
  local lines = {}
  local function add(label, text) lines[#lines + 1] = string.format("%-9s%s", label and label .. ":" or "", text) end

  lines[1] = "grove " .. grove._VERSION .. " (" .. jit.version .. ", " .. jit.arch .. ")"
  add("build", string.format("%s, -march=%s (%s), sanitizers %s, OpenMP %s, %s", b.build_type or "?", b.march or "?",
    b.simd or "?", b.sanitizers or "?", b.openmp or "?", b.compiler or "?"))
  add("cuda", b.cuda == "on" and ("built for architectures " .. (b.cuda_architectures or "?")) or "not built")
  add("blas", grove.blas_info())
  add(nil, "library " .. (b.openblas or "?"))
  local h = io.popen("nproc 2>/dev/null")
  local cores = h and tonumber(h:read("*l")) or 0
  if h then h:close() end
  add("threads", string.format("%d of %d cores (GROVE_NUM_THREADS or grove.set_num_threads)", grove.num_threads(), cores))
  local mem = grove.memory("cpu")
  add("memory", string.format("cpu: grove holds %.1f MB live, %.1f MB cached", mem.live_bytes / 2^20, mem.cached_bytes / 2^20))

  if b.cuda ~= "on" then
    add("devices", "not built (configure with -DGROVE_CUDA=ON where nvcc is installed)")
  else
    local n = grove.cuda.device_count()
    if n == 0 then
      add("devices", "none (no GPU or no driver)")
    else
      for i = 0, n - 1 do
        local ok, d = pcall(grove.cuda.device_info, i)
        if ok then
          add(i == 0 and "devices" or nil, string.format("cuda:%d %s, %s total%s", i, d.name, gib(d.total_bytes),
            d.free_bytes and (", " .. gib(d.free_bytes) .. " free") or ""))
        else
          add(i == 0 and "devices" or nil, string.format("cuda:%d: %s", i, tostring(d)))
        end
      end
      local m = grove.cuda.memory()
      add(nil, string.format("grove holds %.1f MB live, %.1f MB cached on cuda:0", m.live / 2^20, m.cached / 2^20))
    end
  end

  local src = debug.getinfo(1, "S").source
  local modules = src:sub(1, 1) == "@" and src:sub(2):match("^(.-)/?grove/cli/info%.lua$") or "?"
  add("paths", "modules " .. (modules == "" and "." or modules))
  add(nil, "library " .. tostring(grove._LIBRARY))
  return lines
end

return setmetatable({ report = report }, { __call = function(_, argv)
  if argv[1] == "--help" or argv[1] == "-h" then
    print("usage: grove info\nPrints the version, build options, BLAS core and threads, CUDA devices and memory,\n" ..
          "and where the Lua modules and libgrove were loaded from.")
    return
  end
  if argv[1] then error("unknown option '" .. tostring(argv[1]) .. "' (grove info --help)", 0) end
  for _, line in ipairs(report()) do print(line) end
end })
