-- Fine-tuning the transformer of a diffusers SANA folder from a feature
-- cache: neither Gemma-2 nor the DC-AE is loaded, the batches are cached
-- latents (already × the VAE's scaling_factor) and caption features.
--
--   local run = grove.diffusers.finetune("Sana_600M", "cache", { out = "runs/ft", steps = 1000 })
--   -- runs/ft/model: the fine-tuned pipeline folder (`grove sample --model runs/ft/model`)
--
-- The objective is flow matching with the folder's scheduler settings
-- (num_train_timesteps and flow_shift of scheduler/scheduler_config.json),
-- timesteps drawn as diffusers' SANA training draws them: u from a
-- logit-normal (SANA's configs: mean 0, std 1; or uniform), index
-- ⌊u·N⌋ into the shifted schedule, σ = shift(1 − index/N); x_σ = (1 − σ)·x0
-- + σ·ε, the transformer sees σ·N × timestep_scale and predicts ε − x0;
-- the loss is their mean squared error, unweighted (docs/sana15-real.md,
-- "Fine-tuning a folder").
--
-- A run folder holds checkpoint.safetensors (the f32 master weights, EMA,
-- optimizer state, data-set position, noise generator, step: what resume
-- needs for bit-identical continuation), loss.csv and loss.png, and model/,
-- the diffusers folder written at the end (diffusers' names, the source's
-- config.json, each tensor in its stored dtype; the other components
-- linked to the source's or copied).
local ffi = require "ffi"
local args = require "grove.cli.args"

return function(grove, diffusers)
  local C = grove.C
  local json = grove.json

  local defaults = {
    steps = 1000, batch = 4, lr = 1e-4, optimizer = "came8bit", weight_decay = 0, warmup = 100, decay = 0,
    clip = 0.1, ema = 0.9999, accum = 1, recompute = true, dtype = "f32", save_dtype = "stored", seed = 0,
    weighting = "logit_normal", logit_mean = 0, logit_std = 1, save_every = 100, log_every = 10, resume = false,
    time_limit = 0, copy = false, device = "cpu", weights = "ema", shuffle = true,
  }
  diffusers.finetune_defaults = defaults

  local function fail(msg, level) error("finetune: " .. msg, level or 0) end
  local function join(dir, name) return (dir:gsub("/+$", "")) .. "/" .. name end
  local function kind(p) return C.grove_path_kind(p) end
  local function finite(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end

  local CHOICES = { optimizer = { "came8bit", "adamw", "came", "sgd" }, dtype = { "f32", "bf16" },
                    save_dtype = { "stored", "f32", "bf16" }, weighting = { "logit_normal", "uniform" },
                    weights = { "ema", "raw" }, device = { "cpu", "cuda" } }
  local CHECKS = { steps = args.count, batch = args.count, accum = args.count, lr = args.number(0),
                   weight_decay = args.number(0), warmup = args.integer(0), decay = args.integer(0),
                   clip = args.number(0), ema = args.number(0, 0.999999999), seed = args.seed,
                   logit_mean = args.finite, logit_std = args.number(0), save_every = args.count,
                   log_every = args.count, time_limit = args.number(0) }

  -- The options with defaults filled in and every value checked.
  local function options(opts)
    if opts ~= nil and type(opts) ~= "table" then fail("expected an options table, got " .. type(opts), 3) end
    local o = {}
    for k, v in pairs(defaults) do o[k] = v end
    for k, v in pairs(opts or {}) do o[k] = v end
    for k, check in pairs(CHECKS) do args.validate(o[k], check, "finetune: " .. k, 0) end
    for k, list in pairs(CHOICES) do
      local ok = false
      for _, c in ipairs(list) do ok = ok or o[k] == c end
      if not ok then fail(k .. " must be one of " .. table.concat(list, ", ") .. ", got " .. tostring(o[k])) end
    end
    if o.decay > o.steps then fail("decay (" .. o.decay .. ") is longer than steps (" .. o.steps .. ")") end
    if type(o.out) ~= "string" or o.out == "" then fail("give out, the run folder (--out RUN)") end
    return o
  end

  -- ---- the objective ----------------------------------------------------------------

  -- The training schedule of a folder: {N = num_train_timesteps, shift =,
  -- where =} from its scheduler/scheduler_config.json (dir: a pipeline
  -- folder; a folder without one gets SanaPipeline's official DPM-Solver
  -- settings, said in `where`). opts.flow_shift overrides the shift.
  function diffusers.training_schedule(dir, opts)
    opts = opts or {}
    local path = join(dir, "scheduler/scheduler_config.json")
    local config, where
    if kind(path) == C.GROVE_PATH_FILE then
      config, where = json.read(path), path
    else
      config = diffusers.schedulers.dpm.default
      where = "SanaPipeline's default scheduler (" .. dir .. " has no scheduler/scheduler_config.json)"
    end
    local s = diffusers.scheduler_settings(config, where)
    local key = s.scheduler.shift_key
    if not key or s.scheduler.run then
      fail(where .. " is a " .. s.scheduler.class .. "; fine-tuning trains the flow-matching objective of " ..
           "DPMSolverMultistepScheduler and FlowMatchEulerDiscreteScheduler folders (Sprint's SCM is not implemented)")
    end
    local shift = opts.flow_shift or s[key]
    if not finite(shift) or shift <= 0 then fail("flow_shift must be a positive number, got " .. tostring(shift)) end
    return { N = s.num_train_timesteps, shift = shift, where = where, kind = s.kind }
  end

  -- σ and the transformer's timestep for B draws of u. schedule:
  -- diffusers.training_schedule's; o: weighting, logit_mean, logit_std.
  -- diffusers' training scripts index the shifted schedule
  -- σ_i = shift(1 − i/N), i = ⌊u·N⌋; the transformer sees σ_i·N.
  local function draw_sigmas(gen, B, sch, o)
    local u
    if o.weighting == "uniform" then
      u = grove.rand({ B }, { generator = gen }):tolist()
    else
      u = (grove.randn({ B }, { generator = gen }) * o.logit_std + o.logit_mean):sigmoid():tolist()
    end
    local N, s = sch.N, sch.shift
    local sig, ts = {}, {}
    for i = 1, B do
      local idx = math.min(N - 1, math.max(0, math.floor(u[i] * N)))
      local x = (N - idx) / N
      sig[i] = s * x / (1 + (s - 1) * x)
      ts[i] = sig[i] * N
    end
    return sig, ts
  end
  diffusers._draw_sigmas = draw_sigmas

  local function check_batch(T, b, where)
    local c = T.config
    if type(b) ~= "table" then fail(where .. ": a batch must be a table {latents =, features =, mask =}, got " .. type(b)) end
    local x, f = b.latents, b.features
    if not grove.is_tensor(x) or x:dim() ~= 4 or x:size(4) ~= c.in_channels then
      fail(string.format("%s: latents must be (B, h, w, %d) (NHWC, the transformer's in_channels), got %s", where,
                         c.in_channels, grove.is_tensor(x) and x:shape_str() or type(x)))
    end
    if x:size(2) % c.patch_size ~= 0 or x:size(3) % c.patch_size ~= 0 then
      fail(string.format("%s: latents %s are not divisible by the patch size %d", where, x:shape_str(), c.patch_size))
    end
    if not grove.is_tensor(f) or f:dim() ~= 3 or f:size(1) ~= x:size(1) or f:size(3) ~= c.caption_channels then
      fail(string.format("%s: features must be (%d, L, %d) (the transformer's caption_channels), got %s", where,
                         x:size(1), c.caption_channels, grove.is_tensor(f) and f:shape_str() or type(f)))
    end
    local m = b.mask
    if m ~= nil and (not grove.is_tensor(m) or m:dim() ~= 2 or m:size(1) ~= f:size(1) or m:size(2) ~= f:size(2)) then
      fail(string.format("%s: mask must be (%d, %d) like the features, got %s", where, f:size(1), f:size(2),
                         grove.is_tensor(m) and m:shape_str() or type(m)))
    end
  end

  -- The flow-matching loss of transformer T on one batch ({latents,
  -- features, mask}, as a cache data set gives it). opts: generator (the
  -- noise and timesteps), schedule (diffusers.training_schedule), weighting,
  -- logit_mean, logit_std. Returns the loss (a scalar tensor) and the σ drawn.
  function diffusers.flow_loss(T, batch, opts)
    opts = opts or {}
    check_batch(T, batch, opts.where or "flow_loss")
    local o = { weighting = opts.weighting or "logit_normal", logit_mean = opts.logit_mean or 0,
                logit_std = opts.logit_std or 1 }
    local sch = opts.schedule or { N = 1000, shift = T.config.flow_shift or 3 }
    local gen = opts.generator or grove.default_generator()
    local dev = T:device()
    local x0 = batch.latents
    if x0:dtype() ~= "f32" then x0 = x0:to("f32") end
    x0 = x0:to(dev)
    local B, Cl = x0:size(1), x0:size(4)
    local sig, ts = draw_sigmas(gen, B, sch, o)
    local eps = grove.randn(x0:shape(), { generator = gen }):to(dev)
    local s4 = grove.tensor(sig):view { B, 1, 1, 1 }:to(dev)
    local xs = x0 * (1 - s4) + eps * s4
    local t = grove.tensor(ts):to(dev) * T.config.timestep_scale
    local mask = batch.mask
    if mask ~= nil then mask = mask:to(dev) end
    local v = T:forward(xs, t, batch.features:to(dev), mask)
    -- a learned-σ model's second half of channels is not the velocity (the pipeline drops it too)
    if T.config.out_channels == 2 * Cl then v = v:narrow(4, 1, Cl) end
    return grove.mse_loss(v, eps - x0), sig
  end

  -- ---- the optimizer ------------------------------------------------------------------

  -- The optimizer a fine-tune builds over T (shape-only T gives one that
  -- only counts bytes: opt:state_bytes()). Norms, biases and tables never
  -- decay (grove.optim.param_groups).
  function diffusers.finetune_optimizer(T, opts)
    local o = {}
    for k, v in pairs(defaults) do o[k] = v end
    for k, v in pairs(opts or {}) do o[k] = v end
    local ctor = grove.optim[o.optimizer]
    if type(ctor) ~= "function" then fail("no optimizer '" .. tostring(o.optimizer) .. "'", 2) end
    return ctor(grove.optim.param_groups(T, { weight_decay = o.weight_decay }), { lr = o.lr, weight_decay = o.weight_decay })
  end

  -- ---- data --------------------------------------------------------------------------

  -- dir: the model folder, which a cache folder must suit (its latent
  -- channels, caption width, DC-AE and text encoder: cache_dataset checks).
  local function open_data(cache, o, dir)
    if type(cache) == "table" then
      for _, m in ipairs { "next", "state", "set_state" } do
        if type(cache[m]) ~= "function" then
          fail("the data set needs a method " .. m .. " (next, state, set_state: grove.diffusers.cache_dataset's)")
        end
      end
      return cache, "the data set"
    end
    if type(cache) ~= "string" then fail("expected a cache folder or a data set, got " .. type(cache)) end
    if type(diffusers.cache_dataset) ~= "function" then
      fail("grove.diffusers.cache_dataset is not available in this build; give a data set object instead")
    end
    return diffusers.cache_dataset(cache, { batch_size = o.batch, seed = o.seed, shuffle = o.shuffle, model = dir }), cache
  end

  -- ---- the run's checkpoint ----------------------------------------------------------

  local function strip(tbl, prefix)
    local out = {}
    for k, v in pairs(tbl) do
      if k:sub(1, #prefix) == prefix then out[k:sub(#prefix + 1)] = v end
    end
    return out
  end

  -- The options that change what a run computes: a resume with others
  -- would not continue the same run.
  local PINNED = { "optimizer", "lr", "weight_decay", "warmup", "decay", "clip", "ema", "accum", "dtype", "seed",
                   "weighting", "logit_mean", "logit_std", "batch" }

  local function save_state(path, st)
    local tensors = {}
    for _, np in ipairs(st.T:named_parameters()) do tensors["model." .. np[1]] = np[2]:detach() end
    local meta = {
      ["grove.kind"] = "finetune_checkpoint", step = tostring(st.step), source = st.source,
      ["transformer.config"] = json.encode(st.T.diffusers_config),
      ["gen.seed"] = tostring(tonumber(st.gen.seed)), ["gen.offset"] = tostring(tonumber(st.gen.offset)),
      ["data.state"] = json.encode(st.data:state()),
    }
    if st.ema then
      for name, t in pairs(st.ema:state_dict("ema.")) do tensors[name] = t end
      meta["ema.updates"] = tostring(st.ema.updates)
    end
    local sd = st.opt:state_dict()
    for k, t in pairs(sd.tensors) do tensors["optim." .. k] = t end
    for k, v in pairs(sd.metadata) do meta["optim." .. k] = v end
    for _, k in ipairs(PINNED) do meta["finetune." .. k] = tostring(st.o[k]) end
    grove.save_safetensors(path, tensors, meta)
  end

  local function load_state(path, st)
    local ok, tensors, meta = pcall(grove.load_safetensors, path)
    if not ok then fail("resume: cannot read " .. path .. ": " .. tostring(tensors)) end
    if meta["grove.kind"] ~= "finetune_checkpoint" then
      fail("resume: " .. path .. " is not a fine-tuning checkpoint (grove.kind is " .. tostring(meta["grove.kind"]) .. ")")
    end
    if meta["transformer.config"] ~= json.encode(st.T.diffusers_config) then
      fail("resume: " .. path .. " fine-tunes a transformer of another config than " .. st.source ..
           "'s (it was made from " .. tostring(meta.source) .. ")")
    end
    for _, k in ipairs(PINNED) do
      if meta["finetune." .. k] ~= tostring(st.o[k]) then
        fail(string.format("resume: %s was made with %s = %s; this run asks for %s (resume with the same options)", path, k,
                           tostring(meta["finetune." .. k]), tostring(st.o[k])))
      end
    end
    st.T:load_state_dict(strip(tensors, "model."), { strict = false })
    if st.ema then
      st.ema:load_state_dict(tensors, "ema.")
      st.ema.updates = tonumber(meta["ema.updates"]) or 0
    end
    st.opt:load_state_dict({ tensors = strip(tensors, "optim."), metadata = strip(meta, "optim.") })
    st.opt:to(st.o.device)
    st.gen.seed, st.gen.offset = tonumber(meta["gen.seed"]), tonumber(meta["gen.offset"])
    st.data:set_state(json.decode(meta["data.state"]))
    return tonumber(meta.step)
  end

  local function read_curve(path, step)
    local losses = {}
    local f = io.open(path)
    if f then
      f:read("*l")
      for line in f:lines() do
        local s, l = line:match("^(%d+),(.*)$")
        if s and tonumber(s) <= step then losses[tonumber(s)] = tonumber(l) end
      end
      f:close()
    end
    return losses
  end

  -- ---- the saved folder ----------------------------------------------------------------

  -- Writes the transformer (its EMA weights when ema is given) as a
  -- component folder at dir: the source's config.json and weight-file
  -- stem, each tensor in its source dtype (or o.save_dtype), one tensor
  -- converted at a time.
  local function write_transformer(dir, T, ema, src, o)
    local values = {}
    if ema then
      for i, name in ipairs(ema.names) do values[name] = ema.shadow[i] end
    else
      for _, np in ipairs(T:named_parameters()) do values[np[1]] = np[2]:detach() end
    end
    local names = {}
    for n in pairs(values) do names[#names + 1] = n end
    table.sort(names)
    local function dtype_of(n) return o.save_dtype == "stored" and (src.dtypes[n] or "f32") or o.save_dtype end
    local source = {
      names = function() return names end,
      info = function(_, n) return { dtype = dtype_of(n), shape = values[n]:shape() } end,
      load = function(_, n)
        local t = values[n]:cpu()
        if t:dtype() ~= dtype_of(n) then t = t:to(dtype_of(n)) else t = t:clone() end
        return t
      end,
    }
    return diffusers.write_component(dir, src.config, source, { weights_name = src.weights_name, variant = o.variant,
      max_shard_bytes = o.max_shard_bytes or 10e9 })
  end

  -- RUN/model: a pipeline folder for a pipeline source (the other
  -- components linked or copied by grove.grow.complete_folder, as grow and
  -- prune write theirs), the transformer folder alone otherwise. The new
  -- folder is made beside RUN/model and put in its place in one step
  -- (grove_dir_replace), so a kill leaves the previous one whole.
  local function save_folder(out, T, ema, src, o)
    local target = join(out, "model")
    if not src.pipeline then
      write_transformer(target, T, ema, src, o)   -- write_component replaces a folder whole
      return target
    end
    local staged, old = target .. ".new", target .. ".old"
    for _, p in ipairs { staged, staged .. ".partial", old } do
      if C.grove_dir_remove(p) ~= 0 then fail(grove.c_error()) end
    end
    grove.grow.complete_folder(src.dir, staged, { components = o.copy and "copy" or "link" }, function(tmp)
      write_transformer(join(tmp, "transformer"), T, ema, src, o)
      return {}
    end, "finetune")
    if C.grove_dir_replace(staged, target, old) ~= 0 then
      local e = grove.c_error()
      C.grove_dir_remove(staged)
      fail(e)
    end
    if C.grove_dir_remove(old) ~= 0 then fail(grove.c_error()) end
    return target
  end

  -- What the folder's transformer is stored as (read from the headers only).
  local function describe_source(dir, o)
    local comp = diffusers.component(dir, "transformer", { variant = o.variant })
    local src = { dir = dir, config = comp.config, weights_name = comp.weights_name, dtypes = {},
                  pipeline = kind(join(dir, "model_index.json")) == C.GROVE_PATH_FILE and comp.dir ~= dir:gsub("/+$", "") }
    for _, n in ipairs(comp:names()) do src.dtypes[n] = comp:info(n).dtype end
    comp:close()
    return src
  end

  -- ---- the loop --------------------------------------------------------------------------

  -- grove.diffusers.finetune(dir, cache, opts): trains dir's transformer
  -- on cache (a cache folder, read with grove.diffusers.cache_dataset, or
  -- any data set with next/state/set_state). opts (defaults in
  -- grove.diffusers.finetune_defaults): out (the run folder, required),
  -- steps, batch, lr, optimizer (came8bit, adamw, came, sgd), weight_decay,
  -- warmup, decay (a final linear cooldown over that many steps), clip (global
  -- gradient norm; 0: none), ema (decay; 0: none), accum (micro-batches per
  -- step), recompute (activation recomputation of every block), dtype
  -- ("bf16": bf16 GEMMs on the f32 master weights), save_dtype ("stored",
  -- "f32", "bf16"), weights ("ema" or "raw" into the saved folder), seed,
  -- weighting ("logit_normal" or "uniform"), logit_mean, logit_std,
  -- flow_shift (instead of the scheduler's), save_every, log_every, resume,
  -- time_limit (seconds), copy (copy the other components instead of
  -- linking them), device, variant, max_shard_bytes, on_step(step, loss, state).
  -- Returns {step, losses, stopped, nan, folder, model, ema, optimizer}.
  function diffusers.finetune(dir, cache, opts)
    local o = options(opts)
    if type(dir) ~= "string" or kind(dir) ~= C.GROVE_PATH_DIR then fail("model " .. tostring(dir) .. " is not a folder") end
    local src = describe_source(dir, o)
    local sch = diffusers.training_schedule(dir, o)
    if C.grove_dir_make(o.out) ~= 0 then fail(grove.c_error()) end
    local ckpt = join(o.out, "checkpoint.safetensors")
    if o.resume and kind(ckpt) ~= C.GROVE_PATH_FILE then fail("resume: there is no " .. ckpt .. " to continue from") end

    -- the f32 master weights: every tensor converted as it loads
    local T = diffusers.transformer(dir, { dtype = "f32", variant = o.variant })
    if T.config.guidance_embeds then
      fail(dir .. " is a Sprint transformer (guidance_embeds); its SCM objective is not implemented")
    end
    T:train()
    T:recompute(o.recompute and true or false)
    T:set_compute_dtype(o.dtype)
    if o.device ~= "cpu" then T:to(o.device) end
    local opt = diffusers.finetune_optimizer(T, o)
    local sched = o.decay > 0
      and grove.optim.schedule.wsd { warmup = math.min(o.warmup, o.steps - o.decay), total = o.steps, decay = o.decay }
      or grove.optim.schedule.warmup_constant { warmup = o.warmup }
    local ema = o.ema > 0 and grove.EMA(T:named_parameters(), o.ema) or nil
    local gen = grove.Generator(o.seed)
    local data, data_where = open_data(cache, o, dir)
    local st = { T = T, ema = ema, opt = opt, gen = gen, data = data, o = o, source = dir, step = 0 }
    local step, losses = 0, {}
    if o.resume then
      step = load_state(ckpt, st)
      losses = read_curve(join(o.out, "loss.csv"), step)
      print(string.format("resumed %s at step %d", ckpt, step))
    end
    sched:attach(opt)
    local params = T:parameters()
    -- the curve first: a kill between the two leaves a curve that reaches
    -- past the checkpoint (resume reads it up to the checkpoint's step), never short of it
    local function save()
      st.step = step
      grove.train.write_curve(o, losses)
      save_state(ckpt, st)
    end
    local show = grove.train.progress(o)
    local avg, stopped, nan
    local t_start = grove.now()
    C.grove_interrupt_arm(true)
    local ok, err = pcall(function()
      while step < o.steps do
        local total = 0
        for micro = 1, o.accum do
          local batch = data:next()
          local loss = diffusers.flow_loss(T, batch, { generator = gen, schedule = sch, weighting = o.weighting,
            logit_mean = o.logit_mean, logit_std = o.logit_std, where = "step " .. (step + 1) .. ": " .. data_where })
          local l = loss:item()
          if not finite(l) then
            nan = string.format("loss is %s at step %d (micro-batch %d of %d)", tostring(l), step + 1, micro, o.accum)
            return
          end
          total = total + l
          if o.accum > 1 then loss = loss * (1 / o.accum) end
          loss:backward()
        end
        local norm = grove.optim.clip_grad_norm(params, o.clip)
        if not finite(norm) then
          nan = string.format("the gradient norm is %s at step %d", tostring(norm), step + 1)
          return
        end
        opt:step()
        sched:step()
        opt:zero_grad()
        if ema then ema:update() end
        step = step + 1
        local l = total / o.accum
        losses[step] = l
        avg = avg and 0.98 * avg + 0.02 * l or l
        show(step, l, avg, step == o.steps)
        if o.on_step then o.on_step(step, l, st) end
        if step % o.save_every == 0 or step == o.steps then save() end
        if C.grove_interrupt_pending() then
          if step % o.save_every ~= 0 then save() end
          stopped = "interrupted at step " .. step .. ": checkpoint saved to " .. ckpt .. " (resume with --resume)"
          return
        end
        if o.time_limit > 0 and grove.now() - t_start > o.time_limit then
          if step % o.save_every ~= 0 then save() end
          stopped = string.format("time limit of %gs reached at step %d: checkpoint saved", o.time_limit, step)
          return
        end
      end
    end)
    C.grove_interrupt_arm(false)
    for _, p in ipairs(params) do p:zero_grad() end
    if not ok then error(err, 0) end
    local folder
    if nan then
      local kept = kind(ckpt) == C.GROVE_PATH_FILE and ("the last good checkpoint " .. ckpt .. " is kept") or
                   "no checkpoint was saved yet"
      stopped = nan .. ": stopping before the optimizer touches the weights; " .. kept ..
                " and no folder is written (lower --lr, raise --warmup or check the cache)"
      grove.train.write_curve(o, losses)
    else
      folder = save_folder(o.out, T, o.weights == "ema" and ema or nil, src, o)
    end
    if stopped then
      if avg then show(step, losses[step] or 0, avg, true) end
      print(stopped)
    end
    return { step = step, losses = losses, stopped = stopped, nan = nan ~= nil, folder = folder, model = T, ema = ema,
             optimizer = opt, schedule = sch }
  end

  return diffusers
end
