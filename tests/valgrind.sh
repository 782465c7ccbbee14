#!/usr/bin/env bash
# Runs the release binary under valgrind through a short workout (HTTP,
# WebSocket echo, cross-party fetch and socket, storage), stops it with
# SIGTERM, and checks it exits 0 with nothing definitely or indirectly lost.
# Two workers, so the cross-worker paths (moved clients, posted jobs) are in it.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${LUAPARTY_BIN_RELEASE:-build/luaparty}
tmp=$(mktemp -d)
trap 'cp "$tmp/vg.log" /tmp/last-vg.log 2>/dev/null; rm -rf "$tmp"' EXIT
passed=0 failed=0
check() { if eval "$2"; then echo "ok   $1"; passed=$((passed+1)); else echo "FAIL $1"; failed=$((failed+1)); fi; }

valgrind --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
  --log-file="$tmp/vg.log" "$bin" serve tests/projects/workout --workers 2 --port 0 --persist "$tmp/data" \
  >"$tmp/out.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q 'listening on' "$tmp/out.log" && break; sleep 0.2; done
port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$tmp/out.log" | grep -o '[0-9]*$')
check "server started under valgrind" '[ -n "$port" ]'
if [ -n "$port" ]; then
  (cd tests && timeout 60 node integration/workout.mjs "$port") >"$tmp/workout.log" 2>&1
  check "workout against the valgrind server" '[ $? -eq 0 ] || { cat "$tmp/workout.log"; false; }'
  cat "$tmp/workout.log"
fi
kill -TERM "$pid" 2>/dev/null
timeout 60 tail --pid="$pid" -f /dev/null
wait "$pid"; rc=$?
check "exit status 0 after SIGTERM (got $rc)" '[ "$rc" -eq 0 ]'
check "no definite or indirect leak" 'grep -q "definitely lost: 0 bytes" "$tmp/vg.log" && grep -q "indirectly lost: 0 bytes" "$tmp/vg.log" || grep -q "All heap blocks were freed" "$tmp/vg.log" || { sed -n "/LEAK SUMMARY/,+8p;/definitely lost in/,+25p" "$tmp/vg.log" | head -80; false; }'
check "no memory errors (invalid reads/writes, uninitialised values)" 'grep -q "ERROR SUMMARY: 0 errors" "$tmp/vg.log" || { grep -A12 -E "Invalid|uninitialised" "$tmp/vg.log" | head -60; false; }'

# luaparty test: every test builds and tears down a world; the failing
# fixture goes through party errors, a test file that does not load and
# errors while the test's rooms close.
for project in testcmd:0 testfail:1; do
  name=${project%:*} want=${project#*:}
  valgrind --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
    --log-file="$tmp/vg-test.log" "$bin" test "tests/projects/$name" >"$tmp/test.log" 2>&1
  rc=$?
  check "luaparty test $name under valgrind: exit $want (got $rc)" '[ "$rc" -eq "$want" ] || { cat "$tmp/test.log"; false; }'
  check "luaparty test $name: no leak, no memory error" 'grep -q "ERROR SUMMARY: 0 errors" "$tmp/vg-test.log" && { grep -q "All heap blocks were freed" "$tmp/vg-test.log" || grep -q "indirectly lost: 0 bytes" "$tmp/vg-test.log"; } || { sed -n "/LEAK SUMMARY/,+8p;/lost in/,+25p;/Invalid/,+12p" "$tmp/vg-test.log" | head -80; false; }'
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
