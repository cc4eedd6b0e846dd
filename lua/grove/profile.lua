-- Where the time goes, per op (docs/performance.md, "Profiling").
--
--   local report, ... = grove.profile(fn, ...)   -- runs fn(...), returns the table and fn's results
--   print(report)                                -- the rows by time, largest first
--   report:format(10)                            -- the first 10 rows as text
--
-- Each row is an op of the forward pass or a backward node: { name =,
-- backward = true|false, calls =, ms =, share = } (share: of the rows'
-- total). On the CPU an op's time is the clock from its start to the next
-- op's start; on CUDA it is the gap between events recorded on the stream at
-- those starts, which is the GPU's time for the op whenever the host keeps
-- the GPU busy (when it does not, the idle time lands on the op before the
-- gap). A backward node's time includes everything it calls. report.wall_ms
-- is the wall time of fn; report.total_ms the rows' sum.
local ffi = require "ffi"

return function(grove)
  local C = grove.C
  local name, backward, calls, ms = ffi.new("const char *[1]"), ffi.new("int32_t[1]"), ffi.new("int64_t[1]"),
                                    ffi.new("double[1]")

  local Report = {}
  Report.__index = Report

  --- The first n rows (all by default) as an aligned text table.
  function Report:format(n)
    n = math.min(n or #self, #self)
    local lines = { string.format("%-36s %8s %11s %7s", "op", "calls", "ms", "share") }
    for i = 1, n do
      local r = self[i]
      lines[#lines + 1] = string.format("%-36s %8d %11.3f %6.1f%%", r.name .. (r.backward and " (backward)" or ""),
                                        r.calls, r.ms, 100 * r.share)
    end
    if n < #self then lines[#lines + 1] = string.format("... %d more rows", #self - n) end
    lines[#lines + 1] = string.format("total %.3f ms over %d rows; wall %.3f ms", self.total_ms, #self, self.wall_ms)
    return table.concat(lines, "\n")
  end
  Report.__tostring = function(r) return r:format() end

  --- Runs fn(...) with the op profiler on; returns the report, then fn's results.
  -- An error in fn stops the profiler and is raised again.
  function grove.profile(fn, ...)
    if type(fn) ~= "function" then error("profile: expected a function, got " .. type(fn), 2) end
    C.grove_profile_start()
    local t0 = grove.now()
    local res = { pcall(fn, ...) }
    local stopped = C.grove_profile_stop() == 0
    local wall = (grove.now() - t0) * 1e3
    if not res[1] then error(res[2], 0) end
    if not stopped then grove.fail() end
    local report, total = setmetatable({}, Report), 0
    for i = 0, C.grove_profile_rows() - 1 do
      C.grove_profile_row(i, name, backward, calls, ms)
      report[#report + 1] = { name = ffi.string(name[0]), backward = backward[0] ~= 0, calls = tonumber(calls[0]),
                              ms = ms[0] }
      total = total + ms[0]
    end
    table.sort(report, function(a, b) return a.ms > b.ms end)
    for _, r in ipairs(report) do r.share = total > 0 and r.ms / total or 0 end
    report.total_ms, report.wall_ms = total, wall
    return report, unpack(res, 2, table.maxn(res))
  end
end
