-- Optimizers: state memory, convergence and step time (docs/optimizers.md).
-- Prints tables; asserts nothing.
--
--   grove bench/optim.lua [sections] [key=value ...]
--
-- sections (default all): memory, quant, train, time
-- keys: preset=small (the trained and timed model), steps=300 (training
-- steps), batch=4, size=16 (latent side), png=runs/optim_loss.png,
-- lr_adamw=2e-3, lr_came=1e-4, lr_sgd=0.05, time_s=4 (seconds of step timing per model),
-- only=adamw,came (a comma list of the variants to run)
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local B = dofile(here .. "/benchlib.lua")
if not grove.optim then require "grove.optim"(grove) end
local optim = grove.optim
local plot = require "grove.plot"

local sections, cfg = {}, { preset = "small", steps = 300, batch = 4, size = 16, png = "runs/optim_loss.png",
                            lr_adamw = 2e-3, lr_came = 1e-4, lr_sgd = 0.05 }
for i = 1, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  if k then cfg[k] = tonumber(v) or v else sections[arg[i]] = true end
end
if not next(sections) then sections = { memory = true, quant = true, train = true, time = true } end

local function line(n) print(string.rep("-", n or 100)) end
local GiB = 2 ^ 30

print(string.format("grove %s, %d threads, %s", grove._VERSION, grove.num_threads(), grove.blas_info()))

-- The optimizers compared, each built over the same parameter groups
-- (norms, biases and tables without weight decay).
local variants = {
  { name = "sgd", kind = "sgd", opts = function() return { lr = cfg.lr_sgd, momentum = 0.9 } end },
  { name = "adamw", kind = "adamw", opts = function() return { lr = cfg.lr_adamw, weight_decay = 0.01 } end },
  { name = "came", kind = "came", opts = function() return { lr = cfg.lr_came, weight_decay = 0.01 } end },
  { name = "came8bit-dynamic", kind = "came8bit",
    opts = function() return { lr = cfg.lr_came, weight_decay = 0.01, quant = "dynamic" } end },
  { name = "came8bit-affine", kind = "came8bit",
    opts = function() return { lr = cfg.lr_came, weight_decay = 0.01, quant = "affine" } end },
}

