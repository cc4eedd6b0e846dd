-- The caption grammar of the shapes data set: specs to captions and back,
-- and the fixed evaluation prompt sets.
--
-- A spec says what a caption asks for:
--   { category = "position",
--     objects = { {shape = "circle", color = "red", count = 1},
--                 {shape = "square", color = "blue", count = 1} },
--     relation = "left of" }
-- color is nil where the caption names none (any colour will do).
--
-- Grammar (lower case; a leading "a photo of" and a final "." are ignored):
--   caption  := phrase | phrase "and" phrase | phrase relation phrase
--   phrase   := ("a" | "an" | "one") [colour] shape
--             | ("two" | "three" | "four") [colour] shapes
--   relation := "left of" | "right of" | "above" | "below"
--               ("to the left of", "to the right of" also read)
-- The category follows from the form, as in GenEval:
--   one phrase of one object: single_object without a colour, colors with one
--   one phrase of 2-4 objects: counting ("three yellow circles")
--   two phrases joined by "and": two_object without colours, color_attr with
--   two phrases joined by a relation: position
--
--   grove.data.captions.generate(spec) -> "a red circle left of a blue square"
--   grove.data.captions.parse(text)    -> spec, or nil and a message
--   grove.data.captions.prompt_set(name) -> the prompts of an evaluation set
--   grove.data.captions.write_prompt_sets(dir) writes them all (data/shapes/prompts)
local ffi = require "ffi"

