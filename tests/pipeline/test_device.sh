#!/usr/bin/env bash
# The main job on the GPU: the pipeline's test profile (a few steps of every
# stage) with --device cuda and with --device cpu, then the same numbers
# from both: each training stage's losses (relative difference < 1e-4) and
# the blocks pruning removes. Without a CUDA device it prints
# "skip: no CUDA device" and exits 0 (ctest reports it skipped).
#   tests/pipeline/test_device.sh GROVE_EXE SOURCE_DIR OUT_DIR
set -uo pipefail
exe=${1:?usage: test_device.sh GROVE_EXE SOURCE_DIR OUT_DIR}
src=${2:?usage: test_device.sh GROVE_EXE SOURCE_DIR OUT_DIR}
out=${3:?usage: test_device.sh GROVE_EXE SOURCE_DIR OUT_DIR}
cd "$src" || exit 1
if [ "$("$exe" -e 'io.write(grove.cuda.device_count())')" = 0 ]; then
  echo "skip: no CUDA device"
  exit 0
fi
passed=0 failed=0
ok() { echo "ok: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }

rm -rf "$out"
for dev in cpu cuda; do
  if "$exe" recipes/pipeline.lua --profile test --device "$dev" --out "$out/$dev" >"$out.$dev.log" 2>&1; then
    ok "the pipeline ran on $dev"
  else
    fail "the pipeline on $dev (log: $out.$dev.log)"
    tail -n 20 "$out.$dev.log"
  fi
done

for stage in base grow scratch finetune scratch_pruned; do
  a="$out/cpu/$stage/loss.csv" b="$out/cuda/$stage/loss.csv"
  if [ ! -f "$a" ] || [ ! -f "$b" ]; then fail "$stage: no loss.csv"; continue; fi
  worst=$(paste -d, "$a" "$b" | awk -F, 'NR > 1 { d = ($2 - $4) / $2; if (d < 0) d = -d; if (d > w) w = d } END { printf "%.3g", w }')
  if awk -v w="$worst" 'BEGIN { exit !(w < 1e-4) }'; then ok "$stage: losses agree (worst relative difference $worst)"
  else fail "$stage: losses differ by up to $worst (relative)"; fi
done

removed() { grep -h "^pruned .* blocks: removed" "$1" | sed 's/;.*//'; }
if [ -n "$(removed "$out.cpu.log")" ] && [ "$(removed "$out.cpu.log")" = "$(removed "$out.cuda.log")" ]; then
  ok "pruning removed the same blocks ($(removed "$out.cuda.log"))"
else
  fail "pruning: '$(removed "$out.cpu.log")' on cpu, '$(removed "$out.cuda.log")' on cuda"
fi
if grep -q "report: " "$out.cuda.log" && [ -s "$out/cuda/report.html" ]; then ok "the report was written"
else fail "no report from the cuda run"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