-- only=name,name keeps those variants
if cfg.only then
  local keep, out = {}, {}
  for name in tostring(cfg.only):gmatch("[^,]+") do keep[name] = true end
  for _, v in ipairs(variants) do if keep[v.name] then out[#out + 1] = v end end
  variants = out
end

-- ---- memory -------------------------------------------------------------------------
if sections.memory then
  print()
  print("Optimizer state, exact bytes (from shapes for the published presets; allocated for " .. cfg.preset .. ")")
  line(118)
  print(string.format("%-12s %-17s %14s %12s %9s %9s %9s %9s %9s %8s", "model", "optimizer", "parameters",
    "state GiB", "B/param", "1st mom", "2nd mom", "instab", "scales", "AdamW/x"))
  line(118)
  local function rows(model_name, model, measure)
    local adam
    for _, v in ipairs(variants) do
      if v.kind ~= "sgd" then
        grove.collect()
        local before = grove.memory().live_bytes
        local opt = optim[v.kind](optim.param_groups(model), v.opts())
        local live = grove.memory().live_bytes - before
        local s = opt:state_bytes()
        adam = adam or s.total
        print(string.format("%-12s %-17s %14d %12.4f %9.4f %9.4f %9.4f %9.4f %9.4f %8.3f", model_name, v.name, s.params,
          s.total / GiB, s.per_param, s.first_moment / s.params, s.second_moment / s.params, s.instability / s.params,
          s.scales / s.params, adam / s.total))
        if measure then
          print(string.format("%-12s %-17s %14s %12s %9.4f  (grove.memory: live bytes added by the optimizer, incl. 64-byte alignment)",
            "", "  allocated", "", "", live / s.params))
        end
        opt = nil
        grove.collect()
      end
    end
  end
  for _, preset in ipairs { "sana_600m", "sana_1600m", "sana_4800m" } do
    rows(preset, grove.nn.Sana(preset, { meta = true }), false)
  end
  rows(cfg.preset, grove.nn.Sana(cfg.preset, { seed = 0 }), true)
  line(118)
  print("B/param and the kind columns are bytes per model parameter; AdamW/x is AdamW's total over this one's.")
end

-- ---- the training task --------------------------------------------------------------------
-- Fixed latents (smooth patterns, one per sample), fixed captions; flow
-- matching with noise and σ drawn from one seed, the same for every optimizer.
local function task()
  local c = grove.nn.resolve_config(cfg.preset)
  local n, S, C = cfg.batch, cfg.size, c.in_channels
  local vals = {}
  for b = 1, n do
    for y = 1, S do
      for x = 1, S do
        for ch = 1, C do
          vals[#vals + 1] = math.sin((x * (b + 1) + ch * 2) * 0.37) * math.cos((y * (ch + 1) + b) * 0.29) +
            0.3 * ((x + y + b) % 3 - 1)
        end
      end
    end
  end
  local x0 = grove.tensor(vals):view { n, S, S, C }
  local text = grove.randn({ n, c.text_len, c.caption_channels }, { generator = grove.Generator(77) })
  return x0, text
end

-- Mean flow loss over 16 fixed (σ, noise) draws, in eval mode.
local function eval_loss(model, x0, text)
  local gen = grove.Generator(999)
  local total = 0
  model:eval()
  grove.no_grad(function()
    for _ = 1, 16 do total = total + model:flow_loss(x0, text, nil, { generator = gen }):item() end
  end)
  model:train()
  return total / 16
end

local function ema(xs, a)
  local out, m = {}, nil
  for i, x in ipairs(xs) do
    m = m and (a * m + (1 - a) * x) or x
    out[i] = m
  end
  return out
end

-- ---- convergence ------------------------------------------------------------------------------
local trained = {}
if sections.train then
  print()
  local x0, text = task()
  print(string.format("Training %s (%d parameters) for %d steps: batch %d, latents %dx%dx3, fixed target, same seed; " ..
    "clip_grad_norm 1.0; lr sgd %g (momentum 0.9), adamw %g, came %g", cfg.preset,
    grove.nn.Sana(cfg.preset, { meta = true }):num_parameters(), cfg.steps, cfg.batch, cfg.size, cfg.size, cfg.lr_sgd,
    cfg.lr_adamw, cfg.lr_came))
  line(112)
  print(string.format("%-17s %12s %12s %16s %16s %12s %12s", "optimizer", "first loss", "eval before",
    "train (last 50)", "eval after", "vs came", "s/step"))
  line(112)
  local series, results = {}, {}
  for _, v in ipairs(variants) do
    local model = grove.nn.Sana(cfg.preset, { seed = 0 })
    local opt = optim[v.kind](optim.param_groups(model), v.opts())
    local e0 = eval_loss(model, x0, text)
    local gen = grove.Generator(1)
    local losses = {}
    local t0 = B.now()
    for step = 1, cfg.steps do
      opt:zero_grad()
      local loss = model:flow_loss(x0, text, nil, { generator = gen })
      loss:backward()
      optim.clip_grad_norm(model, 1.0)
      opt:step()
      losses[step] = loss:item()
    end
    local dt = (B.now() - t0) / cfg.steps
    local tail, k = 0, math.min(50, cfg.steps)
    for i = cfg.steps - k + 1, cfg.steps do tail = tail + losses[i] end
    local r = { name = v.name, first = losses[1], e0 = e0, tail = tail / k, e1 = eval_loss(model, x0, text), dt = dt }
    results[#results + 1] = r
    series[#series + 1] = { name = v.name, y = ema(losses, 0.9) }
    trained[v.name] = { model = model, opt = opt }
    grove.collect()
  end
  local came
  for _, r in ipairs(results) do if r.name == "came" then came = r end end
  for _, r in ipairs(results) do
    print(string.format("%-17s %12.4f %12.4f %16.4f %16.4f %11.2f%% %12.3f", r.name, r.first, r.e0, r.tail, r.e1,
      came and 100 * (r.e1 / came.e1 - 1) or 0, r.dt))
  end
  line(112)
  print("eval: mean flow loss over 16 fixed (sigma, noise) draws; vs came: eval after, relative to 32-bit CAME.")
  if cfg.png ~= "" then
    os.execute("mkdir -p '" .. (cfg.png:match("^(.*)/[^/]*$") or ".") .. "'")
    plot.lines { path = cfg.png, title = "flow loss, " .. cfg.preset .. " preset", xlabel = "step",
                 ylabel = "training loss (ema 0.9)", series = series, log_y = true }
    print("loss curves: " .. cfg.png)
  end
end

-- ---- quantizers ----------------------------------------------------------------------------------
-- Both quantizers on real first moments: the 32-bit CAME state after
-- training (when the train section ran), else after 50 steps of CAME on
-- random gradients.
if sections.quant then
  print()
  local states, source = {}, nil
  if trained.came then
    source = "32-bit CAME's first moments after training " .. cfg.preset
    for _, name in ipairs(trained.came.opt:names()) do
      local rule = trained.came.opt:rules()[name]
      local st = trained.came.opt:state_of(name)
      if rule == "factored" and st.exp_avg:numel() > 16384 then states[#states + 1] = st.exp_avg end
    end
  else
    source = "32-bit CAME's first moment after 50 steps on random gradients (512x512)"
    local w = grove.randn { 512, 512 }:requires_grad_()
    local opt = optim.came({ { "w", w } }, { lr = 1e-4 })
    local gen = grove.Generator(5)
    for _ = 1, 50 do
      w.grad = grove.randn({ 512, 512 }, { generator = gen })
      opt:step()
    end
    states[1] = opt:state_of("w").exp_avg
  end
  print("Quantizer round trips (block 256) on " .. source .. ": " .. #states .. " tensors")
  line(92)
  print(string.format("%-10s %14s %14s %14s %18s %14s", "quantizer", "mean |err|", "max |err|", "rel RMS err",
    "mean |err|/|m| *", "ns/elem q+dq"))
  line(92)
  for _, q in ipairs { "dynamic", "affine" } do
    local sum_abs, max_abs, sum_sq, sum_m2, n, rel_sum, rel_n, t = 0, 0, 0, 0, 0, 0, 0, 0
    for _, m in ipairs(states) do
      local codes, scales = optim.quantize(m, { quant = q })
      local dq = optim.dequantize(codes, scales, { quant = q })
      t = t + B.best_time(function()
        local c2, s2 = optim.quantize(m, { quant = q })
        optim.dequantize(c2, s2, { quant = q })
      end, 0.05, 3)
      local mv, dv = m:view { -1 }:tolist(), dq:tolist()
      local amax = {}
      for i = 1, #mv do
        local b = math.floor((i - 1) / 256) + 1
        amax[b] = math.max(amax[b] or 0, math.abs(mv[i]))
      end
      for i = 1, #mv do
        local e = math.abs(dv[i] - mv[i])
        sum_abs, sum_sq, sum_m2 = sum_abs + e, sum_sq + e * e, sum_m2 + mv[i] * mv[i]
        if e > max_abs then max_abs = e end
        if math.abs(mv[i]) > 1e-2 * amax[math.floor((i - 1) / 256) + 1] then
          rel_sum, rel_n = rel_sum + e / math.abs(mv[i]), rel_n + 1
        end
      end
      n = n + #mv
    end
    print(string.format("%-10s %14.3e %14.3e %14.3e %18.3e %14.2f", q, sum_abs / n, max_abs,
      math.sqrt(sum_sq / sum_m2), rel_sum / rel_n, t / n * 1e9))
  end
  line(92)
  print("rel RMS err = ||deq(q(m)) - m|| / ||m||; * over the elements above 1% of their block's absmax.")
end

-- ---- step time ------------------------------------------------------------------------------------
if sections.time then
  print()
  -- All optimizers over the same parameters and gradients, timed in
  -- alternation (rounds of a few steps each, the best step counts), so a
  -- burst of other load on the machine does not land on one of them only.
  local function time_on(label, named)
    local gen = grove.Generator(3)
    for _, np in ipairs(named) do np[2].grad = grove.randn(np[2]:shape(), { generator = gen }) end
    local opts, best = {}, {}
    for i, v in ipairs(variants) do
      opts[i] = optim[v.kind](named, v.opts())
      opts[i]:step()
      best[i] = math.huge
    end
    local t_end = B.now() + (cfg.time_s or 4)
    local rounds = 0
    while rounds < 3 or B.now() < t_end do
      for i, o in ipairs(opts) do
        for _ = 1, 3 do
          local t0 = B.now()
          o:step()
          best[i] = math.min(best[i], B.now() - t0)
        end
      end
      rounds = rounds + 1
    end
    local adam
    for i, v in ipairs(variants) do if v.name == "adamw" then adam = best[i] end end
    for i, v in ipairs(variants) do
      print(string.format("%-30s %-17s %12.3f %12.2f %10.2f", label, v.name, best[i] * 1e3,
        best[i] / opts[i]:state_bytes().params * 1e9, best[i] / adam))
    end
    opts = nil
    grove.collect()
  end
  print("Step time (opt:step() alone, gradients fixed; best of several)")
  line(90)
  print(string.format("%-30s %-17s %12s %12s %10s", "parameters", "optimizer", "ms/step", "ns/param", "vs adamw"))
  line(90)
  local model = grove.nn.Sana(cfg.preset, { seed = 0 })
  time_on(cfg.preset .. " (" .. #model:named_parameters() .. " tensors)", model:named_parameters())
  model = nil
  grove.collect()
  local w = grove.randn({ 2240, 2240 }, { generator = grove.Generator(4) }):requires_grad_()
  time_on("one 2240x2240 matrix", { { "w", w } })
  line(90)
  print("Steps alternate between the optimizers for about " .. (cfg.time_s or 4) .. " s per row group; the best step counts.")
end
