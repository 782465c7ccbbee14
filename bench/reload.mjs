#!/usr/bin/env node
// Hot-reload benchmark: how long does luaparty take to swap a party script
// into 1,000 live rooms, and does any socket drop?
//
//   node bench/reload.mjs [--rooms 1000] [--runs 5] [--batch 50]
//   LUAPARTY_BIN=/path/to/luaparty   (default build/luaparty)
//
// Starts `luaparty serve <tmp copy> --watch --port 0 --persist <tmp> --log-level info`
// on 127.0.0.1, opens one WebSocket per room (50 at a time), then rewrites the
// party script `runs` times. For each run it reports:
//   server   the time the server logs in "reloaded 1 party in X ms (N rooms)":
//            re-reading partykit.json and the scripts, the throwaway check, and
//            the reload event of every room (rooms with nothing running apply
//            it at once, inside that time: load the chunk, swap, onReload)
//   log      file write -> that log line seen by this process
//   e2e      file write -> every client has a reply from the new code (each
//            client sends one message after the log line)
// and at the end the medians, stale replies (old code answering after the
// log line) and sockets closed (must be 0). Everything is bounded: 60 s total.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { repo, BIN, loadWs, opt } from './common.mjs';

const WebSocket = loadWs();

const ROOMS = opt('rooms', 1000);
const RUNS = opt('runs', 5);
const BATCH = opt('batch', 50);
const TOTAL_MS = 60_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(1));

function echoSource(version) {
  return `-- bench/reload.mjs: echo with a version tag
local VERSION = "${version}"
local Echo = {}

function Echo:onMessage(message, sender)
  self.n = (self.n or 0) + 1
  sender:send(VERSION .. ":" .. tostring(message))
end

function Echo:onRequest(req)
  return VERSION
end

return Echo
`;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'luaparty-reload-bench-'));
const projectDir = path.join(tmp, 'project');
const persistDir = path.join(tmp, 'persist');
fs.mkdirSync(path.join(projectDir, 'parties'), { recursive: true });
fs.mkdirSync(persistDir);
fs.writeFileSync(path.join(projectDir, 'partykit.json'),
  JSON.stringify({ name: 'reload-bench', main: 'parties/echo.lua' }, null, 2));
const script = path.join(projectDir, 'parties/echo.lua');
fs.writeFileSync(script, echoSource('v1'));

let proc;
let log = '';
const clients = [];
let closed = 0;
const closeCodes = {};

function cleanup() {
  for (const c of clients) { try { c.ws.terminate(); } catch { /* ignore */ } }
  if (proc && proc.exitCode === null) { try { proc.kill('SIGKILL'); } catch { /* ignore */ } }
  fs.rmSync(tmp, { recursive: true, force: true });
}

const watchdog = setTimeout(() => {
  console.log(`\nreload bench: did not finish within ${TOTAL_MS / 1000} s; giving up`);
  console.log(log.split('\n').slice(-15).join('\n'));
  cleanup();
  process.exit(1);
}, TOTAL_MS);

async function waitFor(fn, timeout, what) {
  const t0 = Date.now();
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() - t0 > timeout) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(2);
  }
}

