#!/usr/bin/env node
// TLS cost benchmark: WebSocket echo round trips per second through luaparty
// over plain ws:// and over wss:// (--tls-cert/--tls-key), same project, same
// load, one after the other.
//
//   node bench/tls.mjs [--duration 5] [--conns 20] [--window 8] [--size 64] [--rounds 1]
//   LUAPARTY_BIN=/path/to/luaparty   (default build/luaparty)
//
// For each mode it starts `luaparty serve <tmp copy of bench/project> --port 0
// --persist <tmp>` (plus a certificate made with `openssl` for the TLS run, for
// localhost and 127.0.0.1, signed by a throwaway CA the client trusts), opens
// `conns` node `ws` clients to /parties/main/tls-bench (the echo party), and
// keeps `window` messages of `size` bytes in flight per client: each echo
// triggers the next send. After a 0.5 s warm-up it counts round trips for
// `duration` seconds and reports round trips/s, p50/p99 round-trip time, the
// server's CPU per round trip (/proc/PID/stat) and the client's own CPU use
// (the client is one node thread: near 100% means it was the limit, and
// the figure is a floor for the server).
//
// Reading the figures: with 64 B messages the cost is mostly syscalls and
// wake-ups, not crypto. The node client writes each plain ws frame with its
// own syscall, while its TLS socket encrypts the frames of one tick into
// fewer, larger TCP writes; the server then reads more messages per read(),
// so wss can come out at or above ws. Anything that slows one side (strace,
// a busy machine) changes that batching; --rounds 3 shows the spread.
//
// bench/lp_loadgen does not speak TLS, hence node here. Everything is bounded:
// start-up 10 s per server, 4 × duration + 30 s in total.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { repo, BIN, loadWs, opt } from './common.mjs';

const WebSocket = loadWs();

const DURATION = opt('duration', 5);
const CONNS = opt('conns', 20);
const WINDOW = opt('window', 8);
const SIZE = Math.max(16, opt('size', 64));
const ROUNDS = Math.max(1, opt('rounds', 1));
const WARMUP_MS = 500;
const TOTAL_MS = ROUNDS * (4 * DURATION * 1000 + 30_000);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const live = new Set();
const killAll = () => { for (const p of live) { try { p.kill('SIGKILL'); } catch { /* gone */ } } };
process.on('exit', killAll);
const hardStop = setTimeout(() => {
  console.error(`tls bench: not done within ${TOTAL_MS} ms, giving up`);
  killAll();
  process.exit(1);
}, TOTAL_MS);

if (!fs.existsSync(BIN)) {
  console.error(`luaparty binary not found at ${BIN} (build it: cmake --build build --target luaparty)`);
  process.exit(1);
}

// ---- a project copy and a certificate ----

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'luaparty-tls-bench-'));
const project = path.join(tmp, 'project');
fs.cpSync(path.join(repo, 'bench/project'), project, { recursive: true });

