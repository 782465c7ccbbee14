// Rooms benchmark (issue "Performance": memory per live room, measured at
// 1k, 10k and 100k rooms; the costs must grow linearly; issue "Performance 2":
// a room with one connection at 10k rooms).
//
//   node bench/rooms.mjs [--steps 1000,10000,100000] [--with-conns | --only-conns]
//                        [--conn-steps 1000,10000] [--concurrency 64] [--budget 240]
//                        [--timeout 10] [--workers 1]
//
// Starts LUAPARTY (or LUAPARTY_BIN, as the other bench scripts; default
// <repo>/build/luaparty) as
//   serve bench/project --workers 1 --port 0 --persist <tmp> --idle-timeout 36000
//         --max-connections 300000 --metrics 127.0.0.1:0 --log-level info
// creates one room (the warm-up, room 0) and reads the server's VmRSS, then
// creates rooms in cumulative steps by one HTTP GET each to
// /parties/http/r-<i> (--concurrency keep-alive sockets, one GET in flight on
// each). After each step it reads VmRSS (/proc/PID/status) and the /metrics
// gauges luaparty_rooms{party="http"} and luaparty_lua_memory_bytes, and
// prints one line
//   RESULT mode=rooms rooms=N rss_per_room=B lua_per_room=B create_us=U ...
// rss_per_room = (VmRSS now - VmRSS after the warm-up) / (N - 1), the rooms
// made after the warm-up; lua_per_room = luaparty_lua_memory_bytes / N;
// create_us = wall time of the step / rooms made in it.
// --with-conns then does the same on a fresh server with one WebSocket per room
// to the echo party (/parties/main/c-<i>, kept open), up to --conn-steps
// (10,000 at most by default: every socket is a file descriptor on both sides).
// --only-conns runs that part alone.
// Bounded: the whole run stops at --budget seconds (exit 2), every request and
// handshake times out after --timeout seconds, and a step is skipped (PROBLEM)
// when the budget or the free memory left looks too small for it.
// Exit status: 0 when no PROBLEM line was printed, 1 otherwise.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { repo as root, BIN, loadWs } from './common.mjs';
const T0 = Date.now();

// ------------------------------------------------------------------ options
const opt = {
  steps: [1000, 10000, 100000],
  connSteps: [1000, 10000],
  http: true,
  conns: false,
  concurrency: 64,
  budget: 240,
  timeout: 10,
  workers: 1,
  bin: process.env.LUAPARTY ? path.resolve(process.env.LUAPARTY) : BIN,
};
const USAGE = fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(0, 30)
  .filter((l) => l.startsWith('//')).map((l) => l.replace(/^\/\/ ?/, '')).join('\n');
const list = (s) => s.split(',').map((x) => Number(x.replace(/_/g, ''))).filter((x) => x > 0).sort((a, b) => a - b);
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i], v = () => { if (i + 1 >= argv.length) { console.error(`rooms.mjs: ${a} needs a value`); process.exit(2); } return argv[++i]; };
  switch (a) {
    case '--steps': opt.steps = list(v()); break;
    case '--conn-steps': opt.connSteps = list(v()); break;
    case '--with-conns': opt.conns = true; break;
    case '--only-conns': opt.conns = true; opt.http = false; break;
    case '--concurrency': opt.concurrency = Math.max(1, Number(v())); break;
    case '--budget': opt.budget = Number(v()); break;
    case '--timeout': opt.timeout = Number(v()); break;
    case '--workers': opt.workers = Number(v()); break;
    case '-h': case '--help': console.log(USAGE); process.exit(0); break;
    default: console.error(`rooms.mjs: unknown argument ${a} (see --help)`); process.exit(2);
  }
}
if (!fs.existsSync(opt.bin)) { console.error(`rooms.mjs: ${opt.bin} not found (cmake --build build, or set LUAPARTY)`); process.exit(1); }

