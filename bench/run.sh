#!/usr/bin/env bash
# luaparty benchmark suite: luaparty vs a raw C server (same C libraries, no
# Lua) vs Node + ws, then luaparty's scaling over worker threads (--workers 1
# vs 2). One command; the whole run is bounded (about 5 minutes, hard stop at
# --budget seconds, 600 by default).
#
#   bench/run.sh [--only luaparty,raw,node,scaling,rooms,instructions] [--no-scaling]
#                [--with-rooms] [--with-instructions]
#                [--duration S] [--rounds N] [--scale-rounds N] [--budget S] [--out DIR] [--no-build]
#
# --only takes any of luaparty, raw, node (the comparison table), scaling
# (the workers section, luaparty only), rooms (bench/rooms.mjs: memory per
# room at 1k/10k/100k rooms, about 40 s) and instructions (below); the first
# four by default. --no-scaling drops the scaling section; --only scaling runs
# it alone. --with-rooms adds the rooms section, --with-instructions the
# instructions section (bench/instructions.sh: user-space instructions per
# message, per request and per broadcast delivery under callgrind, ~60 s). --rounds N (3): the
# table's throughput tests run N times per server, the servers taking turns
# (all of them stay up), and each figure comes from the server's best round:
# this VM's speed drifts by 10-20% over tens of seconds, and only ever down.
# --scale-rounds N (2): scaling runs each test N times per worker count and
# keeps the best.
# Env: BUILD=<build dir> (default <repo>/build), LUAPARTY=<binary>
# (default $BUILD/luaparty).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
LUAPARTY=${LUAPARTY:-$BUILD/luaparty}
ONLY=luaparty,raw,node,scaling
DUR=5          # seconds per load test (warm-up included)
BUDGET=600     # hard stop for the whole run, seconds
ROUNDS=3       # the table's throughput tests: rounds per server, the best counts
SCALE_ROUNDS=2 # scaling: rounds per test, the best rate counts
OUT=""
DO_BUILD=1

while [ $# -gt 0 ]; do
  case "$1" in
    --only) ONLY=$2; shift 2 ;;
    --duration) DUR=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --scale-rounds) SCALE_ROUNDS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    --with-rooms) ONLY="$ONLY,rooms"; shift ;;
    --with-instructions) ONLY="$ONLY,instructions"; shift ;;
    --no-scaling) ONLY=$(tr ',' '\n' <<<"$ONLY" | grep -vx scaling | paste -sd, -); shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

T0=$SECONDS
OUT=${OUT:-$(mktemp -d /tmp/luaparty-bench.XXXXXX)}
mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: > "$RESULTS"
PROBLEMS=$OUT/problems.txt
: > "$PROBLEMS"

log() { printf '%s\n' "$*" >&2; }
problem() { log "PROBLEM: $*"; printf '%s\n' "$*" >> "$PROBLEMS"; }
left() { echo $(( BUDGET - (SECONDS - T0) )); }

# ---------------------------------------------------------------- build
if [ "$DO_BUILD" = 1 ]; then
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD" >"$OUT/cmake-configure.log" 2>&1 ||
      log "run.sh: configuring $BUILD failed (see $OUT/cmake-configure.log)"
  fi
  if [ -f "$BUILD/CMakeCache.txt" ]; then
    cmake --build "$BUILD" -j2 >"$OUT/cmake-build.log" 2>&1 ||
      log "run.sh: 'cmake --build $BUILD' failed (see $OUT/cmake-build.log); trying the bench targets alone"
    if [ ! -x "$BUILD/bench/lp_loadgen" ] || [ ! -x "$BUILD/bench/lp_rawserver" ]; then
      cmake --build "$BUILD" -j2 --target lp_loadgen lp_rawserver >>"$OUT/cmake-build.log" 2>&1 || true
    fi
  fi
  if [ ! -x "$BUILD/bench/lp_loadgen" ] || [ ! -x "$BUILD/bench/lp_rawserver" ]; then
    # The server tree may not build yet: build bench/ on its own.
    cmake -S "$ROOT/bench" -B "$BUILD/bench-standalone" >>"$OUT/cmake-build.log" 2>&1 &&
      cmake --build "$BUILD/bench-standalone" -j2 >>"$OUT/cmake-build.log" 2>&1
  fi
fi
BENCHBIN=""
for d in "$BUILD/bench" "$BUILD/bench-standalone/bench"; do
  if [ -x "$d/lp_loadgen" ] && [ -x "$d/lp_rawserver" ]; then BENCHBIN=$d; break; fi
done
if [ -z "$BENCHBIN" ]; then
  log "run.sh: lp_loadgen/lp_rawserver not built (see $OUT/cmake-build.log)"; exit 1
fi
LG=$BENCHBIN/lp_loadgen
RAW=$BENCHBIN/lp_rawserver
command -v wrk >/dev/null || { log "run.sh: wrk not installed (apt-get install wrk)"; exit 1; }

# ---------------------------------------------------------------- CPU pinning
# 2 cores: server on CPU 0, load generator (lp_loadgen, wrk) on CPU 1.
# The scaling section pins nothing apart: server and load generator both get
# CPUs 0 and 1 (PIN_BOTH), so 2 workers can use both cores.
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  PIN_SRV="taskset -c 0"; PIN_CLI="taskset -c 1"; PIN_BOTH="taskset -c 0,1"
else
  PIN_SRV=""; PIN_CLI=""; PIN_BOTH=""
fi
PIN_LG=$PIN_CLI   # the load generator's pinning for the current section

