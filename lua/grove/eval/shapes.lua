-- The shapes evaluator: judges whether images show what their captions ask,
-- GenEval-style, from the analytic detector of core/data/detect.c.
--
--   grove.eval.shapes.detect(images, i) -> {{shape =, color =, x =, y =, area =,
--       box = {x0, y0, x1, y1}, score =}, ...}   (pixels; largest first;
--       shape "unknown" when no template fits; i is 1-based, default 1)
--   grove.eval.shapes.check(images, prompt_or_spec, i) -> pass, reason
--   grove.eval.shapes.judge(detections, prompt_or_spec) -> pass, reason
--   grove.eval.shapes.score(images, prompts) -> {per_category = {...}, overall =,
--       counts = {category = {passed =, total =}}, results = {{prompt =, category =, pass =, reason =}...}}
--   grove.eval.shapes.format(result) -> the score table as text
--
-- Rules (docs/shapes.md): every phrase needs at least `count` detected
-- objects of its shape, and of its colour when it names one; a counting
-- caption needs exactly that many and nothing else in the image; a
-- position caption needs the `count` most confident detections of its
-- first phrase in GenEval's relation (centre offset shrunk by 0.1 × the
-- boxes' extents, normalised, the relation's component above 0.5) to the
-- most confident detection of the second. Outside counting, other objects
-- in the image do not matter, as in GenEval.
local ffi = require "ffi"

