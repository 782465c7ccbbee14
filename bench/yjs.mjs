// Yjs documents: luaparty's yjs party (parties/yjs.lua) beside npm
// y-partykit's own server code on Node (bench/yjs-node-server.mjs), in the
// same run, on the same machine.
//
//   node bench/yjs.mjs [--clients 100] [--updates 3000] [--edits 10000] [--rounds 3]
//
// 1. Relay: one document, `clients` WebSockets (raw y-protocols clients,
//    so the clients cost little: no Y.Doc on their side). One of them sends
//    `updates` small real Yjs updates (one typed character each), keeping 8
//    in flight; an update is done when every other client received it. Gives
//    updates relayed per second, deliveries per second, and the server's CPU
//    per delivered update (utime+stime from /proc), best of `rounds`.
// 2. Storage: `edits` small edits (typing, 1 in 10 a deletion) sent as
//    updates; the bytes the server stored (keys and values) while the client
//    is connected (the log), and after the last client left (the log merged
//    into one update). luaparty: the `nocompact` party, which merges only
//    then, as y-partykit's snapshot mode does.
// The server is pinned to CPU 0 and this client to CPU 1 when taskset exists.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { repo, BIN, opt } from './common.mjs';

let req;
for (const base of ['bench', 'tests']) {
  try { createRequire(path.join(repo, base, 'package.json')).resolve('yjs'); req = createRequire(path.join(repo, base, 'package.json')); break; } catch { /* next */ }
}
if (!req) { console.error('npm yjs not found: npm install in bench/ (or run the test command)'); process.exit(1); }
const Y = await import(req.resolve('yjs'));
const WebSocket = req('ws');

const CLIENTS = opt('clients', 100);
const UPDATES = opt('updates', 3000);
const EDITS = opt('edits', 10000);
const ROUNDS = opt('rounds', 3);
const WINDOW = 8;

// ---- the pinning: this process on CPU 1 (re-executed under taskset), servers on CPU 0
const haveTaskset = spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0 && os.cpus().length >= 2;
if (haveTaskset && !process.env.LP_YJS_PINNED) {
  const r = spawnSync('taskset', ['-c', '1', process.execPath, ...process.argv.slice(1)],
    { stdio: 'inherit', env: { ...process.env, LP_YJS_PINNED: '1' } });
  process.exit(r.status ?? 1);
}
const pin = (cmd, args) => (haveTaskset ? ['taskset', ['-c', '0', cmd, ...args]] : [cmd, args]);

const children = new Set();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'luaparty-bench-yjs-'));
process.on('exit', () => {
  for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
  fs.rmSync(tmp, { recursive: true, force: true });
});
setTimeout(() => { console.log('bench/yjs.mjs: watchdog: not finished within 300 s'); process.exit(1); }, 300_000).unref();

function start(name, cmd, args, re) {
  const [c, a] = pin(cmd, args);
  const p = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(p);
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { out += d; });
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const timer = setInterval(() => {
      const m = re.exec(out);
      if (m) { clearInterval(timer); resolve({ name, proc: p, port: Number(m[1]), logs: () => out }); }
      else if (Date.now() - t0 > 10000) { clearInterval(timer); reject(new Error(`${name} did not start: ${out}`)); }
    }, 10);
  });
}

