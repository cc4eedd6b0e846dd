#!/usr/bin/env bash
# Installs the build into a temporary prefix and uses it the four ways
# docs/install.md describes, from a directory outside the source tree:
#   1. <prefix>/bin/grove examples/hello.lua (and `grove info`, and the data files)
#   2. stock luajit with LUA_PATH on the installed modules only; same output
#   3. pkg-config: a C program compiled, linked and run against the prefix
#   4. find_package(grove) from a CMake project
# usage: test_install.sh BUILD_DIR SOURCE_DIR [SANITIZE]   (ctest: `install`)
set -euo pipefail
build=$(cd "$1" && pwd); src=$(cd "$2" && pwd); sanitize=${3:-OFF}
if [ "$sanitize" = ON ] || [ "$sanitize" = 1 ]; then
  # an ASan libgrove needs the ASan runtime loaded first: stock luajit and a
  # plain C program cannot load it
  echo "install test skipped: a sanitizer build (GROVE_SANITIZE) is not for installing"
  exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/grove-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
P="$tmp/prefix"
fail() { echo "install test FAILED: $*" >&2; exit 1; }
step() { echo "-- $*"; }

step "cmake --install $build --prefix $P"
cmake --install "$build" --prefix "$P" > "$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }

pc=$(find "$P" -name grove.pc -path '*/pkgconfig/*' | head -1)
[ -n "$pc" ] || fail "no grove.pc under $P"
libdir=$(dirname "$(dirname "$pc")")
L="$P/share/grove/lua"
for f in bin/grove include/grove.h share/grove/lua/grove/init.lua share/grove/lua/grove/cdefs.lua \
         share/grove/lua/grove/cli/info.lua share/grove/data/shapes/vocab.txt share/grove/data/shapes/prompts/colors.txt; do
  [ -f "$P/$f" ] || fail "missing $P/$f"
done
[ -f "$libdir/libgrove.so" ] || fail "missing $libdir/libgrove.so"
for f in groveConfig.cmake groveConfigVersion.cmake groveTargets.cmake; do
  [ -f "$libdir/cmake/grove/$f" ] || fail "missing $libdir/cmake/grove/$f"
done
readelf -d "$P/bin/grove" | grep -q 'R.*PATH.*\$ORIGIN/\.\./lib' || fail "bin/grove has no \$ORIGIN/../lib RPATH: $(readelf -d "$P/bin/grove" | grep PATH)"

# Nothing from the source or build tree on any path: a scratch directory,
# the example copied into it, the grove variables unset.
work="$tmp/work"; mkdir -p "$work"; cp "$src/examples/hello.lua" "$work/"
cd "$work"
clean=(env -u GROVE_LUA_PATH -u GROVE_LIB -u LUA_PATH -u LUA_CPATH -u LD_LIBRARY_PATH -u GROVE_SHAPES_PROMPTS)
# Lua that reports where libgrove was mapped from and reads the installed data
probe='local g = grove or require "grove"; local lib
for l in io.lines("/proc/self/maps") do lib = lib or l:match("(/%S*libgrove%.so%S*)") end
print("lib", lib); print("prompts", #g.data.shapes.prompts("colors"), "vocab", g.text.shapes_tokenizer():size())'

step "$P/bin/grove hello.lua"
out_grove=$("${clean[@]}" "$P/bin/grove" hello.lua) || fail "installed grove could not run hello.lua"
echo "$out_grove"
echo "$out_grove" | grep -q '^y:' || fail "unexpected output from the installed grove"
probe_grove=$("${clean[@]}" "$P/bin/grove" -e "$probe") || fail "installed grove: $probe_grove"
echo "$probe_grove"
echo "$probe_grove" | grep -q "^lib	$libdir/libgrove.so" || fail "installed grove loaded another libgrove: $probe_grove"
"${clean[@]}" "$P/bin/grove" info > "$tmp/info.txt" || { cat "$tmp/info.txt"; fail "installed grove info"; }
grep -q '^build:' "$tmp/info.txt" || fail "grove info: $(cat "$tmp/info.txt")"

if command -v luajit > /dev/null; then
  step "luajit hello.lua, LUA_PATH=$L/?.lua;$L/?/init.lua"
  lp="$L/?.lua;$L/?/init.lua"
  out_luajit=$("${clean[@]}" LUA_PATH="$lp" luajit hello.lua) || fail "stock luajit could not run hello.lua"
  [ "$out_luajit" = "$out_grove" ] || fail "luajit and grove disagree:"$'\n'"$out_luajit"$'\n'"vs"$'\n'"$out_grove"
  probe_luajit=$("${clean[@]}" LUA_PATH="$lp" luajit -e "$probe") || fail "stock luajit: $probe_luajit"
  [ "$probe_luajit" = "$probe_grove" ] || fail "luajit probe: $probe_luajit"
  echo "same output from stock luajit"
else
  echo "-- luajit part skipped: no luajit on PATH (Debian package luajit, scripts/install-deps)"
fi

step "pkg-config --cflags --libs grove"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
flags=$(pkg-config --cflags --libs grove) || fail "pkg-config cannot resolve grove"
echo "$flags"
[[ "$flags" == *"-I$P/include"* && "$flags" == *"-L$libdir"* && "$flags" == *"-lgrove"* ]] || fail "pkg-config flags: $flags"
[ "$(pkg-config --variable=luadir grove)" = "$L" ] || fail "pkg-config luadir: $(pkg-config --variable=luadir grove)"
# shellcheck disable=SC2046
${CC:-cc} -std=c11 -Wall -Werror "$src/tests/install/hello.c" $(pkg-config --cflags --libs grove) \
  -Wl,-rpath,"$libdir" -o "$work/hello_pc" || fail "compiling against the installed grove"
out_c=$("$work/hello_pc") || fail "the pkg-config program failed"
echo "$out_c"
[[ "$out_c" == *"numel 12 sum 18"* ]] || fail "pkg-config program: $out_c"

step "find_package(grove) with CMAKE_PREFIX_PATH=$P"
unset PKG_CONFIG_PATH
cmake -S "$src/tests/install" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_BUILD_TYPE=Release \
  > "$tmp/consumer.log" 2>&1 || { cat "$tmp/consumer.log"; fail "find_package(grove)"; }
grep "grove 0" "$tmp/consumer.log" || true
cmake --build "$tmp/consumer" > "$tmp/consumer-build.log" 2>&1 || { cat "$tmp/consumer-build.log"; fail "building the find_package program"; }
out_cm=$("$tmp/consumer/hello") || fail "the find_package program failed"
[ "$out_cm" = "$out_c" ] || fail "find_package program: $out_cm"
echo "$out_cm"
echo "install test passed"
