#!/usr/bin/env bash
# Installs what dspark needs (Debian packages) and builds it in ./build (Release).
#   scripts/setup.sh            install + build
#   scripts/setup.sh --deps     install only
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  cmake g++ make pkg-config            # build
  nlohmann-json3-dev libpcre2-dev libcli11-dev  # JSON, Unicode regexes, command line
  libcpp-httplib-dev                   # the HTTP server (dspark serve)
  libgtest-dev libgmock-dev            # tests
  python3-numpy                        # the NumPy reference oracle used by tests
  gnuplot-nox                          # PNG plots of dspark eval
  clang libclang-rt-14-dev clang-format  # fuzzing, sanitizers, format check
  nodejs                               # independent clients in tests (tests/gguf_js, tests/openai_js)
  curl                                 # the server spoken to from a shell in tests (tests/server_curl.sh)
  prometheus                           # promtool checks the server's /metrics
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Debian's nodejs comes without npm; NodeSource's bundles it and conflicts with Debian's npm.
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[ "${1:-}" = "--deps" ] && exit 0

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target dspark
echo "built ./build/dspark" >&2
