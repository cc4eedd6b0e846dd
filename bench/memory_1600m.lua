-- Memory of one full training step of SANA 1600M on one GPU: 1,024 latent
-- tokens (32×32, patch 1), batch 1, a 300-token caption, CAME-8bit, bf16
-- GEMMs with f32 master weights, every block recomputed. Prints the
-- memory report (parameters, gradients, optimizer state, activations,
-- allocator cache at the peak) and one MEMBENCH line for scripts/gpu-check.
--   grove bench/memory_1600m.lua [--device cuda] [--preset sana_1600m] [--tokens 1024]
--                                [--no-recompute] [--f32] [--optimizer came8bit]
-- (--no-checkpoint, the old name of --no-recompute, still works for one release)
-- A small CPU run checks the script itself:
--   grove bench/memory_1600m.lua --device cpu --preset small --tokens 64
local o = { device = "cuda", preset = "sana_1600m", tokens = 1024, recompute = true, bf16 = true, optimizer = "came8bit" }
local i = 1
while arg[i] do
  local a = arg[i]
  if a == "--device" then o.device = arg[i + 1]; i = i + 1
  elseif a == "--preset" then o.preset = arg[i + 1]; i = i + 1
  elseif a == "--tokens" then o.tokens = tonumber(arg[i + 1]); i = i + 1
  elseif a == "--optimizer" then o.optimizer = arg[i + 1]; i = i + 1
  elseif a == "--no-recompute" or a == "--no-checkpoint" then o.recompute = false
  elseif a == "--f32" then o.bf16 = false
  else error("memory_1600m: unknown argument " .. a) end
  i = i + 1
end
if o.device == "cuda" and not grove.cuda.is_available() then
  print("MEMBENCH skipped=1 reason=no_cuda_device")
  return
end

local c = grove.nn.resolve_config(o.preset)
local side = math.floor(math.sqrt(o.tokens) + 0.5)
assert(side * side == o.tokens, "tokens must be a square number")
local L, B = c.text_len, 1
local t0 = grove.now()
local model = grove.nn.Sana(o.preset, { seed = 0 })
model:to(o.device, o.bf16 and "bf16" or "f32")
model:recompute(o.recompute)
local opt = grove.optim[o.optimizer](model, { lr = 1e-4 })
local g = grove.Generator(0)
local function on_dev(t) return t:to(o.device) end
local x = on_dev(grove.randn({ B, side * c.patch_size, side * c.patch_size, c.in_channels }, g))
local target = on_dev(grove.randn({ B, side * c.patch_size, side * c.patch_size, c.out_channels }, g))
local text = on_dev(grove.randn({ B, L, c.caption_channels }, g))
local mask = on_dev(grove.ones { B, L })
local t = on_dev(grove.tensor { 500 })
print(string.format("%s: %d parameters, built and moved in %.1f s", o.preset, model:num_parameters(), grove.now() - t0))

local function step()
  local loss = grove.mse_loss(model:forward(x, t, text, mask), target)
  loss:backward()
  opt:step()
  return loss
end
local t1 = grove.now()
local r = grove.memory_report(model, opt, { step = step, device = o.device })
local secs = grove.now() - t1
print(string.format("one step: %.2f s; %s, %s, %s, %d tokens, batch %d, text %d", secs, o.optimizer,
  o.bf16 and "bf16 GEMMs (f32 master weights)" or "f32", o.recompute and "all blocks recomputed" or "no recomputation",
  o.tokens, B, L))
print(grove.format_memory_report(r))
local total = o.device == "cuda" and grove.cuda.device_info(0).total_bytes or nil
print(string.format("MEMBENCH preset=%s device=%s peak=%d parameters=%d gradients=%d state=%d activations=%d cache=%d fits24=%d total=%s step_s=%.2f",
  o.preset, o.device, r.peak, r.parameters, r.gradients, r.optimizer_state, r.activations, r.cache,
  r.peak < 24 * 2 ^ 30 and 1 or 0, tostring(total), secs))