# How busy the machine is without us: other load makes req/s noisy (server
# CPU per op is the steadier figure). Sampled over 1 s from /proc/stat.
cpu_idle_pct() {
  local a b
  read -r -a a < /proc/stat; sleep 1; read -r -a b < /proc/stat
  awk -v a="${a[*]}" -v b="${b[*]}" 'BEGIN { n = split(a, x, " "); split(b, y, " ");
    for (i = 2; i <= 9 && i <= n; i++) t += y[i] - x[i]; print (t > 0 ? int(100 * (y[5] - x[5]) / t) : 0) }'
}
IDLE_BEFORE=$(cpu_idle_pct)
[ "$IDLE_BEFORE" -lt 80 ] && log "run.sh: warning: the machine is only ${IDLE_BEFORE}% idle before the run; throughput figures will be noisy"

# ---------------------------------------------------------------- servers
SERVERS=()
SCALING=0
ROOMS=0
INSTR=0
for s in ${ONLY//,/ }; do
  case "$s" in
    scaling)
      if [ -x "$LUAPARTY" ]; then SCALING=1
      else log "SKIP scaling: $LUAPARTY not found (server not built yet)"
           echo "scaling skipped: $LUAPARTY not found" >> "$PROBLEMS"; fi ;;
    luaparty)
      if [ -x "$LUAPARTY" ]; then SERVERS+=(luaparty)
      else log "SKIP luaparty: $LUAPARTY not found (server not built yet)"
           echo "luaparty skipped: $LUAPARTY not found" >> "$PROBLEMS"; fi ;;
    rooms)
      if [ ! -x "$LUAPARTY" ]; then log "SKIP rooms: $LUAPARTY not found (server not built yet)"
           echo "rooms skipped: $LUAPARTY not found" >> "$PROBLEMS"
      elif ! command -v node >/dev/null ||
           { [ ! -d "$ROOT/bench/node_modules/ws" ] && [ ! -d "$ROOT/tests/node_modules/ws" ]; }; then
        log "SKIP rooms: node or npm ws missing (cd bench && npm install --no-audit --no-fund)"
      else ROOMS=1; fi ;;
    instructions) # instructions.sh checks its own tools (valgrind, ...): see the section
      if [ ! -x "$LUAPARTY" ]; then log "SKIP instructions: $LUAPARTY not found (server not built yet)"
           echo "instructions skipped: $LUAPARTY not found" >> "$PROBLEMS"
      else INSTR=1; fi ;;
    raw) SERVERS+=(raw) ;;
    node)
      if command -v node >/dev/null &&
         { [ -d "$ROOT/bench/node_modules/ws" ] || [ -d "$ROOT/tests/node_modules/ws" ]; }; then
        SERVERS+=(node)
      else log "SKIP node: node or npm ws missing (cd bench && npm install --no-audit --no-fund)"; fi ;;
    *) log "run.sh: unknown server $s"; exit 2 ;;
  esac
done
[ ${#SERVERS[@]} -gt 0 ] || [ "$SCALING" = 1 ] || [ "$ROOMS" = 1 ] || [ "$INSTR" = 1 ] ||
  { log "run.sh: nothing to run"; exit 1; }

LP_LOGFLAG=(--log-level warn)
# `luaparty serve` starts one worker (event loop thread) per core by default.
# Everything in the comparison table is a single-loop figure, set against the
# single-threaded raw C server and Node's single JS thread: startup time and
# base RSS (a second worker adds a thread, a loop and a storage connection),
# idle RSS per connection, HTTP/echo/broadcast throughput and CPU per op (on
# one pinned core, 2 workers would only add hand-overs between them). So the
# table runs luaparty with --workers 1; the scaling section sets 1 and 2
# itself. A binary without --workers is single-threaded anyway.
LP_WORKERS=()
if [ -x "$LUAPARTY" ] && "$LUAPARTY" --help 2>&1 | grep -q -- '--workers'; then
  LP_WORKERS=(--workers 1)
fi
PERSIST_N=0
server_cmd() { # NAME -> prints nothing; fills CMD array and CMD_PIN
  CMD_PIN=$PIN_SRV
  case "$1" in
    luaparty|luaparty-w*)
      PERSIST_N=$((PERSIST_N + 1))
      mkdir -p "$OUT/persist-$PERSIST_N"
      CMD=("$LUAPARTY" serve "$ROOT/bench/project" --port 0 --persist "$OUT/persist-$PERSIST_N" "${LP_LOGFLAG[@]}")
      if [ "$1" = luaparty ]; then
        CMD+=("${LP_WORKERS[@]}")
      else # scaling: luaparty-wN = N workers over CPUs 0-1
        CMD+=(--workers "${1#luaparty-w}"); CMD_PIN=$PIN_BOTH
      fi ;;
    raw) CMD=("$RAW" --port 0) ;;
    node) CMD=(node "$ROOT/bench/node-ws-server.mjs" --port 0) ;;
  esac
}

# URL paths per server
path_of() { # SERVER KIND
  if [ "$1" = luaparty ]; then
    case "$2" in
      http) echo /parties/http/bench ;; echo) echo /parties/main/echo ;;
      b200) echo /parties/broadcast/b200 ;; b1000) echo /parties/broadcast/b1000 ;;
      idle) echo /parties/broadcast/idle ;; rooms) echo /parties/broadcast/room ;;
    esac
  else
    case "$2" in
      http) echo /http/bench ;; echo) echo /echo ;;
      b200) echo /broadcast/b200 ;; b1000) echo /broadcast/b1000 ;;
      idle) echo /broadcast/idle ;; rooms) echo /broadcast/room ;;
    esac
  fi
}

SRV_PID=""; SRV_PORT=""; SRV_NAME=""; SRV_ERR=""
STARTED_PIDS=()