const log = (...a) => console.error(...a);
const problems = [];
const problem = (s) => { problems.push(s); console.log(`PROBLEM: ${s}`); };
const left = () => opt.budget - (Date.now() - T0) / 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ server
let server = null; // { proc, port, mport, dir, out }
async function startServer() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-rooms-bench-'));
  const args = ['serve', path.join(root, 'bench/project'), '--workers', String(opt.workers), '--port', '0',
    '--persist', dir, '--idle-timeout', '36000', '--max-connections', '300000',
    '--metrics', '127.0.0.1:0', '--log-level', 'info'];
  const proc = spawn(opt.bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const s = { proc, dir, out: '', port: 0, mport: 0, exited: null };
  const take = (d) => { s.out += d; if (s.out.length > 65536) s.out = s.out.slice(-32768); };
  proc.stdout.on('data', take); proc.stderr.on('data', take);
  proc.on('exit', (code, sig) => { s.exited = sig || code; });
  server = s;
  const until = Date.now() + 10000;
  while (Date.now() < until && s.exited === null) {
    const p = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(s.out);
    const m = /metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(s.out);
    if (p && m) { s.port = Number(p[1]); s.mport = Number(m[1]); return s; }
    await sleep(20);
  }
  throw new Error(`luaparty did not print 'listening on' and 'metrics on' within 10 s${s.exited !== null ? ` (exited: ${s.exited})` : ''}: ${s.out.slice(-400)}`);
}
async function stopServer() {
  const s = server; if (!s) return;
  server = null;
  if (s.exited === null) {
    s.termAt = Date.now();
    s.proc.kill('SIGTERM');
    const until = Date.now() + Math.min(30000, Math.max(1000, left() * 1000 - 500));
    while (s.exited === null && Date.now() < until) await sleep(20);
    if (s.exited === null) { problem(`luaparty (pid ${s.proc.pid}) still running ${((Date.now() - s.termAt) / 1000).toFixed(0)} s after SIGTERM; sent SIGKILL`); s.proc.kill('SIGKILL'); return false; }
  }
  fs.rmSync(s.dir, { recursive: true, force: true });
  return true;
}
const hardStop = setTimeout(() => {
  problem(`budget of ${opt.budget} s exhausted: hard stop (the table shows the steps done)`);
  if (server && server.exited === null) server.proc.kill('SIGKILL');
  if (server) fs.rmSync(server.dir, { recursive: true, force: true });
  report();
  process.exit(2);
}, opt.budget * 1000);
process.on('exit', () => { if (server && server.exited === null) server.proc.kill('SIGKILL'); });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

function procStatus(pid) { // -> { rssKb, anonKb }
  const t = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => { const m = new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(t); return m ? Number(m[1]) : NaN; };
  return { rssKb: kb('VmRSS'), anonKb: kb('RssAnon') };
}
const TCK = 100; // CLK_TCK on Linux
function cpuUs(pid) { // -> [user µs, system µs, minor page faults], all threads
  const t = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = t.slice(t.lastIndexOf(')') + 2).split(' ');
  return [Number(f[11]) * 1e6 / TCK, Number(f[12]) * 1e6 / TCK, Number(f[7])];
}
function memAvailableKb() {
  const m = /^MemAvailable:\s+(\d+)/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) : Infinity;
}

