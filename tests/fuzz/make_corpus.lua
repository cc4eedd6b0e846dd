-- Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/):
-- small valid inputs of each format, made by grove itself, plus a few edge
-- cases. Run from the source root: build/grove tests/fuzz/make_corpus.lua
-- The JPEG and SentencePiece seeds come from Debian's python3-pil and
-- spm_train (sentencepiece), when present.
local root = "tests/fuzz/corpus"
local function dir(t) os.execute("mkdir -p " .. root .. "/" .. t); return root .. "/" .. t .. "/" end
local function write(path, s) local f = assert(io.open(path, "wb")); f:write(s); f:close() end
local function read(path) local f = assert(io.open(path, "rb")); local s = f:read("*a"); f:close(); return s end

-- safetensors: dtypes, 0-d and empty tensors, metadata
local d = dir("safetensors")
grove.save_safetensors(d .. "f32.safetensors", { w = grove.arange(6):view(2, 3) }, { format = "pt" })
grove.save_safetensors(d .. "mixed.safetensors", { a = grove.ones({ 2 }, { dtype = "bf16" }),
  b = grove.zeros({ 3 }, { dtype = "i64" }), c = grove.full({}, 2), e = grove.zeros { 0, 4 } },
  { ["grove.kind"] = "weights", note = "x" })
write(d .. "empty_header.safetensors", string.char(2, 0, 0, 0, 0, 0, 0, 0) .. "{}")

-- grove's JSON: the documents it reads
d = dir("json")
write(d .. "config.json", '{"_class_name": "SanaTransformer2DModel", "num_layers": 2, "sample_size": 32, ' ..
  '"norm_eps": 1e-06, "qk_norm": "rms_norm_across_heads", "guidance_embeds": false, "timestep_scale": 1.0}')
write(d .. "index.json", '{"metadata": {"total_size": 64}, "weight_map": {"a": "m-00001-of-00002.safetensors", ' ..
  '"b": "m-00002-of-00002.safetensors"}}')
write(d .. "model_index.json", '{"_class_name": "SanaPipeline", "_diffusers_version": "0.32.0", ' ..
  '"transformer": ["diffusers", "SanaTransformer2DModel"], "vae": ["diffusers", "AutoencoderDC"], "tokenizer": [null, null]}')
write(d .. "escapes.json", '["\\u00e9\\ud83d\\ude00", -0, 1e308, 12345678901234567890, [[[]]], {"": null}]')

-- PNG: RGB, grey, small
d = dir("png")
grove.image.save(d .. "rgb.png", grove.rand({ 4, 5, 3 }, { generator = grove.Generator(1) }) * 2 - 1)
grove.image.save(d .. "one.png", grove.zeros { 1, 1, 3 })

-- JPEG (python3-pil): baseline, progressive, greyscale
d = dir("jpeg")
local py = "/usr/bin/python3"
if io.open(py) then
  os.execute(py .. [[ -c "
from PIL import Image
im = Image.new('RGB', (9, 7), (200, 30, 60))
im.save(']] .. d .. [[base.jpg', quality=80)
im.save(']] .. d .. [[progressive.jpg', quality=50, progressive=True)
Image.new('L', (8, 8), 128).save(']] .. d .. [[grey.jpg')
"]])
end

-- SentencePiece: a tiny unigram and a tiny BPE model (spm_train)
d = dir("sentencepiece")
local text = os.tmpname()
write(text, "a red circle above a blue square\ntwo green triangles\nthree yellow stars left of a purple heart\n")
for _, m in ipairs { "unigram", "bpe" } do
  os.execute(string.format("spm_train --input=%s --model_prefix=%s%s --vocab_size=30 --model_type=%s --normalization_rule_name=identity " ..
    "--hard_vocab_limit=false --minloglevel=2 > /dev/null 2>&1 && rm -f %s%s.vocab", text, d, m, m, d, m))
end
os.remove(text)

-- the Lua-facing loaders' inputs
d = dir("index")
write(d .. "two_shards.json", '{"metadata": {"total_size": 40}, "weight_map": {"a": ' ..
  '"diffusion_pytorch_model-00001-of-00002.safetensors", "b": "diffusion_pytorch_model-00002-of-00002.safetensors"}}')
write(d .. "outside.json", '{"weight_map": {"a": "../outside.safetensors", "b": "outside.safetensors"}}')
d = dir("config")
write(d .. "tiny.json", '{"_class_name": "SanaTransformer2DModel", "num_layers": 1, "num_attention_heads": 2, ' ..
  '"attention_head_dim": 32, "num_cross_attention_heads": 2, "cross_attention_head_dim": 32, ' ..
  '"cross_attention_dim": 64, "caption_channels": 32, "in_channels": 4, "out_channels": 4, "patch_size": 1, ' ..
  '"sample_size": 8, "mlp_ratio": 2.5}')
d = dir("model_index")
write(d .. "pipeline.json", read(root .. "/json/model_index.json"))
d = dir("captions")
write(d .. "plain.txt", "two red circles above a blue square\n")
write(d .. "utf8.txt", "  caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x8c\xb3\r\n")
d = dir("checkpoint")
write(d .. "weights.bin", "weights\0" .. grove.nn._encode_config(grove.nn.resolve_config("tiny")) ..
  "\0{\"vocab_size\":64,\"width\":32}\0" .. "12\0" .. "1\0" .. "0\0" .. "0")
write(d .. "train.bin", "train_checkpoint\0{\"depth\":1,\"width\":64}\0{}\0" .. "x")
print("corpus written under " .. root)
