-- Training the judge (grove.judge.train): shapes renders with hard
-- negatives (each image with its caption, and with the caption's colour,
-- count, shape or relation changed) and, given a diffusion model, its own
-- samples labelled by the evaluator, as SANA 1.5's verifier learned from
-- generated images labelled by detectors. recipes/train_judge.lua and
-- recipes/pipeline.lua are its command lines.
--
--   local r = grove.judge.train { steps = 4000, checkpoint = "runs/tiny/checkpoint.safetensors", out = "runs/judge" }
--   -- r.judge (eval mode), r.path (OUT/judge.safetensors), r.losses, r.accuracy (text), r.sets
-- Writes OUT/judge.safetensors, OUT/accuracy.txt and OUT/loss.png.
return function(grove, J)
  J.train_defaults = {
    steps = 4000, batch = 32, lr = 1e-3, warmup = 50, width = 64, depth = 3, heads = 2, patch = 8, size = 32, stem = 32, stem_depth = 1,
    kinds = "shape,relation,color,shape,relation,count,relation", seed = 1, checkpoint = nil, samples = 256,
    sample_steps = 20, sample_every = 3, eval_images = 256, out = "runs/judge", log_every = 50, device = "cpu",
  }

  -- The accuracy table of evaluation sets {{name, pairs, result}} as text.
  function J.accuracy_text(sets)
    local lines = { string.format("%-9s %-14s %9s %7s", "set", "kind or category", "accuracy", "pairs") }
    for _, e in ipairs(sets) do
      local r = e.result
      for _, kind in ipairs { "match", "color", "count", "shape", "relation", "swap" } do
        local k = r.per_kind[kind]
        if k then lines[#lines + 1] = string.format("%-9s %-14s %9.3f %7d", e.name, kind, k.accuracy, k.total) end
      end
      -- the same pairs by the prompt category of their image
      for _, cat in ipairs(grove.data.captions.categories) do
        local k = r.per_category[cat]
        if k then lines[#lines + 1] = string.format("%-9s %-14s %9.3f %7d", e.name, cat, k.accuracy, k.total) end
      end
      lines[#lines + 1] = string.format("%-9s %-14s %9.3f %7d", e.name, "overall", r.overall, r.total)
    end
    return table.concat(lines, "\n")
  end

  -- opts: J.train_defaults' fields (device: where the judge trains and the model
  -- samples); checkpoint (a path) or parts (from
  -- grove.train) adds the model's own samples; log (default print).
  function J.train(opts)
    local o = {}
    for k, v in pairs(J.train_defaults) do o[k] = v end
    for k, v in pairs(opts or {}) do o[k] = v end
    local say = o.log or print
    os.execute("mkdir -p '" .. o.out .. "'")
    local kinds = {}
    for k in o.kinds:gmatch("[^,%s]+") do kinds[#kinds + 1] = k end
    local tok = grove.text.shapes_tokenizer()
    local judge = J.Judge({ vocab_size = tok:size(), width = o.width, depth = o.depth, heads = o.heads, patch = o.patch,
                            size = o.size, stem = o.stem, stem_depth = o.stem_depth }, { seed = o.seed })
    judge:to(o.device) -- images and captions are made on the CPU; logits() moves them
    say(string.format("judge: %d parameters", judge:num_parameters()))

    -- held-out pairs: renders of another seed (train split), renders of the
    -- held-out (shape, colour) pairs, and model samples when there is a model
    local function render_pairs(split, seed, n)
      local b = grove.data.shapes { batch = n, seed = seed, size = o.size, split = split }:next()
      return J.pairs(b.images, b.specs, { seed = seed })
    end
    local evals = {
      { name = "renders", pairs = render_pairs("train", o.seed + 1000, o.eval_images) },
      { name = "heldout", pairs = render_pairs("heldout", o.seed + 2000, o.eval_images) },
    }

    -- the model's samples for training captions: images and the specs they were asked for
    local sample_pool
    local parts = o.parts or (o.checkpoint and grove.train.load_for_inference(o.checkpoint, { device = o.device }))
    if parts and o.samples > 0 then
      -- o.samples to train on, then as many as the other held-out sets (at most o.samples) to measure
      local n_eval = math.min(o.samples, o.eval_images)
      local b = grove.data.shapes { batch = o.samples + n_eval, seed = o.seed + 3000, size = o.size }:next()
      local t0 = grove.now()
      local images = grove.train.sample_prompts(parts, b.captions, { size = o.size, seed = o.seed, steps = o.sample_steps,
                                                                     batch = 64 })
      say(string.format("%d model samples in %.1f s", o.samples + n_eval, grove.now() - t0))
      local train_specs, eval_specs = {}, {}
      for i = 1, o.samples do train_specs[i] = b.specs[i] end
      for i = 1, n_eval do eval_specs[i] = b.specs[o.samples + i] end
      sample_pool = { images = images:narrow(1, 1, o.samples), specs = train_specs, position = 0 }
      evals[#evals + 1] = { name = "samples",
                            pairs = J.pairs(images:narrow(1, o.samples + 1, n_eval), eval_specs, { seed = o.seed + 4000 }) }
    end

    local function sample_batch(step)
      local p, n = sample_pool, math.min(o.batch, o.samples)
      local first = p.position % o.samples
      n = math.min(n, o.samples - first)
      p.position = p.position + n
      local specs = {}
      for i = 1, n do specs[i] = p.specs[first + i] end
      return J.pairs(p.images:narrow(1, first + 1, n), specs, { seed = o.seed * 7919 + step, kinds = kinds })
    end

    local opt = grove.optim.adamw(judge:parameters(), { lr = o.lr, weight_decay = 0.01 })
    local sched = grove.optim.schedule.warmup_constant { warmup = o.warmup }
    sched:attach(opt)
    local data = grove.data.shapes { batch = o.batch, seed = o.seed, size = o.size }
    local losses, avg = {}, nil
    local t0 = grove.now()
    judge:train()
    for step = 1, o.steps do
      local p
      if sample_pool and step % o.sample_every == 0 then p = sample_batch(step)
      else
        local b = data:next()
        p = J.pairs(b.images, b.specs, { seed = o.seed * 7919 + step, kinds = kinds })
      end
      local loss = grove.cross_entropy(judge:logits(p.images, p.captions), p.labels:to(o.device))
      loss:backward()
      grove.optim.clip_grad_norm(judge:parameters(), 1.0)
      opt:step()
      sched:step()
      opt:zero_grad()
      local l = loss:item()
      losses[step] = l
      avg = avg and 0.98 * avg + 0.02 * l or l
      if step % o.log_every == 0 or step == o.steps then
        say(string.format("step %d/%d  loss %.4f  avg %.4f  %.1f s", step, o.steps, l, avg, grove.now() - t0))
      end
    end
    judge:eval()
    local path = o.out .. "/judge.safetensors"
    judge:save(path, { ["grove.judge.steps"] = o.steps, ["grove.judge.checkpoint"] = o.checkpoint or "" })

    for _, e in ipairs(evals) do e.result = J.accuracy(judge, e.pairs); e.pairs = nil end
    local text = J.accuracy_text(evals)
    local f = io.open(o.out .. "/accuracy.txt", "w")
    if f then f:write(text, "\n"); f:close() end
    if #losses > 1 then
      require("grove.plot").lines { path = o.out .. "/loss.png", title = "judge training loss", xlabel = "step",
        ylabel = "cross-entropy", series = { { name = "loss", y = losses } } }
    end
    return { judge = judge, path = path, losses = losses, accuracy = text, sets = evals, time = grove.now() - t0 }
  end
end
