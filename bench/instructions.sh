#!/usr/bin/env bash
# User-space instructions per operation, luaparty vs the raw C server,
# counted by valgrind's callgrind: the part of the cost that VM noise does
# not move (req/s and µs per op on a shared VM drift by 10-20% between runs;
# an instruction count repeats to within ~0.5%). Kernel work (syscalls, TCP)
# is not counted, and it is the same for both servers: one read and one
# write per request or message.
#
#   bench/instructions.sh [--seconds S] [--only echo,http,bcast] [--luaparty-args "ARGS"]
#                         [--broadcasts N] [--keep DIR]
#
# Each server runs under callgrind with instrumentation off until it is
# listening and warmed up (one request; for echo also one WebSocket and 20
# messages, so the room and the first handshake are made before), then is
# counted while one client
# does S seconds (4) of unbatched traffic: echo = lp_loadgen, 1 WebSocket,
# 1 message of 64 B in flight; http = wrk -t1 -c1 on the small JSON GET;
# bcast = lp_loadgen, 1 sender + 1,000 receivers in one room, N (200)
# broadcasts of 64 B, one in flight, counted per delivery (the 1,001
# handshakes are not counted: counting starts once they are done).
# Prints one line per (server, test) and a table with luaparty/raw ratios.
# --luaparty-args adds options to luaparty's command line (e.g. "--cpu-limit 0"
# to see what the CPU limit costs: with it the JIT is on). --keep DIR keeps
# the callgrind files there (callgrind_annotate DIR/cg.luaparty.echo.*).
# Then, for echo and http, the Lua floor (bench/lp_luafloor.c): the party's
# callback run by C with nothing around it, the cheapest way there is; as a
# room runs it today (JIT off, the CPU limit's count hook), and at its
# cheapest (the least of that, the JIT for the runtime, and no hook). Raw C
# plus the cheapest floor, less the raw server's own JSON body for http
# (cjson makes it there), is the least any server that calls a Lua callback
# per event can execute: "least/raw" is the lowest ratio within reach. For
# http two more rows count the floor with a request the party can read (a
# table with method and url), and with an unread full userdata (what a
# request made on first read costs a handler that reads nothing), instead
# of a light userdata.
# Env: BUILD (<repo>/build), LUAPARTY, LG, RAW and FLOOR (the binaries, from BUILD).
# Bounded: every step has a timeout; about 50 s in all (80 s with bcast).
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
LUAPARTY=${LUAPARTY:-$BUILD/luaparty}
LG=${LG:-$BUILD/bench/lp_loadgen}
RAW=${RAW:-$BUILD/bench/lp_rawserver}
FLOOR=${FLOOR:-$BUILD/bench/lp_luafloor}
SECS=4
TESTS="echo http bcast"
LP_ARGS=""
BCASTS=200
RECEIVERS=1000
KEEP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECS=$2; shift 2 ;;
    --only) TESTS=${2//,/ }; shift 2 ;;
    --luaparty-args) LP_ARGS=$2; shift 2 ;;
    --broadcasts) BCASTS=$2; shift 2 ;;
    --keep) KEEP=$2; mkdir -p "$KEEP"; shift 2 ;;
    -h|--help) sed -n '2,/^set -u/{/^#/p}' "$0"; exit 0 ;;
    *) echo "instructions.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for t in valgrind callgrind_control wrk curl; do
  command -v "$t" >/dev/null || { echo "instructions.sh: $t not installed" >&2; exit 1; }
done
for f in "$LUAPARTY" "$LG" "$RAW"; do
  [ -x "$f" ] || { echo "instructions.sh: $f not built (cmake --build build)" >&2; exit 1; }