// ------------------------------------------------------------------ HTTP
const metricsAgent = new http.Agent({ keepAlive: false });
function get(port, p, agent, timeoutS = opt.timeout) { // -> { status, body }
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutS * 1000, () => req.destroy(new Error(`timeout after ${timeoutS} s`)));
    req.on('error', reject);
  });
}
async function metrics() { // -> Map 'name{labels}' -> number
  const r = await get(server.mport, '/metrics', metricsAgent, 5);
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  const m = new Map();
  for (const line of r.body.split('\n')) {
    if (!line || line[0] === '#') continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}
// Poll /metrics until the room gauge reaches want (the server may still be
// finishing the last few rooms after the client saw its answer), at most 5 s.
async function settle(key, want) {
  const until = Date.now() + 5000;
  let m;
  for (;;) {
    m = await metrics();
    if (m.get(key) === want || Date.now() > until) return m;
    await sleep(50);
  }
}

// Run fn(i) for i in [from, to) with at most `conc` in flight; -> failures.
async function pool(from, to, conc, fn) {
  let next = from, failed = 0, firstErr = '';
  const worker = async () => {
    while (next < to) {
      const i = next++;
      try { await fn(i); } catch (e) { failed++; if (!firstErr) firstErr = `#${i}: ${e.message}`; if (failed > 100) { next = to; } }
    }
  };
  await Promise.all(Array.from({ length: Math.min(conc, to - from) }, worker));
  return { failed, firstErr };
}

// ------------------------------------------------------------------ one mode
// mode 'rooms': one HTTP GET per room. mode 'conns': one WebSocket per room, kept open.
const results = [];
const stops = []; // SIGTERM to exit, with all the rooms live
async function runMode(mode, steps) {
  const party = mode === 'rooms' ? 'http' : 'main';
  const prefix = mode === 'rooms' ? 'r-' : 'c-';
  const roomKey = `luaparty_rooms{party="${party}"}`;
  await startServer();
  const pid = server.proc.pid;
  log(`== ${mode}: luaparty pid ${pid}, port ${server.port}, metrics ${server.mport}`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: opt.concurrency });
  const sockets = [];
  let dropped = 0;
  const create = async (i) => {
    const id = `${prefix}${i}`;
    if (mode === 'rooms') {
      const r = await get(server.port, `/parties/http/${id}`, agent);
      if (r.status !== 200) throw new Error(`GET /parties/http/${id} answered ${r.status}: ${r.body.slice(0, 200)}`);
      let j; try { j = JSON.parse(r.body); } catch { throw new Error(`GET /parties/http/${id}: not JSON: ${r.body.slice(0, 200)}`); }
      if (j.room !== id) throw new Error(`GET /parties/http/${id}: answered for room ${j.room}`);
    } else {
      await new Promise((resolve, reject) => {
        const ws = new (loadWs())(`ws://127.0.0.1:${server.port}/parties/main/${id}`,
          { perMessageDeflate: false, handshakeTimeout: opt.timeout * 1000 });
        let open = false;
        ws.on('open', () => { open = true; sockets[i] = ws; resolve(); });
        ws.on('error', (e) => { if (!open) reject(e); });
        ws.on('close', (code) => { if (!open) reject(new Error(`closed before open (${code})`)); else if (!ws._lpClosing) dropped++; });
      });
    }
  };
  try {
    // warm-up: room 0
    await create(0);
    await settle(roomKey, 1);
    await sleep(200);
    const base = procStatus(pid);
    const m0 = await metrics();
    log(`   warm-up: 1 room, VmRSS ${base.rssKb} kB, Lua heap ${m0.get('luaparty_lua_memory_bytes')} B`);
    results.push({ mode, rooms: 1, rssKb: base.rssKb, warm: true });
    let have = 1, lastRate = null, lastPerRoom = null;
    for (const step of steps) {
      if (step <= have) continue;
      const n = step - have;
      // Enough budget and memory for this step? (estimates from the last step, with margin)
      const needS = lastRate ? n * lastRate * 1.5 / 1e6 + 10 : 10;
      if (lastRate && needS > left()) { problem(`${mode} step ${step} skipped: about ${Math.round(needS)} s needed, ${Math.round(left())} s of budget left`); break; }
      const needKb = lastPerRoom ? n * lastPerRoom * 1.5 / 1024 : 0;
      if (needKb > memAvailableKb()) { problem(`${mode} step ${step} skipped: about ${Math.round(needKb / 1024)} MiB needed, ${Math.round(memAvailableKb() / 1024)} MiB available`); break; }
      const c0 = cpuUs(pid), t0 = process.hrtime.bigint();
      const { failed, firstErr } = await pool(have, step, opt.concurrency, create);
      const wallUs = Number(process.hrtime.bigint() - t0) / 1e3;
      const c1 = cpuUs(pid);
      if (server.exited !== null) { problem(`luaparty exited (${server.exited}) during ${mode} step ${step}: ${server.out.slice(-400).replace(/\n/g, ' ')}`); break; }
      if (failed) problem(`${mode} step ${step}: ${failed} of ${n} room creations failed${failed > 100 ? ' (stopped after 100)' : ''}; first: ${firstErr}`);
      have = step;
      const m = await settle(roomKey, step);
      await sleep(200);
      const st = procStatus(pid);
      const metricRooms = m.get(roomKey);
      const lua = m.get('luaparty_lua_memory_bytes');
      const conns = m.get('luaparty_connections');
      let echoOk = null;
      if (mode === 'conns') echoOk = await echoSample(sockets, step);
      const r = {
        mode, rooms: step, rssKb: st.rssKb, anonKb: st.anonKb,
        rssPerRoom: (st.rssKb - base.rssKb) * 1024 / (step - 1),
        luaPerRoom: lua / step,
        createUs: wallUs / n,
        cpuUs: (c1[0] + c1[1] - c0[0] - c0[1]) / n,
        userUs: (c1[0] - c0[0]) / n,
        sysUs: (c1[1] - c0[1]) / n,
        faults: (c1[2] - c0[2]) / n,
        metricRooms, conns, failed, dropped, echoOk,
      };
      results.push(r);
      lastRate = r.createUs; lastPerRoom = r.rssPerRoom;
      let line = `RESULT mode=${mode} rooms=${step} rss_per_room=${Math.round(r.rssPerRoom)} lua_per_room=${Math.round(r.luaPerRoom)}` +
        ` create_us=${r.createUs.toFixed(1)} server_cpu_us_per_room=${r.cpuUs.toFixed(1)} server_user_us_per_room=${r.userUs.toFixed(1)} server_sys_us_per_room=${r.sysUs.toFixed(1)} faults_per_room=${r.faults.toFixed(1)} rss_kb=${st.rssKb} rss_anon_kb=${st.anonKb}` +
        ` rss_kb_warmup=${base.rssKb} lua_bytes=${lua} metrics_rooms=${metricRooms} failed=${failed}`;
      if (mode === 'conns') line += ` conns=${conns} dropped=${dropped} echo_ok=${echoOk}`;
      console.log(line);
      if (metricRooms !== step) problem(`${mode} step ${step}: ${roomKey} is ${metricRooms}, expected ${step}`);
      if (mode === 'conns' && conns !== step) problem(`conns step ${step}: luaparty_connections is ${conns}, expected ${step}`);
      if (mode === 'conns' && dropped) problem(`conns step ${step}: ${dropped} WebSocket(s) closed by the server`);
      if (echoOk === false) problem(`conns step ${step}: sampled sockets did not all echo`);
    }
  } catch (e) {
    problem(`${mode}: ${e.message}`);
  } finally {
    for (const ws of sockets) if (ws) { ws._lpClosing = true; ws.terminate(); }
    agent.destroy();
    const t = Date.now(), live = results.filter((r) => r.mode === mode).at(-1)?.rooms ?? 0;
    if (await stopServer()) {
      const stopS = (Date.now() - t) / 1000;
      stops.push({ mode, rooms: live, stopS });
      console.log(`RESULT mode=${mode}_stop rooms=${live} stop_s=${stopS.toFixed(2)}`);
    }
  }
}

