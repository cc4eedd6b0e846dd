-- The shapes data set (core/data/, lua/grove/data/) and its evaluator
-- (lua/grove/eval/shapes.lua): determinism, the caption grammar, the prompt
-- sets, the held-out split, the evaluator's calibration and its failures on
-- images that are wrong on purpose, and errors for bad options.
local spec = require "spec"
local ffi = require "ffi"

if not (grove.data and grove.data.shapes) then require "grove.data.shapes"(grove) end
if not (grove.eval and grove.eval.shapes) then require "grove.eval.shapes"(grove) end
local shapes, captions, E = grove.data.shapes, grove.data.captions, grove.eval.shapes

local function bytes(t)
  t = t:contiguous()
  return ffi.string(ffi.cast("const char *", t.p.data), t:numel() * (t:dtype() == "u8" and 1 or 4))
end

local function image_bytes(images, i)
  return bytes(images:select(1, i))
end

local function deep_eq(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not deep_eq(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function show(s)
  local parts = {}
  for _, o in ipairs(s.objects) do parts[#parts + 1] = (o.count or 1) .. " " .. tostring(o.color) .. " " .. o.shape end
  return (s.category or "?") .. ": " .. table.concat(parts, ", ") .. (s.relation and (" / " .. s.relation) or "")
end

-- Fraction of images that pass their captions.
local function pass_rate(images, caps)
  local r = E.score(images, caps)
  return r.counts and (function()
    local p, t = 0, 0
    for _, c in pairs(r.counts) do p, t = p + c.passed, t + c.total end
    return p / t
  end)(), r
end

spec.describe("shapes data set", function()
  spec.it("renders the same bits for the same seed, whatever the batching", function()
    local a = shapes{batch = 8, seed = 5}:next()
    local b = shapes{batch = 8, seed = 5}:next()
    spec.eq(bytes(a.images), bytes(b.images), "same seed, same batch")
    spec.assert(deep_eq(a.captions, b.captions), "same captions")
    -- sample i does not depend on the batch size
    local small = shapes{batch = 3, seed = 5}
    local n = 0
    for _, batch in small:take(3) do
      for i = 1, 3 do
        if n < 8 then
          n = n + 1
          spec.eq(image_bytes(batch.images, i), image_bytes(a.images, n), "sample " .. n)
          spec.eq(batch.captions[i], a.captions[n], "caption " .. n)
        end
      end
    end
    -- and a stream started at an index continues the same stream
    local later = shapes{batch = 2, seed = 5, start = 6}:next()
    spec.eq(image_bytes(later.images, 1), image_bytes(a.images, 7))
    spec.eq(later.index, 6)
  end)

  spec.it("draws different images for different indices and seeds", function()
    local a = shapes{batch = 16, seed = 1}:next()
    local seen = {}
    for i = 1, 16 do
      local k = image_bytes(a.images, i)
      spec.assert(not seen[k], "image " .. i .. " repeats an earlier one")
      seen[k] = true
    end
    local b = shapes{batch = 16, seed = 2}:next()
    spec.assert(bytes(a.images) ~= bytes(b.images), "seeds 1 and 2 give the same batch")
  end)

  spec.it("gives (B, H, W, 3) images in [-1, 1], background and palette colours exact", function()
    for _, size in ipairs{16, 32, 48, 128} do
      local b = shapes{batch = 2, seed = 3, size = size}:next()
      spec.assert(deep_eq(b.images:shape(), {2, size, size, 3}), "shape at size " .. size)
      spec.assert(b.images:min():item() >= -1 and b.images:max():item() <= 1, "range")
    end
    local b = shapes.draw({ { { shape = "square", color = "red", cx = 0.5, cy = 0.5, w = 0.5 } } }, {size = 32})
    local px = b:tolist()[1]
    local red, bg = shapes.palette.red, shapes.background
    for k = 1, 3 do
      spec.near(px[16][16][k], red[k] / 127.5 - 1, 1e-6, "inside the square")
      spec.near(px[1][1][k], bg[k] / 127.5 - 1, 1e-6, "background")
    end
    -- the u8 variant holds the same pixels
    local u = shapes{batch = 4, seed = 9, dtype = "u8"}:next().images
    local f = shapes{batch = 4, seed = 9}:next().images
    local back = ((f + 1) * 127.5 - u:float()):abs():max():item()
    spec.assert(back <= 0.5 + 1e-3, "u8 and f32 renders differ by " .. back)
  end)

  spec.it("has batches with captions, specs and object lists that agree", function()
    local ds = shapes{batch = 64, seed = 4}
    local b = ds:next()
    spec.eq(ds.position, 64)
    for i = 1, 64 do
      local parsed = assert(captions.parse(b.captions[i]))
      spec.assert(deep_eq(parsed, b.specs[i]), "caption '" .. b.captions[i] .. "' vs spec " .. show(b.specs[i]))
      local want = 0
      for _, o in ipairs(b.specs[i].objects) do want = want + o.count end
      spec.eq(#b.objects[i], want, "objects of '" .. b.captions[i] .. "'")
    end
  end)

  spec.it("iterates with take, and seeks", function()
    local ds = shapes{batch = 4, seed = 1}
    local steps = {}
    for step, batch in ds:take(3) do
      steps[#steps + 1] = step
      spec.eq(batch.index, (step - 1) * 4)
    end
    spec.assert(deep_eq(steps, {1, 2, 3}), "steps 1..3")
    spec.eq(ds:state().position, 12)
    local again = ds:seek(4):next()
    local ref = shapes{batch = 4, seed = 1, start = 4}:next()
    spec.eq(bytes(again.images), bytes(ref.images))
  end)

  spec.it("keeps held-out pairs out of the train split and in every heldout caption", function()
    local held = captions.heldout_pairs()
    spec.eq(#held, 4)
    local seen = {}
    for _, batch in shapes{batch = 250, seed = 21}:take(20) do
      for i, objs in ipairs(batch.objects) do
        for _, o in ipairs(objs) do
          spec.assert(not captions.is_heldout(o.shape, o.color),
                      "train sample shows a " .. o.color .. " " .. o.shape .. " ('" .. batch.captions[i] .. "')")
          seen[o.color .. " " .. o.shape] = true
        end
      end
    end
    local pairs_seen = 0
    for _ in pairs(seen) do pairs_seen = pairs_seen + 1 end
    spec.eq(pairs_seen, #captions.shapes * #captions.colors - #held, "train pairs drawn")
    local cats = {}
    for _, batch in shapes{batch = 250, seed = 22, split = "heldout"}:take(4) do
      for i, s in ipairs(batch.specs) do
        local named = false
        for _, o in ipairs(s.objects) do named = named or captions.is_heldout(o.shape, o.color) end
        spec.assert(named, "heldout caption '" .. batch.captions[i] .. "' names no held-out pair")
        cats[s.category] = true
      end
    end
    for _, c in ipairs{"counting", "colors", "position", "color_attr"} do spec.assert(cats[c], "heldout has " .. c) end
  end)

  spec.it("restricts the stream to the asked categories", function()
    local b = shapes{batch = 50, seed = 2, categories = {"counting", "position"}}:next()
    for _, s in ipairs(b.specs) do
      spec.assert(s.category == "counting" or s.category == "position", "got " .. s.category)
    end
  end)

  spec.it("rejects bad options", function()
    spec.raises(function() shapes{size = 8} end, "size must be an integer in [16, 128]")
    spec.raises(function() shapes{size = 129} end, "size must be an integer in [16, 128]")
    spec.raises(function() shapes{size = 32.5} end, "size must be an integer")
    spec.raises(function() shapes{batch = 0} end, "batch must be an integer >= 1")
    spec.raises(function() shapes{batch = -3} end, "batch must be an integer >= 1")
    spec.raises(function() shapes{split = "test"} end, "split must be \"train\" or \"heldout\"")
    spec.raises(function() shapes{categories = {"colours"}} end, "unknown category 'colours'")
    spec.raises(function() shapes{categories = {}} end, "non-empty list")
    spec.raises(function() shapes{split = "heldout", categories = {"single_object"}} end, "name no colour")
    spec.raises(function() shapes{dtype = "f16"} end, "dtype must be")
    spec.raises(function() shapes{bacth = 4} end, "unknown option 'bacth'")
    spec.raises(function() shapes{seed = -1} end, "seed must be")
    spec.raises(function() shapes{}:take(-1) end, "take must be")
    spec.raises(function() shapes.render({"a red hexagon"}) end, "expected a shape")
    spec.raises(function() shapes.render({ { objects = { { shape = "circle", count = 5 } } } }) end, "count 5 out of range")
    spec.raises(function() shapes.render({"a red circle"}, {size = 300}) end, "size must be")
    spec.raises(function() shapes.draw({ { { shape = "circle", color = "red", cx = 0.5, cy = 0.5, w = -1 } } }) end,
                "is not a box")
    spec.raises(function() shapes.draw({ { { shape = "blob", color = "red", cx = 0.5, cy = 0.5, w = 0.2 } } }) end,
                "out of range")
    spec.raises(function() shapes.draw({ { { shape = "circle", color = "red", cx = 0.5, w = 0.2 } } }) end,
                "cy must be a number")
  end)
end)

spec.describe("shapes captions", function()
  spec.it("parse(generate(spec)) == spec in every category", function()
    local n = 0
    for _, cat in ipairs(captions.categories) do
      local b = shapes{batch = 100, seed = 8, categories = {cat}}:next()
      for i, s in ipairs(b.specs) do
        spec.eq(s.category, cat)
        local text = captions.generate(s)
        spec.eq(text, b.captions[i])
        spec.assert(deep_eq(captions.parse(text), s), "round trip of '" .. text .. "'")
        n = n + 1
      end
    end
    -- forms the stream does not draw: colourless counting and position, colour on one phrase
    local extra = {
      { category = "counting", objects = { { shape = "circle", count = 3 } } },
      { category = "position", objects = { { shape = "circle", count = 1 }, { shape = "square", count = 1 } }, relation = "above" },
      { category = "color_attr", objects = { { shape = "triangle", color = "orange", count = 1 }, { shape = "square", count = 1 } } },
      { category = "position", objects = { { shape = "diamond", color = "purple", count = 2 }, { shape = "circle", color = "yellow", count = 1 } }, relation = "right of" },
    }
    for _, s in ipairs(extra) do
      spec.assert(deep_eq(captions.parse(captions.generate(s)), s), "round trip of " .. show(s))
    end
    spec.assert(n == 600)
  end)

  spec.it("writes the expected captions", function()
    local cases = {
      { { objects = { { shape = "circle", count = 1 } } }, "a circle" },
      { { objects = { { shape = "circle", color = "orange", count = 1 } } }, "an orange circle" },
      { { objects = { { shape = "triangle", color = "yellow", count = 3 } } }, "three yellow triangles" },
      { { objects = { { shape = "square", color = "blue" }, { shape = "triangle", color = "green" } } },
        "a blue square and a green triangle" },
      { { objects = { { shape = "circle", color = "red" }, { shape = "square", color = "blue" } }, relation = "left of" },
        "a red circle left of a blue square" },
    }
    for _, c in ipairs(cases) do spec.eq(captions.generate(c[1]), c[2]) end
  end)

  spec.it("reads GenEval's phrasing and rejects what is not in the grammar", function()
    local s = assert(captions.parse("A photo of a red circle to the left of a blue square."))
    spec.eq(s.category, "position")
    spec.eq(s.relation, "left of")
    spec.eq(s.objects[2].color, "blue")
    spec.eq(assert(captions.parse("a circle")).category, "single_object")
    spec.eq(assert(captions.parse("two circles and a square")).category, "two_object")
    local bad = {
      { "a red", "expected a shape" }, { "three red circle", "plural shape" }, { "a circles", "expected a shape" },
      { "five circles", "expected 'a', 'an' or a number" }, { "a circle near a square", "expected 'and', a relation" },
      { "a circle and", "the end" }, { "a circle and a square above", "unexpected 'above'" }, { "", "the end" },
    }
    for _, b in ipairs(bad) do
      local got, err = captions.parse(b[1])
      spec.assert(got == nil, "'" .. b[1] .. "' parsed")
      spec.assert(err:find(b[2], 1, true), "'" .. b[1] .. "': " .. err)
    end
    spec.raises(function() captions.generate({ objects = { { shape = "hexagon" } } }) end, "unknown shape 'hexagon'")
    spec.raises(function() captions.generate({ objects = { { shape = "circle", color = "pink" } } }) end, "unknown colour 'pink'")
    spec.raises(function() captions.generate({ objects = { { shape = "circle" } }, relation = "above" }) end, "two phrases")
    spec.raises(function() captions.generate({ objects = { { shape = "circle" }, { shape = "square" } }, relation = "near" }) end,
                "unknown relation 'near'")
    spec.raises(function() captions.generate({ category = "colors", objects = { { shape = "circle" } } }) end,
                "its form is single_object")
    spec.raises(function() captions.generate({ category = "shapes", objects = { { shape = "circle" } } }) end,
                "unknown category 'shapes'")
  end)

  spec.it("ships the prompt sets the generator writes", function()
    for _, name in ipairs(captions.prompt_set_names) do
      local file = shapes.prompts(name)
      local gen = captions.prompt_set(name)
      spec.assert(#file >= 50, name .. " has " .. #file .. " prompts")
      spec.assert(deep_eq(file, gen), name .. ".txt differs from captions.prompt_set('" .. name .. "'); regenerate it")
      for _, p in ipairs(file) do
        local s = assert(captions.parse(p))
        local held = false
        for _, o in ipairs(s.objects) do held = held or captions.is_heldout(o.shape, o.color) end
        if name == "heldout" then
          spec.assert(held, "heldout prompt '" .. p .. "' names no held-out pair")
        else
          spec.eq(s.category, name, "'" .. p .. "'")
          spec.assert(not held, name .. " prompt '" .. p .. "' names a held-out pair")
        end
      end
    end
    spec.raises(function() shapes.prompts("nope") end, "no prompt set 'nope'")
  end)
end)

spec.describe("shapes evaluator", function()
  spec.it("finds the drawn objects where they are", function()
    for _, size in ipairs{32, 64} do
      local b = shapes{batch = 40, seed = 31, size = size}:next()
      for i = 1, 40 do
        local dets = E.detect(b.images, i)
        local objs = b.objects[i]
        spec.eq(#dets, #objs, "objects of '" .. b.captions[i] .. "'")
        for _, o in ipairs(objs) do
          local hit = false
          for _, d in ipairs(dets) do
            if d.shape == o.shape and d.color == o.color and math.abs(d.x - o.cx * size) < 0.1 * size
               and math.abs(d.y - o.cy * size) < 0.1 * size then hit = true end
          end
          spec.assert(hit, "no detection of the " .. o.color .. " " .. o.shape .. " in '" .. b.captions[i] .. "'")
        end
      end
    end
    -- a square's centroid and area, exactly
    local img = shapes.draw({ { { shape = "square", color = "blue", cx = 0.5, cy = 0.25, w = 0.25 } } }, {size = 64})
    local d = E.detect(img)
    spec.eq(#d, 1)
    spec.near(d[1].x, 32, 1e-3)
    spec.near(d[1].y, 16, 1e-3)
    spec.near(d[1].area, 256, 1e-3)
    spec.assert(deep_eq(d[1].box, {24, 8, 40, 24}), "box")
    spec.eq(#E.detect(shapes.draw({ {} })), 0, "an empty scene")
  end)

  -- Calibration: the data set's own renders pass their captions.
  for _, size in ipairs{32, 64} do
    spec.it("passes >= 98% of its own renders in every category at " .. size .. "x" .. size, function()
      for _, split in ipairs{"train", "heldout"} do
        local cats = split == "train" and captions.categories or {"counting", "colors", "position", "color_attr"}
        for _, cat in ipairs(cats) do
          local b = shapes{batch = 300, seed = 77, size = size, categories = {cat}, split = split}:next()
          local r = E.score(b.images, b.captions)
          spec.assert(r.per_category[cat] >= 0.98, string.format("%s %s: %.3f", split, cat, r.per_category[cat]))
        end
      end
      -- and the shipped prompt sets, each prompt drawn by shapes.render
      for _, name in ipairs(captions.prompt_set_names) do
        local prompts = shapes.prompts(name)
        local imgs = shapes.render(prompts, {size = size, seed = 5})
        local rate = pass_rate(imgs, prompts)
        spec.assert(rate >= 0.98, string.format("prompt set %s: %.3f", name, rate))
      end
    end)
  end

  -- Wrong on purpose: draw a changed spec and judge it by the original
  -- caption (grove.eval.shapes.calibrate, lua/grove/eval/negatives.lua).
  spec.it("fails images that are wrong on purpose, and passes extra objects outside counting", function()
    local r = E.calibrate { sizes = { 32, 64 }, n = 100, seed = 91 }
    local tried = {}
    for _, row in ipairs(r.rows) do
      spec.assert(row.clean.passed >= 0.98 * row.clean.total, string.format("%dpx %s own renders: %d/%d", row.size,
                  row.category, row.clean.passed, row.clean.total))
      if row.extra then
        spec.assert(row.extra.passed >= 0.98 * row.extra.total, string.format("%dpx %s with extra objects: %d/%d",
                    row.size, row.category, row.extra.passed, row.extra.total))
      end
      for kind, t in pairs(row.false_pass) do
        tried[kind] = (tried[kind] or 0) + t.total
        spec.assert(t.passed <= 0.02 * t.total, string.format("%dpx %s with wrong %s: %d/%d still pass", row.size,
                    row.category, kind, t.passed, t.total))
      end
    end
    for _, kind in ipairs(E.negative_kinds) do
      spec.assert((tried[kind] or 0) >= 100, "hard negative " .. kind .. " ran " .. tostring(tried[kind]))
    end
    spec.assert(E.format_calibration(r):match("| 64 | counting | 100/100 |"), "the table")
  end)

  spec.it("judges GenEval-style", function()
    local img = shapes.draw({ {
      { shape = "circle", color = "red", cx = 0.25, cy = 0.5, w = 0.3 },
      { shape = "square", color = "blue", cx = 0.75, cy = 0.5, w = 0.3 },
    } })
    local function check(p) return (E.check(img, p)) end
    spec.assert(check("a circle"), "single object, any colour")
    spec.assert(check("a red circle"), "colour")
    spec.assert(not check("a blue circle"), "wrong colour")
    spec.assert(check("a circle and a square"), "two objects")
    spec.assert(check("a red circle left of a blue square"), "position")
    spec.assert(check("a blue square right of a red circle"), "position, reversed")
    spec.assert(not check("a red circle right of a blue square"), "wrong side")
    spec.assert(not check("a red circle above a blue square"), "in line is not above")
    spec.assert(not check("two red circles"), "counting is exact")
    spec.assert(check("a red circle and a blue square"), "colour attribution")
    spec.assert(not check("a blue circle and a red square"), "swapped colours")
    local ok, why = E.check(img, "a triangle")
    spec.assert(not ok and why:find("expected 1 triangle, found 0", 1, true), why)
    local dets = E.detect(img)
    spec.assert(E.judge(dets, "a red circle"), "judge from detections")
    spec.assert(E.relation_strength("left of", dets[1].box, dets[2].box) ~= 0, "relation strength")

    -- counting reads an uncluttered image only; extra objects fail it
    local two = shapes.draw({ {
      { shape = "circle", color = "red", cx = 0.25, cy = 0.3, w = 0.25 },
      { shape = "circle", color = "red", cx = 0.75, cy = 0.3, w = 0.25 },
      { shape = "square", color = "blue", cx = 0.5, cy = 0.75, w = 0.25 },
    } })
    spec.assert(E.check(two, "a red circle"), "an extra object does not fail single-object")
    local pass, reason = E.check(two, "two red circles")
    spec.assert(not pass and reason:find("and nothing else", 1, true), tostring(reason))
    -- position: the most confident detections, not any pair that qualifies
    local h = function(x0, y0, x1, y1, score, shape) return { shape = shape, color = "red", x = (x0 + x1) / 2,
      y = (y0 + y1) / 2, area = 1, score = score, box = { x0, y0, x1, y1 } } end
    local detections = { h(0, 0, 4, 4, 0.9, "circle"), h(20, 0, 24, 4, 0.95, "square"), h(28, 0, 31, 4, 0.6, "square") }
    spec.assert(E.judge(detections, "a red circle left of a red square"), "the best square is right of the circle")
    detections[3].score = 0.99 -- now the square right of the circle is still the best: passes
    spec.assert(E.judge(detections, "a red circle left of a red square"), "still right")
    local behind = { h(20, 0, 24, 4, 0.9, "circle"), h(0, 0, 4, 4, 0.95, "square"), h(28, 0, 31, 4, 0.6, "square") }
    spec.assert(not E.judge(behind, "a red circle left of a red square"),
                "a less confident square to the right does not rescue the pair")
  end)

  spec.it("scores per category and overall", function()
    local prompts = { "a circle", "a red circle", "a blue square", "two red circles" }
    local imgs = shapes.render({ "a circle", "a red circle", "a red circle", "two red circles" }, {seed = 4})
    local r = E.score(imgs, prompts)
    spec.eq(r.per_category.single_object, 1)
    spec.eq(r.per_category.colors, 0.5)
    spec.eq(r.per_category.counting, 1)
    spec.near(r.overall, 2.5 / 3, 1e-12)
    spec.eq(#r.results, 4)
    spec.eq(r.results[3].pass, false)
    spec.eq(r.counts.colors.total, 2)
    spec.assert(E.format(r):find("overall", 1, true), "table")
    -- a list of image tensors counts its images in order
    local r2 = E.score({ imgs:narrow(1, 1, 2), imgs:narrow(1, 3, 2) }, prompts)
    spec.eq(r2.overall, r.overall)
  end)

  spec.it("rejects bad images and prompts", function()
    local img = shapes{batch = 2}:next().images
    spec.raises(function() E.detect(grove.zeros{32, 32}) end, "expected (B, H, W, 3) or (H, W, 3)")
    spec.raises(function() E.detect(grove.zeros{1, 32, 32, 4}) end, "3 channels")
    spec.raises(function() E.detect(grove.zeros({1, 32, 32, 3}, {dtype = "i64"})) end, "expected f32")
    spec.raises(function() E.detect(grove.zeros{1, 4, 4, 3}) end, "[8, 1024]")
    spec.raises(function() E.detect(img, 3) end, "out of range")
    spec.raises(function() E.detect("image") end, "expected an image tensor")
    spec.raises(function() E.check(img, "a red hexagon") end, "expected a shape")
    spec.raises(function() E.score(img, { "a circle" }) end, "2 images for 1 prompts")
  end)
end)
