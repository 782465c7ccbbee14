#!/usr/bin/env bash
# The LuaRocks package: `luarocks make rockspec/luaparty-scm-1.rockspec` into a
# temporary tree builds and installs bin/luaparty, the Lua runtime and the
# reusable parties; the installed binary then serves examples/multiparty and a
# project that names an installed party.
#
#   bash tests/e2e/luarocks.sh
#
# Installs Debian's luarocks and luajit if they are missing (as root), and needs
# the build packages of scripts/install-deps.sh and node (for the HTTP and
# WebSocket checks). The build runs on a copy of the checkout (tracked and
# untracked files, not ignored ones), so nothing is left in the work tree.
# Every step is bounded in time. The last line is "N passed, N failed".
set -uo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
ROCKSPEC=rockspec/luaparty-scm-1.rockspec
PASSED=0
FAILED=0
SERVER_PID=

pass() { PASSED=$((PASSED + 1)); echo "  ✔ $1"; }
fail() { FAILED=$((FAILED + 1)); echo "  ✖ $1"; [ -n "${2:-}" ] && sed 's/^/    /' <<<"$2" | tail -n 40; }
finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]
  exit $?
}

TMP=$(mktemp -d /tmp/luaparty-luarocks-XXXXXX)
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

echo "luarocks: building $ROCKSPEC in $TMP"

