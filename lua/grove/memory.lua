-- Where a training step's memory goes: parameters, gradients, optimizer
-- state, activations and the allocator's cache, measured with the live and
-- peak counters of the core (grove.memory).
--
--   local r = grove.memory_report(model, opt, { step = function() ... end })
--   print(grove.format_memory_report(r))
--
-- parameters, gradients and optimizer_state are exact byte counts of the
-- tensors (each storage counted once). With opts.step, the step runs
-- between a reset and a read of the peak counter of opts.device (default:
-- the parameters' device): `activations` is then the peak minus everything
-- that was live before the step and minus the gradients (all of them are
-- counted as live at the peak, so activations is the lower estimate when
-- the peak falls before the last gradient exists), and `other` is what was
-- live before the step besides parameters, gradients and state (a batch,
-- EMA weights, a text encoder outside the model).
local ffi = require "ffi"

return function(grove)
  local function key(t) return tonumber(ffi.cast("intptr_t", t.p.storage)) end

  local function tensor_bytes(t)
    if t == nil or not grove.is_tensor(t) or t.p.storage == nil then return 0 end
    return t:numel() * tonumber(grove.C.grove_dtype_size(t.p.dtype))
  end

  -- Sums over distinct storages (tied weights count once).
  local function sum_bytes(list, seen)
    local n = 0
    for _, t in ipairs(list) do
      if grove.is_tensor(t) and t.p.storage ~= nil then
        local k = key(t)
        if not seen[k] then
          seen[k] = true
          n = n + tensor_bytes(t)
        end
      end
    end
    return n
  end

  local function params_of(model)
    if model == nil then return {} end
    if type(model.parameters) == "function" then return model:parameters() end
    return model
  end

  -- Every state tensor of an optimizer (grove.optim), walked from its entries.
  local function state_tensors(opt)
    local out = {}
    if not opt or not opt.entries then return out end
    for _, e in ipairs(opt.entries) do
      for _, l in ipairs(e.layout or {}) do
        local t = e.state[l[1]]
        if grove.is_tensor(t) then out[#out + 1] = t end
      end
    end
    return out
  end

  local function static_counts(model, opt)
    local params = params_of(model)
    local grads = {}
    for _, p in ipairs(params) do
      local g = p.grad
      if g then grads[#grads + 1] = g end
    end
    return {
      parameters = sum_bytes(params, {}),
      gradients = sum_bytes(grads, {}),
      optimizer_state = sum_bytes(state_tensors(opt), {}),
      n_parameters = (function()
        local n = 0
        for _, p in ipairs(params) do n = n + p:numel() end
        return n
      end)(),
    }
  end

  function grove.memory_report(model, opt, opts)
    opts = opts or {}
    local params = params_of(model)
    local device = opts.device or (params[1] and params[1]:device()) or "cpu"
    local r
    if opts.step then
      grove.collect()
      local before = grove.memory(device).live_bytes
      local s0 = static_counts(model, opt)
      grove.reset_peak_memory(device)
      opts.step()
      if device == "cuda" then grove.cuda.synchronize() end
      local m = grove.memory(device)
      r = static_counts(model, opt)
      local grads_new = math.max(0, r.gradients - s0.gradients)
      r.peak = m.peak_bytes
      r.activations = math.max(0, m.peak_bytes - before - grads_new)
      r.other = math.max(0, before - s0.parameters - s0.gradients - s0.optimizer_state
                              - math.max(0, r.optimizer_state - s0.optimizer_state))
      r.cache = m.cached_bytes
      r.live = m.live_bytes
    else
      r = static_counts(model, opt)
      local m = grove.memory(device)
      r.peak, r.live, r.cache = m.peak_bytes, m.live_bytes, m.cached_bytes
    end
    r.device = device
    return r
  end

  local function human(b)
    if b == nil then return "-" end
    local units = { "B", "KiB", "MiB", "GiB", "TiB" }
    local i = 1
    while math.abs(b) >= 1024 and i < #units do b, i = b / 1024, i + 1 end
    return i == 1 and string.format("%d %s", b, units[i]) or string.format("%.2f %s", b, units[i])
  end
  grove.human_bytes = human

  -- A small table of a report, one row per kind.
  function grove.format_memory_report(r)
    local rows = {
      { "parameters", r.parameters }, { "gradients", r.gradients }, { "optimizer state", r.optimizer_state },
      { "activations", r.activations }, { "other live", r.other }, { "peak", r.peak },
      { "allocator cache", r.cache },
    }
    local lines = { string.format("memory on %s (%d parameters)", r.device, r.n_parameters) }
    for _, row in ipairs(rows) do
      if row[2] ~= nil then
        local share = (r.peak and r.peak > 0 and row[1] ~= "peak" and row[1] ~= "allocator cache")
          and string.format("%5.1f%%", 100 * row[2] / r.peak) or ""
        lines[#lines + 1] = string.format("  %-16s %14d  %12s  %s", row[1], row[2], human(row[2]), share)
      end
    end
    return table.concat(lines, "\n")
  end
end