/** CPU seconds (user + system) a process used so far, from /proc */
function cpuSeconds(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

// ---- lib0 / y-protocols framing, by hand: [0 sync, 2 update, varUint8Array]
const varuint = (n) => { const out = []; while (n > 0x7f) { out.push(0x80 | (n & 0x7f)); n = Math.floor(n / 128); } out.push(n); return out; };
const updateMessage = (u) => Buffer.concat([Buffer.from([0, 2, ...varuint(u.length)]), Buffer.from(u)]);

/** n typed characters (1 in 10 a deletion), each its own update */
function typing(n, seed = 1) {
  const doc = new Y.Doc();
  doc.clientID = 1000 + seed;
  const out = [];
  doc.on('update', (u) => out.push(u));
  const t = doc.getText('text');
  let x = seed;
  const rand = () => { x = (x * 1103515245 + 12345) % 2147483648; return x / 2147483648; };
  let cursor = 0;
  for (let i = 0; i < n; i++) {
    if (rand() < 0.05) cursor = Math.floor(rand() * (t.length + 1)); // the caret moves now and then
    if (rand() < 0.1 && cursor > 0) { t.delete(cursor - 1, 1); cursor--; } else { t.insert(cursor, 'abcdefghij '[i % 11]); cursor++; }
  }
  return out;
}

function connect(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.binaryType = 'nodebuffer';
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

async function relay(srv, url, updates) {
  const socks = [];
  for (let i = 0; i < CLIENTS; i++) socks.push(await connect(url));
  await new Promise((r) => setTimeout(r, 300)); // the sync step 1 each gets on connect
  const [sender, ...receivers] = socks;
  const seen = new Array(updates.length).fill(0);
  let next = 0;
  let done = 0;
  let deliveries = 0;
  // receivers count the sync update messages (0, 2, ...) in order
  const finished = new Promise((resolve) => {
    const counters = receivers.map(() => 0);
    receivers.forEach((ws, k) => ws.on('message', (m) => {
      if (m[0] !== 0 || m[1] !== 2) return;
      const i = counters[k]++;
      deliveries++;
      if (++seen[i] === receivers.length) {
        done++;
        if (next < updates.length) sender.send(updateMessage(updates[next++]));
        if (done === updates.length) resolve();
      }
    }));
  });
  const cpu0 = cpuSeconds(srv.proc.pid);
  const t0 = process.hrtime.bigint();
  for (; next < Math.min(WINDOW, updates.length);) sender.send(updateMessage(updates[next++]));
  await Promise.race([finished, new Promise((r) => setTimeout(r, 60000))]);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuSeconds(srv.proc.pid) - cpu0;
  for (const ws of socks) ws.terminate();
  await new Promise((r) => setTimeout(r, 300));
  return { ok: done === updates.length, secs, perSec: done / secs, deliveries: deliveries / secs, cpuPerUpdate: cpu / done * 1e6, cpuPerDelivery: cpu / deliveries * 1e6, done };
}

async function storage(kind, srv, updates) {
  const room = `store-${kind}`;
  const url = kind === 'luaparty' ? `ws://127.0.0.1:${srv.port}/parties/nocompact/${room}` : `ws://127.0.0.1:${srv.port}/parties/yjs/${room}`;
  const stats = async () => {
    if (kind === 'luaparty') {
      const j = await (await fetch(`http://127.0.0.1:${srv.port}/parties/nocompact/${room}?info`)).json();
      return j;
    }
    return (await fetch(`http://127.0.0.1:${srv.port}/stats/${room}`)).json();
  };
  const ws = await connect(url);
  // wait until the server has them all: a second socket sees the last relay
  const watch = await connect(url);
  let got = 0;
  const all = new Promise((resolve) => watch.on('message', (m) => { if (m[0] === 0 && m[1] === 2 && ++got === updates.length) resolve(); }));
  const t0 = Date.now();
  for (const u of updates) ws.send(updateMessage(u));
  await Promise.race([all, new Promise((r) => setTimeout(r, 60000))]);
  const sendSecs = (Date.now() - t0) / 1000;
  // keys and values in storage, both servers
  const before = kind === 'luaparty' ? (await stats()).storedBytes : (await stats()).bytes;
  ws.close();
  watch.close();
  let after;
  const t1 = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    const s = await stats();
    if (kind === 'luaparty' ? (s.connections === 0 && s.storedUpdates === 0) : s.keys <= 3) {
      after = kind === 'luaparty' ? s.storedBytes : s.bytes;
      break;
    }
    if (Date.now() - t1 > 20000) { after = NaN; break; }
  }
  return { before, after, sendSecs, got };
}

const fmt = (n, d = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : 'n/a');

async function main() {
  if (!fs.existsSync(BIN)) { console.log(`no luaparty at ${BIN}`); process.exit(1); }
  const lp = await start('luaparty', BIN, ['serve', path.join(repo, 'bench/yjs-project'), '--workers', '1', '--port', '0', '--persist', tmp, '--log-level', 'warn'],
    /listening on http:\/\/127\.0\.0\.1:(\d+)/);
  const node = await start('y-partykit', process.execPath, [path.join(repo, 'bench/yjs-node-server.mjs')], /PORT (\d+)/);
  console.log(`yjs bench: ${CLIENTS} clients, ${UPDATES} updates relayed, ${EDITS} edits stored; ` +
    `luaparty ${path.relative(repo, BIN)} --workers 1 vs npm y-partykit on node ${process.version}${haveTaskset ? ' (servers on CPU 0, clients on CPU 1)' : ''}`);

  const updates = typing(UPDATES, 7);
  const best = { luaparty: null, 'y-partykit': null };
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 ? [node, lp] : [lp, node];
    for (const srv of order) {
      const url = srv === lp ? `ws://127.0.0.1:${srv.port}/parties/yjs/relay-${r}` : `ws://127.0.0.1:${srv.port}/parties/yjs/relay-${r}`;
      const res = await relay(srv, url, updates);
      if (!res.ok) console.log(`  ${srv.name}: round ${r + 1} incomplete: ${res.done} of ${updates.length} updates`);
      if (!best[srv.name] || res.perSec > best[srv.name].perSec) best[srv.name] = res;
    }
  }
  const edits = typing(EDITS, 3);
  const store = { luaparty: await storage('luaparty', lp, edits), 'y-partykit': await storage('node', node, edits) };
  const a = best.luaparty;
  const b = best['y-partykit'];
  const rows = [
    ['updates relayed/s to 99 others', fmt(a.perSec), fmt(b.perSec), fmt(a.perSec / b.perSec, 2)],
    ['deliveries/s', fmt(a.deliveries), fmt(b.deliveries), fmt(a.deliveries / b.deliveries, 2)],
    ['server CPU per update (99 deliveries), µs', fmt(a.cpuPerUpdate, 1), fmt(b.cpuPerUpdate, 1), fmt(a.cpuPerUpdate / b.cpuPerUpdate, 2)],
    [`bytes stored, ${EDITS} edits, log (connected)`, fmt(store.luaparty.before), fmt(store['y-partykit'].before), fmt(store.luaparty.before / store['y-partykit'].before, 2)],
    [`bytes stored, ${EDITS} edits, compacted`, fmt(store.luaparty.after), fmt(store['y-partykit'].after), fmt(store.luaparty.after / store['y-partykit'].after, 2)],
    [`time to take ${EDITS} updates, s`, fmt(store.luaparty.sendSecs, 2), fmt(store['y-partykit'].sendSecs, 2), fmt(store.luaparty.sendSecs / store['y-partykit'].sendSecs, 2)],
  ];
  const w = [Math.max(...rows.map((x) => x[0].length)), 12, 12, 8];
  const line = (cols) => `| ${cols.map((c, i) => (i ? String(c).padStart(w[i]) : String(c).padEnd(w[0]))).join(' | ')} |`;
  console.log(line(['figure', 'luaparty', 'y-partykit', 'lp/ypk']));
  console.log(`|${w.map((x) => '-'.repeat(x + 2)).join('|')}|`);
  for (const row of rows) console.log(line(row));
  console.log(`(relay: best of ${ROUNDS} rounds, servers taking turns; the raw updates typed: ${edits.reduce((s, u) => s + u.length, 0).toLocaleString('en-US')} bytes)`);
  for (const [k, v] of Object.entries(best)) console.log(`RESULT server=${k} test=yjs-relay clients=${CLIENTS} updates_per_s=${v.perSec.toFixed(0)} deliveries_per_s=${v.deliveries.toFixed(0)} cpu_us_per_update=${v.cpuPerUpdate.toFixed(1)}`);
  for (const [k, v] of Object.entries(store)) console.log(`RESULT server=${k} test=yjs-storage edits=${EDITS} bytes_log=${v.before} bytes_compacted=${v.after}`);
  process.exit(0);
}

await main();