start_server() { # NAME
  SRV_NAME=$1
  local try
  for try in 1 2; do
    server_cmd "$1"
    SRV_ERR=$OUT/$1.stderr.$((${#STARTED_PIDS[@]} + 1)).log
    : > "$SRV_ERR"
    $CMD_PIN "${CMD[@]}" >"$SRV_ERR" 2>&1 &
    SRV_PID=$!
    STARTED_PIDS+=("$SRV_PID")
    local i
    SRV_PORT=""
    for i in $(seq 1 200); do
      SRV_PORT=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9][0-9]*\).*/\1/p' "$SRV_ERR" | head -1)
      [ -n "$SRV_PORT" ] && break
      kill -0 "$SRV_PID" 2>/dev/null || break
      sleep 0.05
    done
    if [ -n "$SRV_PORT" ]; then return 0; fi
    stop_server
    if [ "${1%-w*}" = luaparty ] && [ "$try" = 1 ] && grep -qi "log-level" "$SRV_ERR"; then
      log "run.sh: luaparty does not accept --log-level; retrying without it"
      LP_LOGFLAG=(); continue
    fi
    problem "$1 did not print 'listening on' within 10 s: $(head -c 300 "$SRV_ERR" | tr '\n' ' ')"
    return 1
  done
  return 1
}

stop_server() {
  [ -n "$SRV_PID" ] || return 0
  if kill -0 "$SRV_PID" 2>/dev/null; then
    kill -TERM "$SRV_PID" 2>/dev/null
    local i
    for i in $(seq 1 40); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$SRV_PID" 2>/dev/null; then
      problem "$SRV_NAME (pid $SRV_PID) still running 2 s after SIGTERM; sent SIGKILL"
      kill -KILL "$SRV_PID" 2>/dev/null
    fi
  fi
  wait "$SRV_PID" 2>/dev/null
  SRV_PID=""
}

cleanup() {
  local p
  for p in "${STARTED_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

alive_check() { # TEST-NAME
  if ! kill -0 "$SRV_PID" 2>/dev/null; then
    wait "$SRV_PID" 2>/dev/null; local rc=$?
    problem "$SRV_NAME died during '$1' (exit status $rc); last stderr: $(tail -c 400 "$SRV_ERR" | tr '\n' ' ')"
    SRV_PID=""
    return 1
  fi
  return 0
}

ensure_server() { # restart if it died in a previous test
  if [ -z "$SRV_PID" ] || ! kill -0 "$SRV_PID" 2>/dev/null; then
    start_server "$1"
  fi
}

record() { # SERVER TEST LINE...
  local srv=$1 test=$2; shift 2
  printf '%s %s %s\n' "$srv" "$test" "$*" >> "$RESULTS"
}

cpu_us() { # PID -> utime+stime in microseconds
  local tck; tck=$(getconf CLK_TCK)
  awk -v t="$tck" '{ sub(/.*\) /, ""); print ($12 + $13) * 1000000 / t }' "/proc/$1/stat" 2>/dev/null
}

# ---------------------------------------------------------------- tests
t_startup() { # SERVER
  local srv=$1
  server_cmd "$srv"
  local out
  out=$(timeout 40 $LG --mode startup --repeat 5 --timeout 5 --label "$srv" -- $PIN_SRV "${CMD[@]}" 2>>"$OUT/$srv.startup.log" | grep '^RESULT')
  if { [ -z "$out" ] || grep -q 'error=' <<<"$out"; } && [ "$srv" = luaparty ] &&
     [ ${#LP_LOGFLAG[@]} -gt 0 ] && grep -qi 'log-level' "$OUT/$srv.startup.log"; then
    log "run.sh: luaparty does not accept --log-level; retrying without it"
    LP_LOGFLAG=(); server_cmd "$srv"
    out=$(timeout 40 $LG --mode startup --repeat 5 --timeout 5 --label "$srv" -- $PIN_SRV "${CMD[@]}" 2>>"$OUT/$srv.startup.log" | grep '^RESULT')
  fi
  [ -n "$out" ] || { problem "$srv startup measurement failed: $(tail -c 300 "$OUT/$srv.startup.log" | tr '\n' ' ')"; return; }
  record "$srv" startup "$out"
  grep -q 'error=' <<<"$out" && problem "$srv startup: $out"
}

t_http() {
  local srv=$1 path url
  path=$(path_of "$srv" http); url="http://127.0.0.1:$SRV_PORT$path"
  local code body
  body=$(curl -s -m 5 -o - -w '\n%{http_code}' "$url" 2>&1)
  code=$(tail -n1 <<<"$body"); body=$(head -n -1 <<<"$body")
  echo "$srv GET $path -> $code $body" >> "$OUT/http-check.txt"
  [ "$code" = 200 ] || problem "$srv: GET $path answered '$code' body '$(head -c 200 <<<"$body")'"
  run_wrk "$srv" "http$TAG" "$srv.wrk$TAG.txt" "$url"
}

WRK_CONNS=50
run_wrk() { # SERVER TEST OUTFILE URL [wrk args after the URL]: wrk -t1 -c$WRK_CONNS for DUR s
  local srv=$1 test=$2 file=$3; shift 3
  local c0 c1 w t0 t1
  c0=$(cpu_us "$SRV_PID"); t0=$(date +%s%N)
  w=$(timeout $((DUR + 10)) $PIN_LG wrk -t1 -c"$WRK_CONNS" -d"${DUR}s" --latency "$@" 2>&1)
  c1=$(cpu_us "$SRV_PID"); t1=$(date +%s%N)
  echo "$w" > "$OUT/$file"
  local line
  line=$(awk -v c0="${c0:-0}" -v c1="${c1:-0}" -v wall="$(( (t1 - t0) / 1000 ))" '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000;
                     if (v ~ /s$/) return v * 1000000; return v + 0 }
    /^ +50%/ { p50 = us($2) } /^ +99%/ { p99 = us($2) }
    /requests in/ { n = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx/ { bad = $NF }
    /Socket errors/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
    END { printf "RESULT mode=http requests=%d req_per_s=%.0f p50_us=%.0f p99_us=%.0f non2xx=%d socket_errors=%d",
                 n, rps, p50, p99, bad, err;
          if (n > 0 && c1 > c0) printf " server_cpu_us_per_op=%.2f", (c1 - c0) / n;
          if (wall > 0 && c1 >= c0) printf " server_cpu_pct=%.0f", 100 * (c1 - c0) / wall }' <<<"$w")
  record "$srv" "$test" "$line"
  grep -q 'non2xx=0 socket_errors=0' <<<"$line" || problem "$srv $test: $line"
}

run_lg() { # SERVER TEST args...
  local srv=$1 test=$2; shift 2
  local out
  out=$(timeout $((DUR + 30)) $PIN_LG $LG --port "$SRV_PORT" --pid "$SRV_PID" --label "$srv" "$@" 2>>"$OUT/$srv.loadgen.log")
  local rc=$?
  [ -n "$out" ] || { problem "$srv $test: no result (loadgen exit $rc): $(tail -c 300 "$OUT/$srv.loadgen.log" | tr '\n' ' ')"; return; }
  while IFS= read -r l; do
    case "$l" in RESULT*) record "$srv" "$test" "$l" ;; esac
  done <<<"$out"
  if grep -qE ' (lost|failed|bad|timed_out|echoed_to_sender|non2xx)=[1-9]|server_alive=0|error=' <<<"$out"; then
    problem "$srv $test: $(grep RESULT <<<"$out" | tr '\n' ' ')"
  fi
}

t_echo() {
  run_lg "$1" "echo$TAG" --mode echo --path "$(path_of "$1" echo)" --conns 50 --window 8 --size 64 \
    --warmup 0.5 --duration "$(awk -v d="$DUR" 'BEGIN{print d - 0.5}')" --timeout $((DUR + 20))
}

t_bcast() { # SERVER RECEIVERS
  run_lg "$1" "b$2$TAG" --mode broadcast --path "$(path_of "$1" "b$2")" --receivers "$2" --window 8 \
    --size 64 --warmup 0.5 --duration "$(awk -v d="$DUR" 'BEGIN{print d - 1}')" \
    --timeout $((DUR + 20))
}

t_idle() {
  run_lg "$1" idle --mode idle --path "$(path_of "$1" idle)" --steps 1000,10000 --hold-ms 1000 \
    --timeout 40
}

t_rooms() { # 1,000 sockets, each in its own room: the per-room cost
  run_lg "$1" rooms --mode idle --path "$(path_of "$1" rooms)" --rooms 1000 --steps 1000 \
    --hold-ms 1000 --timeout 30
}

# best_of SERVER TEST RATE-KEY ROUNDS: records SERVER TEST with the line of
# the round (TEST.rN) that had the best RATE-KEY. Background load on this VM
# only ever lowers a rate, so the best round is the least disturbed one.
best_of() {
  local best
  best=$(awk -v s="$1" -v t="$2" -v k="$3" '
    $1 == s && index($2, t ".r") == 1 && $2 ~ /\.r[0-9]+$/ {
      v = ""; for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) v = kv[2] + 0 }
      if (v != "" && (b == "" || v > bv)) { bv = v; b = $0; sub(/^[^ ]+ [^ ]+ /, "", b) } }
    END { print b }' "$RESULTS")
  [ -n "$best" ] && record "$1" "$2" "$best rounds=$4"
}

# All servers start first and stay up side by side (an idle server costs
# nothing); then every round runs each throughput test on each server, the
# servers' order turning each round, so a slow stretch of the VM is shared.
declare -A T_PID T_PORT T_ERR
TAG=""
for srv in "${SERVERS[@]}"; do
  if [ "$(left)" -lt 45 ]; then problem "budget exhausted before $srv"; break; fi
  log "== $srv"
  t_startup "$srv"
  if ! start_server "$srv"; then continue; fi
  log "   $srv listening on port $SRV_PORT (pid $SRV_PID)"
  record "$srv" base "RESULT mode=base rss_kb_after_start=$(awk '/^VmRSS/{print $2}' /proc/$SRV_PID/status) threads=$(ls /proc/$SRV_PID/task | wc -l)"
  T_PID[$srv]=$SRV_PID; T_PORT[$srv]=$SRV_PORT; T_ERR[$srv]=$SRV_ERR
done
use_server() { # SERVER: makes it the current one, restarted if it died
  SRV_NAME=$1; SRV_PID=${T_PID[$1]:-}; SRV_PORT=${T_PORT[$1]:-}; SRV_ERR=${T_ERR[$1]:-}
  ensure_server "$1" || return 1
  T_PID[$1]=$SRV_PID; T_PORT[$1]=$SRV_PORT; T_ERR[$1]=$SRV_ERR
}
TABLE_TESTS=("t_http http" "t_echo echo" "t_bcast_200 b200" "t_bcast_1000 b1000")
declare -A T_RATE=([http]=req_per_s [echo]=msgs_per_s [b200]=deliveries_per_s [b1000]=deliveries_per_s)
t_bcast_200() { t_bcast "$1" 200; }
t_bcast_1000() { t_bcast "$1" 1000; }
n=${#SERVERS[@]}
[ "$n" -gt 0 ] || ROUNDS=0
for r in $(seq 1 "$ROUNDS"); do
  TAG=".r$r"
  order=()
  for i in $(seq 0 $((n - 1))); do order+=("${SERVERS[$(( (i + r - 1) % n ))]}"); done
  log "== round $r of $ROUNDS (${order[*]})"
  for tt in "${TABLE_TESTS[@]}"; do
    read -r fn test <<<"$tt"
    for srv in "${order[@]}"; do
      if [ "$(left)" -lt $((DUR + 30)) ]; then problem "budget exhausted before $srv $test (round $r)"; break 3; fi
      use_server "$srv" || continue
      "$fn" "$srv"; alive_check "$test" || T_PID[$srv]=""
    done
  done
done
TAG=""
for srv in "${SERVERS[@]}"; do
  for tt in "${TABLE_TESTS[@]}"; do
    read -r fn test <<<"$tt"
    best_of "$srv" "$test" "${T_RATE[$test]}" "$ROUNDS"
  done
done
for srv in "${SERVERS[@]}"; do
  SRV_NAME=$srv; SRV_PID=${T_PID[$srv]:-}
  [ -n "$SRV_PID" ] || continue
  record "$srv" base "RESULT mode=after_load rss_kb=$(awk '/^VmRSS/{print $2}' /proc/$SRV_PID/status)"
  stop_server
done
# Fresh processes for the memory tests, so earlier load does not skew RSS.
for srv in "${SERVERS[@]}"; do
  if [ "$(left)" -gt 25 ] && start_server "$srv"; then
    t_idle "$srv"; alive_check idle
    stop_server
  fi
  if [ "$(left)" -gt 15 ] && start_server "$srv"; then
    t_rooms "$srv"; alive_check rooms
    stop_server
  fi
done

# ---------------------------------------------------------------- scaling
# luaparty alone, --workers 1 vs --workers 2, on CPUs 0-1 with the load
# generator on the same two CPUs (nothing pinned apart). The load is spread
# over 64 rooms so that both workers get some (a room lives on one worker);
# the single-room echo shows what happens when it is not. Both servers run
# side by side (an idle server costs nothing) and each test runs on 1 worker
# and on 2 right after each other (2 first in even rounds), so a change in
# background load hits both alike. With --scale-rounds N (2 by default) each
# figure is taken from the round with the best rate: background load only
# ever lowers a rate. machine_busy_pct is the whole machine (/proc/stat, all
# CPUs, kernel networking included) during the test: near 100 means the two
# cores were full, so the ratio is what the machine allows.
SCALE_K=64
SC_TAG=""
s_dur() { awk -v d="$DUR" 'BEGIN{print d - 0.5}'; }
s_echo() { # rooms: 256 sockets x 8 in flight, 64 B, socket i in room s-(i mod K)
  run_lg "$1" "s_echo$SC_TAG" --mode echo --path /parties/main/s --rooms "$SCALE_K" --conns 256 --window 8 \
    --size 64 --warmup 0.5 --duration "$(s_dur)" --timeout $((DUR + 20))
}
s_echo1() { # the same echo, all 256 sockets in one room
  run_lg "$1" "s_echo1$SC_TAG" --mode echo --path /parties/main/solo --conns 256 --window 8 \
    --size 64 --warmup 0.5 --duration "$(s_dur)" --timeout $((DUR + 20))
}
s_http() { # K keep-alive connections, connection i always asks room r-i
  run_lg "$1" "s_http$SC_TAG" --mode http --path /parties/http/r --rooms "$SCALE_K" --conns "$SCALE_K" \
    --warmup 0.5 --duration "$(s_dur)" --timeout $((DUR + 20))
}
s_wrk() { # wrk -t1 -cK, request n asks room q-(n mod K): connections hop rooms
  WRK_CONNS=$SCALE_K run_wrk "$1" "s_wrk$SC_TAG" "$1.wrk-rooms$SC_TAG.txt" "http://127.0.0.1:$SRV_PORT/" \
    -s "$ROOT/bench/wrk-rooms.lua" -- "$SCALE_K" /parties/http/q-
}
s_work() { # 64 sockets x 2 in flight, socket i in room w-(i mod K), ~35 us of Lua per message (parties/work.lua)
  run_lg "$1" "s_work$SC_TAG" --mode echo --path /parties/work/w --rooms "$SCALE_K" --conns "$SCALE_K" --window 2 \
    --size 64 --warmup 0.5 --duration "$(s_dur)" --timeout $((DUR + 20))
}
SCALE_TESTS=(s_echo s_echo1 s_http s_wrk s_work)
declare -A SC_RATE=([s_echo]=msgs_per_s [s_echo1]=msgs_per_s [s_http]=req_per_s [s_wrk]=req_per_s [s_work]=msgs_per_s)
declare -A SC_PID SC_PORT SC_ERR
cpu_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $5 + $6 }' /proc/stat; }
thread_ticks() { # PID -> utime+stime of each thread, in /proc/PID/task order
  local t; for t in /proc/"$1"/task/*; do awk '{ sub(/.*\) /, ""); printf "%d ", $12 + $13 }' "$t/stat" 2>/dev/null; done
}
if [ "$SCALING" = 1 ]; then
  need=$(( SCALE_ROUNDS * ${#SCALE_TESTS[@]} * 2 * (DUR + 2) + 10 ))
  if [ -z "$PIN_BOTH" ]; then
    problem "scaling skipped: needs 2 CPUs and taskset"
  elif [ "$(left)" -lt "$need" ]; then
    problem "scaling skipped: $(left) s of budget left, it needs about $need"
  else
    log "== scaling (luaparty --workers 1 vs 2, server and load generator on CPUs 0-1, $SCALE_ROUNDS round(s))"
    SC_IDLE=$(cpu_idle_pct)
    PIN_LG=$PIN_BOTH
    for w in 1 2; do
      if start_server "luaparty-w$w"; then
        SC_PID[$w]=$SRV_PID; SC_PORT[$w]=$SRV_PORT; SC_ERR[$w]=$SRV_ERR
        record "luaparty-w$w" base "RESULT mode=base threads=$(ls /proc/$SRV_PID/task | wc -l) rss_kb_after_start=$(awk '/^VmRSS/{print $2}' /proc/$SRV_PID/status)"
        log "   luaparty --workers $w listening on port $SRV_PORT (pid $SRV_PID)"
      fi
    done
    for r in $(seq 1 "$SCALE_ROUNDS"); do
      SC_TAG=".r$r"
      order="1 2"; [ $((r % 2)) = 0 ] && order="2 1"
      for t in "${SCALE_TESTS[@]}"; do
        for w in $order; do
          [ -n "${SC_PID[$w]:-}" ] || continue
          if [ "$(left)" -lt $((DUR + 15)) ]; then problem "budget exhausted before scaling $t ($w workers, round $r)"; break 3; fi
          SRV_PID=${SC_PID[$w]}; SRV_PORT=${SC_PORT[$w]}; SRV_ERR=${SC_ERR[$w]}; SRV_NAME=luaparty-w$w
          read -r tot0 idle0 < <(cpu_ticks); th0=$(thread_ticks "$SRV_PID")
          "$t" "luaparty-w$w"
          read -r tot1 idle1 < <(cpu_ticks); th1=$(thread_ticks "$SRV_PID")
          # The machine's load during the test, and how the server's CPU time
          # split over its threads (percent of it), go on the line just recorded.
          if [ "$(tail -n1 "$RESULTS" | cut -d' ' -f1-2)" = "luaparty-w$w $t$SC_TAG" ] && [ $((tot1 - tot0)) -gt 0 ]; then
            split=$(awk -v a="$th0" -v b="$th1" 'BEGIN { n = split(a, x, " "); m = split(b, y, " ");
              if (n != m) exit; for (i = 1; i <= n; i++) { d[i] = y[i] - x[i]; s += d[i] }
              if (s <= 0) exit; for (i = 1; i <= n; i++) printf "%s%.0f", (i > 1 ? "/" : ""), 100 * d[i] / s }')
            sed -i "\$ s|\$| machine_busy_pct=$(( 100 - 100 * (idle1 - idle0) / (tot1 - tot0) ))${split:+ thread_split_pct=$split}|" "$RESULTS"
          fi
          alive_check "scaling $t" || SC_PID[$w]=""
        done
      done
    done
    SC_TAG=""
    # Each figure from the round with the best rate (same round for all of a test's figures).
    for w in 1 2; do
      for t in "${SCALE_TESTS[@]}"; do best_of "luaparty-w$w" "$t" "${SC_RATE[$t]}" "$SCALE_ROUNDS"; done
    done
    for w in 1 2; do
      [ -n "${SC_PID[$w]:-}" ] || continue
      SRV_PID=${SC_PID[$w]}; SRV_NAME=luaparty-w$w
      record "luaparty-w$w" base "RESULT mode=after_load threads=$(ls /proc/$SRV_PID/task | wc -l)"
      stop_server
    done
    PIN_LG=$PIN_CLI
    # A server log line at warn or above during the scaling tests is worth a look.
    for w in 1 2; do
      [ -n "${SC_ERR[$w]:-}" ] || continue
      n=$(grep -cv 'listening on' "${SC_ERR[$w]}")
      [ "$n" -gt 0 ] && problem "luaparty --workers $w logged $n line(s) during scaling: $(grep -v 'listening on' "${SC_ERR[$w]}" | head -3 | tr '\n' ' ')"
    done
  fi
fi

# ---------------------------------------------------------------- rooms
# bench/rooms.mjs on fresh servers (--workers 1): 1k, 10k, 100k rooms made by
# one HTTP GET each, then 1k and 10k rooms with one WebSocket each; VmRSS and
# the Lua heap per room, and whether they grow linearly. About 40 s here.
if [ "$ROOMS" = 1 ]; then
  if [ "$(left)" -lt 90 ]; then
    problem "rooms skipped: $(left) s of budget left, it needs about 90"
  else
    log "== rooms (bench/rooms.mjs --with-conns)"
    RB=$(( $(left) - 10 )); [ "$RB" -gt 240 ] && RB=240
    LUAPARTY=$LUAPARTY timeout $((RB + 20)) node "$ROOT/bench/rooms.mjs" --with-conns --budget "$RB" \
      >"$OUT/rooms.txt" 2>"$OUT/rooms.log"
    rc=$?
    while IFS= read -r l; do record luaparty roomsmem "$l"; done < <(grep '^RESULT' "$OUT/rooms.txt")
    grep '^PROBLEM: ' "$OUT/rooms.txt" | sed 's/^PROBLEM: /rooms: /' >> "$PROBLEMS"
    [ "$rc" -gt 2 ] && problem "rooms: bench/rooms.mjs exit status $rc (see $OUT/rooms.log)"
  fi
fi

# ---------------------------------------------------------------- instructions
# bench/instructions.sh: the user-space instructions luaparty and the raw
# server execute per echoed message, per HTTP request and per broadcast
# delivery (callgrind), the figure VM noise does not move. About 60 s.
if [ "$INSTR" = 1 ]; then
  if [ "$(left)" -lt 90 ]; then
    problem "instructions skipped: $(left) s of budget left, it needs about 90"
  else
    log "== instructions (bench/instructions.sh)"
    BUILD=$BUILD LUAPARTY=$LUAPARTY LG=$LG RAW=$RAW timeout $(( $(left) - 5 )) bash "$ROOT/bench/instructions.sh" \
      >"$OUT/instructions.txt" 2>"$OUT/instructions.log"
    rc=$?
    [ "$rc" = 0 ] || problem "instructions: bench/instructions.sh exited with $rc: $(tail -c 300 "$OUT/instructions.log" | tr '\n' ' ')"
    while IFS= read -r l; do record "$(sed 's/.*server=\([^ ]*\).*/\1/' <<<"$l")" instructions "$l"; done \
      < <(grep '^RESULT' "$OUT/instructions.txt")
    grep '^PROBLEM: ' "$OUT/instructions.txt" | sed 's/^PROBLEM: /instructions: /' >> "$PROBLEMS"
  fi
fi

# ---------------------------------------------------------------- table
get() { # SERVER TEST KEY
  awk -v s="$1" -v t="$2" -v k="$3" '$1 == s && $2 == t {
      for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) v = kv[2] } }
      END { print v }' "$RESULTS"
}
get_idle() { # SERVER CONNS [TEST]
  awk -v s="$1" -v n="$2" -v t="${3:-idle}" '$1 == s && $2 == t && $4 == "mode=idle" {
      c = ""; b = ""
      for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "conns") c = kv[2]; if (kv[1] == "bytes_per_conn") b = kv[2] }
      if (c == n) v = b } END { print v }' "$RESULTS"
}
# client-bound marker: the load generator used >= 90% of its CPU
flag() { local c; c=$(get "$1" "$2" client_cpu_pct); [ -n "$c" ] && [ "$c" -ge 90 ] && printf '*'; }

