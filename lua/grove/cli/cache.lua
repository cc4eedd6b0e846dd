-- grove cache: an image folder encoded once for fine-tuning (grove.diffusers.cache):
-- DC-AE latents and Gemma-2 caption features in safetensors shards with a
-- manifest; running it again finishes an interrupted cache.
--   grove cache --model Sana_1600M --data photos --out photos-cache [--size 512] [--buckets]
--               [--batch 4] [--shard-size 64]
local args = require "grove.cli.args"

local spec = {
  { "model", "string", nil, "a diffusers SANA folder (its vae/, text_encoder/ and tokenizer/ are used)", required = true },
  { "data", "string", nil, "the image folder: PNG and JPEG files, each caption in a same-named .txt", required = true },
  { "out", "string", nil, "the cache folder (made when missing; an unfinished cache there is finished)", required = true },
  { "size", "number", 512, "square size in pixels; with --buckets, the bucket table's resolution", check = args.count },
  { "buckets", "boolean", false, "cut each image to SANA's aspect-ratio bucket nearest its own instead of a square" },
  { "batch", "number", 4, "images per encoder call", check = args.count },
  { "shard_size", "number", 64, "samples per shard file", check = args.count },
  { "max_sequence_length", "number", 300, "caption tokens kept (SanaPipeline's max_sequence_length)", check = args.count },
  { "features_dtype", "string", "f32", "f32 or bf16: how caption features are stored" },
  { "trim", "boolean", false, "store each caption's features only up to its last token (the padding is never read)" },
  { "recursive", "boolean", false, "also read the images of subfolders" },
  { "skip_uncaptioned", "boolean", false, "leave out images without a .txt (default: their caption is \"\")" },
  { "dtype", "string", nil, "bf16 or f32: how the encoders' weights are held (default: as stored)" },
  args.device_option(),
  { "quiet", "boolean", false, "print nothing but errors" },
}

local function megabytes(n) return n >= 1e9 and string.format("%.2f GB", n / 1e9) or string.format("%.1f MB", n / 1e6) end

return function(argv)
  local o, rest = args.parse(argv, spec, { usage = "grove cache --model DIR --data FOLDER --out CACHE [options]",
    description = "Encodes an image folder once: DC-AE latents of each image (× the VAE's scaling_factor) and Gemma-2\n" ..
                  "features and masks of each caption, as safetensors shards with a manifest (docs/sana15-real.md)." })
  if not o then print(rest); return end
  if #rest > 0 then error("unexpected argument '" .. rest[1] .. "' (see grove cache --help)", 0) end
  args.check_choice(o, "features_dtype", { "f32", "bf16" })
  args.check_choice(o, "dtype", { "bf16", "f32" })
  local t0 = grove.now()
  local ok, res = pcall(grove.diffusers.cache, o.model, o.data, o.out, {
    size = o.size, buckets = o.buckets, batch = o.batch, shard_size = o.shard_size,
    max_sequence_length = o.max_sequence_length, features_dtype = o.features_dtype, trim = o.trim, recursive = o.recursive,
    missing_caption = o.skip_uncaptioned and "skip" or "empty", dtype = o.dtype, device = o.device,
    log = function(msg) io.stderr:write(msg, "\n") end,
    on_shard = not o.quiet and function(i, n, e, written)
      if written then
        io.stderr:write(string.format("  shard %d/%d %s: %d samples (%.1f s)\n", i, n, e.file, e.count, grove.now() - t0))
      end
    end or nil,
  })
  if not ok then error((tostring(res):gsub("^diffusers%.cache: ", "")), 0) end
  if not o.quiet then
    print(string.format("%s: %d samples of %d images in %d shards (%d written now, %d already done), %d skipped, %s, %.1f s",
                        o.out, res.samples, res.images, res.shards, res.written, res.shards - res.written, res.skipped,
                        megabytes(res.bytes), res.seconds))
  end
end
