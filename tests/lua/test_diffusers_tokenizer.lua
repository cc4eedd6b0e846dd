-- grove.diffusers.tokenizer: SanaPipeline's prompt processing against the ids
-- and masks diffusers stored in the shared fixtures (gemma2/a/tokens_*), the
-- SentencePiece ids against Debian's python3-sentencepiece on models this
-- test trains with spm_train, Python's str.lower().strip() on every code
-- point, and the errors (missing and corrupt models, bad prompts).
local spec = require "spec"

local Tokenizer = grove.diffusers.Tokenizer
local PY = "/usr/bin/python3"

local function have_python_spm()
  local _, status = spec.run(PY .. " -c 'import sentencepiece'")
  return status == 0
end

local function have_spm_train()
  local _, status = spec.run("command -v spm_train")
  return status == 0
end

local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end

-- Runs a Python script (text) with arguments; its stdout, or an error with its output.
local function python(dir, script, args)
  local path = dir .. "/script.py"
  spec.write_all(path, script)
  local out, status = spec.run(PY .. " " .. path .. " " .. table.concat(args or {}, " "))
  if status ~= 0 then error("python failed:\n" .. out, 2) end
  return out
end

local function rows(t) return t:tolist() end

spec.describe("diffusers tokenizer: the fixtures' ids and masks (gemma2/a/tokens_*)", function()
  local fx = spec.fixtures("gemma2")
  if not fx then spec.skip("no shared fixtures (../shared/fixtures or $GROVE_FIXTURES)"); return end
  local sets = grove.json.read(fx .. "/prompts.json")
  local tok = grove.diffusers.tokenizer(fx)

  for _, name in ipairs { "sana", "negative", "short" } do
    spec.it(name .. ": ids, mask and selected positions equal diffusers'", function()
      local set = assert(sets[name], "prompts.json has no set " .. name)
      local ids, mask, select = tok:encode(set.prompts, { max_length = set.max_sequence_length, instruction = set.chi })
      local want = grove.load_safetensors(fx .. "/a/tokens_" .. name .. ".safetensors")
      spec.eq(ids:dtype(), "i64", "ids dtype")
      spec.eq(mask:dtype(), "i64", "mask dtype")
      spec.eq(spec.join(ids:shape()), spec.join(want.input_ids:shape()), "ids shape")
      spec.eq(spec.join(mask:shape()), spec.join(want.attention_mask:shape()), "mask shape")
      local a, b = rows(ids), rows(want.input_ids)
      local ma, mb = rows(mask), rows(want.attention_mask)
      for r = 1, #b do
        spec.eq(spec.join(a[r]), spec.join(b[r]), name .. " prompt " .. r .. " ids")
        spec.eq(spec.join(ma[r]), spec.join(mb[r]), name .. " prompt " .. r .. " mask")
      end
      if want.select_index then
        local sel = want.select_index:tolist()
        for k = 1, #sel do sel[k] = sel[k] + 1 end
        spec.eq(spec.join(select), spec.join(sel), "selected positions")
      else
        -- the negative prompt is not selected from: its L is max_length
        spec.eq(set.negative, true, "only the negative set has no selection")
        spec.eq(ids:shape()[2], set.max_sequence_length, "negative length")
      end
    end)
  end

  spec.it("the shipped instruction is the fixtures' sana_prompt.json, and opts default to it", function()
    local chi = grove.json.read(fx .. "/sana_prompt.json")
    local want = table.concat(chi.complex_human_instruction, chi.joiner)
    spec.eq(table.concat(require "grove.diffusers.sana_instruction", "\n"), want, "instruction text")
    local a = tok:encode({ "A Cat" })
    local b = tok:encode({ "A Cat" }, { max_length = 300, instruction = want })
    spec.eq(spec.join(rows(a)[1]), spec.join(rows(b)[1]), "defaults: max_length 300, the SANA instruction")
    local lines = {}
    for l in (want .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
    local c = tok:encode({ "A Cat" }, { instruction = lines })
    spec.eq(spec.join(rows(c)[1]), spec.join(rows(a)[1]), "instruction as a list of lines")
  end)
end)

spec.describe("diffusers tokenizer: processing rules", function()
  local fx = spec.fixtures("gemma2")
  if not fx then spec.skip("no shared fixtures (../shared/fixtures or $GROVE_FIXTURES)"); return end
  local tok = grove.diffusers.tokenizer(fx .. "/tokenizer.model")

  spec.it("finds the model from the pipeline folder, the tokenizer folder or the file", function()
    local tmp = spec.tmpdir()
    os.execute(string.format("mkdir -p '%s/pipe/tokenizer' && cp '%s/tokenizer.model' '%s/pipe/tokenizer/'", tmp, fx, tmp))
    -- the configs transformers writes beside it are accepted, never needed
    spec.write_all(tmp .. "/pipe/tokenizer/tokenizer_config.json", '{"add_bos_token": true, "add_eos_token": false}')
    spec.write_all(tmp .. "/pipe/tokenizer/special_tokens_map.json", '{"pad_token": "<pad>"}')
    for _, d in ipairs { tmp .. "/pipe", tmp .. "/pipe/", tmp .. "/pipe/tokenizer", tmp .. "/pipe/tokenizer/tokenizer.model" } do
      local t = grove.diffusers.tokenizer(d)
      spec.eq(t.path, tmp .. "/pipe/tokenizer/tokenizer.model", d)
      spec.eq(spec.join(t:ids("a red apple")), spec.join(tok:ids("a red apple")), d)
    end
    os.execute("rm -rf '" .. tmp .. "'")
  end)

  spec.it("knows Gemma's special ids", function()
    spec.eq(tok.vocab_size, 1000)
    spec.eq(tok.pad_id, 0); spec.eq(tok.eos_id, 1); spec.eq(tok.bos_id, 2); spec.eq(tok.unk_id, 3)
    spec.eq(tok:piece(2), "<bos>")
    spec.eq(tok:id("<pad>"), 0)
    spec.eq(tok:id("no such piece at all"), 3)
    spec.raises(function() tok:piece(1000) end, "id 1000 is outside the vocabulary")
    spec.raises(function() tok:piece(-1) end, "outside the vocabulary")
  end)

  spec.it("lower-cases and strips the prompt, not the instruction; <bos> first, never <eos>", function()
    local ids, mask = tok:encode({ "  A Cat  ", "a cat" }, { max_length = 8, instruction = false })
    local r = rows(ids)
    spec.eq(spec.join(r[1]), spec.join(r[2]), "cleaned prompt")
    spec.eq(r[1][1], tok.bos_id, "<bos> first")
    local want = { tok.bos_id }
    for _, id in ipairs(tok:ids("a cat")) do want[#want + 1] = id end
    for k = #want + 1, 8 do want[k] = tok.pad_id end
    spec.eq(spec.join(r[1]), spec.join(want), "right padding with <pad>")
    local m = rows(mask)[1]
    for k = 1, 8 do spec.eq(m[k], k <= #tok:ids("a cat") + 1 and 1 or 0, "mask " .. k) end
    for _, id in ipairs(r[1]) do spec.assert(id ~= tok.eos_id, "no <eos>") end
    -- a custom instruction keeps its case
    local upper = tok:encode({ "x" }, { instruction = "SAY: ", max_length = 4 })
    local lower = tok:encode({ "x" }, { instruction = "say: ", max_length = 4 })
    spec.assert(spec.join(rows(upper)[1]) ~= spec.join(rows(lower)[1]), "the instruction is not lower-cased")
    -- its length: the instruction's tokens with <bos>, + max_length - 2
    spec.eq(upper:shape()[2], 1 + #tok:ids("SAY: ") + 4 - 2, "L with an instruction")
  end)

  spec.it("cuts on the right and keeps [1] + the last max_length - 1", function()
    local long = string.rep("harbour lighthouse ", 40)
    local ids, mask, sel = tok:encode({ long, "" }, { max_length = 10, instruction = false })
    spec.eq(spec.join(ids:shape()), "2,10")
    local want = { tok.bos_id }
    for k, id in ipairs(tok:ids(long:lower():gsub("%s+$", ""))) do if k <= 9 then want[#want + 1] = id end end
    spec.eq(spec.join(rows(ids)[1]), spec.join(want), "right truncation")
    spec.eq(spec.join(rows(mask)[1]), "1,1,1,1,1,1,1,1,1,1")
    spec.eq(spec.join(rows(mask)[2]), "1,0,0,0,0,0,0,0,0,0", "the empty prompt is <bos> alone")
    spec.eq(spec.join(sel), "1,2,3,4,5,6,7,8,9,10", "no instruction: every position")
    spec.eq(spec.join(Tokenizer.select_index(20, 5)), "1,17,18,19,20")
    spec.raises(function() Tokenizer.select_index(4, 5) end, "max_length <= L")
  end)

  spec.it("refuses bad prompts and options with a clear error", function()
    spec.raises(function() tok:encode({ "a", 3 }) end, "prompt 2 must be a string, got number")
    spec.raises(function() tok:encode(nil) end, "prompts must be a string or a non-empty list of strings, got nil")
    spec.raises(function() tok:encode({}) end, "got an empty table")
    spec.raises(function() tok:encode({ "a" }, { max_length = 1 }) end, "max_length must be an integer of at least 2")
    spec.raises(function() tok:encode({ "a" }, { instruction = 5 }) end, "instruction must be true, false, a string")
    spec.raises(function() tok:encode({ "a" }, { instruction = { "x", 1 } }) end, "instruction line 2 must be a string")
    spec.raises(function() tok:encode({ "bad \255 utf8" }) end, "not valid UTF-8 (byte 4, 0xff)")
    spec.raises(function() tok:ids(7) end, "expected a string")
    -- still usable after the errors
    spec.eq(rows((tok:encode({ "a" }, { max_length = 2, instruction = false })))[1][1], tok.bos_id)
  end)

  spec.it("frees its model and tensors (no leaks)", function()
    spec.no_leaks(function()
      local t = grove.diffusers.tokenizer(fx)
      local ids, mask = t:encode({ "a cat", "b" }, { max_length = 6, instruction = false })
      ids:free(); mask:free()
    end, 3)
  end)
end)

spec.describe("diffusers tokenizer: errors loading", function()
  spec.it("names the folder when there is no tokenizer.model", function()
    local tmp = spec.tmpdir()
    local err = spec.raises(function() grove.diffusers.tokenizer(tmp) end, "no SentencePiece model in '" .. tmp .. "'")
    spec.assert(err:find(tmp .. "/tokenizer/tokenizer.model", 1, true), err)
    spec.raises(function() grove.diffusers.tokenizer(tmp .. "/none.model") end, "no SentencePiece model")
    spec.raises(function() grove.diffusers.tokenizer(5) end, "expected a folder path, got number")
    os.execute("rm -rf '" .. tmp .. "'")
  end)

  spec.it("refuses a corrupt or empty model file, naming it", function()
    local tmp = spec.tmpdir()
    local bad = tmp .. "/tokenizer.model"
    spec.write_all(bad, "\10\255\255\255\255\15not a protobuf at all")
    spec.raises(function() grove.diffusers.tokenizer(tmp) end, "'" .. bad .. "' is not a valid SentencePiece model")
    spec.write_all(bad, "")
    spec.raises(function() grove.diffusers.tokenizer(tmp) end, "'" .. bad .. "'")
    local fx = spec.fixtures("gemma2")
    if fx then -- a truncated real model
      local whole = spec.read_all(fx .. "/tokenizer.model")
      spec.write_all(bad, whole:sub(1, math.floor(#whole / 2)))
      spec.raises(function() grove.diffusers.tokenizer(tmp) end, "'" .. bad .. "' is not a valid SentencePiece model")
    end
    os.execute("rm -rf '" .. tmp .. "'")
  end)
end)

-- Strings where tokenizers go wrong: unicode, emoji, digits, white-space runs, nothing.
local tricky = {
  "", " ", "   ", "a", "hello world", "  leading and trailing  ", "runs   of\t\tspaces\n\nand lines",
  "Zürich café at night, naïve art", "ÜBER ÖL", "日本語のテキストと中文", "emoji 🚌🎉 and 👩‍👩‍👧 family",
  "digits 0123456789 3.14159 1,000,000", "ＦＵＬＬ　ＷＩＤＴＨ ｶﾀｶﾅ", "ligature ﬁne ﬂow", "e\204\129 combining",
  "no\194\160break", "tab\tend\t", "x", "A", "\226\128\139zero width", "mixed CASE Words 42x",
  "symbols <>&\"'`~!@#$%^*()[]{}|\\/", "<bos> <pad> <eos> as text", string.rep("long ", 200),
}

spec.describe("diffusers tokenizer: ids equal python3-sentencepiece's on models spm_train makes", function()
  if not have_spm_train() then spec.skip("no spm_train (Debian package sentencepiece)"); return end
  if not have_python_spm() then spec.skip("no python3-sentencepiece for " .. PY); return end
  local tmp = spec.tmpdir()
  -- a corpus with words, digits, accents, CJK and emoji
  local words = { "the", "red", "circle", "harbour", "town", "café", "naïve", "Zürich", "東京", "中文", "🚌", "🎉",
                  "lighthouse", "boats", "1234", "3.14", "sky", "blue", "über", "straße", "ΟΔΟΣ", "mountain" }
  local lines, seed = {}, 12345
  local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n + 1 end
  for l = 1, 3000 do
    local w = {}
    for k = 1, rnd(12) + 2 do w[k] = words[rnd(#words)] end
    lines[l] = table.concat(w, rnd(5) == 1 and "  " or " ") .. (rnd(3) == 1 and "." or "")
  end
  local corpus = tmp .. "/corpus.txt"
  spec.write_all(corpus, table.concat(lines, "\n") .. "\n")
  -- Gemma-like (BPE, byte fallback, identity normaliser, no dummy prefix,
  -- Gemma's special ids) and a default unigram model (NFKC, dummy prefix)
  local models = {
    gemma = "--model_type=bpe --vocab_size=420 --byte_fallback=true --character_coverage=1.0 "
            .. "--normalization_rule_name=identity --add_dummy_prefix=false --remove_extra_whitespaces=false "
            .. "--split_digits=true --pad_id=0 --eos_id=1 --bos_id=2 --unk_id=3 --bos_piece='<bos>' --eos_piece='<eos>'",
    unigram = "--model_type=unigram --vocab_size=60 --hard_vocab_limit=false --pad_id=3",
  }
  local trained = {}
  for name, flags in pairs(models) do
    local out, status = spec.run(string.format("spm_train --input='%s' --model_prefix='%s/%s' --num_threads=2 %s",
                                               corpus, tmp, name, flags))
    if status ~= 0 then error("spm_train failed:\n" .. out:sub(-600)) end
    trained[#trained + 1] = name
  end
  table.sort(trained)
  local hexes = {}
  for k, s in ipairs(tricky) do hexes[k] = hex(s) end
  spec.write_all(tmp .. "/strings.txt", table.concat(hexes, "\n") .. "\n")
  local script = [[
import sys, sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
print(sp.get_piece_size(), sp.pad_id(), sp.bos_id(), sp.eos_id(), sp.unk_id())
for line in open(sys.argv[2]).read().split("\n")[:-1]:
    print(" ".join(map(str, sp.encode(bytes.fromhex(line).decode("utf-8")))) or "-")
]]

  for _, name in ipairs(trained) do
    spec.it(name .. ": the same ids for every tricky string, the same special ids", function()
      local model = tmp .. "/" .. name .. ".model"
      local out = python(tmp, script, { model, tmp .. "/strings.txt" })
      local got = {}
      for l in out:gmatch("[^\n]+") do got[#got + 1] = l end
      local tok = grove.diffusers.tokenizer(model)
      spec.eq(string.format("%d %d %d %d %d", tok.vocab_size, tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id), got[1],
              "vocabulary size and special ids")
      for k, s in ipairs(tricky) do
        local ids = tok:ids(s)
        spec.eq(#ids == 0 and "-" or table.concat(ids, " "), got[k + 1], string.format("ids of %q", s))
      end
      if name == "gemma" then
        -- the byte fallback is really used: a character the corpus never had
        local ids = tok:ids("ğ")
        spec.eq(#ids, 2, "two byte pieces for a 2-byte character")
        spec.eq(tok:piece(ids[1]), "<0xC4>")
      end
    end)
  end
  os.execute("rm -rf '" .. tmp .. "'")
end)

spec.describe("diffusers tokenizer: Python's str.lower().strip()", function()
  if not have_python_spm() then spec.skip("no " .. PY); return end
  spec.it("equals Python on every code point up to U+2FFFF and on final sigmas", function()
    local tmp = spec.tmpdir()
    local out = python(tmp, [[
import sys
cps = [c for c in range(1, 0x30000) if not 0xD800 <= c <= 0xDFFF]
s = " ".join(chr(c) for c in cps)
extra = ["ΟΔΟΣ", "ΣΑΣ ΣΑΣ.", "Σ", " Σ ", "ΑΣ'Α", "ΑΣ'", "ΑΣ.", "İstanbul", "\u00a0\u3000 x \u2029\u0085", "\x1c\x1fy\x1e",
         "ǅungla", "ẞ", "Ꭰ", "ＡＢ", "\t\n"]
for x in [s] + extra:
    print(x.encode("utf-8").hex() or "-", x.lower().strip().encode("utf-8").hex() or "-")
]], { tmp })
    local function unhex(h) return h == "-" and "" or (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)) end
    local inputs, wants = {}, {}
    for a, b in out:gmatch("(%S+) (%S+)") do inputs[#inputs + 1] = unhex(a); wants[#wants + 1] = unhex(b) end
    spec.eq(#inputs, 16, "strings from Python")
    spec.eq(#inputs, #wants, "line count")
    for k = 1, #inputs do
      local got = Tokenizer.clean(inputs[k])
      if got ~= wants[k] then
        error(string.format("line %d: %q lowered to %q, Python gives %q", k, inputs[k]:sub(1, 60), got:sub(1, 60),
                            wants[k]:sub(1, 60)))
      end
    end
    os.execute("rm -rf '" .. tmp .. "'")
  end)
end)