COLS=(luaparty raw node)
fmt_row() { # LABEL v_lp v_raw v_node
  local label=$1 a=$2 b=$3 c=$4
  local r1 r2
  r1=$(awk -v x="${a%\*}" -v y="${b%\*}" 'BEGIN{ if (x != "" && y != "" && y + 0 != 0) printf "%.2f", x / y; else printf "-" }')
  r2=$(awk -v x="${a%\*}" -v y="${c%\*}" 'BEGIN{ if (x != "" && y != "" && y + 0 != 0) printf "%.2f", x / y; else printf "-" }')
  printf '| %-44s | %12s | %12s | %12s | %8s | %9s |\n' "$label" "${a:--}" "${b:--}" "${c:--}" "$r1" "$r2"
}
row() { # LABEL TEST KEY [flag]
  local label=$1 test=$2 key=$3 fl=${4:-}
  local v=() s x
  for s in "${COLS[@]}"; do
    x=$(get "$s" "$test" "$key")
    [ -n "$x" ] && [ -n "$fl" ] && x="$x$(flag "$s" "$test")"
    v+=("$x")
  done
  fmt_row "$label" "${v[@]}"
}
row_idle() { # LABEL CONNS [TEST]
  local label=$1 n=$2 t=${3:-idle} v=() s
  for s in "${COLS[@]}"; do v+=("$(get_idle "$s" "$n" "$t")"); done
  fmt_row "$label" "${v[@]}"
}
row_mib() {
  local label=$1 test=$2 key=$3 v=() s x
  for s in "${COLS[@]}"; do
    x=$(get "$s" "$test" "$key")
    [ -n "$x" ] && x=$(awk -v k="$x" 'BEGIN{printf "%.1f", k / 1024}')
    v+=("$x")
  done
  fmt_row "$label" "${v[@]}"
}

