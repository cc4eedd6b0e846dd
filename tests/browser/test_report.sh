#!/usr/bin/env bash
# The pipeline's report in a real browser: makes a small report with the
# pipeline's test profile (a few steps per stage), re-runs it to check that
# finished stages are skipped, opens report.html in headless Chromium, checks
# that every <img> loaded (naturalWidth > 0) and every <table> has rows, and
# saves a screenshot.
#   tests/browser/test_report.sh GROVE_EXE SOURCE_DIR [OUT_DIR]
# Needs Debian's chromium (scripts/install-deps installs it).
set -uo pipefail
exe=${1:?usage: test_report.sh GROVE_EXE SOURCE_DIR [OUT_DIR]}
src=${2:?usage: test_report.sh GROVE_EXE SOURCE_DIR [OUT_DIR]}
out=${3:-$(mktemp -d)}
passed=0 failed=0
ok() { echo "ok: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
  fail "chromium is not installed: run scripts/install-deps (it installs the Debian packages chromium and chromium-driver)"
  finish
fi

run="$out/run"
rm -rf "$run"
mkdir -p "$out"
cd "$src" || exit 1
if GROVE_NUM_THREADS=${GROVE_NUM_THREADS:-2} "$exe" recipes/pipeline.lua --profile test --out "$run" >"$out/pipeline.log" 2>&1; then
  ok "the test profile ran every stage and wrote $run/report.html"
else
  tail -30 "$out/pipeline.log"
  fail "recipes/pipeline.lua --profile test failed (log: $out/pipeline.log)"
  finish
fi
for s in base grow scratch prune finetune scratch_pruned judge search; do
  [ -f "$run/$s/DONE" ] && [ -f "$run/$s/manifest.lua" ] || fail "stage $s has no DONE marker and manifest"
done
# the scratch stages' steps against a count of the compute made independently
if "$exe" recipes/pipeline.lua --plan >"$out/plan.log" 2>&1 &&
   "$exe" tests/pipeline/check_compute.lua "$run" "$out/plan.log"; then
  ok "the scratch stages train the compute-matched steps"
else
  fail "the scratch stages' steps are not the compute-matched counts"
fi
if "$exe" recipes/pipeline.lua --profile test --out "$run" >"$out/rerun.log" 2>&1 &&
   [ "$(grep -c 'skipped' "$out/rerun.log")" -eq 8 ]; then
  ok "a re-run skips all 8 finished stages"
else
  cat "$out/rerun.log"; fail "the re-run did not skip the finished stages"
fi

# a copy of the page with a script that writes what it finds into the DOM
page="$out/checked.html"
sed 's|</body>|<script>\
window.addEventListener("load", function () {\
  var lines = [], imgs = document.querySelectorAll("img"), tables = document.querySelectorAll("table");\
  lines.push("images " + imgs.length); lines.push("tables " + tables.length);\
  imgs.forEach(function (im, i) { lines.push("img " + i + " " + ((im.complete \&\& im.naturalWidth > 0) ? "loaded " + im.naturalWidth : "BROKEN") + " " + im.alt); });\
  tables.forEach(function (t, i) { lines.push("table " + i + " rows " + t.querySelectorAll("tbody tr").length); });\
  var pre = document.createElement("pre"); pre.id = "grove-check";\
  pre.textContent = "GROVE" + "-CHECK-BEGIN\\n" + lines.join("\\n") + "\\nGROVE" + "-CHECK-END";\
  document.body.appendChild(pre);\
});\
</script></body>|' "$run/report.html" >"$page"
flags=(--headless=new --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --disable-extensions
       --user-data-dir="$out/profile")
dom=$(timeout 120 "$browser" "${flags[@]}" --virtual-time-budget=10000 --dump-dom "file://$page" 2>"$out/chromium.log")
result=$(printf '%s\n' "$dom" | sed -n '/GROVE-CHECK-BEGIN/,/GROVE-CHECK-END/p')
if [ -z "$result" ]; then
  tail -5 "$out/chromium.log"
  fail "chromium printed no check result for $page"
  finish
fi
echo "$result" | sed -e "s/^.*GROVE-CHECK-BEGIN/GROVE-CHECK-BEGIN/" -e "s/GROVE-CHECK-END.*/GROVE-CHECK-END/"
n_img=$(echo "$result" | sed -n 's/^images \([0-9]*\)$/\1/p')
n_tab=$(echo "$result" | sed -n 's/^tables \([0-9]*\)$/\1/p')
if [ "${n_img:-0}" -ge 10 ]; then ok "the report has $n_img images"; else fail "the report has ${n_img:-no} images (expected at least 10)"; fi
if grep -q '<caption>Paired differences of the stages' "$run/report.html" &&
   grep -q '<th>95% CI</th>' "$run/report.html" &&
   grep -q '<caption>Each path against a model of the same depth trained from scratch with the same compute' "$run/report.html"
then ok "the report gives confidence intervals, paired and equal-compute comparisons"
else fail "the report has no confidence intervals or paired comparison table"; fi
if [ "${n_tab:-0}" -ge 4 ]; then ok "the report has $n_tab tables"; else fail "the report has ${n_tab:-no} tables (expected at least 4)"; fi
if echo "$result" | grep -q 'BROKEN'; then fail "images that did not load: $(echo "$result" | grep BROKEN | tr '\n' ';')"
else ok "every image loaded (naturalWidth > 0)"; fi
if echo "$result" | grep -q '^table [0-9]* rows 0$'; then fail "empty tables: $(echo "$result" | grep 'rows 0$' | tr '\n' ';')"
else ok "every table has rows"; fi

shot="$out/report.png"
rm -f "$shot"
timeout 120 "$browser" "${flags[@]}" --window-size=1100,3000 --screenshot="$shot" "file://$run/report.html" \
  >>"$out/chromium.log" 2>&1
if [ -s "$shot" ]; then ok "screenshot $shot"; else fail "no screenshot written to $shot"; fi
finish
