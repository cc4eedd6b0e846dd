-- Learning-rate schedules as objects over an optimizer. A schedule gives
-- each group lr = its base lr (the lr the optimizer was built with) scaled
-- by the schedule at an optimizer step k (1-based: the k-th call of
-- opt:step()).
--
--   local sched = grove.optim.schedule.cosine(opt, {warmup = 100, total = 1000, min_lr = 1e-6})
--   for ... do opt:zero_grad(); loss:backward(); opt:step(); sched:step() end
--
-- The optimizer may also be passed as the `optimizer` field of the options,
-- or attached later with sched:attach(opt). Attaching sets the lr for the
-- optimizer's next step; sched:step() sets it for the step after the
-- optimizer's current count, so a schedule follows a resumed optimizer
-- (whose step count comes back with load_state_dict) without state of its own.
local O = require "grove.optim.options"

return function(grove, optim)
  local schedule = {}
  optim.schedule = schedule

  local Schedule = {}
  Schedule.__index = Schedule

  -- The lr for step k of a group whose base lr is base.
  function Schedule:value(k, base)
    return self.fn(k, base)
  end

  -- Sets every group's lr for optimizer step k; returns the first group's.
  function Schedule:lr(k)
    if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then
      error(self.name .. ": lr: step must be an integer >= 1, got " .. tostring(k), 2)
    end
    local opt = self.optimizer
    if not opt then error(self.name .. ": lr: no optimizer attached (use sched:attach(opt))", 2) end
    for _, g in ipairs(opt.param_groups) do g.lr = self.fn(k, g._base_lr) end
    return opt.param_groups[1] and opt.param_groups[1].lr
  end

  function Schedule:attach(opt)
    if type(opt) ~= "table" or getmetatable(opt) ~= optim.Optimizer then
      error(self.name .. ": attach: expected an optimizer, got " .. type(opt), 2)
    end
    self.optimizer = opt
    self:lr(opt.steps + 1)
    return self
  end

  -- After opt:step(): sets the lr of the next step.
  function Schedule:step()
    if not self.optimizer then error(self.name .. ": step: no optimizer attached (use sched:attach(opt))", 2) end
    return self:lr(self.optimizer.steps + 1)
  end

  local function make(name, spec, fn_of)
    schedule[name] = function(a, b)
      local opt, opts = nil, a
      if getmetatable(a) == optim.Optimizer then opt, opts = a, b end
      opts = opts or {}
      local ok, res = pcall(function()
        local given = {}
        for k, v in pairs(opts) do if k ~= "optimizer" then given[k] = v end end
        local o = O.check(name, spec, given)
        for k, s in pairs(spec) do if o[k] == nil then o[k] = s[1] end end
        for k, s in pairs(spec) do
          if o[k] == nil and s.required then O.fail(name, k .. " is required") end
        end
        return o
      end)
      if not ok then error(res, 2) end
      local o = res
      local ok2, fn = pcall(fn_of, o)
      if not ok2 then error(fn, 2) end
      local s = setmetatable({ name = name, options = o, fn = fn }, Schedule)
      opt = opt or opts.optimizer
      if opt ~= nil then s:attach(opt) end
      return s
    end
  end

  local nonneg_int = O.integer(0)

  make("constant", {}, function() return function(_, base) return base end end)

  make("warmup_constant", { warmup = { 0, nonneg_int } }, function(o)
    local n = o.warmup
    return function(k, base)
      if k < n then return base * k / n end
      return base
    end
  end)

  make("cosine", { warmup = { 0, nonneg_int }, total = { nil, O.integer(1), required = true }, min_lr = { 0, O.nonneg } },
    function(o)
      if o.total == nil then O.fail("cosine", "total (the last step of the decay) is required") end
      if o.total <= o.warmup then O.fail("cosine", "total " .. o.total .. " must exceed warmup " .. o.warmup) end
      local n, total, min_lr = o.warmup, o.total, o.min_lr
      return function(k, base)
        if k < n then return base * k / n end
        local lo = math.min(min_lr, base)
        local progress = math.min(1, (k - n) / (total - n))
        return lo + (base - lo) * 0.5 * (1 + math.cos(math.pi * progress))
      end
    end)

  -- Warmup, a constant stretch, then a linear decay to min_lr over the last
  -- `decay` steps before total (warmup-stable-decay): a short run gets most
  -- of a schedule's benefit from the final cooldown, and the stable stretch
  -- can be cut anywhere.
  make("wsd", { warmup = { 0, nonneg_int }, total = { nil, O.integer(1), required = true }, decay = { 0, nonneg_int },
                min_lr = { 0, O.nonneg } },
    function(o)
      if o.total == nil then O.fail("wsd", "total (the last step of the decay) is required") end
      if o.decay + o.warmup > o.total then
        O.fail("wsd", "warmup " .. o.warmup .. " plus decay " .. o.decay .. " exceeds total " .. o.total)
      end
      local n, total, decay, min_lr = o.warmup, o.total, o.decay, o.min_lr
      return function(k, base)
        if k < n then return base * k / n end
        local lo = math.min(min_lr, base)
        local left = total - k
        if decay > 0 and left < decay then return lo + (base - lo) * math.max(0, left) / decay end
        return base
      end
    end)

  return schedule
end
