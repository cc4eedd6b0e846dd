-- A word-level tokenizer: text is lower-cased and split into words and
-- punctuation marks, and each token maps to an id from a vocabulary file
-- (one token per line, id = line number − 1). Ids 0 and 1 are always <pad>
-- and <unk>; <bos> and <eos> follow in vocabularies built here.
--
-- Normalisation, the contract that decode(encode(s)) == normalize(s) rests on:
--   * ASCII letters are lower-cased; bytes ≥ 0x80 (UTF-8) are kept as they
--     are and count as word characters;
--   * every ASCII punctuation mark is a token of its own ("don't" → don ' t);
--   * whitespace and control characters separate tokens and are dropped;
--   * the normal form is the tokens joined by single spaces.
return function(grove)
  local Tokenizer = {}
  Tokenizer.__index = Tokenizer

  local PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
  Tokenizer.default_specials = { PAD, UNK, BOS, EOS }
  Tokenizer.default_max_len = 16

  -- The tokens of s, as a list of strings.
  local function tokenize(s)
    if type(s) ~= "string" then error("tokenize: expected a string, got " .. type(s), 3) end
    s = s:lower():gsub("%c", " "):gsub("%p", " %0 ")
    local out = {}
    for w in s:gmatch("%S+") do out[#out + 1] = w end
    return out
  end
  -- Both work as Tokenizer.f(s) and tok:f(s).
  function Tokenizer.tokenize(a, b) return tokenize(type(a) == "table" and b or a) end
  function Tokenizer.normalize(a, b) return table.concat(tokenize(type(a) == "table" and b or a), " ") end

  -- A tokenizer over a list of tokens in id order ({"<pad>", "<unk>", ...}).
  -- opts.max_len is the default length of encode's output.
  function Tokenizer.new(tokens, opts)
    opts = opts or {}
    if type(tokens) ~= "table" then error("Tokenizer.new: expected a list of tokens", 2) end
    if tokens[1] ~= PAD or tokens[2] ~= UNK then
      error("Tokenizer.new: the vocabulary must start with " .. PAD .. " (id 0) and " .. UNK
            .. " (id 1), got " .. tostring(tokens[1]) .. " and " .. tostring(tokens[2]), 2)
    end
    local self = setmetatable({ tokens = {}, ids = {}, max_len = opts.max_len or Tokenizer.default_max_len }, Tokenizer)
    for i, t in ipairs(tokens) do
      if type(t) ~= "string" or t == "" or t:find("%s") then
        error(string.format("Tokenizer.new: token %d (%q) is empty or holds whitespace", i, tostring(t)), 2)
      end
      if self.ids[t] then
        error(string.format("Tokenizer.new: token %q appears twice (ids %d and %d)", t, self.ids[t], i - 1), 2)
      end
      self.tokens[i - 1] = t
      self.ids[t] = i - 1
    end
    self.vocab_size = #tokens
    self.pad_id, self.unk_id = 0, 1
    self.bos_id, self.eos_id = self.ids[BOS], self.ids[EOS]
    return self
  end

  -- Builds a vocabulary from a list of strings: the specials, then every
  -- token seen at least opts.min_count (1) times, most frequent first (ties
  -- alphabetical), or alphabetical with opts.order = "alphabetical".
  -- opts.max_size caps the vocabulary size, specials included.
  function Tokenizer.build(corpus, opts)
    opts = opts or {}
    if type(corpus) ~= "table" then error("Tokenizer.build: expected a list of strings", 2) end
    local min_count = opts.min_count or 1
    local specials = opts.specials or Tokenizer.default_specials
    local count, words = {}, {}
    for i, s in ipairs(corpus) do
      if type(s) ~= "string" then error("Tokenizer.build: corpus entry " .. i .. " is a " .. type(s) .. ", not a string", 2) end
      for _, w in ipairs(tokenize(s)) do
        if not count[w] then count[w] = 0; words[#words + 1] = w end
        count[w] = count[w] + 1
      end
    end
    local is_special = {}
    for _, t in ipairs(specials) do is_special[t] = true end
    local keep = {}
    for _, w in ipairs(words) do
      if count[w] >= min_count and not is_special[w] then keep[#keep + 1] = w end
    end
    if opts.order == "alphabetical" then
      table.sort(keep)
    elseif opts.order == nil or opts.order == "frequency" then
      table.sort(keep, function(a, b)
        if count[a] ~= count[b] then return count[a] > count[b] end
        return a < b
      end)
    else
      error("Tokenizer.build: unknown order '" .. tostring(opts.order) .. "' (frequency or alphabetical)", 2)
    end
    local tokens = {}
    for i, t in ipairs(specials) do tokens[i] = t end
    for _, w in ipairs(keep) do
      if opts.max_size and #tokens >= opts.max_size then break end
      tokens[#tokens + 1] = w
    end
    return Tokenizer.new(tokens, opts)
  end

  -- Reads a vocabulary file: one token per line, id = line number − 1.
  function Tokenizer.load(path, opts)
    local f, err = io.open(path, "rb")
    if not f then error("Tokenizer.load: " .. tostring(err), 2) end
    local text = f:read("*a")
    f:close()
    local tokens, n = {}, 0
    for line in (text .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("([^\n]*)\n") do
      n = n + 1
      line = line:gsub("\r$", "")
      if line == "" then error(string.format("Tokenizer.load: %s line %d is empty", path, n), 2) end
      tokens[n] = line
    end
    local ok, e = pcall(Tokenizer.new, tokens, opts)
    if not ok then error(path .. ": " .. tostring(e):gsub("^.-Tokenizer%.new: ", ""), 2) end
    return e
  end

  function Tokenizer:save(path)
    local f, err = io.open(path, "wb")
    if not f then error("Tokenizer:save: " .. tostring(err), 2) end
    for i = 0, self.vocab_size - 1 do f:write(self.tokens[i], "\n") end
    f:close()
  end

  function Tokenizer:size() return self.vocab_size end
  function Tokenizer:id(token) return self.ids[token] or self.unk_id end
  function Tokenizer:token(id) return self.tokens[id] end

  -- The ids of one string, unpadded and untruncated (unknown words → <unk>).
  function Tokenizer:encode_one(s)
    local out = {}
    for i, w in ipairs(tokenize(s)) do out[i] = self.ids[w] or self.unk_id end
    return out
  end

  -- encode(strings or one string, {max_len =, bos =, eos =, pad = "max_len" | "longest"})
  -- → ids (B, L) i64 and mask (B, L) f32 with 1 at tokens and 0 at padding.
  -- Strings longer than max_len are truncated (an <eos> asked for is kept as
  -- the last token). L is max_len, or the longest row with pad = "longest".
  function Tokenizer:encode(strings, opts)
    opts = opts or {}
    if type(strings) == "string" then strings = { strings } end
    if type(strings) ~= "table" or #strings == 0 then
      error("encode: expected a string or a non-empty list of strings", 2)
    end
    local max_len = opts.max_len or self.max_len
    if type(max_len) ~= "number" or max_len < 1 or max_len % 1 ~= 0 then
      error("encode: max_len must be a positive integer, got " .. tostring(max_len), 2)
    end
    local bos, eos = opts.bos, opts.eos
    if bos and not self.bos_id then error("encode: bos asked for, but the vocabulary has no " .. BOS, 2) end
    if eos and not self.eos_id then error("encode: eos asked for, but the vocabulary has no " .. EOS, 2) end
    local reserved = (bos and 1 or 0) + (eos and 1 or 0)
    if reserved > max_len then error("encode: max_len " .. max_len .. " leaves no room for <bos> and <eos>", 2) end
    local rows, longest = {}, 1
    for b, s in ipairs(strings) do
      if type(s) ~= "string" then error("encode: entry " .. b .. " is a " .. type(s) .. ", not a string", 2) end
      local words = self:encode_one(s)
      local row = {}
      if bos then row[1] = self.bos_id end
      for i = 1, math.min(#words, max_len - reserved) do row[#row + 1] = words[i] end
      if eos then row[#row + 1] = self.eos_id end
      rows[b] = row
      if #row > longest then longest = #row end
    end
    local L
    if opts.pad == nil or opts.pad == "max_len" then L = max_len
    elseif opts.pad == "longest" then L = longest
    else error("encode: unknown pad '" .. tostring(opts.pad) .. "' (max_len or longest)", 2) end
    local ids, mask = {}, {}
    for b, row in ipairs(rows) do
      local ib, mb = {}, {}
      for i = 1, L do
        local id = row[i]
        ib[i] = id or self.pad_id
        mb[i] = id and 1 or 0
      end
      ids[b], mask[b] = ib, mb
    end
    return grove.tensor(ids, { dtype = "i64" }), grove.tensor(mask)
  end

  local function decode_row(self, row, keep_special)
    local out = {}
    for _, id in ipairs(row) do
      local t = self.tokens[id]
      if not t then
        error(string.format("decode: id %s out of range for a vocabulary of %d", tostring(id), self.vocab_size), 3)
      end
      if keep_special or not (id == self.pad_id or id == self.bos_id or id == self.eos_id) then
        out[#out + 1] = t
      end
    end
    return table.concat(out, " ")
  end

  -- decode(ids) → strings: ids a (B, L) tensor or list of lists gives a
  -- list of strings, an (L) tensor or a list of ids one string. <pad>,
  -- <bos> and <eos> are dropped unless opts.keep_special.
  function Tokenizer:decode(ids, opts)
    local keep = opts and opts.keep_special
    if grove.is_tensor(ids) then
      if ids:dim() < 1 or ids:dim() > 2 then error("decode: ids " .. ids:shape_str() .. " must be 1-d or 2-d", 2) end
      ids = ids:tolist()
    elseif type(ids) ~= "table" then
      error("decode: expected a tensor or a table of ids", 2)
    end
    if type(ids[1]) == "table" then
      local out = {}
      for b, row in ipairs(ids) do out[b] = decode_row(self, row, keep) end
      return out
    end
    return decode_row(self, ids, keep)
  end

  function Tokenizer:__tostring()
    return string.format("Tokenizer (%d tokens, max_len %d)", self.vocab_size, self.max_len)
  end

  return Tokenizer
end