function connect(port, i) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/parties/main/room-${i}?_pk=c${i}`, { handshakeTimeout: 10000 });
    const c = { ws, i, pending: null, open: true };
    ws.on('open', () => resolve(c));
    ws.on('error', (e) => { if (c.open && ws.readyState !== WebSocket.OPEN) reject(e); });
    ws.on('message', (data) => {
      const p = c.pending;
      if (p) p(data.toString());
    });
    ws.on('close', (code) => {
      if (!c.open) return;
      c.open = false;
      closed++;
      closeCodes[code] = (closeCodes[code] || 0) + 1;
    });
  });
}

async function main() {
  if (!fs.existsSync(BIN)) throw new Error(`luaparty binary not found at ${BIN}`);
  // --workers 1: serve defaults to one worker per core; the reload time is one
  // event loop's (all 1,000 rooms on it), as before workers existed.
  const argv = ['serve', projectDir, '--watch', '--port', '0', '--host', '127.0.0.1', '--persist', persistDir,
    '--log-level', 'info', '--workers', '1'];
  proc = spawn(BIN, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const port = Number((await waitFor(() => /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(log), 5000,
    'the server to listen'))[1]);
  console.log(`luaparty reload bench: ${BIN}`);
  console.log(`server: ${argv.join(' ')} (pid ${proc.pid}, port ${port})`);

  const tOpen = performance.now();
  for (let i = 0; i < ROOMS; i += BATCH) {
    const batch = [];
    for (let j = i; j < Math.min(ROOMS, i + BATCH); j++) batch.push(connect(port, j));
    clients.push(...await Promise.all(batch));
  }
  console.log(`opened ${clients.length} rooms x 1 WebSocket in ${fmt(performance.now() - tOpen)} ms ` +
    `(${BATCH} at a time)`);

  // every room answers v1 (this also makes sure each room is live)
  await roundTrip('v1', 'warm');

  const runs = [];
  let stale = 0;
  for (let r = 0; r < RUNS; r++) {
    const version = `v${r + 2}`;
    const off = log.length;
    const t0 = performance.now();
    const tmpFile = `${script}.tmp`;
    fs.writeFileSync(tmpFile, echoSource(version));
    fs.renameSync(tmpFile, script); // as editors save
    const re = /reloaded (\d+) part(?:y|ies)(?: and vars)? in ([\d.]+) ms \((\d+) rooms?\)/;
    const m = await waitFor(() => re.exec(log.slice(off)), 10000, `"reloaded" for ${version}`);
    const tLog = performance.now();
    const rooms = Number(m[3]);
    const rt = await roundTrip(version, `run${r}`);
    stale += rt.stale;
    runs.push({ version, server: Number(m[2]), rooms, log: tLog - t0, e2e: rt.done - t0, stale: rt.stale });
    await sleep(100); // keep the saves apart (debounce is 40 ms)
  }

  console.log('\nrun  version  rooms  server ms  write->log ms  write->all clients ms  stale');
  runs.forEach((x, i) => console.log(
    `${String(i + 1).padStart(3)}  ${x.version.padEnd(7)}  ${String(x.rooms).padStart(5)}  ${fmt(x.server).padStart(9)}  ` +
    `${fmt(x.log).padStart(13)}  ${fmt(x.e2e).padStart(21)}  ${String(x.stale).padStart(5)}`));
  console.log(`\nmedian server-reported reload: ${fmt(median(runs.map((x) => x.server)))} ms ` +
    `(min ${fmt(Math.min(...runs.map((x) => x.server)))}, max ${fmt(Math.max(...runs.map((x) => x.server)))})`);
  console.log(`median write -> "reloaded" log line: ${fmt(median(runs.map((x) => x.log)))} ms (includes the 40 ms debounce)`);
  console.log(`median write -> all ${ROOMS} clients answered by the new code: ${fmt(median(runs.map((x) => x.e2e)))} ms`);
  console.log(`rooms reported per reload: ${[...new Set(runs.map((x) => x.rooms))].join(', ')} (expected ${ROOMS})`);
  console.log(`stale replies after the log line: ${stale}`);
  console.log(`sockets dropped: ${closed}${closed ? ` ${JSON.stringify(closeCodes)}` : ''}`);
  const rss = (() => {
    try { return /VmRSS:\s+(\d+ kB)/.exec(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8'))[1]; } catch { return '?'; }
  })();
  console.log(`server RSS: ${rss}`);
  const errs = log.split('\n').filter((l) => /\b(error|warn)\b/.test(l) && !/listening on/.test(l));
  if (errs.length) console.log(`server warnings/errors:\n  ${errs.slice(0, 10).join('\n  ')}`);
  const ok = closed === 0 && stale === 0 && runs.every((x) => x.rooms === ROOMS);
  console.log(ok ? 'RESULT ok' : 'RESULT problems (see above)');
  return ok;
}

/**
 * Sends one message per client and waits for every reply. A reply from
 * another version counts as stale (and the client is asked again, up to 3 s).
 */
async function roundTrip(version, tag) {
  let left = 0;
  let stale = 0;
  let resolveAll;
  const all = new Promise((r) => { resolveAll = r; });
  let done = 0;
  for (const c of clients) {
    if (!c.open) continue;
    left++;
    const expect = `${version}:${tag}`;
    c.pending = (text) => {
      if (text === expect) {
        c.pending = null;
        if (--left === 0) { done = performance.now(); resolveAll(); }
      } else {
        stale++;
        c.ws.send(tag);
      }
    };
    c.ws.send(tag);
  }
  if (left === 0) return { stale, done: performance.now() };
  let timer;
  await Promise.race([all, new Promise((_, rej) => {
    timer = setTimeout(() => rej(new Error(`${left} clients got no ${version} reply within 10 s`)), 10000);
  })]);
  clearTimeout(timer);
  return { stale, done };
}

let ok = false;
try {
  ok = await main();
} catch (e) {
  console.log(`reload bench failed: ${e.message}`);
  console.log(log.split('\n').slice(-15).join('\n'));
}
clearTimeout(watchdog);
if (proc && proc.exitCode === null) {
  proc.kill('SIGTERM');
  await Promise.race([new Promise((r) => proc.once('exit', r)), sleep(3000)]);
}
cleanup();
process.exit(ok ? 0 : 1);
