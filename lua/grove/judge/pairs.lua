-- Training pairs for the judge: each image with its own caption, and with a
-- hard negative, the caption with one thing changed.
--
--   grove.judge.mutate(spec, kind, rand) -> a changed spec, or nil when the
--     kind does not apply. kind: "color" (a named colour to another),
--     "count" (a phrase's count up, or a counting caption's to another of
--     2-4: "at least one" would still hold), "shape" (a phrase's shape to
--     another), "relation" (to another relation). rand(n) -> 1..n.
--   grove.judge.pairs(images, specs, {seed =, kinds =}) ->
--     {images = (2B, H, W, C), captions = {...}, labels = i64 (2B), kinds = {...}}
--     rows 1..B: the captions ("match"); rows B+1..2B: a hard negative of a
--     kind drawn in turn from kinds (never making a held-out (shape, colour)
--     pair the image lacks), falling back to another image's caption
--     ("swap"). Every label is the evaluator's verdict on the pair, so a
--     change that still holds for the image (a diagonal "above" that is also
--     "left of") is labelled yes, and a generated image that misses its own
--     caption is labelled no: the same code labels renders and samples.
return function(grove, J)
  local captions = grove.data.captions
  J.kinds = { "color", "count", "shape", "relation" }

  local function copy(spec)
    local s = { relation = spec.relation, objects = {} }
    for i, o in ipairs(spec.objects) do s.objects[i] = { shape = o.shape, color = o.color, count = o.count or 1 } end
    return s
  end

  local function other(list, current, rand, avoid)
    local pool = {}
    for _, v in ipairs(list) do
      if v ~= current and v ~= avoid then pool[#pool + 1] = v end
    end
    if #pool == 0 then return nil end
    return pool[rand(#pool)]
  end

  function J.mutate(spec, kind, rand)
    spec = captions.check_spec(spec, 2)
    local s = copy(spec)
    local objs = s.objects
    if kind == "color" then
      local named = {}
      for i, o in ipairs(objs) do if o.color then named[#named + 1] = i end end
      if #named == 0 then return nil end
      local o = objs[named[rand(#named)]]
      o.color = other(captions.colors, o.color, rand)
    elseif kind == "count" then
      local o = objs[rand(#objs)]
      local choices = {}
      for c = 2, captions.max_count do
        if c ~= o.count and (spec.category == "counting" or c > o.count) then choices[#choices + 1] = c end
      end
      if #choices == 0 then return nil end
      o.count = choices[rand(#choices)]
    elseif kind == "shape" then
      local k = rand(#objs)
      local o = objs[k]
      local second = objs[3 - k]
      o.shape = other(captions.shapes, o.shape, rand, second and second.shape)
      if not o.shape then return nil end
    elseif kind == "relation" then
      if not s.relation then return nil end
      s.relation = other(captions.relations, s.relation, rand)
    else
      error("judge.mutate: unknown kind '" .. tostring(kind) .. "' (expected one of " .. table.concat(J.kinds, ", ") .. ")", 2)
    end
    return captions.check_spec(s, 2)
  end

  -- A deterministic rand(n) -> 1..n from a seed (an LCG: enough to choose
  -- among a handful of changes, and cheap per call).
  function J.rng(seed)
    local s = (seed or 0) % 2147483648
    return function(n)
      s = (s * 1103515245 + 12345) % 2147483648
      return math.floor(s / 2147483648 * n) + 1
    end
  end

  -- How many of a spec's objects are held-out (shape, colour) pairs.
  local function heldout_objects(spec)
    local n = 0
    for _, o in ipairs(spec.objects) do
      if o.color and captions.is_heldout(o.shape, o.color) then n = n + 1 end
    end
    return n
  end

  function J.pairs(images, specs, opts)
    opts = opts or {}
    local rand = opts.rand or J.rng(opts.seed)
    local kinds = opts.kinds or J.kinds
    local B = images:size(1)
    local caps, kinds_out, labels = {}, {}, {}
    local E = grove.eval.shapes
    local dets = {}
    for i = 1, B do
      dets[i] = E.detect(images, i)
      caps[i] = captions.generate(specs[i])
      kinds_out[i] = "match"
    end
    local turn = rand(#kinds)
    for i = 1, B do
      local neg, kind
      for t = 0, #kinds - 1 do
        local k = kinds[(turn + t - 1) % #kinds + 1]
        neg = J.mutate(specs[i], k, rand)
        -- a change must not make a held-out (shape, colour) pair: the
        -- training images never show one, so such captions would always be
        -- "no" and the judge would learn to refuse the pair, not to look
        if neg and heldout_objects(neg) > heldout_objects(specs[i]) then neg = nil end
        if neg then kind = k; turn = turn + t + 1; break end
      end
      if not neg then
        neg, kind = specs[(i + rand(math.max(1, B - 1)) - 1) % B + 1], "swap"
      end
      caps[B + i], kinds_out[B + i] = captions.generate(neg), kind
    end
    for r = 1, 2 * B do
      local i = (r - 1) % B + 1
      labels[r] = E.judge(dets[i], caps[r]) and 1 or 0
    end
    local categories = {}
    for r = 1, 2 * B do categories[r] = captions.check_spec(specs[(r - 1) % B + 1], 2).category end
    return { images = grove.cat({ images, images }, 1), captions = caps, labels = grove.tensor(labels, { dtype = "i64" }),
             label_list = labels, kinds = kinds_out, categories = categories }
  end

  -- Accuracy of a judge on pairs, by kind of change and by the image's
  -- prompt category: {per_kind = {kind = {correct =, total =, accuracy =}},
  -- per_category = {...}, overall =, total =}.
  function J.accuracy(judge, p)
    local probs = judge:score(p.images, p.captions)
    local per_kind, per_category, right, n = {}, {}, 0, 0
    local function count(t, key, ok)
      local e = t[key] or { correct = 0, total = 0 }
      t[key] = e
      e.total = e.total + 1
      if ok then e.correct = e.correct + 1 end
    end
    for r, kind in ipairs(p.kinds) do
      local ok = (probs[r] >= 0.5) == (p.label_list[r] == 1)
      count(per_kind, kind, ok)
      if p.categories then count(per_category, p.categories[r], ok) end
      if ok then right = right + 1 end
      n = n + 1
    end
    for _, t in ipairs { per_kind, per_category } do
      for _, e in pairs(t) do e.accuracy = e.correct / e.total end
    end
    return { per_kind = per_kind, per_category = per_category, overall = right / math.max(n, 1), total = n }
  end
end
