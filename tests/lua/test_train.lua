-- The training loop end to end on the shapes set: the loss falls, a resumed
-- run continues with bit-identical losses, a NaN stops training with the
-- last checkpoint intact, and the checkpoint serves sampling.
local spec = require "spec"

local tmpdir = spec.tmpdir

local base = { preset = "tiny", batch = 8, lr = 2e-3, warmup = 5, sample_every = 0, log_every = 1000, eval = false,
               seed = 3 }
local function opts(extra)
  local o = {}
  for k, v in pairs(base) do o[k] = v end
  for k, v in pairs(extra) do o[k] = v end
  return o
end

spec.describe("training", function()
  spec.it("30 steps: the loss falls", function()
    local dir = tmpdir()
    local run = grove.train.run(opts { steps = 30, out = dir, save_every = 30 })
    os.execute("rm -rf " .. dir)
    local first, last = 0, 0
    for i = 1, 5 do first = first + run.losses[i] end
    for i = 26, 30 do last = last + run.losses[i] end
    spec.assert(last < first, string.format("mean loss of the first 5 steps %.4f, last 5 %.4f", first / 5, last / 5))
  end)

  spec.it("a resumed run continues with bit-identical losses", function()
    local a, b = tmpdir(), tmpdir()
    local full = grove.train.run(opts { steps = 12, out = a, save_every = 6 })
    grove.train.run(opts { steps = 6, out = b, save_every = 6 })
    local resumed = grove.train.run(opts { steps = 12, out = b, save_every = 6, resume = true })
    os.execute("rm -rf " .. a .. " " .. b)
    for i = 7, 12 do spec.eq(resumed.losses[i], full.losses[i], "loss at step " .. i) end
  end)

  spec.it("a NaN loss stops the run and keeps the last good checkpoint", function()
    local dir = tmpdir()
    local shapes = grove.data.shapes { batch = 8, seed = 3 }
    local n = 0
    local poisoned = { next = function()
      n = n + 1
      local b = shapes:next()
      if n == 5 then b.images = b.images * (0 / 0) end
      return b
    end }
    local run = grove.train.run(opts { steps = 10, out = dir, save_every = 2, data = poisoned })
    spec.assert(run.nan, "the run reports the NaN")
    spec.eq(run.step, 4, "four good steps")
    local parts = grove.train.load_for_inference(dir .. "/checkpoint.safetensors")
    spec.eq(parts.step, 4, "the checkpoint is the one of step 4")
    for _, p in ipairs(parts.both:parameters()) do
      spec.assert(p:abs():max():item() == p:abs():max():item(), "finite weights")
    end
    local img = grove.train.sample_prompts(parts, { "a red circle" }, { steps = 4 })
    spec.eq(img:shape_str(), "[1,32,32,3]")
    os.execute("rm -rf " .. dir)
  end)

  spec.it("config overrides the preset; init starts a fresh run from saved weights", function()
    local a, b = tmpdir(), tmpdir()
    local first = grove.train.run(opts { steps = 3, out = a, save_every = 3, config = { depth = 1 } })
    spec.eq(#first.parts.model.blocks, 1, "depth override")
    local w = a .. "/weights.safetensors"
    grove.train.save_weights(w, first.parts)
    -- with lr 0 the run's weights stay the file's
    local again = grove.train.run(opts { steps = 1, out = b, save_every = 1, init = w, lr = 0 })
    spec.eq(#again.parts.model.blocks, 1, "depth from the file")
    local saved = grove.load_safetensors(w)
    for _, np in ipairs(again.parts.both:named_parameters()) do
      spec.eq((np[2]:detach() - saved[np[1]]):abs():max():item(), 0, np[1] .. " comes from the file")
    end
    local fresh = grove.train.run(opts { steps = 1, out = b, save_every = 1, config = { depth = 1 } })
    spec.assert(fresh.losses[1] ~= again.losses[1], "init changed the start")
    spec.raises(function() grove.train.run(opts { steps = 1, out = b, init = "/nonexistent.safetensors" }) end,
      "init: cannot read")
    local t, m = grove.load_safetensors(w)
    t["model.proj_out.weight"] = nil
    grove.save_safetensors(w, t, m)
    spec.raises(function() grove.train.run(opts { steps = 1, out = b, init = w }) end, "has no tensor model.proj_out.weight")
    os.execute("rm -rf " .. a .. " " .. b)
  end)

  spec.it("decay cools the learning rate down to 0 at the last step", function()
    local dir = tmpdir()
    local lrs = {}
    grove.train.run(opts { steps = 8, warmup = 2, decay = 4, out = dir, save_every = 8, config = { depth = 1 },
      on_step = function(_, _, state) lrs[#lrs + 1] = state.opt.param_groups[1].lr end })
    os.execute("rm -rf " .. dir)
    -- lr after step k is the lr of step k + 1
    spec.near(lrs[1], 2e-3, 1e-12, "warm after warmup")
    spec.near(lrs[4], 2e-3 * 3 / 4, 1e-12, "cooling")
    spec.near(lrs[7], 0, 1e-12, "cooled")
  end)

  spec.it("resuming without a checkpoint is a clear error", function()
    spec.raises(function() grove.train.run(opts { steps = 2, out = "/nonexistent/run", resume = true }) end, "--resume")
  end)
end)

spec.describe("compute accounting", function()
  -- forward_flops recounted from the model's own weights: 2 FLOPs per
  -- multiply-add of every block matrix over the tokens it acts on (image
  -- tokens, or caption tokens for the cross-attention keys and values), the
  -- patch embedding and the output projection, plus each block's attention
  -- sums (linear attention: 4·T·D·head_dim; cross-attention scores and
  -- weighted sums: 4·T·L·D)
  spec.it("forward_flops matches a count from the parameter shapes", function()
    local B, size = 5, 32
    for _, depth in ipairs { 1, 3 } do
      local c = grove.nn.resolve_config("tiny")
      c.depth = depth
      local m = grove.nn.Sana(c, { seed = 1 })
      local T = B * (size / c.patch_size) ^ 2
      local L = c.text_len
      local count = depth * (4 * T * c.width * c.head_dim + 4 * T * L * c.cross_heads * c.cross_head_dim)
      for _, np in ipairs(m:named_parameters()) do
        local name, n = np[1], np[2]:numel()
        if name:match("weight$") and np[2]:dim() >= 2 then
          if name:match("attn2%.to_[kv]%.") then count = count + 2 * B * L * n
          elseif name:match("^transformer_blocks") or name:match("^patch_embed") or name:match("^proj_out") then
            count = count + 2 * T * n
          end
        end
      end
      spec.eq(grove.nn.forward_flops(c, B, size, size), count, "depth " .. depth)
      spec.eq(grove.train.step_flops("tiny", depth, B, size), 3 * count, "a step is 3 forwards")
    end
  end)

  spec.it("steps_for_flops rounds to the nearest step; calibration_flops is one forward per prompt and noise level", function()
    local F = grove.train.step_flops("tiny", 4, 32)
    spec.eq(grove.train.steps_for_flops(0, "tiny", 4, 32), 0)
    spec.eq(grove.train.steps_for_flops(1000 * F, "tiny", 4, 32), 1000)
    spec.eq(grove.train.steps_for_flops(2.49 * F, "tiny", 4, 32), 2)
    spec.eq(grove.train.steps_for_flops(2.51 * F, "tiny", 4, 32), 3)
    -- a budget spent at another depth: 100 steps at depth 6 in depth-4 steps
    local F6 = grove.train.step_flops("tiny", 6, 32)
    spec.eq(grove.train.steps_for_flops(100 * F6, "tiny", 4, 32), math.floor(100 * F6 / F + 0.5))
    local c = grove.nn.resolve_config("tiny")
    spec.eq(grove.prune.calibration_flops(c, 64, 8), grove.nn.forward_flops(c, 512, 32, 32))
    spec.eq(grove.prune.calibration_flops(c, 6, 2, 16), grove.nn.forward_flops(c, 12, 16, 16))
  end)
end)
