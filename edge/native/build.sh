#!/usr/bin/env bash
# Configure and build earshot-edge (Release) into edge/native/build/.
#
#   edge/native/build.sh                 # uses ../../.venv/bin/python to find the executorch wheel
#   PY=/path/to/python edge/native/build.sh
#
# Needs cmake, g++, pkg-config and the Debian packages libzmq3-dev cppzmq-dev
# libmsgpack-cxx-dev nlohmann-json3-dev libjpeg-dev (scripts/_setup.sh installs
# them when root). Exits non-zero when the build fails.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY="${PY:-$REPO/.venv/bin/python}"
# executorch is a namespace-less package whose __file__ may be None: use its __path__.
ET_ROOT="$("$PY" -c 'import executorch; print(list(executorch.__path__)[0])')"
if [ ! -f "$ET_ROOT/share/cmake/executorch-config.cmake" ]; then
    echo "build.sh: no share/cmake/executorch-config.cmake under $ET_ROOT" >&2
    exit 1
fi
JOBS="${JOBS:-$(nproc)}"
cmake -S "$HERE" -B "$HERE/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$ET_ROOT" \
      -DPython3_EXECUTABLE="$PY" >"$HERE/build.log" 2>&1 || { cat "$HERE/build.log" >&2; exit 1; }
cmake --build "$HERE/build" -j "$JOBS" >>"$HERE/build.log" 2>&1 || { tail -60 "$HERE/build.log" >&2; exit 1; }
echo "$HERE/build/earshot-edge"
