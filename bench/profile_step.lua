-- Where a step's time goes, op by op (grove.profile), for the two cases the
-- performance page discusses:
--   s:    one training step (forward, MSE, backward) and one sampling step
--         of bench/sana.lua's `small` preset at batch 16 (bench-s);
--   1600m: one forward of a SANA1.5 1.6B-width transformer with --depth
--         blocks (default 2; the released model has 20) at 1024² (a 32×32×32
--         latent), CFG batch 2, 300 caption tokens, t = 999: the real
--         model's per-block shares without its 6.4 GB of weights.
-- Each case runs its step(s) twice untimed, then once under the profiler.
--   grove bench/profile_step.lua [s|1600m] [--depth N] [--rows N] [--compute f32|bf16]
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local B = dofile(here .. "/benchlib.lua")

local case, depth, rows, compute = "s", 2, 20, "f32"
local i = 1
while arg[i] do
  local a = arg[i]
  if a == "--depth" then depth = tonumber(arg[i + 1]); i = i + 2
  elseif a == "--rows" then rows = tonumber(arg[i + 1]); i = i + 2
  elseif a == "--compute" then compute = arg[i + 1]; i = i + 2
  elseif a == "s" or a == "1600m" then case = a; i = i + 1
  else error("profile_step: unknown argument " .. tostring(a) .. " (s|1600m, --depth N, --rows N, --compute f32|bf16)", 0) end
end
if not depth or depth < 1 or depth % 1 ~= 0 then error("profile_step: --depth takes a positive integer", 0) end
if not rows or rows < 1 then error("profile_step: --rows takes a positive integer", 0) end
if compute ~= "f32" and compute ~= "bf16" then error("profile_step: --compute takes f32 or bf16", 0) end

print(string.format("grove %s, %d threads, %s; %s; load average %s", grove._VERSION, grove.num_threads(),
  grove.blas_info(), os.date("!%Y-%m-%d %H:%M UTC"), B.loadavg()))

local model, steps
if case == "s" then
  local batch, size = 16, 32
  local c = grove.nn.resolve_config("small")
  model = grove.nn.Sana("small", { seed = 0 })
  local xt, t, text, mask, target = B.flow_batch(c, batch, size)
  steps = {
    { "training step (small, batch 16)", function()
      model:zero_grad()
      grove.mse_loss(model:forward(xt, t, text, mask), target):backward()
    end },
    { "sampling step (small, batch 16)", function()
      grove.no_grad(function() return model:forward(xt, t, text, mask) end)
    end },
  }
else
  local cfg = B.sana15_1600m_config()
  cfg.num_layers = depth
  model = grove.nn.Sana(grove.diffusers.transformer_config(cfg), { seed = 0 })
  local g = grove.Generator(1)
  local x = grove.randn({ 2, 32, 32, 32 }, { generator = g })
  local t = grove.tensor { 999, 999 }
  local text = grove.randn({ 2, 300, 2304 }, { generator = g })
  local mask = grove.ones { 2, 300 }
  mask:narrow(1, 1, 1):narrow(2, 2, 299):fill_(0)   -- the negative prompt: one real token
  steps = {
    { string.format("forward (1.6B width, %d blocks, 1024², CFG batch 2)", depth), function()
      grove.no_grad(function() return model:forward(x, t, text, mask) end)
    end },
  }
end
if compute == "bf16" then model:set_compute_dtype("bf16") end

for _, s in ipairs(steps) do
  s[2](); s[2]()
  grove.collect()
  print(string.format("\n== %s, compute %s", s[1], compute))
  print(grove.profile(s[2]):format(rows))
end
