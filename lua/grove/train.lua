-- Text-to-image training on the shapes set (or a folder of captioned
-- images): a SANA model plus its text encoder, an optimizer with warmup,
-- gradient clipping and EMA weights, atomic checkpoints that resume
-- bit-identically, a NaN guard, Ctrl-C as save-and-exit, progress output,
-- periodic sample grids and the loss curve. recipes/train.lua is its CLI.
local ffi = require "ffi"

return function(grove)
  local train = {}
  grove.train = train
  local C = grove.C
  local nn = grove.nn

  train.defaults = {
    preset = "tiny", steps = 2000, batch = 32, lr = 1e-3, optimizer = "adamw", weight_decay = 0.0,
    warmup = 100, decay = 0, clip = 1.0, ema = 0.995, seed = 1, size = 32, data = "shapes", out = "runs/tiny",
    save_every = 250, sample_every = 500, log_every = 50, resume = false, freeze_text = false,
    text_depth = 2, text_heads = 2, time_limit = 0, eval = true, eval_prompts = 60, eval_steps = 20, cfg = 4.5,
    sampler = "dpm", device = "cpu", dist = false,
  }

  local now = grove.now
  pcall(ffi.cdef, "int isatty(int fd);")

  -- The model, its text encoder and tokenizer for a config; both modules
  -- hang under one container, so names are "model.…" and "text.…".
  function train.build(o, cfgs)
    local tok = grove.text.shapes_tokenizer()
    local mcfg = cfgs and cfgs.model or nn.resolve_config(o.preset)
    if not cfgs and o.config then
      -- overrides of the preset's fields (depth, width, ...)
      local c = {}
      for k, v in pairs(mcfg) do c[k] = v end
      for k, v in pairs(o.config) do c[k] = v end
      mcfg = c
    end
    local model = nn.Sana(mcfg, { seed = o.seed, meta = o.meta })
    local tcfg = cfgs and cfgs.text or { vocab_size = tok:size(), width = mcfg.caption_channels, depth = o.text_depth,
                                         heads = o.text_heads, max_len = mcfg.text_len }
    local text = grove.text.Encoder(tcfg, { seed = o.seed + 1, meta = o.meta })
    local both = nn.Container { { "model", model }, { "text", text } }
    return { tokenizer = tok, model = model, text = text, both = both, model_config = model.config, text_config = tcfg }
  end

  -- The device ("cpu" or "cuda") the text encoder's weights are on.
  local function text_device(parts)
    return parts.text.embeddings.token_embedding.weight:device()
  end

  -- Caption features and mask for a list of strings, on the device of the
  -- text encoder (the tokenizer makes CPU tensors).
  function train.encode(parts, captions)
    local c = parts.model.config
    local ids, mask = parts.tokenizer:encode(captions, { max_len = c.text_len })
    local dev = text_device(parts)
    ids, mask = ids:to(dev), mask:to(dev)
    local feats = parts.text:forward(ids, mask)
    return feats, mask
  end

  -- Moves the model and the text encoder to device (both in place); a
  -- missing GPU fails with the message of t:cuda().
  function train.to_device(parts, device)
    grove._device_id(device, "train: device")
    local ok, err = pcall(parts.both.to, parts.both, device)
    if not ok then
      error("train: cannot move the model to " .. device .. ": " .. tostring(err):gsub("^[^:]*:%d+: ", ""), 0)
    end
    parts.device = device
    return parts
  end

  local function flat_meta(prefix, t, out)
    for k, v in pairs(t) do
      if type(v) ~= "table" and type(v) ~= "function" then out[prefix .. k] = tostring(v) end
    end
  end

  -- The training state (a run's checkpoint, the one thing grove calls a
  -- checkpoint): one file with everything a run needs to continue: weights,
  -- EMA, optimizer state, data position, generator, step. Written atomically.
  function train.save_state(path, st)
    local tensors = {}
    for _, np in ipairs(st.parts.both:named_parameters()) do tensors[np[1]] = np[2]:detach() end
    for name, t in pairs(st.ema:state_dict("ema.")) do tensors[name] = t end
    local meta = {
      ["grove.kind"] = "train_checkpoint", step = tostring(st.step),
      ["data.position"] = tostring(st.data_position or 0),
      ["gen.seed"] = tostring(tonumber(st.gen.seed)), ["gen.offset"] = tostring(tonumber(st.gen.offset)),
      ["grove.config"] = nn._encode_config(st.parts.model_config),
      ["text.config"] = nn._encode_config(st.parts.text_config),
    }
    if st.opt then
      local sd = st.opt:state_dict()
      for k, t in pairs(sd.tensors) do tensors["optim." .. k] = t end
      for k, v in pairs(sd.metadata) do meta["optim." .. k] = v end
    end
    flat_meta("train.", st.options, meta)
    grove.save_safetensors(path, tensors, meta)
  end
  train.save_checkpoint = train.save_state -- the old name, for one release

  -- Model and text-encoder weights with their configs: what o.init starts
  -- a run from (a grown or pruned model, say). parts as train.build gives.
  function train.save_weights(path, parts, metadata)
    local tensors = {}
    for _, np in ipairs(parts.both:named_parameters()) do tensors[np[1]] = np[2]:detach() end
    local meta = { ["grove.kind"] = "weights", ["grove.config"] = nn._encode_config(parts.model.config),
                   ["text.config"] = nn._encode_config(parts.text_config) }
    for k, v in pairs(metadata or {}) do meta[k] = tostring(v) end
    grove.save_safetensors(path, tensors, meta)
  end

  local function strip(tbl, prefix)
    local out = {}
    for k, v in pairs(tbl) do
      if k:sub(1, #prefix) == prefix then out[k:sub(#prefix + 1)] = v end
    end
    return out
  end
  train.strip_prefix = strip

  -- A file's configs decide what is allocated, and a file from a stranger
  -- may say anything: the model and encoder are first built with shapes
  -- only, and every parameter must be in the file (under prefix) with that
  -- shape, so what is then allocated is never more than the file holds.
  -- (A config whose depth exceeds the file's tensor count is refused before
  -- even the shapes are built.)
  function train.check_configs(path, cfgs, tensors, prefix)
    local count = 0
    for _ in pairs(tensors) do count = count + 1 end
    local d = cfgs.model.depth
    if type(d) ~= "number" or d % 1 ~= 0 or d < 0 or d > count then
      error(path .. ": grove.config gives depth " .. tostring(d) .. ", which the file's " .. count ..
            " tensors cannot hold", 3)
    end
    local ok, parts = pcall(train.build, { seed = 0, meta = true }, cfgs)
    if not ok then
      error(path .. ": grove.config/text.config do not describe a model grove can build: " ..
            tostring(parts):gsub("^[^:]*%.lua:%d+: ", ""), 3)
    end
    local bad = nn.shape_mismatch(parts.both, tensors, prefix)
    if bad then error(path .. ": its configs give " .. bad, 3) end
  end

  -- Model and encoder (EMA weights when present and asked for) from a
  -- checkpoint; opts.device ("cpu" default, "cuda") is where they go.
  function train.load_for_inference(path, opts)
    opts = opts or {}
    if type(path) == "string" and C.grove_path_kind(path) == C.GROVE_PATH_DIR then
      error(path .. " is " .. grove.describe(path).what .. ", not a grove training checkpoint or model weights file", 2)
    end
    local tensors, meta = grove.load_safetensors(path)
    if not meta["grove.config"] or not meta["text.config"] then
      local ok, info = pcall(grove.describe, path)
      error(path .. " is " .. (ok and info.what or "a file without grove.config/text.config metadata") ..
            ", not a grove training checkpoint or model weights (a model with its text encoder)" ..
            (ok and info.kind == "model" and "; a model alone loads with grove.nn.load" or ""), 2)
    end
    local cfgs = { model = nn._decode_config(meta["grove.config"]), text = nn._decode_config(meta["text.config"]) }
    local use_ema = opts.ema ~= false and tensors["ema.model.proj_out.weight"] ~= nil
    train.check_configs(path, cfgs, tensors, use_ema and "ema." or "")
    local o = { seed = 0 }
    local parts = train.build(o, cfgs)
    parts.both:load_state_dict(strip(tensors, use_ema and "ema." or ""), { strict = false })
    parts.model:eval()
    parts.text:eval()
    parts.step = tonumber(meta.step)
    parts.ema_used = use_ema
    if opts.device and opts.device ~= "cpu" then train.to_device(parts, opts.device) end
    return parts
  end

  -- Samples one image per prompt, in batches, on the model's device (the
  -- noise is drawn on the CPU and moved, so a CUDA model starts from the
  -- same noise); the images come back as one CPU tensor.
  function train.sample_prompts(parts, prompts, o)
    local c = parts.model.config
    local out = {}
    local bs = o.batch or 32
    for start = 1, #prompts, bs do
      local chunk = {}
      for i = start, math.min(#prompts, start + bs - 1) do chunk[#chunk + 1] = prompts[i] end
      local feats, mask = grove.no_grad(function() return train.encode(parts, chunk) end)
      local x = parts.model:sample {
        shape = { #chunk, o.size or 32, o.size or 32, c.in_channels }, seed = (o.seed or 0) + start, text = feats,
        mask = mask, steps = o.steps or 20, cfg = o.cfg or 4.5, sampler = o.sampler or "dpm" }
      out[#out + 1] = x:clamp(-1, 1):cpu()
    end
    return grove.cat(out, 1)
  end

  -- The evaluator's table over the fixed prompt sets.
  function train.evaluate(parts, o)
    local prompts = {}
    for _, cat in ipairs(grove.data.captions.categories) do
      local set = grove.data.shapes.prompts(cat)
      for i = 1, math.min(#set, o.eval_prompts or #set) do prompts[#prompts + 1] = set[i] end
    end
    local images = train.sample_prompts(parts, prompts, { size = o.size, seed = o.seed, steps = o.eval_steps, cfg = o.cfg,
                                                          sampler = o.sampler, batch = 60 })
    return grove.eval.shapes.score(images, prompts), images, prompts
  end

  -- FLOPs of one training step (forward, backward: 3 forwards of matrix
  -- work, grove.nn.forward_flops) of `preset` at `depth` blocks, batch
  -- images of size² (default train.defaults.size): the compute the studies
  -- and the pipeline compare runs by.
  function train.step_flops(preset, depth, batch, size)
    local c = nn.resolve_config(preset)
    c.depth = depth
    size = size or train.defaults.size
    return 3 * nn.forward_flops(c, batch, size, size)
  end

  -- The number of training steps of `preset` at `depth` blocks, batch
  -- images of size², that spend `flops` (train.step_flops each), rounded
  -- to the nearest step: how the studies and the pipeline give a scratch
  -- model the compute of another model's whole path.
  function train.steps_for_flops(flops, preset, depth, batch, size)
    return math.floor(flops / train.step_flops(preset, depth, batch, size) + 0.5)
  end

  -- The progress line (a terminal) or log lines (o.log_every) of a run of
  -- o.steps steps: returns show(step, loss, avg, final). Fine-tuning a
  -- diffusers folder (grove.diffusers.finetune) shows its steps the same way.
  local function progress(o)
    local tty = ffi.C.isatty(1) == 1
    io.stdout:setvbuf("line") -- log lines reach a file or pipe as they happen
    local t0, last_line = now(), 0
    return function(step, loss, avg, final)
      local el = now() - t0
      local rate = step / math.max(el, 1e-9)
      local eta = (o.steps - step) / math.max(rate, 1e-9)
      local line = string.format("step %d/%d  loss %.4f  avg %.4f  %.2f it/s  elapsed %dm%02ds  ETA %dm%02ds", step, o.steps,
        loss, avg, rate, math.floor(el / 60), math.floor(el % 60), math.floor(eta / 60), math.floor(eta % 60))
      if tty then
        io.write("\r" .. line .. string.rep(" ", math.max(0, last_line - #line)))
        last_line = #line
        if final then io.write("\n") end
        io.flush()
      elseif final or step % o.log_every == 0 or step == 1 then
        print(line)
      end
    end
  end

  train.progress = progress

  -- o.out/loss.csv and o.out/loss.png (raw and smoothed) of the losses so far.
  local function write_curve(o, losses)
    local f = io.open(o.out .. "/loss.csv", "w")
    if f then
      f:write("step,loss\n")
      for i, l in ipairs(losses) do f:write(string.format("%d,%.6f\n", i, l)) end
      f:close()
    end
    if #losses > 1 then
      local smooth, avg = {}, nil
      for i, l in ipairs(losses) do
        avg = avg and 0.98 * avg + 0.02 * l or l
        smooth[i] = avg
      end
      require("grove.plot").lines { path = o.out .. "/loss.png", title = "training loss", xlabel = "step",
        ylabel = "flow-matching loss", log_y = true,
        series = { { name = "loss", y = losses }, { name = "smoothed", y = smooth } } }
    end
  end

  train.write_curve = write_curve

  -- The prompts and seed of every sample grid: the first two evaluation
  -- prompts of each category, noise seed 7 (recipes/pipeline.lua shows the
  -- same grid after each stage).
  train.grid_seed = 7
  function train.grid_prompts()
    local prompts = {}
    for _, cat in ipairs(grove.data.captions.categories) do
      local set = grove.data.shapes.prompts(cat)
      prompts[#prompts + 1] = set[1]
      prompts[#prompts + 1] = set[2]
    end
    return prompts
  end

  local function sample_grid(o, parts, ema, path)
    local prompts = train.grid_prompts()
    local images = ema:apply(function()
      return train.sample_prompts(parts, prompts, { size = o.size, seed = train.grid_seed, steps = o.eval_steps, cfg = o.cfg,
                                                    sampler = o.sampler })
    end)
    grove.image.save(path, grove.image.grid(images, { cols = 4, captions = prompts, scale = 2 }))
  end

  -- Each rank of a data-parallel run draws its own batches and noise: its
  -- seeds move by this much per rank (rank 0 keeps the single-process ones).
  local RANK_SEED_STRIDE = 1000003

  local function data_stream(o)
    if type(o.data) == "table" and o.data.next then return o.data end
    local seed = o.seed + (o.rank or 0) * RANK_SEED_STRIDE
    if o.data == "shapes" then return grove.data.shapes { batch = o.batch, seed = seed, size = o.size, categories = o.categories } end
    return grove.data.folder { dir = o.data, batch = o.batch, seed = seed, size = o.size }
  end

  -- Trains; returns {step = n, losses = {...}, stopped = reason or nil, parts = ...}.
  function train.run(opts)
    local o = {}
    for k, v in pairs(train.defaults) do o[k] = v end
    for k, v in pairs(opts or {}) do o[k] = v end
    -- o.dist: data parallel over the processes of grove.dist (RANK,
    -- WORLD_SIZE from scripts/launch); rank 0 alone writes files
    if o.dist then o.rank = grove.dist.init() end
    local writer = not o.dist or grove.dist.is_main()
    os.execute("mkdir -p '" .. o.out .. "'")
    local ckpt = o.out .. "/checkpoint.safetensors"
    local saved, tensors, meta
    if o.resume then
      local ok, t, m = pcall(grove.load_safetensors, ckpt)
      if not ok then error("train: --resume: cannot read " .. ckpt .. ": " .. tostring(t), 2) end
      saved, tensors, meta = true, t, m
    end
    -- o.init: a checkpoint (of grove.train, or grove.train.save_weights) whose
    -- model and text-encoder weights and configs start a fresh run
    local init_tensors
    if o.init and not saved then
      local ok, t, m = pcall(grove.load_safetensors, o.init)
      if not ok then error("train: init: cannot read " .. tostring(o.init) .. ": " .. tostring(t), 2) end
      if not m["grove.config"] or not m["text.config"] then
        error("train: init: " .. o.init .. " lacks grove.config/text.config metadata (not a grove training checkpoint)", 2)
      end
      init_tensors, meta = t, m
    end
    local parts = train.build(o, (saved or init_tensors) and { model = nn._decode_config(meta["grove.config"]),
                                                               text = nn._decode_config(meta["text.config"]) } or nil)
    if init_tensors then
      -- every parameter must come from the file; its EMA/optimizer entries are not used
      local wanted = {}
      for _, np in ipairs(parts.both:named_parameters()) do
        if not init_tensors[np[1]] then error("train: init: " .. o.init .. " has no tensor " .. np[1], 2) end
        wanted[np[1]] = init_tensors[np[1]]
      end
      parts.both:load_state_dict(wanted)
    end
    if o.freeze_text then parts.text:freeze() end
    -- The model and encoder move before the optimizer and the EMA are made:
    -- the EMA clones the parameters where they are, and optimizer state is
    -- allocated on its parameter's device.
    grove._device_id(o.device, "train: device")
    if o.device ~= "cpu" then train.to_device(parts, o.device) end
    parts.device = o.device
    local groups = grove.optim.param_groups(parts.both)
    local opt = grove.optim[o.optimizer](groups, { lr = o.lr, weight_decay = o.weight_decay })
    -- a final linear cooldown over `decay` steps when asked (wsd), else constant
    local sched = o.decay > 0
      and grove.optim.schedule.wsd { warmup = math.min(o.warmup, o.steps - o.decay), total = o.steps, decay = o.decay }
      or grove.optim.schedule.warmup_constant { warmup = o.warmup }
    local ema = grove.EMA(parts.both:named_parameters(), o.ema)
    local gen = grove.Generator(o.seed + 2 + (o.rank or 0) * RANK_SEED_STRIDE)
    local data = data_stream(o)
    local step, losses = 0, {}
    if saved then
      parts.both:load_state_dict(strip(tensors, ""), { strict = false })
      ema:load_state_dict(tensors, "ema.")
      local sd = { tensors = strip(tensors, "optim."), metadata = strip(meta, "optim.") }
      opt:load_state_dict(sd)
      opt:to(o.device)
      step = tonumber(meta.step)
      gen.seed, gen.offset = tonumber(meta["gen.seed"]), tonumber(meta["gen.offset"])
      if data.seek then data:seek(tonumber(meta["data.position"])) end
      local f = io.open(o.out .. "/loss.csv")
      if f then
        f:read("*l")
        for line in f:lines() do
          local s, l = line:match("^(%d+),(.*)$")
          if s and tonumber(s) <= step then losses[tonumber(s)] = tonumber(l) end
        end
        f:close()
      end
      print(string.format("resumed %s at step %d", ckpt, step))
    end
    sched:attach(opt)
    local params = parts.both:parameters()
    local state = { parts = parts, ema = ema, opt = opt, gen = gen, options = o }
    -- every replica starts from rank 0's weights
    if o.dist then grove.dist.broadcast_parameters(parts.both) end
    local function save()
      if not writer then return end
      state.step, state.data_position = step, data.position
      train.save_state(ckpt, state)
      write_curve(o, losses)
    end
    local show = progress(o)
    local avg
    local t_start = now()
    C.grove_interrupt_arm(true)
    local stopped
    local ok, err = pcall(function()
      while step < o.steps do
        local batch = data:next()
        local feats, mask = train.encode(parts, batch.captions)
        -- flow_loss draws its noise and timesteps with gen on the CPU and
        -- moves them to the images' device (grove.nn.flow)
        local loss = parts.model:flow_loss(batch.images:to(o.device), feats, mask, { generator = gen })
        local l = loss:item()
        if l ~= l or l == math.huge or l == -math.huge then
          stopped = string.format("loss is %s at step %d: stopping; the last good checkpoint is kept at %s", tostring(l),
                                  step + 1, ckpt)
          return
        end
        loss:backward()
        -- the mean gradient over the replicas (the identity in a world of one)
        if o.dist then grove.dist.all_reduce_grads(params) end
        grove.optim.clip_grad_norm(params, o.clip)
        opt:step()
        sched:step()
        opt:zero_grad()
        ema:update()
        step = step + 1
        losses[step] = l
        avg = avg and 0.98 * avg + 0.02 * l or l
        show(step, l, avg, step == o.steps)
        if o.on_step then o.on_step(step, l, state) end
        if step % o.save_every == 0 or step == o.steps then save() end
        if writer and o.sample_every > 0 and step % o.sample_every == 0 and o.data == "shapes" then
          sample_grid(o, parts, ema, string.format("%s/samples_%06d.png", o.out, step))
        end
        if C.grove_interrupt_pending() then
          save()
          stopped = "interrupted at step " .. step .. ": checkpoint saved to " .. ckpt .. " (resume with --resume)"
          return
        end
        if o.time_limit > 0 and now() - t_start > o.time_limit then
          save()
          stopped = string.format("time limit of %ds reached at step %d: checkpoint saved", o.time_limit, step)
          return
        end
      end
    end)
    C.grove_interrupt_arm(false)
    if not ok then error(err, 0) end
    if stopped then
      if avg then show(step, losses[step] or 0, avg, true) end
      print(stopped)
    end
    if writer then write_curve(o, losses) end
    return { step = step, losses = losses, stopped = stopped, parts = parts, ema = ema, optimizer = opt,
             nan = stopped and stopped:find("^loss is") ~= nil }
  end

  return train
end
