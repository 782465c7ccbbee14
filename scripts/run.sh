#!/usr/bin/env bash
# The main job (README): install what is missing, build, and serve
# examples/multiparty on 127.0.0.1:1999 with SQLite storage in
# examples/multiparty/.luaparty.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
exec ./build/luaparty serve examples/multiparty --host 127.0.0.1 --port 1999 "$@"
