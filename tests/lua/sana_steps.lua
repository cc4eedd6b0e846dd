-- The pipelines' denoising loops step by step against the diffusers-sana
-- fixtures (../shared/fixtures/README.md): what the loop feeds the
-- transformer, what comes out, and the latents after each scheduler step,
-- each within 1e-4 of diffusers' float64 run (max |grove − ref| / max |ref|).
-- Shared by the sampler specs (grove.diffusers.sample) and the pipeline's
-- (pipe:generate): run(name, T_dir, opts) runs one loop and returns the
-- latents and the sampler's info; opts are grove.diffusers.sample's.
local spec = require "spec"

local M = { BAR = 1e-4 }

function M.rel_err(a, ref)
  local d = (a:to("f32") - ref:to("f32")):abs():max():item()
  return d / ref:to("f32"):abs():max():item()
end
function M.nhwc(t) return t:permute { 1, 3, 4, 2 }:contiguous() end
function M.nchw(t) return t:permute { 1, 4, 2, 3 } end
function M.close_to(what, a, ref)
  local e = M.rel_err(a, ref)
  spec.assert(e < M.BAR, string.format("%s: error %.3g (bar %g)", what, e, M.BAR))
  return e
end

-- The extra options each fixture's loop was run with.
function M.extra(sana, name, kind)
  if kind == "scm" then
    local i = grove.load_safetensors(sana .. "/" .. name .. "/sample_scm_in.safetensors")
    return { steps = 2, guidance_scale = 4.5, noise = { M.nhwc(i.noise_0), M.nhwc(i.noise_1) } }
  end
  return { steps = 4, cfg = 4.5 }
end

-- sana: the diffusers-sana folder; name: b_sana15, e_teacher, d_sprint;
-- kind: dpm, euler, scm; run(dir, opts) -> latents, info.
function M.check(sana, name, kind, run)
  local nhwc, nchw, close_to = M.nhwc, M.nchw, M.close_to
  local i = grove.load_safetensors(sana .. "/" .. name .. "/sample_" .. kind .. "_in.safetensors")
  local o = grove.load_safetensors(sana .. "/" .. name .. "/sample_" .. kind .. "_out.safetensors")
  local opts = { sampler = kind, prompt_embeds = i.prompt_embeds, mask = i.prompt_attention_mask,
                 negative_embeds = i.negative_prompt_embeds, negative_mask = i.negative_prompt_attention_mask,
                 latents = nhwc(i.latents) }
  for k, v in pairs(M.extra(sana, name, kind)) do opts[k] = v end
  local steps = 0
  opts.callback = function(s, info)
    local p = "step" .. (s - 1) .. "."
    spec.near(info.t, o[p .. "t"]:item(), 1e-6 * math.max(1, math.abs(info.t)), p .. "t")
    close_to(p .. "timestep_in", info.timestep_in, o[p .. "timestep_in"])
    close_to(p .. "model_in", nchw(info.model_in), o[p .. "model_in"])
    close_to(p .. "model_out", nchw(info.model_out), o[p .. "model_out"])
    close_to(p .. "latents", nchw(info.latents), o[p .. "latents"])
    if o[p .. "guidance_in"] then spec.near(info.guidance_in, o[p .. "guidance_in"]:item(), 1e-7, p .. "guidance_in") end
    if s == 1 then
      close_to("CFG batch text", info.encoder_hidden_states_in, o["step0.encoder_hidden_states_in"])
      spec.eq(spec.max_diff(info.encoder_attention_mask_in, o["step0.encoder_attention_mask_in"]:to("f32")), 0)
    end
    steps = s
  end
  local x, info = run(sana .. "/" .. name, opts)
  spec.eq(steps, o["scheduler.timesteps"]:numel() - (kind == "scm" and 1 or 0))
  close_to(name .. " " .. kind .. " latents", nchw(x), o.latents)
  local ts = o["scheduler.timesteps"]:tolist()
  for k, v in ipairs(ts) do spec.near(info.timesteps[k], v, 1e-6 * math.max(1, math.abs(v)), "timestep " .. k) end
  if o["scheduler.sigmas"] then
    for k, v in ipairs(o["scheduler.sigmas"]:tolist()) do spec.near(info.sigmas[k], v, 1e-7, "sigma " .. k) end
  end
end

return M
