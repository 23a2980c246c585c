#!/bin/bash
# check_api.sh BUILD_DIR SOURCE_DIR [CC [EXTRA_CFLAGS]] - libst3d as an
# installed C library (CC and EXTRA_CFLAGS: the build's compiler and, in a
# sanitizer build, its -fsanitize flags):
#   1. `cmake --install` into a temporary prefix puts the shared and static
#      libraries, st3d.h, the st3d program and st3d.pc in place;
#   2. the shared library exports exactly the functions include/st3d.h
#      declares (nm -D), nothing internal and nothing missing;
#   3. a C program (consumer.c) builds with `pkg-config --cflags --libs st3d`
#      against that prefix and runs;
#   4. the installed program and the library agree on the version, which
#      CMakeLists.txt's project() sets.
set -euo pipefail
build="$1"; src="$2"; cc="${3:-cc}"; extra="${4:-}"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
fail() { echo "check_api: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir="$(find "$tmp/prefix" -name libst3d.so -printf '%h\n' | head -1)"
[ -n "$libdir" ] || fail "no libst3d.so installed"
for f in "$libdir/libst3d.a" "$tmp/prefix/include/st3d.h" "$tmp/prefix/include/st3d/data.h" \
         "$tmp/prefix/include/st3d/train.h" "$tmp/prefix/bin/st3d" \
         "$libdir/pkgconfig/st3d.pc"; do
  [ -e "$f" ] || fail "not installed: ${f#$tmp/prefix/}"
done

# 2. exported symbols == declared functions
cat "$src/include/st3d.h" "$src"/include/st3d/*.h | grep -oE '\bst3d_[a-z0-9_]+[[:space:]]*\(' | tr -d '( \t' | sort -u > "$tmp/declared"
nm -D --defined-only "$libdir/libst3d.so" | awk '$2 ~ /^[TtWiDdBbRr]$/ {print $3}' | sed 's/@.*//' \
  | grep -vE '^(_init|_fini|_edata|_end|__bss_start)$' | sort -u > "$tmp/exported"
if ! diff -u "$tmp/declared" "$tmp/exported" > "$tmp/diff"; then
  echo "check_api: exported symbols differ from include/st3d.h and st3d/*.h ('-' declared only, '+' exported only):" >&2
  grep -E '^[-+][a-z_]' "$tmp/diff" >&2 || true
  fail "export list mismatch"
fi
echo "exports: $(wc -l < "$tmp/exported") functions, exactly those of st3d.h"

# 3. a consumer program through pkg-config
export PKG_CONFIG_PATH="$libdir/pkgconfig"
"$cc" -std=c11 -Wall -Wextra -Werror $extra $(pkg-config --cflags st3d) "$src/tests/api/consumer.c" \
   -o "$tmp/consumer" $(pkg-config --libs st3d) -lm || fail "consumer.c did not build via pkg-config"
LD_LIBRARY_PATH="$libdir" "$tmp/consumer" || fail "consumer program failed"
LD_LIBRARY_PATH="$libdir" ldd "$tmp/consumer" | grep -q "$libdir/libst3d.so" || fail "consumer not linked to the installed libst3d.so"

# 4. one version everywhere
v_pc="$(pkg-config --modversion st3d)"
v_bin="$("$tmp/prefix/bin/st3d" --version | awk '{print $2}')"
v_lib="$(LD_LIBRARY_PATH="$libdir" "$tmp/consumer" | awk '/^libst3d/ {print $2}')"
[ "$v_pc" = "$v_bin" ] && [ "$v_bin" = "$v_lib" ] || fail "versions differ: pc $v_pc, program $v_bin, library $v_lib"
echo "version $v_pc (pkg-config, program, library)"
echo "4 passed, 0 failed"
