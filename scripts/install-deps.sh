#!/usr/bin/env bash
# Installs what luaparty needs from Debian 12 packages (and, with --test, the npm
# test clients). Idempotent: does nothing that is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake pkg-config libluajit-5.1-dev libuv1-dev libwslay-dev
      node-llhttp lua-cjson lua-cjson-dev libsqlite3-dev libssl-dev
      libhiredis-dev redis-server)   # cluster mode: the client library, and Redis 7 to run it (and its tests)
if [ "${1:-}" = "--test" ]; then
  # test clients and tools: node for the clients, valgrind, clang (libFuzzer),
  # chromium (end-to-end pages), luarocks + luajit (the rockspec), openssl (test certificates)
  pkgs+=(nodejs npm wrk valgrind clang sqlite3 chromium fonts-dejavu-core luarocks luajit openssl)
fi

missing=()
for p in "${pkgs[@]}"; do
  # npm is bundled with nodesource's nodejs: do not ask apt for it then.
  if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then continue; fi
  if [ "$p" = nodejs ] && command -v node >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--test" ]; then
  (cd tests && { [ -d node_modules/ws ] && [ -d node_modules/partysocket ] && [ -d node_modules/playwright-core ] \
       && [ -d node_modules/yjs ] && [ -d node_modules/y-partykit ] && [ -d node_modules/y-websocket ] && [ -d node_modules/esbuild ]; } \
     || npm ci --no-audit --no-fund --loglevel=error)
fi