return function(grove)
  local C = grove.C
  grove.data = grove.data or {}
  local M = {}
  grove.data.captions = M

  local function names(kind)
    local list, index = {}, {}
    for i = 0, C.grove_shapes_count(kind) - 1 do
      local n = ffi.string(C.grove_shapes_name(kind, i))
      list[i + 1] = n
      index[n] = i
    end
    return list, index
  end
  M.shapes, M.shape_index = names(C.GROVE_SHAPES_SHAPE)
  M.colors, M.color_index = names(C.GROVE_SHAPES_COLOR)
  M.categories, M.category_index = names(C.GROVE_SHAPES_CATEGORY)
  M.relations, M.relation_index = names(C.GROVE_SHAPES_RELATION)
  M.max_count = 4

  local plural, singular = {}, {}
  for _, s in ipairs(M.shapes) do
    plural[s] = s .. "s"
    singular[s .. "s"] = s
  end
  local number_words = { "one", "two", "three", "four" }
  local numbers = { a = 1, an = 1, one = 1, two = 2, three = 3, four = 4 }

  function M.is_heldout(shape, color)
    if color == nil then return false end
    return C.grove_shapes_heldout(M.shape_index[shape], M.color_index[color])
  end

  -- The held-out (shape, colour) pairs, as {shape =, color =} tables.
  function M.heldout_pairs()
    local out = {}
    for _, s in ipairs(M.shapes) do
      for _, c in ipairs(M.colors) do
        if M.is_heldout(s, c) then out[#out + 1] = { shape = s, color = c } end
      end
    end
    return out
  end

  -- The category a spec's form gives (see the grammar above).
  function M.category_of(spec)
    local objs = spec.objects
    if #objs == 1 then
      if objs[1].count > 1 then return "counting" end
      return objs[1].color and "colors" or "single_object"
    end
    if spec.relation then return "position" end
    return (objs[1].color or objs[2].color) and "color_attr" or "two_object"
  end

  -- Checks a spec's fields; returns it with category filled in when absent,
  -- or raises an error naming the problem.
  function M.check_spec(spec, level)
    level = (level or 1) + 1
    if type(spec) ~= "table" then error("captions: expected a spec table, got " .. type(spec), level) end
    local objs = spec.objects
    if type(objs) ~= "table" or #objs < 1 or #objs > 2 then
      error("captions: spec.objects must list 1 or 2 phrases", level)
    end
    local total = 0
    for i, o in ipairs(objs) do
      if not M.shape_index[o.shape] then
        error("captions: phrase " .. i .. ": unknown shape '" .. tostring(o.shape) .. "' (expected one of "
              .. table.concat(M.shapes, ", ") .. ")", level)
      end
      if o.color ~= nil and not M.color_index[o.color] then
        error("captions: phrase " .. i .. ": unknown colour '" .. tostring(o.color) .. "' (expected one of "
              .. table.concat(M.colors, ", ") .. ")", level)
      end
      local n = o.count or 1
      if type(n) ~= "number" or n % 1 ~= 0 or n < 1 or n > M.max_count then
        error("captions: phrase " .. i .. ": count " .. tostring(o.count) .. " out of range [1, " .. M.max_count .. "]", level)
      end
      total = total + n
    end
    if spec.relation ~= nil then
      if not M.relation_index[spec.relation] then
        error("captions: unknown relation '" .. tostring(spec.relation) .. "' (expected one of "
              .. table.concat(M.relations, ", ") .. ")", level)
      end
      if #objs ~= 2 then error("captions: a relation needs two phrases", level) end
    end
    if spec.category ~= nil and not M.category_index[spec.category] then
      error("captions: unknown category '" .. tostring(spec.category) .. "' (expected one of "
            .. table.concat(M.categories, ", ") .. ")", level)
    end
    local canon = { objects = {}, relation = spec.relation }
    for i, o in ipairs(objs) do canon.objects[i] = { shape = o.shape, color = o.color, count = o.count or 1 } end
    local form = M.category_of(canon)
    if spec.category ~= nil and spec.category ~= form then
      error("captions: a spec of category " .. spec.category .. " cannot say what this one does (its form is "
            .. form .. ")", level)
    end
    canon.category = form
    return canon
  end

  local function phrase(o)
    local n = o.count or 1
    local noun = n == 1 and o.shape or plural[o.shape]
    local body = o.color and (o.color .. " " .. noun) or noun
    if n > 1 then return number_words[n] .. " " .. body end
    return (body:match("^[aeiou]") and "an " or "a ") .. body
  end

  function M.generate(spec)
    spec = M.check_spec(spec, 2)
    local o = spec.objects
    if #o == 1 then return phrase(o[1]) end
    return phrase(o[1]) .. " " .. (spec.relation or "and") .. " " .. phrase(o[2])
  end

  -- Reads one phrase at token position i; returns the object and the next position.
  local function read_phrase(tok, i)
    local det = tok[i]
    local count = numbers[det or ""]
    if not count then
      return nil, "expected 'a', 'an' or a number (one to four) at word " .. i .. ", got " ..
                  (det and ("'" .. det .. "'") or "the end")
    end
    i = i + 1
    local color
    if M.color_index[tok[i] or ""] then color = tok[i]; i = i + 1 end
    local word = tok[i]
    local shape = count == 1 and (M.shape_index[word or ""] and word) or (count > 1 and singular[word or ""])
    if not shape then
      local want = count == 1 and "a shape (" .. table.concat(M.shapes, ", ") .. ")"
                   or "a plural shape (circles, squares, ...)"
      return nil, "expected " .. want .. " at word " .. i .. ", got " .. (word and ("'" .. word .. "'") or "the end")
    end
    return { shape = shape, color = color, count = count }, i + 1
  end

  local relation_forms = {
    { { "left", "of" }, "left of" }, { { "right", "of" }, "right of" },
    { { "to", "the", "left", "of" }, "left of" }, { { "to", "the", "right", "of" }, "right of" },
    { { "above" }, "above" }, { { "below" }, "below" },
  }

  local function read_relation(tok, i)
    for _, f in ipairs(relation_forms) do
      local words, ok = f[1], true
      for k = 1, #words do
        if tok[i + k - 1] ~= words[k] then ok = false; break end
      end
      if ok then return f[2], i + #words end
    end
  end

  function M.parse(text)
    if type(text) ~= "string" then return nil, "captions: expected a caption string, got " .. type(text) end
    local s = text:lower():gsub("[%.!]%s*$", "")
    local tok = {}
    for w in s:gmatch("%S+") do tok[#tok + 1] = w end
    local i = 1
    if tok[1] == "a" and tok[2] == "photo" and tok[3] == "of" then i = 4 end
    local function fail(msg) return nil, "captions: '" .. text .. "': " .. msg end
    local a, b, rel
    local nxt
    a, nxt = read_phrase(tok, i)
    if not a then return fail(nxt) end
    i = nxt
    if tok[i] ~= nil then
      if tok[i] == "and" then
        i = i + 1
      else
        rel, i = read_relation(tok, i)
        if not rel then
          return fail("expected 'and', a relation (" .. table.concat(M.relations, ", ") .. ") or the end at word "
                      .. nxt .. ", got '" .. tok[nxt] .. "'")
        end
      end
      b, nxt = read_phrase(tok, i)
      if not b then return fail(nxt) end
      i = nxt
      if tok[i] ~= nil then return fail("unexpected '" .. tok[i] .. "' after the second phrase") end
    end
    local spec = { objects = { a, b }, relation = rel }
    spec.category = M.category_of(spec)
    return spec
  end

  -- ---- fixed evaluation prompt sets ---------------------------------------
  -- Deterministic: every list is built in a fixed order and shuffled with
  -- Philox keyed by the set's name, so the files can be regenerated exactly.
  -- Where a category has fewer distinct prompts than the set's size
  -- (single_object 4, two_object 12, colors 20) the shuffled distinct list
  -- repeats in turn, so every prefix of the file stays balanced; the
  -- repeats are evaluated with different seeds.
  M.prompt_set_names = { "single_object", "two_object", "counting", "colors", "position", "color_attr", "heldout" }
  M.prompt_set_size = 60

  local ctr, key, out4 = ffi.new("uint32_t[4]"), ffi.new("uint32_t[2]"), ffi.new("uint32_t[4]")
  local function shuffle(list, name)
    local h = 5381
    for k = 1, #name do h = (h * 33 + name:byte(k)) % 4294967296 end
    key[0], key[1] = h, 0x5eed
    for i = #list, 2, -1 do
      ctr[0], ctr[1], ctr[2], ctr[3] = i, 0, 0, 0
      C.grove_philox4x32(ctr, key, out4)
      local j = tonumber(out4[0]) % i + 1
      list[i], list[j] = list[j], list[i]
    end
    return list
  end

  local function pairs_where(pred)
    local out = {}
    for _, s in ipairs(M.shapes) do
      for _, c in ipairs(M.colors) do
        if pred(s, c) then out[#out + 1] = { shape = s, color = c } end
      end
    end
    return out
  end
  local function train_pair(s, c) return not M.is_heldout(s, c) end

  local function repeat_to(list, n)
    local out = {}
    for i = 1, n do out[i] = list[(i - 1) % #list + 1] end
    return out
  end

  -- Two-phrase specs with different shapes and colours; keep(p, q) filters.
  local function two_phrase(keep, relation)
    local all = pairs_where(function() return true end)
    local out = {}
    for _, p in ipairs(all) do
      for _, q in ipairs(all) do
        if p.shape ~= q.shape and p.color ~= q.color and keep(p, q) then
          out[#out + 1] = {
            objects = { { shape = p.shape, color = p.color, count = 1 }, { shape = q.shape, color = q.color, count = 1 } },
            relation = relation,
          }
        end
      end
    end
    return out
  end

  local function take(list, n, name)
    shuffle(list, name)
    local out = {}
    for i = 1, n do out[i] = list[i] end
    return out
  end

  local function both_train(p, q) return train_pair(p.shape, p.color) and train_pair(q.shape, q.color) end
  local function any_heldout(p, q) return M.is_heldout(p.shape, p.color) or M.is_heldout(q.shape, q.color) end

  -- per_relation specs of each relation, the relations taking turns.
  local function positions(keep, per_relation, name)
    local lists, out = {}, {}
    for k, r in ipairs(M.relations) do lists[k] = take(two_phrase(keep, r), per_relation, name .. ":" .. r) end
    for i = 1, per_relation do
      for k = 1, #lists do out[#out + 1] = lists[k][i] end
    end
    return out
  end

  local builders = {
    single_object = function(n)
      local l = {}
      for _, s in ipairs(M.shapes) do l[#l + 1] = { objects = { { shape = s, count = 1 } } } end
      return repeat_to(shuffle(l, "single_object"), n)
    end,
    two_object = function(n)
      local l = {}
      for _, a in ipairs(M.shapes) do
        for _, b in ipairs(M.shapes) do
          if a ~= b then l[#l + 1] = { objects = { { shape = a, count = 1 }, { shape = b, count = 1 } } } end
        end
      end
      return repeat_to(shuffle(l, "two_object"), n)
    end,
    colors = function(n)
      local l = {}
      for _, p in ipairs(pairs_where(train_pair)) do l[#l + 1] = { objects = { { shape = p.shape, color = p.color, count = 1 } } } end
      return repeat_to(shuffle(l, "colors"), n)
    end,
    counting = function(n)
      local l = {}
      for k = 2, M.max_count do
        for _, p in ipairs(pairs_where(train_pair)) do
          l[#l + 1] = { objects = { { shape = p.shape, color = p.color, count = k } } }
        end
      end
      return take(l, math.min(n, #l), "counting:pick")
    end,
    color_attr = function(n) return take(two_phrase(both_train), n, "color_attr:pick") end,
    position = function(n) return positions(both_train, n / #M.relations, "position:pick") end,
    -- Captions naming a held-out pair, in four blocks: colors, counting,
    -- color_attr, position.
    heldout = function(n)
      local out = {}
      local function add(list) for _, s in ipairs(list) do out[#out + 1] = s end end
      local held = pairs_where(M.is_heldout)
      local block = n / 5   -- 12 colors, 12 counting, 16 color_attr, 20 position for n = 60
      local single = {}
      for _, p in ipairs(held) do single[#single + 1] = { objects = { { shape = p.shape, color = p.color, count = 1 } } } end
      add(repeat_to(shuffle(single, "heldout:colors"), block))
      local counting = {}
      for k = 2, M.max_count do
        for _, p in ipairs(held) do counting[#counting + 1] = { objects = { { shape = p.shape, color = p.color, count = k } } } end
      end
      add(repeat_to(shuffle(counting, "heldout:counting"), block))
      add(take(two_phrase(any_heldout), n - 2 * block - 4 * math.floor(block / 2.4), "heldout:color_attr"))
      add(positions(any_heldout, math.floor(block / 2.4), "heldout:position"))
      return out
    end,
  }

  -- The prompts of one evaluation set (a list of captions).
  function M.prompt_set(name)
    local build = builders[name]
    if not build then
      error("captions: unknown prompt set '" .. tostring(name) .. "' (expected one of "
            .. table.concat(M.prompt_set_names, ", ") .. ")", 2)
    end
    local specs = build(M.prompt_set_size)
    local out = {}
    for i, s in ipairs(specs) do out[i] = M.generate(s) end
    return out
  end

  -- Writes <dir>/<name>.txt for every set, one prompt a line.
  function M.write_prompt_sets(dir)
    for _, name in ipairs(M.prompt_set_names) do
      local path = dir .. "/" .. name .. ".txt"
      local f, err = io.open(path, "w")
      if not f then error("captions: cannot write " .. path .. ": " .. tostring(err), 2) end
      f:write(table.concat(M.prompt_set(name), "\n"), "\n")
      f:close()
    end
  end
end