srow() { # LABEL TEST KEY [flag|noratio]: luaparty-w1, luaparty-w2 and their ratio
  local label=$1 test=$2 key=$3 fl=${4:-} a b r
  a=$(get luaparty-w1 "$test" "$key"); b=$(get luaparty-w2 "$test" "$key")
  [ "$fl" = noratio ] && { fl=""; r=-; }
  [ -n "${r:-}" ] || r=$(awk -v x="$a" -v y="$b" 'BEGIN{ if (x != "" && y != "" && x + 0 != 0) printf "%.2f", y / x; else printf "-" }')
  if [ -n "$fl" ]; then
    [ -n "$a" ] && a="$a$(flag luaparty-w1 "$test")"
    [ -n "$b" ] && b="$b$(flag luaparty-w2 "$test")"
  fi
  printf '| %-56s | %10s | %10s | %7s |\n' "$label" "${a:--}" "${b:--}" "$r"
}

{
  if [ ${#SERVERS[@]} -gt 0 ]; then
  echo
  echo "luaparty benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, server pinned: ${PIN_SRV:-no}, ${DUR}s per load test, best of $ROUNDS round(s), machine ${IDLE_BEFORE}% idle before the run)"
  printf '| %-44s | %12s | %12s | %12s | %8s | %9s |\n' figure luaparty "raw C" node "lp/raw" "lp/node"
  printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..14})" \
    "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..11})"
  row "HTTP req/s (wrk -t1 -c50)" http req_per_s
  row "HTTP p50 latency (us)" http p50_us
  row "HTTP p99 latency (us)" http p99_us
  row "HTTP server CPU (us/req)" http server_cpu_us_per_op
  row "echo msgs/s (50 conns x 8, 64 B)" echo msgs_per_s 1
  row "echo p50 round trip (us)" echo p50_us
  row "echo p99 round trip (us)" echo p99_us
  row "echo server CPU (us/msg)" echo server_cpu_us_per_op
  row "bcast 200 rcv: deliveries/s" b200 deliveries_per_s 1
  row "bcast 200 rcv: p50 latency (us)" b200 p50_us
  row "bcast 200 rcv: p99 latency (us)" b200 p99_us
  row "bcast 200 rcv: lost" b200 lost
  row "bcast 200 rcv: server CPU (us/delivery)" b200 server_cpu_us_per_op
  row "bcast 1000 rcv: deliveries/s" b1000 deliveries_per_s 1
  row "bcast 1000 rcv: p50 latency (us)" b1000 p50_us
  row "bcast 1000 rcv: p99 latency (us)" b1000 p99_us
  row "bcast 1000 rcv: lost" b1000 lost
  row "bcast 1000 rcv: server CPU (us/delivery)" b1000 server_cpu_us_per_op
  row_idle "idle RSS per conn @1,000 (bytes)" 1000
  row_idle "idle RSS per conn @10,000 (bytes)" 10000
  row_idle "1,000 rooms x 1 conn: RSS per conn+room (B)" 1000 rooms
  row_mib "base RSS after start (MiB)" startup rss_kb_median
  row "start to listening, median of 5 (ms)" startup listen_ms_median
  row_mib "RSS after the load tests (MiB)" base rss_kb
  echo
  echo "* = the load generator used >= 90% of its CPU: the figure is client-bound (a floor, not the server's ceiling)."
  echo "luaparty runs with --workers 1 here: every figure above is one event loop (see the scaling table for 2)."
  fi
  if [ "$SCALING" = 1 ] && grep -q '^luaparty-w' "$RESULTS"; then
  echo
  echo "Scaling: luaparty serve --workers 1 vs --workers 2 ($(date -u +%Y-%m-%dT%H:%M:%SZ), ${DUR}s per load test, best of $SCALE_ROUNDS round(s), machine ${SC_IDLE:-?}% idle before)"
  echo "Not pinned apart: the server may use CPUs 0-1, and the load generator (one thread) shares those same 2 CPUs,"
  echo "so 2 workers cannot reach 2x here; 'server CPU %' shows how much of the 2 cores the server got (100 = one core)."
  printf '| %-56s | %10s | %10s | %7s |\n' figure "1 worker" "2 workers" "2w/1w"
  printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..58})" "$(printf -- '-%.0s' {1..12})" \
    "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..9})"
  srow "echo, $SCALE_K rooms (256 sockets x 8, 64 B): round trips/s" s_echo msgs_per_s 1
  srow "echo, $SCALE_K rooms: p50 round trip (us)" s_echo p50_us
  srow "echo, $SCALE_K rooms: p99 round trip (us)" s_echo p99_us
  srow "echo, $SCALE_K rooms: server CPU (us/msg)" s_echo server_cpu_us_per_op
  srow "echo, $SCALE_K rooms: server CPU %" s_echo server_cpu_pct
  srow "echo, $SCALE_K rooms: load generator CPU %" s_echo client_cpu_pct
  srow "echo, $SCALE_K rooms: whole machine busy % (2 CPUs)" s_echo machine_busy_pct
  srow "echo, $SCALE_K rooms: server CPU split over threads %" s_echo thread_split_pct noratio
  srow "echo, 1 room (same 256 sockets x 8): round trips/s" s_echo1 msgs_per_s 1
  srow "echo, 1 room: p50 round trip (us)" s_echo1 p50_us
  srow "echo, 1 room: p99 round trip (us)" s_echo1 p99_us
  srow "echo, 1 room: server CPU (us/msg)" s_echo1 server_cpu_us_per_op
  srow "echo, 1 room: server CPU %" s_echo1 server_cpu_pct
  srow "echo, 1 room: server CPU split over threads %" s_echo1 thread_split_pct noratio
  srow "HTTP, $SCALE_K rooms, 1 room per connection: req/s" s_http req_per_s 1
  srow "HTTP, $SCALE_K rooms, 1 room per connection: p50 (us)" s_http p50_us
  srow "HTTP, $SCALE_K rooms, 1 room per connection: p99 (us)" s_http p99_us
  srow "HTTP, $SCALE_K rooms, 1 room per connection: CPU (us/req)" s_http server_cpu_us_per_op
  srow "HTTP, $SCALE_K rooms, 1 room per connection: server CPU %" s_http server_cpu_pct
  srow "HTTP, $SCALE_K rooms, 1 room per connection: machine busy %" s_http machine_busy_pct
  srow "HTTP, $SCALE_K rooms, 1 room per connection: CPU split %" s_http thread_split_pct noratio
  srow "HTTP, $SCALE_K rooms, next room each request (wrk): req/s" s_wrk req_per_s
  srow "HTTP, $SCALE_K rooms, next room each request: p50 (us)" s_wrk p50_us
  srow "HTTP, $SCALE_K rooms, next room each request: p99 (us)" s_wrk p99_us
  srow "HTTP, $SCALE_K rooms, next room each request: CPU (us/req)" s_wrk server_cpu_us_per_op
  srow "HTTP, $SCALE_K rooms, next room each request: server CPU %" s_wrk server_cpu_pct
  srow "HTTP, $SCALE_K rooms, next room each request: CPU split %" s_wrk thread_split_pct noratio
  srow "Lua work per message, $SCALE_K rooms: msgs/s" s_work msgs_per_s 1
  srow "Lua work per message: server CPU (us/msg)" s_work server_cpu_us_per_op
  srow "Lua work per message: server CPU %" s_work server_cpu_pct
  srow "Lua work per message: load generator CPU %" s_work client_cpu_pct
  srow "Lua work per message: CPU split %" s_work thread_split_pct noratio
  srow "server threads" base threads
  echo
  echo "echo: lp_loadgen --rooms $SCALE_K, socket i in room s-(i mod $SCALE_K). 1 room: every socket in one room, which lives on"
  echo "one worker, so a second worker cannot help (ratio ~1). HTTP, 1 room per connection: lp_loadgen --mode http, $SCALE_K"
  echo "keep-alive connections, connection i always asks /parties/http/r-i, so each settles on its room's worker."
  echo "HTTP, next room each request: wrk -t1 -c$SCALE_K -s bench/wrk-rooms.lua, request n asks q-(n mod $SCALE_K), so with"
  echo "2 workers about half the requests are for a room of the other worker: a connection moves at most once, after"
  echo "that those requests are forwarded to the room's worker and the answer comes back (two cross-thread hops)."
  echo "Lua work per message: bench/project/parties/work.lua, ~35 us of Lua per message then the echo, $SCALE_K sockets x 2"
  echo "in flight over $SCALE_K rooms: the server, not the load generator, is the limit, so the second core can go to it."
  echo "CPU split: each server thread's share of the server's CPU time during the test (1 worker: 100; 2 workers: a/b)."
  echo "Ratios are 2 workers / 1 worker: above 1 is better for rates, worse for latency and CPU."
  fi
  if [ "$INSTR" = 1 ] && grep -q '^User-space instructions' "$OUT/instructions.txt" 2>/dev/null; then
    echo
    sed -n '/^User-space instructions/,$p' "$OUT/instructions.txt"
  fi
  if [ "$ROOMS" = 1 ] && grep -q '^luaparty rooms benchmark' "$OUT/rooms.txt" 2>/dev/null; then
    echo
    awk '/^luaparty rooms benchmark/ { on = 1 } /^(Problems seen|Total time)/ { on = 0 } on' "$OUT/rooms.txt"
  fi
  echo "Raw RESULT lines: $RESULTS"
  if [ -s "$PROBLEMS" ]; then echo "Problems seen:"; sed 's/^/  - /' "$PROBLEMS"; fi
  echo "Total time: $((SECONDS - T0)) s"
} | tee "$OUT/table.txt"
