-- SanaPipeline.encode_prompt: text features and masks for the transformer.
--
--   local feats, fmask = grove.diffusers.encode_prompt({ text_encoder = enc, tokenizer = tok }, prompts, opts)
--
-- The positive path tokenizes with the complex-human-instruction prefix (by
-- default), runs the encoder on the whole sequence, then keeps positions
-- [0] + the last max_length − 1 of features and mask; the negative path
-- (opts.negative = true) has neither the instruction nor the selection.
-- feats are f32 (B, max_length, hidden), fmask i64 (B, max_length) of 1/0;
-- a third result lists what truncation dropped per prompt (tok:encode's).
return function(grove, diffusers)
  -- Columns `select` (1-based, ascending) of x along dimension 2, as
  -- narrows of contiguous runs joined together.
  local function columns(x, select)
    local parts, i = {}, 1
    while i <= #select do
      local j = i
      while j < #select and select[j + 1] == select[j] + 1 do j = j + 1 end
      parts[#parts + 1] = x:narrow(2, select[i], j - i + 1)
      i = j + 1
    end
    return #parts == 1 and parts[1]:contiguous() or grove.cat(parts, 2)
  end

  local known = { max_length = true, instruction = true, negative = true }

  -- parts: { text_encoder = enc, tokenizer = tok }; prompts: a string or a
  -- list. opts.max_length (diffusers' max_sequence_length, default 300),
  -- opts.instruction (true: SANA's text, the default; false; a string; a
  -- list of lines), opts.negative (the negative prompt's path).
  function diffusers.encode_prompt(parts, prompts, opts)
    opts = opts or {}
    if type(parts) ~= "table" or type(parts.text_encoder) ~= "table" or type(parts.tokenizer) ~= "table" then
      error("diffusers.encode_prompt: expected { text_encoder = enc, tokenizer = tok } as the first argument", 2)
    end
    if type(opts) ~= "table" then error("diffusers.encode_prompt: options must be a table", 2) end
    for k in pairs(opts) do
      if not known[k] then
        error("diffusers.encode_prompt: unknown option '" .. tostring(k) .. "' (max_length, instruction, negative)", 2)
      end
    end
    local max_length = opts.max_length or 300
    if opts.negative and opts.instruction ~= nil and opts.instruction ~= false then
      error("diffusers.encode_prompt: the negative path has no instruction (SanaPipeline encodes the negative prompt without it)", 2)
    end
    local instruction = opts.instruction
    if opts.negative then instruction = false elseif instruction == nil then instruction = true end
    local tok, enc = parts.tokenizer, parts.text_encoder
    local ids, mask, select, cut = tok:encode(prompts, { max_length = max_length, instruction = instruction })
    local h = enc:forward(ids, mask)
    if opts.negative then return h, mask, cut end
    local feats, fmask = columns(h, select), columns(mask, select)
    return feats, fmask, cut
  end
end