done
OUT=$(mktemp -d /tmp/luaparty-instr.XXXXXX)
PID=""
cleanup() { [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null; }
trap cleanup EXIT

count() { # SERVER TEST -> prints "instructions ops"
  local srv=$1 test=$2 port="" cmd epath hpath bpath
  if [ "$srv" = raw ]; then
    cmd=("$RAW" --port 0); epath=/echo; hpath=/http/bench; bpath=/broadcast/bench
  else
    mkdir -p "$OUT/persist-$test"
    cmd=("$LUAPARTY" serve "$ROOT/bench/project" --workers 1 --port 0 --persist "$OUT/persist-$test" --log-level warn)
    # shellcheck disable=SC2206 # word splitting of the extra options is intended
    cmd+=($LP_ARGS)
    epath=/parties/main/echo; hpath=/parties/http/bench; bpath=/parties/broadcast/bench
  fi
  local cg=$OUT/cg.$srv.$test
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$cg" "${cmd[@]}" >"$OUT/$srv.$test.log" 2>&1 &
  PID=$!
  local i
  for i in $(seq 1 150); do # the port it printed, then one request (warm-up)
    [ -n "$port" ] || port=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9][0-9]*\).*/\1/p' "$OUT/$srv.$test.log" | head -1)
    [ -n "$port" ] && curl -s -m 1 -o /dev/null "http://127.0.0.1:$port$hpath" && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ "$test" = echo ]; then
    # and one WebSocket with a few messages: the room and the first
    # handshake (OpenSSL loads its SHA-1 on first use, ~5M instructions)
    # are made before counting, so the count is the messages' alone
    timeout 30 "$LG" --port "$port" --mode echo --path "$epath" --conns 1 --window 1 --size 64 --warmup 0 \
      --duration 2 --max-msgs 20 --timeout 25 >/dev/null 2>&1
  fi
  local ops=""
  if [ "$test" = bcast ]; then
    # Counting starts when every receiver is connected; the first broadcast
    # goes 3 s later (--settle-ms), long after callgrind took the command.
    # Each broadcast waits for all its deliveries (--window 1): ops = deliveries.
    local lg=$OUT/lg.$srv.bcast
    timeout $((SECS + 120)) "$LG" --port "$port" --mode broadcast --path "$bpath" --receivers "$RECEIVERS" \
      --window 1 --size 64 --warmup 0 --duration 600 --max-msgs "$BCASTS" --settle-ms 3000 \
      --timeout $((SECS + 110)) >"$lg.out" 2>"$lg.err" &
    local lgpid=$!
    for i in $(seq 1 900); do
      grep -q 'receivers connected' "$lg.err" 2>/dev/null && break
      kill -0 "$lgpid" 2>/dev/null || break
      sleep 0.1
    done
    callgrind_control -i on "$PID" >/dev/null 2>&1
    wait "$lgpid"
    ops=$(awk '/mode=broadcast/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                                  if (v["lost"] == 0) print v["deliveries"] }' "$lg.out")
  else
    callgrind_control -i on "$PID" >/dev/null 2>&1
    sleep 0.3
  fi
  if [ "$test" = bcast ]; then
    :
  elif [ "$test" = echo ]; then
    ops=$(timeout $((SECS + 30)) "$LG" --port "$port" --pid "$PID" --mode echo --path "$epath" --conns 1 --window 1 \
            --size 64 --warmup 0 --duration "$SECS" --timeout $((SECS + 20)) 2>/dev/null | grep -o ' msgs=[0-9]*' | cut -d= -f2)
  else
    ops=$(timeout $((SECS + 30)) wrk -t1 -c1 -d"${SECS}s" "http://127.0.0.1:$port$hpath" 2>/dev/null | awk '/requests in/{print $1}')
  fi
  callgrind_control -i off "$PID" >/dev/null 2>&1
  callgrind_control -d "$PID" >/dev/null 2>&1
  sleep 0.5
  kill -TERM "$PID" 2>/dev/null
  for i in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  wait "$PID" 2>/dev/null; PID=""
  # the dump (-d) is the file with the counted part: the largest total
  local ir dump body=0
  dump=$(awk '/^totals:/{print $2, FILENAME}' "$cg"* 2>/dev/null | sort -n | tail -1)
  ir=${dump%% *}
  if [ "$srv.$test" = raw.http ] && [ -n "$dump" ]; then # the raw server's JSON body (see floor below)
    body=$(callgrind_annotate --inclusive=yes "${dump#* }" 2>/dev/null | awk '/:json_body[ .]/{gsub(",", "", $1); print $1; exit}')
  fi
  if [ -n "$KEEP" ]; then cp "$cg"* "$KEEP/" 2>/dev/null; fi
  echo "${ir:-0} ${ops:-0} ${body:-0}"
}

