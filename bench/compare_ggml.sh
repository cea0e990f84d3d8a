#!/bin/bash
# Side-by-side matrix-vector speed of dspark and ggml on this machine (issue 3's goal: at
# least as fast as ggml on every type at the 4096x14336 shape).
#
#   bench/compare_ggml.sh GGML_SOURCE GGML_BUILD [DSPARK_BUILD] [ROUNDS]
#
# GGML_SOURCE: a ggml (or llama.cpp/ggml) source tree, for include/ggml.h and ggml-cpu.h.
# GGML_BUILD:  that tree built with CMake, e.g.
#                cmake -S GGML_SOURCE -B GGML_BUILD -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
#                      -DBUILD_SHARED_LIBS=OFF -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF
#                cmake --build GGML_BUILD -j2
# DSPARK_BUILD: dspark's build folder (default: build), with bench/dspark_kernels_bench.
# Nothing is downloaded. The machine is shared and noisy, so each round runs ggml then
# dspark for every type back to back; compare medians over rounds of the same window.
# ggml runs twice for Q4_0 and Q4_K: plain layout, and repacked as llama.cpp uses them.
# Env: TYPES (default "F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K"), SHAPE (4096x14336), THREADS (2).
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
src=$1 build=$2 dspark=${3:-build} rounds=${4:-3}
here=$(cd "$(dirname "$0")" && pwd)
types=${TYPES:-F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K}
shape=${SHAPE:-4096x14336}
threads=${THREADS:-2}
libs=$(find "$build" -name 'libggml.a' -o -name 'libggml-cpu.a' -o -name 'libggml-base.a' | sort -r)
[ -n "$libs" ] || { echo "no libggml*.a under $build (build ggml with -DBUILD_SHARED_LIBS=OFF)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -I "$src/include" "$here/ggml_matvec_bench.c" -o "$tmp/ggml_matvec_bench" $libs -lstdc++ -lm -lpthread \
  $(grep -q GOMP $libs 2>/dev/null && echo -fopenmp)
rows=${shape%x*} cols=${shape#*x}
for round in $(seq "$rounds"); do
  for t in $types; do
    lt=$(echo "$t" | tr 'A-Z' 'a-z' | sed 's/_k$/_K/')
    echo "round $round, load $(cut -d' ' -f1 /proc/loadavg)"
    "$tmp/ggml_matvec_bench" "$lt" "$rows" "$cols" "$threads" 3
    # llama.cpp stores these types interleaved ("repacked") by default on AVX2 CPUs.
    case $t in Q4_0 | Q4_K) "$tmp/ggml_matvec_bench" "$lt" "$rows" "$cols" "$threads" 3 repack 2>/dev/null ;; esac
    "$dspark/bench/dspark_kernels_bench" --types "$t" --shapes "$shape" --threads "$threads" --no-prefill |
      grep -E "^$shape"
  done
done
