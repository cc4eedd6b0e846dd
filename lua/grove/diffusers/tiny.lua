-- grove.diffusers.tiny_folder(dir, opts): a complete diffusers SANA
-- pipeline folder in small sizes with random weights (scripts/tiny-sana-folder),
-- laid out and named as the released folders are, so that
-- `grove sample --model dir` runs end to end on any machine:
--
--   model_index.json                 SanaPipeline (SanaSprintPipeline with opts.sprint)
--   scheduler/scheduler_config.json  the official DPMSolverMultistepScheduler (Sprint: SCMScheduler)
--   transformer/                     SanaTransformer2DModel: 2 blocks of width 32, qk-norm across heads, sample_size 16
--   text_encoder/                    Gemma2Model: hidden 32, 2 layers, 4 heads of 8 on 2 key/value heads
--   tokenizer/                       a SentencePiece BPE model trained by Debian's spm_train (Gemma's
--                                    special ids: <pad> 0, <eos> 1, <bos> 2, <unk> 3; byte fallback)
--   vae/                             AutoencoderDC: widths 8 … 32, ResBlock then EfficientViT stages, 8 latent channels
--
-- opts: seed (0): the weights (the tokenizer is the same for every seed);
-- sprint: a SanaSprintPipeline folder (guidance embedding, SCM); layers (2):
-- the transformer's blocks (pruning wants a few more).
return function(grove, diffusers)
  local json = grove.json
  local C = grove.C

  local function sh(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
  local function fail(msg) error("diffusers.tiny_folder: " .. msg, 0) end
  local function mkdir(p)
    if not os.execute("mkdir -p " .. sh(p)) then fail("cannot make the folder " .. p) end
  end
  local function write(p, s)
    local f, err = io.open(p, "w")
    if not f then fail("cannot write " .. tostring(err)) end
    f:write(s)
    f:close()
  end

  -- ---- the DC-AE's tensors --------------------------------------------------------
  -- The names and shapes of the DC-AE a config describes (grove.diffusers.vae's
  -- AutoencoderDC built as shapes only), as {name, shape, kind}: kind
  -- "norm_w" for a norm's weight (every 1-d weight is one), "bias", or the
  -- fan-in.
  local function dcae_tensors(c)
    local m = diffusers.AutoencoderDC(diffusers.vae_config(c, "tiny vae config"), c, {})
    local out = {}
    for _, np in ipairs(m:named_parameters()) do
      local name, shape = np[1], np[2]:shape()
      local kind
      if #shape == 1 then
        kind = name:find("%.weight$") and "norm_w" or "bias"
      else
        kind = 1
        for i = 2, #shape do kind = kind * shape[i] end
      end
      out[#out + 1] = { name, shape, kind }
    end
    return out
  end
  diffusers._dcae_tensors = dcae_tensors

  local ARR = json.array
  local function vae_config()
    local widths = ARR { 8, 8, 16, 16, 32, 32 }
    local types = ARR { "ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock", "EfficientViTBlock", "EfficientViTBlock" }
    local scales = ARR { ARR {}, ARR {}, ARR {}, ARR { 5 }, ARR { 5 }, ARR { 5 } }
    return {
      _class_name = "AutoencoderDC", _diffusers_version = "0.32.0", attention_head_dim = 8,
      decoder_act_fns = "silu", decoder_block_out_channels = widths, decoder_block_types = types,
      decoder_layers_per_block = ARR { 1, 1, 1, 1, 1, 1 }, decoder_norm_types = "rms_norm",
      decoder_qkv_multiscales = scales, downsample_block_type = "Conv", encoder_block_out_channels = widths,
      encoder_block_types = types, encoder_layers_per_block = ARR { 1, 1, 1, 1, 1, 1 },
      encoder_qkv_multiscales = scales, in_channels = 3, latent_channels = 8, scaling_factor = 0.41407,
      upsample_block_type = "interpolate",
      -- 1.1's keys: the released folders have them, with these values
      decoder_conv_act_fn = "relu", decoder_in_shortcut = true, encoder_out_shortcut = true,
    }
  end

  local function transformer_config(sprint, caption, layers)
    return {
      _class_name = "SanaTransformer2DModel", _diffusers_version = "0.32.0", attention_bias = false,
      attention_head_dim = 8, caption_channels = caption, cross_attention_dim = 32, cross_attention_head_dim = 16,
      dropout = 0.0, guidance_embeds = sprint, guidance_embeds_scale = 0.1, in_channels = 8,
      interpolation_scale = json.null, mlp_ratio = 2.5, norm_elementwise_affine = false, norm_eps = 1e-6,
      num_attention_heads = 4, num_cross_attention_heads = 2, num_layers = layers, out_channels = 8, patch_size = 1,
      qk_norm = "rms_norm_across_heads", sample_size = 16, timestep_scale = 1.0,
    }
  end

  local function text_encoder_config(vocab)
    return {
      architectures = ARR { "Gemma2Model" }, model_type = "gemma2", attention_bias = false, attention_dropout = 0.0,
      attn_logit_softcapping = 50.0, bos_token_id = 2, cache_implementation = "hybrid", eos_token_id = 1,
      final_logit_softcapping = 30.0, head_dim = 8, hidden_act = "gelu_pytorch_tanh",
      hidden_activation = "gelu_pytorch_tanh", hidden_size = 32, initializer_range = 0.02, intermediate_size = 64,
      max_position_embeddings = 8192, num_attention_heads = 4, num_hidden_layers = 2, num_key_value_heads = 2,
      pad_token_id = 0, query_pre_attn_scalar = 8, rms_norm_eps = 1e-6, rope_theta = 10000.0, sliding_window = 64,
      torch_dtype = "float32", use_cache = true, vocab_size = vocab,
    }
  end

  local DPM = {
    _class_name = "DPMSolverMultistepScheduler", _diffusers_version = "0.32.0", algorithm_type = "dpmsolver++",
    beta_end = 0.02, beta_schedule = "linear", beta_start = 0.0001, dynamic_thresholding_ratio = 0.995,
    euler_at_final = false, final_sigmas_type = "zero", flow_shift = 3.0, lambda_min_clipped = "-Infinity",
    lower_order_final = true, num_train_timesteps = 1000, prediction_type = "flow_prediction",
    rescale_betas_zero_snr = false, sample_max_value = 1.0, solver_order = 2, solver_type = "midpoint",
    steps_offset = 0, thresholding = false, timestep_spacing = "linspace", trained_betas = json.null,
    use_beta_sigmas = false, use_exponential_sigmas = false, use_flow_sigmas = true, use_karras_sigmas = false,
    use_lu_lambdas = false, variance_type = json.null,
  }
  local SCM = { _class_name = "SCMScheduler", _diffusers_version = "0.32.0", prediction_type = "trigflow",
                sigma_data = 0.5, num_train_timesteps = 1000 }

  -- The tokenizer's training text: SANA's instruction (every prompt
  -- carries it) and a few hundred short captions from a small vocabulary.
  local function corpus()
    local lines = {}
    for _, l in ipairs(require "grove.diffusers.sana_instruction") do lines[#lines + 1] = l end
    local adj = { "red", "blue", "green", "small", "large", "fluffy", "shiny", "old", "neon", "quiet", "bright", "dark" }
    local noun = { "cat", "dog", "city", "street", "tree", "house", "robot", "flower", "mountain", "river", "car", "bird" }
    local place = { "at dusk", "in the rain", "on a table", "under the stars", "by the sea", "in a forest",
                    "on a windowsill", "in the snow" }
    for i = 0, 599 do
      lines[#lines + 1] = string.format("a %s %s %s, %d photo", adj[i % #adj + 1], noun[(i * 7) % #noun + 1],
                                        place[(i * 5) % #place + 1], i)
      lines[#lines + 1] = string.format("A %s %s Next To A %s %s.", adj[(i * 3) % #adj + 1], noun[(i * 11) % #noun + 1],
                                        adj[(i * 5) % #adj + 1], noun[i % #noun + 1])
    end
    return table.concat(lines, "\n") .. "\n"
  end

  local function train_tokenizer(dir)
    local spm = io.popen("command -v spm_train 2>/dev/null"):read("*l")
    if not spm or spm == "" then
      fail("spm_train is not installed (Debian's package sentencepiece; scripts/install-deps installs it)")
    end
    local text = dir .. "/corpus.txt"
    write(text, corpus())
    local cmd = table.concat({
      sh(spm), "--input=" .. sh(text), "--model_prefix=" .. sh(dir .. "/tokenizer"), "--model_type=bpe",
      "--vocab_size=512", "--character_coverage=1.0", "--byte_fallback=true", "--pad_id=0", "--eos_id=1",
      "--bos_id=2", "--unk_id=3", "--pad_piece=\\<pad\\>", "--eos_piece=\\<eos\\>", "--bos_piece=\\<bos\\>",
      "--unk_piece=\\<unk\\>", "--normalization_rule_name=identity", "--add_dummy_prefix=false",
      "--remove_extra_whitespaces=false", "--split_digits=true", "--allow_whitespace_only_pieces=true",
      "--num_threads=1", "--minloglevel=2",
    }, " ")
    local log = dir .. "/spm_train.log"
    local ok = os.execute(cmd .. " > " .. sh(log) .. " 2>&1")
    if not ok or C.grove_path_kind(dir .. "/tokenizer.model") ~= C.GROVE_PATH_FILE then
      local f = io.open(log, "r")
      local why = f and f:read("*a") or ""
      if f then f:close() end
      fail("spm_train failed:\n" .. why)
    end
    os.remove(text)
    os.remove(log)
    os.remove(dir .. "/tokenizer.vocab")
    write(dir .. "/tokenizer_config.json", json.encode {
      tokenizer_class = "GemmaTokenizer", bos_token = "<bos>", eos_token = "<eos>", pad_token = "<pad>",
      unk_token = "<unk>", add_bos_token = true, add_eos_token = false, padding_side = "right",
    })
    write(dir .. "/special_tokens_map.json", json.encode {
      bos_token = "<bos>", eos_token = "<eos>", pad_token = "<pad>", unk_token = "<unk>" })
  end

  -- Random tensors for a list of {name, shape} from the generator: std
  -- `std` (or 1/√fan-in for kind numbers), norms at 1 and 0 plus noise.
  local function random(gen, list, std)
    local t = {}
    for _, e in ipairs(list) do
      local name, shape, kind = e[1], e[2], e[3]
      local x = grove.randn(shape, { generator = gen })
      if kind == "norm_w" then x = x * 0.1 + 1
      elseif kind == "norm_b" or kind == "bias" then x = x * 0.02
      elseif type(kind) == "number" then x = x * (1 / math.sqrt(kind))
      else x = x * std end
      t[name] = x
    end
    return t
  end

  local function shapes_of(module)
    local list = {}
    for _, np in ipairs(module:named_parameters()) do list[#list + 1] = { np[1], np[2]:shape() } end
    return list
  end

  function diffusers.tiny_folder(dir, opts)
    opts = opts or {}
    if type(dir) ~= "string" or dir == "" then fail("expected a folder path, got " .. tostring(dir)) end
    local seed = opts.seed or 0
    if type(seed) ~= "number" or seed % 1 ~= 0 or seed < 0 then fail("seed must be an integer >= 0, got " .. tostring(seed)) end
    local sprint = opts.sprint and true or false
    local layers = opts.layers or 2
    if type(layers) ~= "number" or layers % 1 ~= 0 or layers < 1 or layers > 64 then
      fail("layers must be an integer from 1 to 64, got " .. tostring(layers))
    end
    if C.grove_path_kind(dir) ~= C.GROVE_PATH_NONE and C.grove_path_kind(dir .. "/model_index.json") ~= C.GROVE_PATH_NONE then
      fail(dir .. " already holds a pipeline (model_index.json); give a new folder")
    end
    local gen = grove.Generator(seed)
    mkdir(dir .. "/tokenizer")
    train_tokenizer(dir .. "/tokenizer")
    local vocab = diffusers.tokenizer(dir).vocab_size

    mkdir(dir .. "/text_encoder")
    local tconf = text_encoder_config(vocab)
    write(dir .. "/text_encoder/config.json", json.encode(tconf))
    local enc = diffusers.text_encoder(dir, { meta = true })
    diffusers.write_component(dir .. "/text_encoder", tconf, random(gen, shapes_of(enc), 0.1), { weights_name = "model" })

    local xconf = transformer_config(sprint, tconf.hidden_size, layers)
    local T = diffusers.transformer_from(xconf, nil, { meta = true, config_where = "tiny transformer config" })
    diffusers.write_component(dir .. "/transformer", xconf, random(gen, shapes_of(T), 0.1))

    local vconf = vae_config()
    diffusers.write_component(dir .. "/vae", vconf, random(gen, dcae_tensors(vconf)))

    mkdir(dir .. "/scheduler")
    write(dir .. "/scheduler/scheduler_config.json", json.encode(sprint and SCM or DPM))
    write(dir .. "/model_index.json", json.encode {
      _class_name = sprint and "SanaSprintPipeline" or "SanaPipeline", _diffusers_version = "0.32.0",
      scheduler = ARR { "diffusers", sprint and "SCMScheduler" or "DPMSolverMultistepScheduler" },
      text_encoder = ARR { "transformers", "Gemma2Model" }, tokenizer = ARR { "transformers", "GemmaTokenizerFast" },
      transformer = ARR { "diffusers", "SanaTransformer2DModel" }, vae = ARR { "diffusers", "AutoencoderDC" },
    })
    return dir
  end

  return diffusers
end