# The Lua floor (bench/lp_luafloor.c): the Lua part of an echo or a request
# with nothing around it, counted by callgrind (--toggle-collect=floor_run).
floor() { # TEST ARGS... -> prints instructions per op
  local n=20000 out
  out=$(timeout 120 valgrind --tool=callgrind --toggle-collect=floor_run --callgrind-out-file="$OUT/floor.cg" \
        "$FLOOR" "$1" "$n" "${@:2}" 2>/dev/null) || return 1
  case "$out" in floor=*" ops=$n "*) ;; *) return 1 ;; esac
  awk -v n="$n" '/^totals:/{printf "%d\n", $2 / n}' "$OUT/floor.cg"
}

declare -A PER
RAW_BODY=0
for test in $TESTS; do
  for srv in luaparty raw; do
    read -r ir ops body < <(count "$srv" "$test")
    [ "${body:-0}" -gt 0 ] && [ "${ops:-0}" -gt 0 ] && RAW_BODY=$(( body / ops )) # raw http's only
    if [ "${ops:-0}" -gt 0 ] && [ "${ir:-0}" -gt 0 ]; then
      PER[$srv.$test]=$(( ir / ops ))
      echo "RESULT server=$srv test=$test ops=$ops user_instructions=$ir per_op=${PER[$srv.$test]}"
    else
      echo "PROBLEM: $srv $test: no count (ops=$ops instructions=$ir; see $OUT/$srv.$test.log)"
    fi
  done
done
# http-table and http-lazy: the floor's request a table with method and url
# (the least a party can read at once), and an unread userdata (the least a
# request made on first read costs), instead of a light userdata: rows of
# their own under http's.
ROWS=$(echo " $TESTS " | sed 's/ http / http http-table http-lazy /')
declare -A FLOOR_TODAY FLOOR_LEAST
for test in echo http http-table http-lazy; do
  case " $TESTS " in *" ${test%-*} "*) ;; *) continue ;; esac
  [ -x "$FLOOR" ] || { echo "instructions.sh: $FLOOR not built: no Lua floor"; break; }
  today=$(floor "$test") || { echo "PROBLEM: lp_luafloor $test failed"; continue; }
  least=$today
  for args in "--jit" "--no-hook" "--jit --no-hook"; do
    # shellcheck disable=SC2086 # the options are words
    f=$(floor "$test" $args) && [ "$f" -lt "$least" ] && least=$f
  done
  FLOOR_TODAY[$test]=$today FLOOR_LEAST[$test]=$least
  echo "RESULT floor=$test per_op_today=$today per_op_least=$least raw_json_body=$RAW_BODY"
done
echo
echo "User-space instructions per operation (callgrind, unbatched: 1 connection, 1 op in flight)"
printf '| %-32s | %10s | %10s | %8s | %10s | %10s | %10s | %6s |\n' test luaparty "raw C" "lp/raw" "Lua floor" "least" "least/raw" goal
printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' "----------------------------------" "------------" "------------" "----------" \
  "------------" "------------" "------------" "--------"
for test in $ROWS; do
  a=${PER[luaparty.${test%-*}]:-}; b=${PER[raw.${test%-*}]:-}
  r="-"; [ -n "$a" ] && [ -n "$b" ] && r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')
  fl=${FLOOR_TODAY[$test]:--} least="-" lr="-"
  if [ -n "$b" ] && [ -n "${FLOOR_LEAST[$test]:-}" ]; then
    least=$(( b + FLOOR_LEAST[$test] ))
    [ "$test" != echo ] && least=$(( least - RAW_BODY ))
    lr=$(awk -v a="$least" -v b="$b" 'BEGIN { printf "%.2f", a / b }')
  fi
  case "$test" in
    echo) name="WS echo via Lua (per message)"; goal=1.3 ;;
    http) name="HTTP onRequest JSON (per req)"; goal=2 ;;
    http-table) name="  floor's request: method, url"; goal=2 ;;
    http-lazy) name="  floor's request: unread udata"; goal=2 ;;
    bcast) name="broadcast to $RECEIVERS (per delivery)"; goal=1.1 ;;
  esac
  printf '| %-32s | %10s | %10s | %8s | %10s | %10s | %10s | %6s |\n' "$name" "${a:--}" "${b:--}" "$r" "$fl" "$least" "$lr" "$goal"
done
rm -rf "$OUT"