// 16 sockets spread over the opened ones each echo one message.
async function echoSample(sockets, n) {
  const picks = Array.from({ length: Math.min(16, n) }, (_, k) => Math.floor(k * (n - 1) / Math.max(1, Math.min(16, n) - 1)));
  const one = (ws, k) => new Promise((resolve) => {
    if (!ws) return resolve(false);
    const msg = `ping-${k}`;
    const t = setTimeout(() => { ws.off('message', on); resolve(false); }, opt.timeout * 1000);
    const on = (d) => { if (String(d) === msg) { clearTimeout(t); ws.off('message', on); resolve(true); } };
    ws.on('message', on);
    ws.send(msg);
  });
  const oks = await Promise.all(picks.map((i) => one(sockets[i], i)));
  return oks.every(Boolean);
}

// File descriptors: every WebSocket is one fd here and one in the server
// (which inherits this process's limit; node itself raises its soft limit to
// the hard one at start, so the hard limit is what counts). Ephemeral ports
// bound them too.
function fdCheck(max) {
  const lim = fs.readFileSync('/proc/self/limits', 'utf8');
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(lim);
  const soft = m && m[1] !== 'unlimited' ? Number(m[1]) : Infinity;
  const hard = m && m[2] !== 'unlimited' ? Number(m[2]) : Infinity;
  let ports = Infinity;
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    ports = hi - lo + 1;
  } catch { /* not Linux */ }
  const need = max + 256;
  const fit = Math.min(soft - 256, ports - 256);
  log(`   fd limit (node raises its soft limit to the hard one at start; the server inherits it): soft ${soft}, hard ${hard}; ephemeral ports: ${ports}; ${max} sockets need about ${need} fds per process`);
  if (need > soft) {
    problem(`ulimit -n is ${soft}, too low for ${max} WebSockets (this process and the server each need about ${need} fds);` +
      (hard < need ? ` the hard limit is ${hard} too: raise it as root (ulimit -Hn, limits.conf or LimitNOFILE), then ulimit -n ${need}.`
        : ` raise it first (ulimit -n ${Math.min(hard, Math.max(need, 20000))}).`) +
      ` Only conn steps up to ${Math.max(0, fit)} will run`);
  }
  if (need > ports) problem(`only ${ports} ephemeral ports (net.ipv4.ip_local_port_range), too few for ${max} WebSockets`);
  return fit;
}

// ------------------------------------------------------------------ main
log(`rooms.mjs: ${opt.bin}, --workers ${opt.workers}, ${opt.concurrency} in flight, budget ${opt.budget} s, ${os.cpus().length} CPUs, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM`);
if (opt.http) await runMode('rooms', opt.steps);
if (opt.conns) {
  const fit = fdCheck(Math.max(...opt.connSteps));
  const steps = opt.connSteps.filter((s) => s <= fit);
  if (steps.length) await runMode('conns', steps);
}
clearTimeout(hardStop);
report();
process.exit(problems.length ? 1 : 0);

