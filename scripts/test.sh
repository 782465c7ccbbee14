#!/usr/bin/env bash
# The test command (README, .ci/run): installs what is missing, builds a
# normal and an ASan+UBSan build, then runs
#   1. the C unit tests (ASan+UBSan),
#   2. the integration tests: real clients against the real ASan+UBSan binary,
#      once with one worker (dev's default) and once with --workers 2, then
#      once more with --workers 2 against a ThreadSanitizer build,
#   3. the storage suites once more with room storage in Redis (cluster mode),
#      and a valgrind run of the release binary: no leak at shutdown,
#   4. end-to-end pages in headless Chromium, the luarocks install, and a
#      short libFuzzer run of each fuzz target.
# Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash scripts/install-deps.sh --test || { echo "install-deps failed"; echo "0 passed, 1 failed"; exit 1; }

jobs=$(nproc)
build() { # dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null &&
    cmake --build "$dir" -j"$jobs" >"$dir/build-output.log" 2>&1 || { cat "$dir/build-output.log"; return 1; }
}
build build -DLUAPARTY_BENCH=ON || { echo "0 passed, 1 failed"; exit 1; }
build build-asan -DLUAPARTY_SANITIZE=ON -DLUAPARTY_BENCH=OFF || { echo "0 passed, 1 failed"; exit 1; }
build build-tsan -DLUAPARTY_TSAN=ON -DLUAPARTY_BENCH=OFF || { echo "0 passed, 1 failed"; exit 1; }

passed=0 failed=0
count() { # reads "N passed, N failed" from a log into the totals
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
  if [ -z "$line" ]; then failed=$((failed + 1)); return; fi
  passed=$((passed + $(echo "$line" | awk '{print $1}')))
  failed=$((failed + $(echo "$line" | awk '{print $3}')))
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
mkdir -p build/test-logs

echo "== unit tests (ASan+UBSan)"
./build-asan/tests/unit/unit_tests 2>&1 | tee build/test-logs/unit.log
count build/test-logs/unit.log

echo "== integration tests (real clients, ASan+UBSan server)"
LUAPARTY_BIN=$root/build-asan/luaparty node tests/integration/run.mjs 2>&1 | tee build/test-logs/integration.log
count build/test-logs/integration.log

echo "== integration tests again, every server with --workers 2 (ASan+UBSan)"
LUAPARTY_TEST_WORKERS=2 LUAPARTY_BIN=$root/build-asan/luaparty node tests/integration/run.mjs 2>&1 |
  tee build/test-logs/integration-workers.log
count build/test-logs/integration-workers.log

echo "== integration tests with --workers 2 under ThreadSanitizer (a data race fails the test)"
# io_sync=2: Debian's libuv (not instrumented) closes fds with a raw syscall that
# TSan never sees, so a number closed on one worker and reused on another (an
# accepted socket, a watched directory) would look like a race on the fd.
TSAN_OPTIONS="halt_on_error=1 report_signal_unsafe=0 atexit_sleep_ms=0 io_sync=2" LUAPARTY_TEST_WORKERS=2 \
  LUAPARTY_BIN=$root/build-tsan/luaparty node tests/integration/run.mjs 2>&1 | tee build/test-logs/integration-tsan.log
count build/test-logs/integration-tsan.log

echo "== the storage suites again, storage in Redis (each server a one-node cluster; ASan+UBSan)"
# The same tests, unchanged, against cluster storage: what room.storage
# promises on one node holds when its record is in Redis.
LUAPARTY_TEST_STORAGE=redis LUAPARTY_TEST_WORKERS=2 LUAPARTY_BIN=$root/build-asan/luaparty \
  node tests/integration/run.mjs storage.test suite-storage alarms coalesce crash limit-keys room-api multiparty 2>&1 |
  tee build/test-logs/integration-redis-storage.log
count build/test-logs/integration-redis-storage.log

echo "== valgrind: no leak at shutdown"
bash tests/valgrind.sh 2>&1 | tee build/test-logs/valgrind.log
count build/test-logs/valgrind.log

echo "== end to end: pages in headless Chromium"
LUAPARTY_BIN=$root/build/luaparty node tests/e2e/run.mjs 2>&1 | tee build/test-logs/e2e.log
count build/test-logs/e2e.log

echo "== luarocks: the rockspec builds, installs and serves"
bash tests/e2e/luarocks.sh 2>&1 | tee build/test-logs/luarocks.log
count build/test-logs/luarocks.log

echo "== fuzzing: HTTP, WebSocket frames, storage values (20 s each, plus the regressions)"
bash scripts/fuzz --ci 2>&1 | tee build/test-logs/fuzz.log
count build/test-logs/fuzz.log

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
