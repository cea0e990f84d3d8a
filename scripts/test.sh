#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. format check (clang-format)
#   2. Release build with warnings as errors, all tests (ctest)
#   3. AddressSanitizer + UndefinedBehaviorSanitizer build, all tests
#   4. ThreadSanitizer build of the threaded parts (batching engine loop, HTTP server, pool)
#   5. libFuzzer targets for the GGUF, safetensors and OpenAI request parsers, seconds each
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
fuzz_seconds=${DSPARK_FUZZ_SECONDS:-20}

scripts/setup.sh --deps

echo "== format check" >&2
git ls-files 'src/*.cpp' 'src/*.h' 'tests/*.cpp' 'tests/*.h' 'bench/*.cpp' 'bench/*.h' | xargs clang-format --dry-run -Werror

echo "== release build and tests" >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDSPARK_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest -j"$jobs" --output-on-failure --timeout 600)

echo "== sanitizer build (ASan + UBSan) and tests" >&2
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDSPARK_SANITIZE=ON -DDSPARK_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest -j"$jobs" --output-on-failure --timeout 900)

echo "== thread sanitizer build (engine loop, server, thread pool) and tests" >&2
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDSPARK_TSAN=ON -DDSPARK_WERROR=ON >/dev/null
cmake --build build-tsan -j"$jobs" --target server_http_test engine_batch_test core_thread_pool_test
(cd build-tsan && TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/../tests/tsan.supp" \
  ctest -j"$jobs" --output-on-failure --timeout 900 -R '^(ServerHttp|EngineLoop|BatchEngineQueue|ThreadPool)')

if [ -f tests/fuzz/CMakeLists.txt ]; then
  echo "== fuzzing (${fuzz_seconds}s per target)" >&2
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDSPARK_FUZZ=ON \
    -DDSPARK_TESTS=OFF -DDSPARK_SANITIZE=ON >/dev/null
  cmake --build build-fuzz -j"$jobs" --target fuzz_gguf fuzz_safetensors fuzz_openai_request
  for target in gguf safetensors openai_request; do
    corpus=$(mktemp -d)
    cp tests/fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
    build-fuzz/tests/fuzz/fuzz_$target -dict=tests/fuzz/$target.dict -max_total_time="$fuzz_seconds" -print_final_stats=0 "$corpus" 2>&1 | tail -n 2
    rm -rf "$corpus"
  done
fi
echo "== all tests passed" >&2