# 1. the tools
need=()
command -v luarocks >/dev/null 2>&1 || need+=(luarocks)
[ -x /usr/bin/luajit ] || need+=(luajit)
if [ ${#need[@]} -gt 0 ]; then
  echo "  installing ${need[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  if ! timeout 300 apt-get install -y -qq --no-install-recommends "${need[@]}" >"$TMP/apt.log" 2>&1; then
    timeout 300 apt-get update -qq >>"$TMP/apt.log" 2>&1
    timeout 300 apt-get install -y -qq --no-install-recommends "${need[@]}" >>"$TMP/apt.log" 2>&1
  fi
fi
if command -v luarocks >/dev/null 2>&1 && [ -x /usr/bin/luajit ]; then
  pass "luarocks $(luarocks --version | head -1 | awk '{print $2}') and $(/usr/bin/luajit -v | awk '{print $1, $2}')"
else
  fail "luarocks and luajit are installed" "$(cat "$TMP/apt.log" 2>/dev/null)"
  finish
fi
if ! command -v node >/dev/null 2>&1; then
  fail "node is installed (for the HTTP and WebSocket checks)"
  finish
fi

# 2. a copy of the checkout
mkdir -p "$TMP/src"
if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$REPO" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - 2>/dev/null) | tar -C "$TMP/src" -xf -
else
  tar -C "$REPO" --exclude='./build*' --exclude='./tests/node_modules' --exclude='.luaparty' -cf - . | tar -C "$TMP/src" -xf -
fi
# files deleted in the work tree but still in the index are not there to copy
if [ -f "$TMP/src/$ROCKSPEC" ] && [ -f "$TMP/src/CMakeLists.txt" ]; then
  pass "copied the checkout"
else
  fail "copied the checkout (no $ROCKSPEC or CMakeLists.txt in the copy)"
  finish
fi

# 3. luarocks make, with luarocks pointed at LuaJIT
TREE="$TMP/tree"
if (cd "$TMP/src" && CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" timeout 900 \
      luarocks make --tree="$TREE" "$ROCKSPEC" LUA_INCDIR=/usr/include/luajit-2.1 LUA=/usr/bin/luajit) \
      >"$TMP/make.log" 2>&1; then
  pass "luarocks make --tree=<tmp> $ROCKSPEC"
else
  fail "luarocks make --tree=<tmp> $ROCKSPEC (exit $?)" "$(cat "$TMP/make.log")"
  finish
fi

# 4. what it installed
ROCKDIR="$TREE/lib/luarocks/rocks-5.1/luaparty/scm-1"
missing=""
for f in "$TREE/bin/luaparty" "$ROCKDIR/bin/luaparty" "$ROCKDIR/share/luaparty/lua/luaparty/init.lua" \
         "$ROCKDIR/share/luaparty/lua/luaparty/runtime.lua" "$ROCKDIR/share/luaparty/parties/presence.lua" \
         "$ROCKDIR/share/luaparty/parties/chat.lua" "$ROCKDIR/share/luaparty/parties/connections.lua" \
         "$ROCKDIR/luaparty-scm-1.rockspec"; do
  [ -e "$f" ] || missing="$missing ${f#"$TMP"/}"
done
if [ -z "$missing" ] && [ -x "$TREE/bin/luaparty" ]; then
  pass "installed bin/luaparty, share/luaparty/lua and share/luaparty/parties"
else
  fail "installed files (missing:$missing)" "$(cd "$TREE" && find . -maxdepth 6 | sort)"
fi
if luarocks --tree="$TREE" list --porcelain 2>/dev/null | grep -q "^luaparty	scm-1	installed"; then
  pass "luarocks list shows luaparty scm-1"
else
  fail "luarocks list shows luaparty scm-1" "$(luarocks --tree="$TREE" list 2>&1)"
fi

BIN="$TREE/bin/luaparty"
if out=$(timeout 10 "$BIN" --version 2>&1) && [[ "$out" =~ ^luaparty\ [0-9] ]]; then
  pass "the installed binary runs: $out"
else
  fail "the installed binary runs (--version)" "$out"
  finish
fi

# Starts the installed binary on a project; sets PORT and SERVER_PID.
start() {
  local project=$1 log=$2
  SERVER_PID=
  PORT=
  : >"$log"
  "$BIN" serve "$project" --host 127.0.0.1 --port 0 --persist "$TMP/persist-$(basename "$log" .log)" >"$log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    PORT=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$log" | head -1 | sed 's/.*://')
    [ -n "$PORT" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# SIGTERM, then wait (bounded); returns the exit code.
stop() {
  local pid=$SERVER_PID code
  SERVER_PID=
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 137
  fi
  wait "$pid"
  code=$?
  return $code
}

# HTTP and WebSocket checks in node (ws from tests/node_modules when present).
probe() {
  (cd "$REPO/tests" && timeout 20 node --input-type=module -e "$1" "$PORT")
}

# 5. the installed binary serves the seed project
if start "$TMP/src/examples/multiparty" "$TMP/multiparty.log"; then
  pass "luaparty serve examples/multiparty --port 0 is listening on $PORT"
  if out=$(probe '
    const base = `http://127.0.0.1:${process.argv[1]}`;
    const get = async (p) => { const r = await fetch(base + p, { signal: AbortSignal.timeout(5000) }); return [r.status, r.headers.get("content-type"), await r.text()]; };
    const [s1, , b1] = await get("/parties/connections/active-connections");
    if (s1 !== 200) throw new Error(`counts: ${s1} ${b1}`);
    const [s2, t2, b2] = await get("/");
    if (s2 !== 200 || !/text\/html/.test(t2) || !/multiparty/.test(b2)) throw new Error(`page: ${s2} ${t2}`);
    let WS;
    try { WS = (await import("ws")).default; } catch { console.log("HTTP ok (no ws module: WebSocket check skipped)"); process.exit(0); }
    const ws = new WS(`ws://127.0.0.1:${process.argv[1]}/parties/main/rock-room`);
    await new Promise((res, rej) => { ws.on("open", res); ws.on("error", rej); setTimeout(() => rej(new Error("ws open timeout")), 5000); });
    const t0 = Date.now();
    for (;;) {
      const [, , b] = await get("/parties/connections/active-connections");
      if (JSON.parse(b)["rock-room"] === 1) break;
      if (Date.now() - t0 > 5000) throw new Error(`counts never showed rock-room: 1: ${b}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    ws.terminate();
    console.log("HTTP, static page and a counted WebSocket ok");
  ' 2>&1); then
    pass "it answers: $out"
  else
    fail "it answers HTTP and WebSocket" "$out
$(cat "$TMP/multiparty.log")"
  fi
  if stop; then pass "it stops cleanly on SIGTERM"; else fail "it stops cleanly on SIGTERM (exit $?)" "$(cat "$TMP/multiparty.log")"; fi
else
  fail "luaparty serve examples/multiparty starts" "$(cat "$TMP/multiparty.log")"
fi

# 6. a project naming an installed reusable party by a relative path
PROJ="$TMP/proj"
mkdir -p "$PROJ"
REL=$(realpath --relative-to="$PROJ" "$ROCKDIR/share/luaparty/parties/presence.lua")
printf '{ "name": "rock", "main": "%s" }\n' "$REL" >"$PROJ/partykit.json"
if start "$PROJ" "$TMP/proj.log"; then
  if out=$(probe '
    const r = await fetch(`http://127.0.0.1:${process.argv[1]}/parties/main/room1`, { signal: AbortSignal.timeout(5000) });
    const t = await r.text();
    if (r.status !== 200 || t !== "{\"users\":[]}") throw new Error(`${r.status} ${t}`);
    console.log(t);
  ' 2>&1); then
    pass "the installed presence party serves a project: $out"
  else
    fail "the installed presence party serves a project" "$out
$(cat "$TMP/proj.log")"
  fi
  stop
else
  fail "a project naming the installed presence.lua starts" "$(cat "$TMP/proj.log")"
fi

finish
