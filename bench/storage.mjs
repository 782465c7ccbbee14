// Storage benchmark (issue: durable storage): coalesced puts/s and gets/s
// through room.storage from Lua, against raw SQLite writing and reading the
// same rows (bench/lp_sqlite_raw), in the same run. Bounded: N rows, 3 runs.
// Also the CPU time (user + system) each side spent per op: the server's
// (/proc) during the request against raw's (getrusage) during the phase,
// steadier than the rates when other work shares the machine.
//   node bench/storage.mjs [N=100000] [VALUE_BYTES=100]
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { repo as root, BIN as bin, cpuSeconds } from './common.mjs';

const N = Number(process.argv[2] || 100000);
const BYTES = Number(process.argv[3] || 100);
const raw = path.join(root, 'build/bench/lp_sqlite_raw');
for (const f of [bin, raw]) if (!fs.existsSync(f)) { console.error(`missing ${f}: cmake --build build`); process.exit(1); }

async function luaparty() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-storage-bench-'));
  // --cpu-limit 0: the JIT on and no per-callback limit (one callback does N puts).
  // --workers 1: one room, one loop, as before workers existed (serve defaults
  // to one worker per core, each with its own SQLite connection).
  const p = spawn(bin, ['serve', path.join(root, 'bench/storage'), '--port', '0', '--persist', dir, '--cpu-limit', '0',
    '--log-level', 'warn', '--workers', '1']);
  let log = '';
  p.stderr.on('data', (d) => { log += d; });
  const port = await new Promise((resolve, reject) => {
    const t = setInterval(() => { const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(log); if (m) { clearInterval(t); resolve(m[1]); } }, 10);
    setTimeout(() => { clearInterval(t); reject(new Error(log)); }, 5000);
  });
  const timed = async (op) => {
    const t0 = process.hrtime.bigint(), c0 = cpuSeconds(p.pid);
    const res = await fetch(`http://127.0.0.1:${port}/parties/main/r?op=${op}&n=${N}&bytes=${BYTES}`);
    const text = await res.text();
    if (res.status !== 200) throw new Error(text);
    return [Number(process.hrtime.bigint() - t0) / 1e9, text, cpuSeconds(p.pid) - c0];
  };
  const [tp, , cp] = await timed('put');
  const [tg, total, cg] = await timed('get');
  if (Number(total) !== N * BYTES) throw new Error(`read back ${total} bytes, expected ${N * BYTES}`);
  p.kill('SIGTERM');
  await new Promise((r) => p.on('exit', r));
  fs.rmSync(dir, { recursive: true, force: true });
  return { puts: N / tp, gets: N / tg, putCpu: cp / N, getCpu: cg / N };
}

function rawSqlite() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-sqlite-raw-'));
  const r = spawnSync(raw, [path.join(dir, 'raw.db'), String(N), String(BYTES)], { encoding: 'utf8', timeout: 60000 });
  fs.rmSync(dir, { recursive: true, force: true });
  const m = /puts_per_s=(\d+) gets_per_s=(\d+) .*put_cpu_s=([\d.]+) get_cpu_s=([\d.]+)/.exec(r.stdout);
  if (!m) throw new Error(r.stderr || r.stdout);
  return { puts: Number(m[1]), gets: Number(m[2]), putCpu: Number(m[3]) / N, getCpu: Number(m[4]) / N };
}

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const L = [], R = [];
for (let i = 0; i < 3; i++) { L.push(await luaparty()); R.push(rawSqlite()); }
const row = (name, l, r) => console.log(`${name.padEnd(20)} ${String(Math.round(l)).padStart(10)} ${String(Math.round(r)).padStart(10)}   ${(l / r * 100).toFixed(0)}%`);
// ops per CPU second: the rate each side would reach if it had a core to itself
const perCpu = (xs, k) => median(xs.map((x) => 1 / x[k]));
console.log(`storage: ${N} rows of ${BYTES}-byte strings, median of 3 runs`);
console.log(`figure                 luaparty        raw   luaparty/raw`);
row('puts/s', median(L.map((x) => x.puts)), median(R.map((x) => x.puts)));
row('gets/s', median(L.map((x) => x.gets)), median(R.map((x) => x.gets)));
row('puts per CPU second', perCpu(L, 'putCpu'), perCpu(R, 'putCpu'));
row('gets per CPU second', perCpu(L, 'getCpu'), perCpu(R, 'getCpu'));
