-- Hard negatives of the shapes evaluator, and its calibration: how often it
-- passes the data set's own renders (it should), and how often it passes a
-- scene drawn with one thing wrong and judged by the original caption (a
-- false pass).
--
--   grove.eval.shapes.negatives[kind](spec) -> a changed copy, or nil when the
--     kind does not apply to the spec (kinds: shape, color, count, fewer,
--     position, missing, swap_colors, clutter)
--   grove.eval.shapes.extra_objects(spec) -> the spec with two objects of an
--     unnamed shape added: outside counting such a scene should still pass
--   grove.eval.shapes.calibrate{sizes = {32, 64}, n = 300, seed = 91}
--     -> {rows = {{size =, category =, clean = {passed =, total =},
--                  extra = {passed =, total =}, false_pass = {kind = {passed =, total =}}}}}
--   grove.eval.shapes.format_calibration(r) -> the markdown table
return function(grove)
  local E = grove.eval.shapes
  local captions = grove.data.captions
  local shapes = grove.data.shapes

  local function unused(list, used)
    for _, v in ipairs(list) do if not used[v] then return v end end
  end
  local function copy(s)
    local c = { relation = s.relation, objects = {} }
    for i, o in ipairs(s.objects) do c.objects[i] = { shape = o.shape, color = o.color, count = o.count } end
    return c
  end
  local opposite = { ["left of"] = "right of", ["right of"] = "left of", above = "below", below = "above" }

  local kinds = {
    -- the first phrase's shape replaced by one the caption does not name
    shape = function(s)
      local used = {}
      for _, o in ipairs(s.objects) do used[o.shape] = true end
      s.objects[1].shape = unused(captions.shapes, used)
      return s
    end,
    -- the first phrase's colour replaced by one the caption does not name
    color = function(s)
      if not s.objects[1].color then return nil end
      local used = {}
      for _, o in ipairs(s.objects) do if o.color then used[o.color] = true end end
      s.objects[1].color = unused(captions.colors, used)
      return s
    end,
    -- one object more / fewer than a counting caption asks
    count = function(s)
      if #s.objects ~= 1 or s.objects[1].count < 2 then return nil end
      local o = s.objects[1]
      o.count = o.count == captions.max_count and o.count - 1 or o.count + 1
      return s
    end,
    fewer = function(s)
      if #s.objects ~= 1 or s.objects[1].count < 2 then return nil end
      s.objects[1].count = s.objects[1].count - 1
      return s
    end,
    -- the opposite relation
    position = function(s)
      if not s.relation then return nil end
      s.relation = opposite[s.relation]
      return s
    end,
    -- the second object left out
    missing = function(s)
      if #s.objects ~= 2 or s.relation then return nil end
      s.objects[2] = nil
      return s
    end,
    -- two coloured phrases with their colours exchanged
    swap_colors = function(s)
      local a, b = s.objects[1], s.objects[2]
      if not (a and b and a.color and b.color) or a.color == b.color or a.shape == b.shape then return nil end
      a.color, b.color = b.color, a.color
      return s
    end,
    -- a counting scene with two more objects of another shape
    clutter = function(s)
      if #s.objects ~= 1 or s.objects[1].count < 2 then return nil end
      local extra = { shape = unused(captions.shapes, { [s.objects[1].shape] = true }), count = 2 }
      s.objects[2] = extra
      return s
    end,
  }
  local order = { "shape", "color", "count", "fewer", "position", "missing", "swap_colors", "clutter" }

  E.negatives = {}
  for k, f in pairs(kinds) do E.negatives[k] = function(spec) return f(copy(spec)) end end
  E.negative_kinds = order

  function E.extra_objects(spec)
    if #spec.objects ~= 1 then return nil end
    local s = copy(spec)
    s.objects[2] = { shape = unused(captions.shapes, { [s.objects[1].shape] = true }), count = 2 }
    return s
  end

  local function tally(images, prompts)
    local passed = 0
    for i = 1, #prompts do if E.check(images, prompts[i], i) then passed = passed + 1 end end
    return { passed = passed, total = #prompts }
  end

  function E.calibrate(opts)
    opts = opts or {}
    local sizes, n, seed = opts.sizes or { 32, 64 }, opts.n or 300, opts.seed or 91
    local rows = {}
    for _, size in ipairs(sizes) do
      for _, cat in ipairs(captions.categories) do
        local b = shapes { batch = n, seed = seed, size = size, categories = { cat } }:next()
        local row = { size = size, category = cat, clean = tally(b.images, b.captions), false_pass = {} }
        for _, kind in ipairs(order) do
          local wrong, caps = {}, {}
          for i, s in ipairs(b.specs) do
            local m = E.negatives[kind](s)
            if m then wrong[#wrong + 1] = m; caps[#caps + 1] = b.captions[i] end
          end
          if #wrong > 0 then
            local w = shapes.render(wrong, { size = size, seed = seed + 1 })
            row.false_pass[kind] = tally(w, caps)
          end
        end
        local more, caps = {}, {}
        for i, s in ipairs(b.specs) do
          local m = cat ~= "counting" and E.extra_objects(s)
          if m then more[#more + 1] = m; caps[#caps + 1] = b.captions[i] end
        end
        if #more > 0 then
          local w = shapes.render(more, { size = size, seed = seed + 2 })
          row.extra = tally(w, caps)
        end
        rows[#rows + 1] = row
      end
    end
    return { rows = rows, n = n, seed = seed }
  end

  local function cell(t) return t and string.format("%d/%d", t.passed, t.total) or "" end

  function E.format_calibration(r)
    local head = { "size", "category", "own renders pass", "extra objects pass" }
    for _, k in ipairs(order) do head[#head + 1] = k end
    local lines = { "| " .. table.concat(head, " | ") .. " |", "|" .. string.rep("---|", #head) }
    for _, row in ipairs(r.rows) do
      local cells = { tostring(row.size), row.category, cell(row.clean), cell(row.extra) }
      for _, k in ipairs(order) do cells[#cells + 1] = cell(row.false_pass[k]) end
      lines[#lines + 1] = "| " .. table.concat(cells, " | ") .. " |"
    end
    return table.concat(lines, "\n")
  end
end
