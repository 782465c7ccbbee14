#!/usr/bin/env bash
# luaparty benchmark suite: luaparty vs a raw C server (same C libraries, no
# Lua) vs Node + ws. One command; the whole run is bounded (about 2-3 minutes,
# hard stop at --budget seconds, 240 by default).
#
#   bench/run.sh [--only luaparty,raw,node] [--duration S] [--out DIR] [--no-build]
#
# Env: BUILD=<build dir> (default <repo>/build), LUAPARTY=<binary>
# (default $BUILD/luaparty).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
LUAPARTY=${LUAPARTY:-$BUILD/luaparty}
ONLY=luaparty,raw,node
DUR=5          # seconds per load test (warm-up included)
BUDGET=240     # hard stop for the whole run, seconds
OUT=""
DO_BUILD=1

while [ $# -gt 0 ]; do
  case "$1" in
    --only) ONLY=$2; shift 2 ;;
    --duration) DUR=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
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
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  PIN_SRV="taskset -c 0"; PIN_CLI="taskset -c 1"
else
  PIN_SRV=""; PIN_CLI=""
fi

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
for s in ${ONLY//,/ }; do
  case "$s" in
    luaparty)
      if [ -x "$LUAPARTY" ]; then SERVERS+=(luaparty)
      else log "SKIP luaparty: $LUAPARTY not found (server not built yet)"
           echo "luaparty skipped: $LUAPARTY not found" >> "$PROBLEMS"; fi ;;
    raw) SERVERS+=(raw) ;;
    node)
      if command -v node >/dev/null &&
         { [ -d "$ROOT/bench/node_modules/ws" ] || [ -d "$ROOT/tests/node_modules/ws" ]; }; then
        SERVERS+=(node)
      else log "SKIP node: node or npm ws missing (cd bench && npm install --no-audit --no-fund)"; fi ;;
    *) log "run.sh: unknown server $s"; exit 2 ;;
  esac
done
[ ${#SERVERS[@]} -gt 0 ] || { log "run.sh: nothing to run"; exit 1; }

LP_LOGFLAG=(--log-level warn)
PERSIST_N=0
server_cmd() { # NAME -> prints nothing; fills CMD array
  case "$1" in
    luaparty)
      PERSIST_N=$((PERSIST_N + 1))
      mkdir -p "$OUT/persist-$PERSIST_N"
      CMD=("$LUAPARTY" serve "$ROOT/bench/project" --port 0 --persist "$OUT/persist-$PERSIST_N" "${LP_LOGFLAG[@]}") ;;
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
    $PIN_SRV "${CMD[@]}" >"$SRV_ERR" 2>&1 &
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
    if [ "$1" = luaparty ] && [ "$try" = 1 ] && grep -qi "log-level" "$SRV_ERR"; then
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
  local c0 c1 w
  c0=$(cpu_us "$SRV_PID")
  w=$(timeout $((DUR + 10)) $PIN_CLI wrk -t1 -c50 -d"${DUR}s" --latency "$url" 2>&1)
  c1=$(cpu_us "$SRV_PID")
  echo "$w" > "$OUT/$srv.wrk.txt"
  local line
  line=$(awk -v c0="${c0:-0}" -v c1="${c1:-0}" '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000;
                     if (v ~ /s$/) return v * 1000000; return v + 0 }
    /^ +50%/ { p50 = us($2) } /^ +99%/ { p99 = us($2) }
    /requests in/ { n = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx/ { bad = $NF }
    /Socket errors/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
    END { printf "RESULT mode=http requests=%d req_per_s=%.0f p50_us=%.0f p99_us=%.0f non2xx=%d socket_errors=%d",
                 n, rps, p50, p99, bad, err;
          if (n > 0 && c1 > c0) printf " server_cpu_us_per_op=%.2f", (c1 - c0) / n }' <<<"$w")
  record "$srv" http "$line"
  grep -q 'non2xx=0 socket_errors=0' <<<"$line" || problem "$srv http: $line"
}

run_lg() { # SERVER TEST args...
  local srv=$1 test=$2; shift 2
  local out
  out=$(timeout $((DUR + 30)) $PIN_CLI $LG --port "$SRV_PORT" --pid "$SRV_PID" --label "$srv" "$@" 2>>"$OUT/$srv.loadgen.log")
  local rc=$?
  [ -n "$out" ] || { problem "$srv $test: no result (loadgen exit $rc): $(tail -c 300 "$OUT/$srv.loadgen.log" | tr '\n' ' ')"; return; }
  while IFS= read -r l; do
    case "$l" in RESULT*) record "$srv" "$test" "$l" ;; esac
  done <<<"$out"
  if grep -qE ' (lost|failed|bad|timed_out|echoed_to_sender)=[1-9]|server_alive=0|error=' <<<"$out"; then
    problem "$srv $test: $(grep RESULT <<<"$out" | tr '\n' ' ')"
  fi
}

t_echo() {
  run_lg "$1" echo --mode echo --path "$(path_of "$1" echo)" --conns 50 --window 8 --size 64 \
    --warmup 0.5 --duration "$(awk -v d="$DUR" 'BEGIN{print d - 0.5}')" --timeout $((DUR + 20))
}

t_bcast() { # SERVER RECEIVERS
  run_lg "$1" "b$2" --mode broadcast --path "$(path_of "$1" "b$2")" --receivers "$2" --window 8 \
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

for srv in "${SERVERS[@]}"; do
  if [ "$(left)" -lt 45 ]; then problem "budget exhausted before $srv"; break; fi
  log "== $srv"
  t_startup "$srv"
  if ! start_server "$srv"; then continue; fi
  log "   $srv listening on port $SRV_PORT (pid $SRV_PID)"
  record "$srv" base "RESULT mode=base rss_kb_after_start=$(awk '/^VmRSS/{print $2}' /proc/$SRV_PID/status)"
  t_http "$srv"; alive_check http
  ensure_server "$srv" && { t_echo "$srv"; alive_check echo; }
  ensure_server "$srv" && { t_bcast "$srv" 200; alive_check "broadcast 200"; }
  ensure_server "$srv" && { t_bcast "$srv" 1000; alive_check "broadcast 1000"; }
  [ -n "$SRV_PID" ] && record "$srv" base "RESULT mode=after_load rss_kb=$(awk '/^VmRSS/{print $2}' /proc/$SRV_PID/status)"
  stop_server
  # A fresh process for the memory test, so earlier load does not skew RSS.
  if [ "$(left)" -gt 25 ] && start_server "$srv"; then
    t_idle "$srv"; alive_check idle
    stop_server
  fi
  if [ "$(left)" -gt 15 ] && start_server "$srv"; then
    t_rooms "$srv"; alive_check rooms
    stop_server
  fi
done

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

{
  echo
  echo "luaparty benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, server pinned: ${PIN_SRV:-no}, ${DUR}s per load test, machine ${IDLE_BEFORE}% idle before the run)"
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
  echo "Raw RESULT lines: $RESULTS"
  if [ -s "$PROBLEMS" ]; then echo "Problems seen:"; sed 's/^/  - /' "$PROBLEMS"; fi
  echo "Total time: $((SECONDS - T0)) s"
} | tee "$OUT/table.txt"
