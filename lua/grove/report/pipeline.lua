-- The pipeline's report (recipes/pipeline.lua, docs/pipeline.md): the
-- page that recipe writes, built from its stages' manifests with the
-- grove.report writer. Needs grove (plots, the evaluator's categories).
--
--   local doc, rows = require "grove.report.pipeline"(grove, run)
--   doc:write(o.out .. "/report.html")
--
-- run: o (the recipe's options), base, grow, scratch, prune, finetune,
-- scratch_pruned, judge, search (each stage's manifest), compute (the
-- recipe's FLOPs of each part of the path: base, grow, calib, finetune,
-- grown, finetuned; scratch and scratch_pruned and their steps), done (stage name -> manifest, for
-- the timing table), stages (their order), argline (the command), plan
-- (the plan's lines), study_commands (the standalone studies' command
-- lines), grid_prompts, grid_seed, exists(path) -> boolean.
-- Returns the document (not yet written), the score rows (stage, blocks,
-- note, per-category scores..., overall) and the stages' total seconds.
local report = require "grove.report"

return function(grove, run)
  local o = run.o
  local base, grow, scratch, prune, finetune = run.base, run.grow, run.scratch, run.prune, run.finetune
  local judge, search = run.judge, run.search
  local scratch_pruned = run.scratch_pruned or { off = true }
  local STAGES, GRID_PROMPTS, GRID_SEED = run.stages, run.grid_prompts, run.grid_seed

  local function smooth(y, a)
    local out, acc = {}, nil
    for i, v in ipairs(y) do acc = acc and (1 - a) * acc + a * v or v; out[i] = acc end
    return out
  end
  local function mean_tail(l, n)
    local s, k = 0, 0
    for i = math.max(1, #l - n + 1), #l do s, k = s + l[i], k + 1 end
    return s / math.max(k, 1)
  end
  local plot = require "grove.plot"
  local function curve(path, title, series, ylabel)
    plot.lines { path = o.out .. "/" .. path, title = title, xlabel = "step", ylabel = ylabel or "flow-matching loss",
                 log_y = true, series = series }
    return path
  end

  local cats = grove.data.captions.categories
  local short = { single_object = "single", two_object = "two", counting = "count", colors = "colors",
                  position = "position", color_attr = "color attr" }
  local rows_eval = {}
  local stats = grove.stats
  -- The overall score's 95% CI over prompts (a bootstrap of the per-prompt
  -- verdicts; with the same number of prompts per category their mean is the
  -- overall score), or "" for a manifest written without them.
  local function ci_text(passes)
    if not passes or #passes == 0 then return "" end
    local r = stats.bootstrap(passes)
    return string.format("%.3f–%.3f", r.lo, r.hi)
  end
  local function eval_row(label, m, note, passes)
    if not m or not m.eval then return end
    local row = { label, m.depth or "", note or "" }
    for _, c in ipairs(cats) do row[#row + 1] = m.eval.per_category[c] or 0 end
    row[#row + 1] = ci_text(passes or m.eval.passes)
    row[#row + 1] = m.eval.overall
    rows_eval[#rows_eval + 1] = row
  end
  -- One row of a comparison table under the project's rule (docs/statistics.md):
  -- a winner only when the 95% CI of the paired difference excludes 0.
  -- (each row's stats.compare result, for the sentences that go with a table)
  local result_of = setmetatable({}, { __mode = "k" })
  local function compare_row(what, a, na, b, nb)
    if not a or not b or #a == 0 or #a ~= #b then return nil end
    local r = stats.compare(a, b, { names = { na, nb } })
    local row = { what, r.diff, string.format("%.3f to %.3f", r.lo, r.hi), r.n, r.verdict_text }
    result_of[row] = r
    return row
  end
  local function comparison_table(doc, caption, rows)
    local t = {}
    for i = 1, table.maxn(rows) do if rows[i] then t[#t + 1] = rows[i] end end
    if #t == 0 then return end
    doc:table { caption = caption, header = { "comparison", "difference", "95% CI", "n", "verdict" }, rows = t,
                formats = { [2] = "%+.3f" } }
  end
  eval_row("base", base, string.format("%d steps", o.base_steps))
  eval_row("grown", grow, string.format("+%d steps", o.grow_steps))
  if not scratch.off then
    eval_row("scratch (equal compute)", scratch, string.format("%d steps from scratch", scratch.steps or 0))
  end
  eval_row("pruned", prune, "right after pruning")
  eval_row("fine-tuned", finetune, string.format("+%d steps", o.ft_steps))
  if not scratch_pruned.off then
    eval_row("scratch, pruned depth (equal compute)", scratch_pruned,
      string.format("%d steps from scratch", scratch_pruned.steps or 0))
  end
  eval_row(string.format("search (tournament, N = %d)", o.search_max_n), { depth = o.prune_depth, eval = search.eval },
    string.format("%d prompts per category", o.search_prompts), nil)

  local doc = report.new { title = "grove pipeline: " .. o.name, dir = o.out, embed = o.embed }
  doc:p(string.format("The SANA 1.5 pipeline on the shapes set: train a %d-block model, grow it to %d blocks, train on, " ..
    "prune it to %d blocks by block importance, fine-tune, and search at inference time with a trained judge. " ..
    "Every number below was measured by this run.", o.base_depth, o.grow_depth, o.prune_depth))

  doc:section("configuration", "Configuration")
  doc:pre(run.argline)
  local cfg_rows = {}
  for _, l in ipairs(run.plan) do cfg_rows[#cfg_rows + 1] = l end
  doc:pre(table.concat(cfg_rows, "\n"))
  local timing = {}
  local total, cpu_total = 0, 0
  for _, s in ipairs(STAGES) do
    local m = run.done[s]
    if m then
      total = total + (m.seconds or 0)
      cpu_total = cpu_total + (m.cpu_seconds or 0)
      timing[#timing + 1] = { s, m.seconds or 0, m.cpu_seconds or "", m.skipped and "earlier run" or "this run", m.params or "" }
    end
  end
  timing[#timing + 1] = { "all stages", total, cpu_total, "", "" }
  doc:table { caption = "Stages (wall and processor seconds, evaluation and sample grids included)",
              header = { "stage", "wall s", "cpu s", "ran in", "parameters" }, rows = timing,
              formats = { [2] = "%.0f", [3] = "%.0f" } }
  doc:p(string.format("Machine: %s; %s.", grove.blas_info and grove.blas_info() or "cpu", os.date("%Y-%m-%d %H:%M")), { class = "note" })
  doc:table { caption = "Which data each stage used", header = { "stage", "data" }, rows = {
    { "training (base, grow, scratch, fine-tune, scratch_pruned)", string.format("the shapes training split, seed %d", o.seed) },
    { "pruning calibration", string.format("%d captions of the shapes training split (each category's stream of seed %d) " ..
      "rendered, × %d noise levels", o.calib_prompts, o.seed, o.calib_timesteps) },
    { "judge", "training-split renders with hard negatives and the fine-tuned model's samples of training-split " ..
      "captions; measured on renders of other seeds, the held-out pairs and samples it did not train on" },
    { "evaluation", string.format("the first %d prompts of each category of data/shapes/prompts/, sampling seed %d",
      o.eval_prompts, o.seed) },
    { "search study", string.format("the first %d prompts of each category of data/shapes/prompts/", o.search_prompts) },
  } }

  doc:section("scores", "The evaluator's table after each stage")
  local header = { "stage", "blocks", "trained" }
  for _, c in ipairs(cats) do header[#header + 1] = short[c] or c end
  header[#header + 1] = "95% CI"
  header[#header + 1] = "overall"
  local score_cols = {}
  for i = 4, #header do score_cols[i] = "%.3f" end
  doc:table { header = header, rows = rows_eval, bold_last = true, formats = score_cols }
  local function passes(m) return m and m.eval and m.eval.passes end
  comparison_table(doc, "Paired differences of the stages' per-prompt verdicts (the same prompts and seed for every stage)", {
    compare_row("grown − base", passes(grow), "grown", passes(base), "base"),
    (not scratch.off) and compare_row("grown − scratch (equal compute)", passes(grow), "grown", passes(scratch), "scratch")
      or nil,
    compare_row("pruned − grown", passes(prune), "pruned", passes(grow), "grown"),
    compare_row("fine-tuned − pruned", passes(finetune), "fine-tuned", passes(prune), "pruned"),
    compare_row("fine-tuned − grown", passes(finetune), "fine-tuned", passes(grow), "grown"),
    (not scratch_pruned.off) and compare_row("fine-tuned − scratch of the pruned depth (equal compute)", passes(finetune),
      "fine-tuned", passes(scratch_pruned), "scratch") or nil,
  })

  -- The two equal-compute comparisons (the rule of docs/statistics.md:
  -- "beats" only when the 95% CI of the paired difference excludes 0), with
  -- the compute each side spent.
  doc:section("equal-compute", "Equal-compute comparisons")
  if scratch.off and scratch_pruned.off then
    doc:p("No scratch models were trained (--scratch=false): no equal-compute comparison.")
  else
    local rows, sentences = {}, {}
    local function side(what, a, a_flops, b, b_flops, names)
      local row = compare_row(what, passes(a), names[1], passes(b), names[2])
      if not row then return end
      local r = result_of[row]
      table.insert(row, 2, a_flops / 1e12)
      table.insert(row, 3, b_flops / 1e12)
      rows[#rows + 1] = row
      sentences[#sentences + 1] = r.sentence:sub(1, 1):upper() .. r.sentence:sub(2) .. "."
    end
    if not scratch.off and scratch.path_flops then
      side(string.format("grown (depth %d) − scratch (depth %d, %d steps)", o.grow_depth, o.grow_depth, scratch.steps),
        grow, scratch.path_flops, scratch, scratch.flops,
        { string.format("the grown model (base %d steps + %d steps)", o.base_steps, o.grow_steps),
          string.format("the depth-%d model trained from scratch for %d steps", o.grow_depth, scratch.steps) })
    end
    if not scratch_pruned.off and scratch_pruned.path_flops then
      side(string.format("fine-tuned (depth %d) − scratch (depth %d, %d steps)", o.prune_depth, o.prune_depth,
        scratch_pruned.steps), finetune, scratch_pruned.path_flops, scratch_pruned, scratch_pruned.flops,
        { "the pruned and fine-tuned model",
          string.format("the depth-%d model trained from scratch for %d steps", o.prune_depth, scratch_pruned.steps) })
    end
    if #rows > 0 then
      doc:table { caption = "Each path against a model of the same depth trained from scratch with the same compute " ..
        "(paired over the evaluation prompts)", header = { "comparison", "TFLOP (path)", "TFLOP (scratch)", "difference",
        "95% CI", "n", "verdict" }, rows = rows, formats = { [2] = "%.3f", [3] = "%.3f", [4] = "%+.3f" } }
      for _, line in ipairs(sentences) do doc:p(line) end
    end
    local c = run.compute
    if c then
      doc:p(string.format("Compute is the transformer's matrix FLOPs (grove.train.step_flops: 3 forwards per training " ..
        "step; the calibration's forwards counted once). The grown model's path: base %.3f + grow %.3f = %.3f TFLOP. " ..
        "The fine-tuned model's path: that, + calibration %.3f + fine-tuning %.3f = %.3f TFLOP. Each scratch model " ..
        "trains the number of steps at its depth that spends its path's compute, rounded to a whole step, with the " ..
        "same schedule rules (lr %g, warmup, cooldown over the last %.0f%% of its steps, EMA %g).", c.base / 1e12,
        c.grow / 1e12, c.grown / 1e12, c.calib / 1e12, c.finetune / 1e12, c.finetuned / 1e12, o.lr, 100 * o.decay, o.ema),
        { class = "note" })
    end
  end
  doc:p(string.format("GenEval-like scores of the analytic evaluator (docs/shapes.md): %d prompts per category, %d sampling " ..
    "steps, EMA weights. The search row scores the tournament's pick among %d candidates for each of the search " ..
    "study's %d prompts per category (its own prompt set).", o.eval_prompts, o.eval_steps, o.search_max_n,
    o.search_prompts), { class = "note" })

  doc:section("losses", "Loss curves")
  for _, s in ipairs { { "base", base }, { "grow", grow }, { "scratch", scratch }, { "finetune", finetune },
                       { "scratch_pruned", scratch_pruned } } do
    local m = s[2]
    if m.losses and #m.losses > 1 then
      doc:image(curve(s[1] .. "/curve.png", s[1] .. " training loss",
        { { name = "loss", y = m.losses }, { name = "smoothed", y = smooth(m.losses, 0.05) } }),
        { alt = s[1] .. " loss", width = 640,
          caption = string.format("%s: %d steps in %.0f s", s[1], #m.losses, m.train_seconds or 0) })
    end
  end
  if judge.losses and #judge.losses > 1 then
    doc:image(curve("judge/curve.png", "judge training loss", { { name = "loss", y = judge.losses },
      { name = "smoothed", y = smooth(judge.losses, 0.05) } }, "cross-entropy"),
      { alt = "judge loss", width = 640, caption = string.format("judge: %d steps in %.0f s", #judge.losses, judge.train_seconds or 0) })
  end

  doc:section("growth", "Growth against training from scratch")
  do
    local series = { { name = string.format("grown %d->%d", o.base_depth, o.grow_depth), y = smooth(grow.losses, 0.05) } }
    local caption
    if not scratch.off then
      series[2] = { name = string.format("scratch depth %d", o.grow_depth), y = smooth(scratch.losses, 0.05) }
      caption = string.format("Smoothed training loss of the grown model (%d steps after growth) and of a depth-%d model " ..
        "trained from scratch with the compute of the base and the grown training (%d steps) with the same schedule rules, " ..
        "data and noise. First loss: grown %.4f, scratch %.4f; last 50 steps' mean: grown %.4f, scratch %.4f.",
        o.grow_steps, o.grow_depth, #scratch.losses, grow.losses[1], scratch.losses[1],
        mean_tail(grow.losses, 50), mean_tail(scratch.losses, 50))
    else
      -- no scratch run: the base model's own curve, placed before the growth
      local x = {}
      for i = 1, #base.losses do x[i] = i - #base.losses end
      series[2] = { name = "base model (before growth)", x = x, y = smooth(base.losses, 0.05) }
      caption = "No scratch model was trained (--scratch=false): the second curve is the base model's own loss, " ..
        "at negative steps before the growth, not a from-scratch comparison."
    end
    doc:image(curve("growth.png", "grown vs scratch", series, "loss (smoothed)"), { alt = "growth vs scratch", caption = caption })
    doc:p(string.format("Partial preservation with identity init (blocks: %s): the grown model starts as the base " ..
      "model's function. Its first training loss is %.4f; the base model's last 50 steps averaged %.4f.",
      table.concat(grow.kinds or {}, " "), grow.losses[1], mean_tail(base.losses, 50)), { class = "note" })
  end

  doc:section("pruning", "Pruning")
  doc:image("prune/importance.png", { alt = "block importance", caption = string.format(
    "Block importance of the grown model (1 - mean cos(x_in, x_out) on %d calibration prompts x %d noise levels); " ..
    "red blocks were removed: %s.", o.calib_prompts, o.calib_timesteps, table.concat(prune.removed, ", ")) })
  do
    local t = {}
    for i, v in ipairs(prune.scores) do t[#t + 1] = { i, v, (function()
      for _, r in ipairs(prune.removed) do if r == i then return "removed" end end
      return "kept"
    end)() } end
    doc:table { caption = "Importance per block", header = { "block", "importance", "" }, rows = t, format = "%.5f" }
  end
  doc:p(string.format("Calibration flow loss: %.5f before pruning, %.5f right after (%d -> %d blocks).", prune.loss_before,
    prune.loss_after, o.grow_depth, o.prune_depth))
  if finetune.losses and #finetune.losses > 1 then
    doc:image(curve("prune_curve.png", "fine-tuning after pruning", { { name = "loss", y = finetune.losses },
      { name = "smoothed", y = smooth(finetune.losses, 0.1) } }), { alt = "fine-tune loss",
      caption = string.format("The pruned model's fine-tuning loss (%d steps, lr %g).", o.ft_steps, o.ft_lr) })
  end

  doc:section("samples", "Samples per stage")
  doc:p(string.format("The same %d prompts and seed (%d) for every stage, %d sampling steps, EMA weights; the search row " ..
    "shows the judge's tournament pick among %d candidates per prompt.", #GRID_PROMPTS, GRID_SEED, o.grid_steps,
    o.search_max_n), { class = "note" })
  for _, s in ipairs(STAGES) do
    if s ~= "judge" and run.exists(o.out .. "/" .. s .. "/samples.png") then
      doc:section("samples-" .. s, s, 3)
      doc:image(s .. "/samples.png", { alt = s .. " samples" })
    end
  end

  doc:section("search", "Inference-time search")
  doc:image("search/scaling.png", { alt = "score against compute", caption = string.format(
    "Overall score against model evaluations per prompt: the judge's tournament and best-of-N among the first N of %d " ..
    "candidates, the evaluator as its own judge (oracle, the ceiling), a random pick (the floor, its expected score), and one candidate " ..
    "with more denoising steps; %d prompts per category.", o.search_max_n, o.search_prompts) })
  do
    local h = { "line", "N", "model evals" }
    for _, c in ipairs(cats) do h[#h + 1] = short[c] or c end
    h[#h + 1] = "overall"
    local t = {}
    for _, r in ipairs(search.rows) do
      local row = { r.line, r.n, r.evals }
      for _, v in ipairs(r.per_category) do row[#row + 1] = v end
      row[#row + 1] = r.overall
      t[#t + 1] = row
    end
    local fm = {}
    for i = 4, #h do fm[i] = "%.3f" end
    doc:table { caption = "Candidates against steps", header = h, rows = t, bold_last = true, formats = fm }
    -- the comparisons at the largest N (and at the most steps the steps line
    -- reached) with their intervals, from the per-prompt values
    local ks, most = o.search_max_n, 1
    for _, r in ipairs(search.rows) do if r.line:match("^steps") and r.n == 1 then most = math.max(most, r.evals / o.search_steps) end end
    local picked = {}
    for _, c in ipairs(grove.search.study_comparisons(search.rows, o.search_steps)) do
      if (c.kind == "steps" and c.N == most) or (c.kind ~= "steps" and c.N == ks) then
        picked[#picked + 1] = compare_row(c.what, c.a, c.names[1], c.b, c.names[2])
      end
    end
    comparison_table(doc, string.format("Paired differences over the study's prompts (%d per category)", o.search_prompts),
      picked)
    -- what the table says, in one sentence per comparison: read from the rows
    local at = {}
    for _, r in ipairs(search.rows) do at[r.line .. "@" .. r.evals] = r.overall end
    local function score(line, n) return at[line .. "@" .. n * o.search_steps] end
    local n, most_steps = o.search_max_n, 1
    for _, r in ipairs(search.rows) do if r.line:match("^steps") and r.n == 1 then most_steps = math.max(most_steps, r.evals / o.search_steps) end end
    local t1, tn, rn, on = score("tournament", 1), score("tournament", n), score("random", n), score("oracle", n)
    local tk, sk = score("tournament", most_steps), score("steps ×" .. most_steps, most_steps)
    if t1 and tn and rn and on and tk and sk then
      doc:p(string.format("In this run: the tournament's pick scores %.3f at N = 1 and %.3f at N = %d (%+.3f); a random " ..
        "pick among the same %d scores %.3f on average, so the judge adds %+.3f over chance; the oracle reaches %.3f. At %d model " ..
        "evaluations per prompt, %d candidates give %.3f and one candidate with %d× the steps %.3f.", t1, tn, n, tn - t1, n,
        rn, tn - rn, on, most_steps * o.search_steps, most_steps, tk, most_steps, sk))
    end
  end
  doc:image("search/example.png", { alt = "candidates", caption = "Candidates for \"" .. tostring(search.example_prompt) ..
    "\" with their judge scores; the tournament's pick is starred." })
  doc:section("judge", "The judge", 3)
  doc:p(string.format("%d parameters, %d steps on renders with hard negatives and on %d samples of the fine-tuned model. " ..
    "Held-out accuracy:", judge.params or 0, o.judge_steps, o.judge_samples))
  do
    local t = {}
    for _, e in ipairs(judge.sets) do
      t[#t + 1] = { e.name, e.result.overall, e.result.total }
    end
    doc:table { header = { "set", "accuracy", "pairs" }, rows = t, formats = { [2] = "%.3f" } }
    doc:pre(judge.accuracy)
  end

  doc:section("files", "Files and commands")
  doc:list {
    "checkpoints: " .. o.out .. "/{base,grow,scratch,finetune,scratch_pruned}/checkpoint.safetensors, " .. o.out ..
      "/prune/pruned.safetensors",
    "judge: " .. o.out .. "/judge/judge.safetensors; search study: " .. o.out .. "/search/{table.md,results.csv}",
    "each stage's manifest.lua (its options and measurements) and DONE marker",
  }
  doc:p("Re-running the same command skips the finished stages; --from STAGE runs a stage and the later ones again. " ..
    "The standalone studies at their documented sizes:")
  doc:pre(table.concat(run.study_commands, "\n"))

  return doc, rows_eval, total
end