return function(grove)
  local C = grove.C
  grove.data = grove.data or {}
  if not grove.data.captions then require "grove.data.captions"(grove) end
  local captions = grove.data.captions
  grove.eval = grove.eval or {}
  local E = {}
  grove.eval.shapes = E

  local max_det = 64
  local dets_c = ffi.new("grove_shapes_detection[?]", max_det)

  local function detections(images, i, level)
    if not grove.is_tensor(images) then error("shapes.detect: expected an image tensor, got " .. type(images), level + 1) end
    i = i or 1
    local n = C.grove_shapes_detect(images.p, i - 1, dets_c, max_det)
    if n < 0 then grove.fail(level + 1) end
    local out = {}
    for k = 0, n - 1 do
      local d = dets_c[k]
      out[k + 1] = {
        shape = d.shape >= 0 and captions.shapes[d.shape + 1] or "unknown",
        color = captions.colors[d.color + 1],
        x = d.cx, y = d.cy, area = d.area, score = d.score,
        box = { d.x0, d.y0, d.x1, d.y1 },
      }
    end
    return out
  end

  function E.detect(images, i) return detections(images, i, 2) end

  -- GenEval's relative position of box a to box b (see core/data/shapes.h).
  function E.relation_strength(relation, a, b)
    local ox, oy = (a[1] + a[3] - b[1] - b[3]) / 2, (a[2] + a[4] - b[2] - b[4]) / 2
    local ex, ey = (a[3] - a[1]) + (b[3] - b[1]), (a[4] - a[2]) + (b[4] - b[2])
    local function shrink(o, e)
      local m = math.abs(o) - 0.1 * e
      if m <= 0 then return 0 end
      return o < 0 and -m or m
    end
    local rx, ry = shrink(ox, ex), shrink(oy, ey)
    if math.abs(rx) < 1e-3 and math.abs(ry) < 1e-3 then return 0 end
    local len = math.sqrt(ox * ox + oy * oy)
    local dx, dy = rx / len, ry / len
    if relation == "left of" then return -dx
    elseif relation == "right of" then return dx
    elseif relation == "above" then return -dy
    else return dy end
  end

  local function as_spec(prompt, level)
    if type(prompt) == "string" then
      local spec, err = captions.parse(prompt)
      if not spec then error(err, level + 1) end
      return spec
    end
    return captions.check_spec(prompt, level + 1)
  end

  local function describe(o, n)
    local noun = n == 1 and o.shape or o.shape .. "s"
    return n .. " " .. (o.color and (o.color .. " ") or "") .. noun
  end

  local function summary(dets)
    if #dets == 0 then return "nothing detected" end
    local counts, order = {}, {}
    for _, d in ipairs(dets) do
      local k = d.color .. " " .. d.shape
      if not counts[k] then counts[k] = 0; order[#order + 1] = k end
      counts[k] = counts[k] + 1
    end
    local parts = {}
    for _, k in ipairs(order) do parts[#parts + 1] = counts[k] .. " " .. k .. (counts[k] > 1 and "s" or "") end
    return "detected " .. table.concat(parts, ", ")
  end

  local function matching(dets, o)
    local out = {}
    for _, d in ipairs(dets) do
      if d.shape == o.shape and (o.color == nil or d.color == o.color) then out[#out + 1] = d end
    end
    return out
  end

  -- The n most confident (highest template IoU) of a list of detections.
  local function most_confident(list, n)
    local sorted = {}
    for i, d in ipairs(list) do sorted[i] = d end
    table.sort(sorted, function(a, b) return a.score > b.score end)
    local out = {}
    for i = 1, math.min(n, #sorted) do out[i] = sorted[i] end
    return out
  end

  local function judge(dets, spec)
    local found = {}
    for k, o in ipairs(spec.objects) do
      found[k] = matching(dets, o)
      local n = #found[k]
      if spec.category == "counting" then
        if n ~= o.count then
          return false, "expected exactly " .. describe(o, o.count) .. ", found " .. n .. " (" .. summary(dets) .. ")"
        end
        -- a count is only read off an uncluttered image: anything else
        -- detected (another shape, an unreadable blob) fails it
        if #dets > n then
          return false, "expected exactly " .. describe(o, o.count) .. " and nothing else (" .. summary(dets) .. ")"
        end
      elseif n < o.count then
        return false, "expected " .. describe(o, o.count) .. ", found " .. n .. " (" .. summary(dets) .. ")"
      end
    end
    if spec.relation then
      -- GenEval's rule: the named objects' most confident detections, not
      -- any pair that happens to qualify
      local a, b = spec.objects[1], spec.objects[2]
      local ref = most_confident(found[2], 1)[1]
      local holding = 0
      for _, da in ipairs(most_confident(found[1], a.count)) do
        if E.relation_strength(spec.relation, da.box, ref.box) > 0.5 then holding = holding + 1 end
      end
      if holding < a.count then
        return false, "expected " .. describe(a, a.count) .. " " .. spec.relation .. " " .. describe(b, b.count)
                      .. ", found " .. holding .. " so placed (" .. summary(dets) .. ")"
      end
    end
    return true, "ok (" .. summary(dets) .. ")"
  end

  function E.judge(dets, prompt) return judge(dets, as_spec(prompt, 2)) end

  function E.check(images, prompt, i)
    local spec = as_spec(prompt, 2)
    return judge(detections(images, i, 2), spec)
  end

  -- images: a (B, H, W, 3) tensor or a list of such tensors (their images
  -- taken in order); prompts: one caption or spec per image.
  function E.score(images, prompts)
    if type(prompts) ~= "table" then error("shapes.score: expected a list of prompts, got " .. type(prompts), 2) end
    local list = grove.is_tensor(images) and { images } or images
    if type(list) ~= "table" then error("shapes.score: expected an image tensor or a list of them", 2) end
    local refs = {}
    for _, t in ipairs(list) do
      if not grove.is_tensor(t) then error("shapes.score: expected image tensors, got " .. type(t), 2) end
      local b = t:dim() == 4 and t:size(1) or 1
      for i = 1, b do refs[#refs + 1] = { t, i } end
    end
    if #refs ~= #prompts then
      error("shapes.score: " .. #refs .. " images for " .. #prompts .. " prompts", 2)
    end
    local results, counts = {}, {}
    for k, p in ipairs(prompts) do
      local spec = as_spec(p, 2)
      local ok, reason = judge(detections(refs[k][1], refs[k][2], 2), spec)
      local cat = spec.category
      results[k] = { prompt = type(p) == "string" and p or captions.generate(spec), category = cat, pass = ok,
                     reason = reason }
      local c = counts[cat] or { passed = 0, total = 0 }
      counts[cat] = c
      c.total = c.total + 1
      if ok then c.passed = c.passed + 1 end
    end
    local per, sum, ncat = {}, 0, 0
    for _, cat in ipairs(captions.categories) do
      local c = counts[cat]
      if c then
        per[cat] = c.passed / c.total
        sum, ncat = sum + per[cat], ncat + 1
      end
    end
    -- GenEval's overall score: the mean over categories, not over prompts.
    return { per_category = per, counts = counts, overall = ncat > 0 and sum / ncat or 0, results = results }
  end

  function E.format(r)
    local lines = { string.format("%-14s %7s %9s", "category", "score", "passed") }
    for _, cat in ipairs(captions.categories) do
      local c = r.counts[cat]
      if c then lines[#lines + 1] = string.format("%-14s %7.3f %5d/%-4d", cat, r.per_category[cat], c.passed, c.total) end
    end
    lines[#lines + 1] = string.format("%-14s %7.3f", "overall", r.overall)
    return table.concat(lines, "\n")
  end
end
