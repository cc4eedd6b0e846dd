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
--
-- opts.trim = true skips the padding, which the transformer never reads:
-- the encoder runs only up to the batch's last real token (its attention
-- is causal and the padding comes last, so every real position's features
-- are the ones the whole sequence gives), and the result ends after the
-- last position any prompt's mask keeps: (B, L, hidden) with L <=
-- max_length, the mask cut alike. The transformer's cross-attention gives
-- the same output for the cut features (masked keys weigh exactly 0),
-- short prompts encode several times faster, and every denoising step
-- projects L text tokens instead of max_length.
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

  local known = { max_length = true, instruction = true, negative = true, trim = true }

  -- The number of leading columns of a (B, L) 1/0 mask that hold a 1 in
  -- some row (at least 1, so a batch of empty prompts keeps <bos>).
  local function used_columns(mask)
    local any = mask:float():sum(1):tolist()
    for j = #any, 1, -1 do
      if any[j] > 0 then return j end
    end
    return 1
  end

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
        error("diffusers.encode_prompt: unknown option '" .. tostring(k) .. "' (max_length, instruction, negative, trim)", 2)
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
    local L = ids:size(2)
    local run = opts.trim and used_columns(mask) or L
    local h
    if run < L then
      h = enc:forward(ids:narrow(2, 1, run), mask:narrow(2, 1, run))
      h = grove.cat({ h, grove.zeros({ h:size(1), L - run, h:size(3) }, { dtype = h:dtype(), device = h:device() }) }, 2)
    else
      h = enc:forward(ids, mask)
    end
    local feats, fmask = h, mask
    if not opts.negative then feats, fmask = columns(h, select), columns(mask, select) end
    if opts.trim then
      local keep = used_columns(fmask)
      if keep < fmask:size(2) then feats, fmask = feats:narrow(2, 1, keep):contiguous(), fmask:narrow(2, 1, keep):contiguous() end
    end
    return feats, fmask, cut
  end
end