function makeCert() {
  const run = (a) => execFileSync('openssl', a, { cwd: tmp, stdio: 'pipe', timeout: 10_000 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=tls bench CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  fs.writeFileSync(path.join(tmp, 'leaf.ext'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n');
  run(['req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=localhost']);
  run(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'leaf.pem', '-days', '1', '-extfile', 'leaf.ext']);
  return { ca: fs.readFileSync(path.join(tmp, 'ca.pem')), cert: path.join(tmp, 'leaf.pem'), key: path.join(tmp, 'leaf.key') };
}
const cert = makeCert();

// ---- server ----

async function startServer(tls) {
  const persist = fs.mkdtempSync(path.join(tmp, 'persist-'));
  // --workers 1: serve defaults to one worker per core; the ws/wss figures are
  // one event loop's, as before workers existed (bench/run.sh does the same).
  const argv = ['serve', project, '--port', '0', '--host', '127.0.0.1', '--persist', persist, '--log-level', 'warn',
    '--workers', '1'];
  if (tls) argv.push('--tls-cert', cert.cert, '--tls-key', cert.key);
  const proc = spawn(BIN, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  let exited = null;
  const done = new Promise((r) => proc.on('exit', (code, signal) => { live.delete(proc); exited = { code, signal }; r(exited); }));
  const t0 = Date.now();
  let m;
  while (!(m = /listening on (https?):\/\/127\.0\.0\.1:(\d+)/.exec(out))) {
    if (exited) throw new Error(`luaparty exited (${JSON.stringify(exited)}):\n${out}`);
    if (Date.now() - t0 > 10_000) { proc.kill('SIGKILL'); throw new Error(`luaparty did not listen within 10 s:\n${out}`); }
    await sleep(10);
  }
  if ((m[1] === 'https') !== tls) throw new Error(`expected ${tls ? 'https' : 'http'}: ${m[0]}`);
  return {
    proc,
    port: Number(m[2]),
    logs: () => out,
    alive: () => !exited,
    async stop() {
      if (exited) return exited;
      proc.kill('SIGTERM');
      const r = await Promise.race([done, sleep(5000).then(() => null)]);
      if (r) return r;
      proc.kill('SIGKILL');
      return { ...(await done), killed: true };
    },
  };
}

function cpuTicks(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime (fields 14, 15)
  } catch { return NaN; }
}
const TICK_US = 1e6 / 100; // CLK_TCK is 100 on Linux

// ---- load ----

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function run(tls) {
  const srv = await startServer(tls);
  const url = `${tls ? 'wss://localhost' : 'ws://127.0.0.1'}:${srv.port}/parties/main/tls-bench`;
  const clients = [];
  let measuring = false;
  let stopped = false;
  let count = 0;
  let errors = 0;
  let badEchoes = 0;
  const lat = [];
  const pad = 'x'.repeat(SIZE);
  try {
    // connect
    await Promise.all(Array.from({ length: CONNS }, () => new Promise((resolve, reject) => {
      const ws = new WebSocket(url, tls ? { ca: cert.ca, handshakeTimeout: 5000 } : { handshakeTimeout: 5000 });
      const t = setTimeout(() => { ws.terminate(); reject(new Error(`connect to ${url} timed out`)); }, 6000);
      ws.on('open', () => { clearTimeout(t); clients.push(ws); resolve(); });
      ws.on('error', (e) => { clearTimeout(t); errors++; reject(e); });
    })));
    // each message carries its send time (hrtime, µs) in its first 16 chars
    const send = (ws) => {
      const stamp = Math.floor(performance.now() * 1000).toString(16).padStart(16, '0');
      ws.send((stamp + pad).slice(0, SIZE));
    };
    for (const ws of clients) {
      ws.on('message', (data) => {
        const now = performance.now() * 1000;
        const s = data.toString();
        if (s.length !== SIZE) badEchoes++;
        if (measuring) {
          count++;
          lat.push(now - parseInt(s.slice(0, 16), 16));
        }
        if (!stopped && ws.readyState === WebSocket.OPEN) send(ws);
      });
      ws.on('close', () => { if (!stopped) errors++; });
      for (let i = 0; i < WINDOW; i++) send(ws);
    }
    await sleep(WARMUP_MS);
    const cpu0 = cpuTicks(srv.proc.pid);
    const ccpu0 = process.cpuUsage();
    const t0 = performance.now();
    measuring = true;
    await sleep(DURATION * 1000);
    measuring = false;
    const secs = (performance.now() - t0) / 1000;
    const cpu1 = cpuTicks(srv.proc.pid);
    const ccpu = process.cpuUsage(ccpu0);
    stopped = true;
    lat.sort((a, b) => a - b);
    return {
      mode: tls ? 'wss' : 'ws',
      rtPerSec: count / secs,
      count,
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      serverCpuUsPerRt: ((cpu1 - cpu0) * TICK_US) / Math.max(1, count),
      serverCpuPct: (((cpu1 - cpu0) * TICK_US) / (secs * 1e6)) * 100,
      clientCpuPct: ((ccpu.user + ccpu.system) / (secs * 1e6)) * 100,
      errors,
      badEchoes,
      alive: srv.alive(),
    };
  } finally {
    stopped = true;
    for (const ws of clients) { try { ws.terminate(); } catch { /* ignore */ } }
    const st = await srv.stop();
    if (st.code !== 0 || st.killed) console.error(`note: ${tls ? 'TLS' : 'plain'} server exit ${JSON.stringify(st)}\n${srv.logs()}`);
  }
}

const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const f0 = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-');

console.log(`luaparty TLS bench: ${CONNS} ws clients x window ${WINDOW}, ${SIZE} B text messages, ` +
  `${DURATION} s per mode (+${WARMUP_MS} ms warm-up), ${ROUNDS} round(s), echo party bench/project main; ${os.cpus().length} CPUs`);
// --rounds N runs plain and TLS N times each, alternating which goes first,
// and reports the median round of each mode (by round trips/s).
const results = { ws: [], wss: [] };
try {
  for (let i = 0; i < ROUNDS; i++) {
    const order = i % 2 ? [true, false] : [false, true];
    for (const tls of order) {
      const r = await run(tls);
      results[r.mode].push(r);
      if (ROUNDS > 1) console.log(`  round ${i + 1} ${r.mode.padEnd(3)}: ${f0(r.rtPerSec)} round trips/s, server ${f1(r.serverCpuUsPerRt)} µs/rt`);
    }
  }
} catch (e) {
  console.error(`tls bench failed: ${e.stack || e}`);
  process.exit(1);
}
const medianRun = (xs) => [...xs].sort((a, b) => a.rtPerSec - b.rtPerSec)[(xs.length - 1) >> 1];
const plain = medianRun(results.ws);
const secure = medianRun(results.wss);
const row = (r) => `${r.mode.padEnd(5)} ${f0(r.rtPerSec).padStart(10)} ${f0(r.p50).padStart(9)} ${f0(r.p99).padStart(9)} ` +
  `${f1(r.serverCpuUsPerRt).padStart(12)} ${f1(r.serverCpuPct).padStart(10)} ${f1(r.clientCpuPct).padStart(10)} ${String(r.errors + r.badEchoes).padStart(8)}`;
console.log('');
console.log('mode    round/s   p50 µs    p99 µs  srv µs/rt  srv CPU %  cli CPU %  problems');
console.log(row(plain));
console.log(row(secure));
console.log('');
const ratio = secure.rtPerSec / plain.rtPerSec;
console.log(`wss / ws throughput: ${ratio.toFixed(2)}  ` + (ratio <= 1
  ? `(TLS costs ${f1((1 - ratio) * 100)}% of the round trips)`
  : `(the TLS run did ${f1((ratio - 1) * 100)}% more round trips: client-side batching, see the top of bench/tls.mjs)`));
console.log(`wss / ws server CPU per round trip: ${(secure.serverCpuUsPerRt / plain.serverCpuUsPerRt).toFixed(2)}`);
if (plain.clientCpuPct > 90 || secure.clientCpuPct > 90) {
  console.log('note: the node client used >90% of a core: throughput is a floor for the server; compare server µs/rt.');
}
const problems = [...results.ws, ...results.wss].filter((r) => r.errors || r.badEchoes || !r.alive);
for (const r of problems) console.log(`PROBLEM (${r.mode}): errors ${r.errors}, bad echoes ${r.badEchoes}, server alive ${r.alive}`);
console.log(`RESULT mode=tls-echo conns=${CONNS} window=${WINDOW} size=${SIZE} plain_rt_per_s=${plain.rtPerSec.toFixed(0)} ` +
  `tls_rt_per_s=${secure.rtPerSec.toFixed(0)} ratio=${(secure.rtPerSec / plain.rtPerSec).toFixed(3)} ` +
  `plain_p50_us=${plain.p50.toFixed(0)} tls_p50_us=${secure.p50.toFixed(0)} plain_p99_us=${plain.p99.toFixed(0)} tls_p99_us=${secure.p99.toFixed(0)} ` +
  `plain_srv_us_per_rt=${plain.serverCpuUsPerRt.toFixed(2)} tls_srv_us_per_rt=${secure.serverCpuUsPerRt.toFixed(2)}`);
clearTimeout(hardStop);
fs.rmSync(tmp, { recursive: true, force: true });
process.exit(problems.length ? 1 : 0);
