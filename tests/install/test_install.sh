#!/bin/sh
# Installs lepton into a scratch prefix and builds consumers against it:
# the README's example through pkg-config (shared and static), and a CMake
# project through find_package(lepton).  Checks the SONAME too.
set -eu
: "${LEPTON_BUILD_DIR:?}" "${LEPTON_SOURCE_DIR:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
pass=0
fail=0
check() { # name, command...
    name=$1; shift
    if "$@" >"$work/out" 2>&1; then
        pass=$((pass + 1)); echo "ok   $name"
    else
        fail=$((fail + 1)); echo "FAIL $name"; cat "$work/out"
    fi
}

check "install" cmake --install "$LEPTON_BUILD_DIR" --prefix "$prefix"
libdir=$(ls -d "$prefix"/lib* | head -1)
check "soname is liblepton.so.0" sh -c "objdump -p '$libdir/liblepton.so' | grep -q 'SONAME *liblepton.so.0'"

# The README's examples, verbatim: each ```c block is a program.  The
# last one (the codec) runs; the messaging one is built shared and static
# (it needs a peer on port 5672 to run, which tests/system covers).
awk -v dir="$work" '/^```c$/ {n++; on=1; next} /^```$/ {on=0} on {print > (dir "/readme" n ".c")}' \
    "$LEPTON_SOURCE_DIR/README.md"
nblocks=$(ls "$work"/readme*.c | wc -l)
check "README has its two examples" test "$nblocks" -eq 2
mv "$work/readme$nblocks.c" "$work/example.c"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
check "messaging example, shared" sh -c "cc -Wall -Werror '$work/readme1.c' -o '$work/ex-msg' \$(pkg-config --cflags --libs lepton)"
check "messaging example, static" sh -c "cc '$work/readme1.c' -o '$work/ex-msg-static' \$(pkg-config --cflags lepton) '$libdir/liblepton.a' \$(pkg-config --static --libs-only-l lepton | sed 's/-llepton//')"
check "pkg-config shared build" sh -c "cc -Wall -Werror '$work/example.c' -o '$work/ex' \$(pkg-config --cflags --libs lepton)"
check "shared example runs" sh -c "LD_LIBRARY_PATH='$libdir' '$work/ex' | grep -q 'subject new-order'"
check "pkg-config static build" sh -c "cc '$work/example.c' -o '$work/ex-static' \$(pkg-config --cflags lepton) '$libdir/liblepton.a' -lm"
check "static example runs" sh -c "'$work/ex-static' | grep -q 'subject new-order'"

mkdir -p "$work/cm"
cp "$work/example.c" "$work/cm/example.c"
cat >"$work/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(lepton 0.1 REQUIRED)
add_executable(example example.c)
target_link_libraries(example lepton::lepton)
CM
check "find_package(lepton) configure" cmake -S "$work/cm" -B "$work/cm/build" -DCMAKE_PREFIX_PATH="$prefix"
check "find_package(lepton) build" cmake --build "$work/cm/build"
check "find_package example runs" sh -c "LD_LIBRARY_PATH='$libdir' '$work/cm/build/example' | grep -q 'subject new-order'"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
