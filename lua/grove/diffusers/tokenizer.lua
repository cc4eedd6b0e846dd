-- grove.diffusers.tokenizer: the SentencePiece tokenizer of a diffusers
-- folder (tokenizer/tokenizer.model, read by Debian's libsentencepiece) and
-- SanaPipeline's prompt processing (docs/diffusers.md, "Tokenizer and prompts").
--
--   local tok = grove.diffusers.tokenizer(dir)
--     dir: the pipeline folder, its tokenizer/ folder, or the tokenizer.model
--     file itself. tokenizer_config.json and special_tokens_map.json may sit
--     beside it; they are not needed (the ids come from the model).
--   local ids, mask, select = tok:encode(prompts, { max_length = 300, instruction = true })
--     prompts: a string or a list of strings. Each is lower-cased and
--     stripped as Python's str.lower().strip() does; instruction = true
--     prefixes the SANA complex human instruction (a string or a list of
--     lines, joined with "\n", prefixes that text instead; false: none). The
--     sequence is <bos> + the text, never <eos>, cut and padded with <pad> on
--     the right to L = (instruction tokens, <bos> included) + max_length - 2,
--     or max_length without the instruction. ids and mask are i64 (B, L);
--     select is the 1-based list of the positions SanaPipeline keeps
--     (1 and the last max_length - 1), tok.select_index(L, max_length).
--     A 4th result says per prompt what the right cut dropped: false, or
--     {tokens = n, text = the dropped pieces}.
--   tok:ids(text) -> the model's ids of text as a Lua list (nothing added)
--   tok:id(piece), tok:piece(id); tok.vocab_size, tok.pad_id, tok.bos_id,
--   tok.eos_id, tok.unk_id (-1 where the model has none), tok.path
local ffi = require "ffi"

return function(grove, diffusers)
  local C = grove.C

  local function last_error() return ffi.string(C.grove_last_error()) end

  local function is_file(path) return C.grove_path_kind(path) == C.GROVE_PATH_FILE end

  -- tokenizer.model from a pipeline folder, a tokenizer folder or the file.
  local function model_path(dir)
    local d = dir:gsub("/+$", "")
    if d == "" then d = "/" end
    local candidates = { d .. "/tokenizer/tokenizer.model", d .. "/tokenizer.model" }
    if d:match("%.model$") then table.insert(candidates, 1, d) end
    for _, p in ipairs(candidates) do
      if is_file(p) then return p end
    end
    error("tokenizer: no SentencePiece model in '" .. dir .. "' (looked for " .. table.concat(candidates, ", ") .. ")", 3)
  end

  local Tokenizer = {}
  Tokenizer.__index = Tokenizer

  local ids_buf, ids_cap = nil, 0

  -- The model's ids of a UTF-8 string, nothing added, as a Lua list.
  function Tokenizer:ids(text)
    if type(text) ~= "string" then error("tokenizer:ids: expected a string, got " .. type(text), 2) end
    local n = C.grove_spm_encode(self.handle, text, #text, ids_buf, ids_cap)
    if n > ids_cap then
      ids_cap = tonumber(n) + 64
      ids_buf = ffi.new("int32_t[?]", ids_cap)
      n = C.grove_spm_encode(self.handle, text, #text, ids_buf, ids_cap)
    end
    if n < 0 then error("tokenizer:ids: " .. last_error(), 2) end
    local out = {}
    for i = 1, tonumber(n) do out[i] = ids_buf[i - 1] end
    return out
  end

  -- The id of a piece (the <unk> id when the model has no such piece).
  function Tokenizer:id(piece)
    if type(piece) ~= "string" then error("tokenizer:id: expected a piece string, got " .. type(piece), 2) end
    local id = C.grove_spm_piece_id(self.handle, piece, #piece)
    if id < 0 then error("tokenizer:id: " .. last_error(), 2) end
    return id
  end

  -- The piece of an id (an error outside 0 .. vocab_size - 1).
  function Tokenizer:piece(id)
    if type(id) ~= "number" then error("tokenizer:piece: expected an id, got " .. type(id), 2) end
    local s = C.grove_spm_id_piece(self.handle, id)
    if s == nil then error("tokenizer:piece: " .. last_error(), 2) end
    return ffi.string(s)
  end

  local lower_buf, lower_cap = nil, 0

  -- Python's s.lower().strip() (core/io/text_case.c): diffusers' treatment of a prompt.
  function Tokenizer.clean(s)
    if type(s) ~= "string" then error("tokenizer.clean: expected a string, got " .. type(s), 2) end
    local n = C.grove_text_lower_strip(s, #s, lower_buf, lower_cap)
    if n > lower_cap then
      lower_cap = tonumber(n) + 256
      lower_buf = ffi.new("char[?]", lower_cap)
      n = C.grove_text_lower_strip(s, #s, lower_buf, lower_cap)
    end
    if n < 0 then error("tokenizer.clean: " .. last_error(), 2) end
    return ffi.string(lower_buf, n)
  end

  -- The positions (1-based) SanaPipeline.encode_prompt keeps of a sequence of
  -- L: the first (<bos>) and the last max_length - 1 ([0] + range(-max_length + 1, 0)).
  function Tokenizer.select_index(L, max_length)
    if type(L) ~= "number" or type(max_length) ~= "number" or max_length < 1 or L < max_length then
      error("tokenizer.select_index: need 1 <= max_length <= L, got L = " .. tostring(L) .. ", max_length = "
            .. tostring(max_length), 2)
    end
    local sel = { 1 }
    for p = L - max_length + 2, L do sel[#sel + 1] = p end
    return sel
  end

  local function instruction_text(v)
    if v == nil or v == true then
      return table.concat(require "grove.diffusers.sana_instruction", "\n")
    elseif v == false then
      return nil
    elseif type(v) == "string" then
      return v
    elseif type(v) == "table" then
      for i = 1, #v do
        if type(v[i]) ~= "string" then
          error("tokenizer:encode: instruction line " .. i .. " must be a string, got " .. type(v[i]), 3)
        end
      end
      -- an empty list is no instruction, as diffusers' `not complex_human_instruction`
      if #v == 0 then return nil end
      return table.concat(v, "\n")
    end
    error("tokenizer:encode: instruction must be true, false, a string or a list of strings, got " .. type(v), 3)
  end

  -- SanaPipeline's tokenization of prompts (a string or a list): ids and
  -- mask, i64 (B, L), of <bos> + instruction + cleaned prompt, right-padded
  -- and cut to L; and the 1-based positions encode_prompt keeps. opts:
  -- max_length (diffusers' max_sequence_length, default 300), instruction
  -- (true: the SANA text, the default; false; a string; a list of lines).
  function Tokenizer:encode(prompts, opts)
    opts = opts or {}
    if type(opts) ~= "table" then error("tokenizer:encode: options must be a table, got " .. type(opts), 2) end
    if type(prompts) == "string" then prompts = { prompts } end
    if type(prompts) ~= "table" or #prompts == 0 then
      error("tokenizer:encode: prompts must be a string or a non-empty list of strings, got "
            .. (type(prompts) == "table" and "an empty table" or type(prompts)), 2)
    end
    for i = 1, #prompts do
      if type(prompts[i]) ~= "string" then
        error("tokenizer:encode: prompt " .. i .. " must be a string, got " .. type(prompts[i]), 2)
      end
    end
    local max_length = opts.max_length or 300
    if type(max_length) ~= "number" or max_length < 2 or max_length % 1 ~= 0 then
      error("tokenizer:encode: max_length must be an integer of at least 2, got " .. tostring(max_length), 2)
    end
    local chi = instruction_text(opts.instruction)
    local L = max_length
    if chi then
      -- diffusers counts the instruction's tokens as the tokenizer returns
      -- them, <bos> included: len(tokenizer.encode(chi_prompt))
      L = 1 + #self:ids(chi) + max_length - 2
    end
    if self.pad_id < 0 then error("tokenizer:encode: '" .. self.path .. "' defines no <pad> to pad with", 2) end
    local B = #prompts
    local ids, mask, cut = {}, {}, {}
    for b = 1, B do
      local text = Tokenizer.clean(prompts[b])
      if chi then text = chi .. text end
      local seq = self:ids(text)
      cut[b] = false
      if #seq > L - 1 then
        local tail = {}
        for i = L, #seq do tail[#tail + 1] = self:piece(seq[i]) end
        -- SentencePiece's word marker U+2581 reads as a space
        cut[b] = { tokens = #seq - (L - 1), text = (table.concat(tail):gsub("\226\150\129", " ")) }
      end
      local row, mrow = { self.bos_id }, { 1 }
      for i = 1, math.min(#seq, L - 1) do row[i + 1] = seq[i]; mrow[i + 1] = 1 end
      for i = #row + 1, L do row[i] = self.pad_id; mrow[i] = 0 end
      ids[b], mask[b] = row, mrow
    end
    return grove.tensor(ids, { dtype = "i64" }), grove.tensor(mask, { dtype = "i64" }),
           Tokenizer.select_index(L, max_length), cut
  end

  -- A one-line description: the model path, its size and special ids.
  function Tokenizer:__tostring()
    return string.format("diffusers tokenizer '%s' (%d pieces; <pad> %d, <bos> %d, <eos> %d, <unk> %d)", self.path,
                         self.vocab_size, self.pad_id, self.bos_id, self.eos_id, self.unk_id)
  end

  -- The tokenizer of a diffusers folder: dir is the pipeline folder, its
  -- tokenizer/ folder, or the tokenizer.model file.
  function diffusers.tokenizer(dir)
    if type(dir) ~= "string" then error("tokenizer: expected a folder path, got " .. type(dir), 2) end
    local path = model_path(dir)
    local h = C.grove_spm_load(path)
    if h == nil then error("tokenizer: " .. last_error(), 2) end
    h = ffi.gc(h, C.grove_spm_free)
    local self = setmetatable({
      handle = h, path = path,
      vocab_size = C.grove_spm_vocab_size(h),
      pad_id = C.grove_spm_pad_id(h), bos_id = C.grove_spm_bos_id(h),
      eos_id = C.grove_spm_eos_id(h), unk_id = C.grove_spm_unk_id(h),
    }, Tokenizer)
    if self.bos_id < 0 then error("tokenizer: '" .. path .. "' defines no <bos> (SanaPipeline starts every prompt with it)", 2) end
    return self
  end
  diffusers.Tokenizer = Tokenizer

  return diffusers
end