// ------------------------------------------------------------------ table
function report() {
// issue "Performance": <= 64 KiB per live room; issue "Performance 2":
// <= 32 KiB per room with one connection, both at 10,000 rooms
const TARGET = { rooms: 64, conns: 32 };
const pad = (s, n) => String(s).padStart(n);
const COLS = [['rooms', 7], ['RSS MiB', 8], ['RSS/room B', 10], ['Lua/room B', 10], ['create us', 9],
  ['user us', 7], ['sys us', 7], ['faults', 6], ['metrics', 7]];
const trow = (first, vals) => console.log(`| ${first.padEnd(34)} | ${vals.map((v, k) => pad(v, COLS[k][1])).join(' | ')} |`);
console.log('');
console.log(`luaparty rooms benchmark (${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}, ${os.cpus().length} CPUs, --workers ${opt.workers}, ${opt.concurrency} in flight)`);
trow('mode', COLS.map((c) => c[0]));
console.log(`|${'-'.repeat(36)}|${COLS.map((c) => '-'.repeat(c[1] + 2)).join('|')}|`);
const label = { rooms: 'rooms (1 HTTP GET each)', conns: 'rooms + 1 WebSocket each' };
for (const r of results) {
  const mib = (r.rssKb / 1024).toFixed(1);
  if (r.warm) { trow(`${label[r.mode]}, warm-up`, [1, mib, '-', '-', '-', '-', '-', '-', '-']); continue; }
  trow(label[r.mode], [r.rooms, mib, Math.round(r.rssPerRoom), Math.round(r.luaPerRoom), r.createUs.toFixed(1),
    r.userUs.toFixed(1), r.sysUs.toFixed(1), r.faults.toFixed(1), r.metricRooms]);
}
console.log('RSS/room = (VmRSS - VmRSS after the 1-room warm-up) / (rooms - 1); Lua/room = luaparty_lua_memory_bytes / rooms;');
console.log('create us = wall time of the step / rooms made in it; user us, sys us, faults = the server\'s user and system CPU');
console.log('time (all threads) and minor page faults per room made in the step (sys time is mostly those first-touch faults,');
console.log('whose cost depends on the machine: on a VM it grows once the host must back fresh memory);');
console.log(`metrics = luaparty_rooms for the party after the step. Targets at 10,000 rooms: <= ${TARGET.rooms} KiB per live room, <= ${TARGET.conns} KiB per room with one WebSocket.`);
for (const st of stops) console.log(`shutdown, ${label[st.mode]}: SIGTERM to exit with ${st.rooms} rooms live: ${st.stopS.toFixed(1)} s`);
const sgn = (x) => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${x.toFixed(1)}%` : 'n/a');
for (const mode of ['rooms', 'conns']) {
  const rs = results.filter((r) => r.mode === mode && !r.warm);
  const at10k = rs.find((r) => r.rooms === 10000);
  if (at10k) {
    const ok = at10k.rssPerRoom <= TARGET[mode] * 1024;
    console.log(`TARGET mode=${mode} rss_per_room@10000=${Math.round(at10k.rssPerRoom)} B ${ok ? '<=' : '>'} ${TARGET[mode]} KiB: ${ok ? 'met' : 'MISSED'}` +
      (mode === 'conns' ? ' (room + its WebSocket)' : ''));
  }
  if (rs.length >= 2) {
    const a = rs[rs.length - 2], b = rs[rs.length - 1];
    const dr = (b.rssPerRoom / a.rssPerRoom - 1) * 100, dl = (b.luaPerRoom / a.luaPerRoom - 1) * 100;
    const du = (b.userUs / a.userUs - 1) * 100;
    const lin = Math.abs(dr) <= 15 && Math.abs(dl) <= 15;
    console.log(`LINEAR mode=${mode} ${b.rooms} vs ${a.rooms}: RSS/room ${Math.round(b.rssPerRoom)} vs ${Math.round(a.rssPerRoom)} B (${sgn(dr)}),` +
      ` Lua/room ${Math.round(b.luaPerRoom)} vs ${Math.round(a.luaPerRoom)} B (${sgn(dl)}): ${lin ? 'linear (memory per room within +-15%)' : 'NOT linear (memory per room off by more than 15%)'};` +
      ` server user CPU/room ${b.userUs.toFixed(1)} vs ${a.userUs.toFixed(1)} us (${sgn(du)}), create ${b.createUs.toFixed(1)} vs ${a.createUs.toFixed(1)} us (${sgn((b.createUs / a.createUs - 1) * 100)})`);
  }
}
if (problems.length) { console.log('Problems seen:'); for (const p of problems) console.log(`  - ${p}`); }
console.log(`Total time: ${((Date.now() - T0) / 1000).toFixed(1)} s`);
}
