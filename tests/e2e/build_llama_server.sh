#!/usr/bin/env bash
# Build llama.cpp's llama-server, once, for the end-to-end tests (tests/test_e2e_llama_server.py).
#
# The sources are the llama.cpp that the llama-cpp-python sdist vendors, so the server and
# streamwrap's in-process local_chat run the same llama.cpp. The binary is cached by version
# and CPU architecture; when it is already there this prints its path and does nothing else
# (cache the directory in CI, e.g. actions/cache on ~/.cache/streamwrap).
#
#   tests/e2e/build_llama_server.sh [LLAMA_CPP_PYTHON_VERSION]
#
# Prints the binary's path on stdout (the build log goes to stderr). Environment:
#   PYTHON              the Python whose pip downloads the sdist and whose installed
#                       llama-cpp-python gives the default version     (default: python3)
#   STREAMWRAP_CACHE    cache folder                (default: ${XDG_CACHE_HOME:-~/.cache}/streamwrap)
#   JOBS                parallel compile jobs                          (default: 2)
#   LLAMA_SERVER_NATIVE 1 to tune for this CPU (-march=native): faster, but the cached
#                       binary may not run on another machine. By default an x86-64 build
#                       assumes AVX2/FMA/F16C (x86-64-v3: any x86 CI runner of the last decade).
# Exit status: 0 built or cached; 2 no version; 3 a build tool is missing; else the failing step's.
set -euo pipefail

PY=${PYTHON:-python3}
VERSION=${1:-${LLAMA_CPP_PYTHON_VERSION:-}}
if [ -z "$VERSION" ]; then
    VERSION=$("$PY" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))' 2>/dev/null || true)
fi
if [ -z "$VERSION" ]; then
    echo "build_llama_server.sh: no llama-cpp-python version: install it (pip install 'streamwrap[local]')" \
         "or pass the version as the first argument" >&2
    exit 2
fi

ARCH=$(uname -m)
NATIVE=${LLAMA_SERVER_NATIVE:-0}
FLAVOUR=$ARCH
[ "$NATIVE" = 1 ] && FLAVOUR=$ARCH-native
CACHE=${STREAMWRAP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamwrap}
DEST=$CACHE/llama-server-$VERSION-$FLAVOUR
BIN=$DEST/llama-server

if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
    echo "$BIN"
    exit 0
fi

for tool in cmake c++ tar; do
    if ! command -v "$tool" >/dev/null; then
        echo "build_llama_server.sh: '$tool' is needed to build llama-server" >&2
        exit 3
    fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/llama-server-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
started=$(date +%s)

echo "== llama-cpp-python $VERSION sdist" >&2
"$PY" -m pip download --quiet --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d "$WORK/sdist" >&2
# Only the vendored llama.cpp is needed (the sdist also holds the Python package and docs).
tar -xzf "$WORK"/sdist/llama_cpp_python-*.tar.gz -C "$WORK" --wildcards '*/vendor/llama.cpp/*'
SRC=$(echo "$WORK"/llama_cpp_python-*/vendor/llama.cpp)

CPU_FLAGS=(-DGGML_NATIVE=ON)
if [ "$NATIVE" != 1 ]; then
    CPU_FLAGS=(-DGGML_NATIVE=OFF)
    case "$ARCH" in
        x86_64|amd64) CPU_FLAGS+=(-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON) ;;
    esac
fi
GENERATOR=()
command -v ninja >/dev/null && GENERATOR=(-G Ninja)

echo "== configure ($FLAVOUR)" >&2
# A static, self-contained binary; no HTTPS, no web UI (nothing is downloaded at build time).
cmake -S "$SRC" -B "$WORK/build" "${GENERATOR[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    "${CPU_FLAGS[@]}" >&2

echo "== build llama-server (-j ${JOBS:-2})" >&2
cmake --build "$WORK/build" --target llama-server -j "${JOBS:-2}" >&2

mkdir -p "$DEST"
# Copied then renamed: a concurrent test run never sees a half-written binary.
cp "$WORK/build/bin/llama-server" "$DEST/llama-server.tmp.$$"
mv -f "$DEST/llama-server.tmp.$$" "$BIN"
"$BIN" --version >&2 2>&1 || true
echo "== built in $(( $(date +%s) - started )) s: $BIN" >&2
echo "$BIN"
