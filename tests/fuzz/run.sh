#!/usr/bin/env bash
# Runs the libFuzzer targets of a fuzz build (tests/fuzz/README.md).
#   tests/fuzz/run.sh BUILD_DIR [runs N] [seconds S] [cpu C] [TARGET ...]
# "runs N": each target for N executions from a fixed seed (the CI smoke;
# the Lua-driven targets N/5);
# "seconds S": each target for S seconds (the long runs of docs/reliability.md);
# "cpu C": each target until its process has used C seconds of processor
# time (user + system), then interrupted: the hour per target of a long run
# on a machine shared with other work, at idle priority
# (chrt -i 0 nice -n 19 ...);
# several: whichever comes first.
# Each target starts from its seed corpus (tests/fuzz/corpus/<format>/, which
# also holds the regression inputs of every crash found) in a scratch copy,
# so the checked-in corpus does not grow. Crashes are written to
# BUILD_DIR/fuzz-artifacts/; the script fails when any target fails.
# FUZZ_TIMEOUT (default 20) is libFuzzer's -timeout, in wall-clock seconds
# per input: a long run that shares the machine at idle priority (an input
# can wait minutes for a core) needs more.
# The targets write each input to a scratch file (the loaders take paths,
# and grove's writers sync what they write): in /dev/shm unless TMPDIR is
# set, so that a disk's syncs do not set the pace.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?usage: run.sh BUILD_DIR [runs N] [seconds S] [cpu C] [TARGET ...]}"
shift
runs_all="" seconds="" cpu=""
while [ $# -ge 2 ] && { [ "$1" = runs ] || [ "$1" = seconds ] || [ "$1" = cpu ]; }; do
  case "$1" in runs) runs_all=$2;; seconds) seconds=$2;; cpu) cpu=$2;; esac
  shift 2
done
[ -z "$runs_all" ] && [ -z "$seconds" ] && [ -z "$cpu" ] && runs_all=2000
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
# one scratch folder per run, removed however the run ends (a target killed
# mid-input leaves its files behind otherwise)
TMPDIR="$(mktemp -d -p "${TMPDIR:-/tmp}" grove-fuzz-run.XXXXXX)" || exit 1
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
trap 'exit 130' INT TERM
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(safetensors json png jpeg sentencepiece index config model_index captions checkpoint)

artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export LSAN_OPTIONS="suppressions=$here/../lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
# the PNG/JPEG/JSON inputs are small; so are the limits (a real config is < 4 KB)
declare -A max_len=([safetensors]=4096 [json]=4096 [png]=4096 [jpeg]=4096 [sentencepiece]=8192 [index]=2048
                    [config]=2048 [model_index]=2048 [captions]=1024 [checkpoint]=2048)
declare -A dict=([json]=json.dict [index]=json.dict [config]=json.dict [model_index]=json.dict
                 [safetensors]=json.dict [checkpoint]=json.dict)
failed=()
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz_$t"
  [ -x "$bin" ] || { echo "run.sh: no $bin (build with -DGROVE_FUZZ=ON)" >&2; failed+=("$t"); continue; }
  work="$(mktemp -d -p /tmp)"
  cp "$here/corpus/$t/"* "$work/" 2>/dev/null
  args=(-seed=1 -max_len="${max_len[$t]}" -timeout="${FUZZ_TIMEOUT:-20}" -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$artifacts/$t-")
  [ -n "${dict[$t]:-}" ] && args+=(-dict="$here/${dict[$t]}")
  # the Lua-driven targets run grove's Lua per input (tens to hundreds of
  # executions a second, not thousands): a fifth of the runs in a smoke
  if [ -n "$runs_all" ]; then
    runs="$runs_all"
    case "$t" in index|config|model_index|captions|checkpoint) runs=$(( (runs_all + 4) / 5 ));; esac
    args+=(-runs="$runs")
  fi
  [ -n "$seconds" ] && args+=(-max_total_time="$seconds")
  start=$(date +%s)
  "$bin" "${args[@]}" "$work" > "$work.log" 2>&1 &
  pid=$!
  used=""
  if [ -n "$cpu" ]; then
    # libFuzzer prints its final statistics on SIGINT and exits with 72
    tck=$(getconf CLK_TCK)
    while kill -0 "$pid" 2>/dev/null; do
      sleep 5
      used=$(awk -v t="$tck" '{ print int(($14 + $15) / t) }' "/proc/$pid/stat" 2>/dev/null) || break
      if [ "${used:-0}" -ge "$cpu" ]; then kill -INT "$pid"; break; fi
    done
  fi
  wait "$pid"
  rc=$?
  [ -n "$cpu" ] && [ "$rc" = 72 ] && [ "${used:-0}" -ge "$cpu" ] && rc=0
  if [ "$rc" = 0 ]; then
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work.log" | grep -o '[0-9]*$')
    echo "fuzz_$t: ok, ${execs:-?} executions in $(( $(date +%s) - start )) s${used:+ ($used s of CPU)}, corpus $(ls "$work" | wc -l) inputs"
    rm -f "$work.log"
  else
    echo "fuzz_$t: FAILED (log: $work.log; inputs in $artifacts)" >&2
    grep -m5 -E 'ERROR|SUMMARY|fuzz_lua|Test unit written' "$work.log" >&2
    failed+=("$t")
  fi
  [ "${FUZZ_KEEP:-0}" = 1 ] || rm -rf "$work"
done
if [ ${#failed[@]} -gt 0 ]; then echo "run.sh: failed: ${failed[*]}" >&2; exit 1; fi
