#!/usr/bin/env node
// Outbound fetch throughput: how many HTTP requests per second luaparty's
// fetch (src/fetch.c) makes to a local keep-alive server, next to what wrk
// gets from the same server.
//
//   node bench/fetch.mjs [--duration S] [--clients N] [--per-request N] [--bin PATH]
//
// 1. a node:http keep-alive server (its own process) answers every request with
//    a 2-byte body;
// 2. wrk -t1 -c<clients> -d<S>s against it directly: req/s;
// 3. luaparty serve on a generated project whose onRequest does <per-request>
//    sequential fetch() calls to that server; <clients> concurrent HTTP clients
//    (each in its own room) call it for <S> seconds: outbound fetches/s;
// then prints both and the ratio luaparty/wrk.
// On a machine with 2+ CPUs the target server is pinned to CPU 1 and the client
// side (wrk, or luaparty and its driver) to CPU 0, with taskset, so the server
// being measured against gets the same core in both runs.
// Everything is bounded: a watchdog ends the run (and every child) after 60 s.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BIN, cpuSeconds } from './common.mjs';


// ---- child mode: the target server ----
if (process.argv[2] === '--target-server') {
  let connections = 0;
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
      res.end('ok');
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', () => { connections++; });
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`PORT ${server.address().port}\n`);
  });
  // the parent asks for counters with a line on stdin
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', () => process.stdout.write(`STATS ${connections} ${requests}\n`));
  process.stdin.on('end', () => process.exit(0));
  setTimeout(() => process.exit(0), 70_000).unref();
} else {
  await main();
}

function pctOf(a, b, secs) {
  return a === null || b === null ? 'n/a' : `${(((b - a) / secs) * 100).toFixed(0)}%`;
}

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

async function main() {
  const duration = Number(arg('--duration', 5));
  const clients = Number(arg('--clients', 10));
  const perRequest = Number(arg('--per-request', 200));
  const bin = path.resolve(arg('--bin', BIN));
  const children = new Set();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'luaparty-bench-fetch-'));
  const cleanup = () => {
    for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  const watchdog = setTimeout(() => {
    console.log('bench/fetch.mjs: watchdog: not finished within 60 s, giving up');
    cleanup();
    process.exit(1);
  }, 60_000);
  process.on('exit', cleanup);

  const cpus = os.cpus().length;
  const haveTaskset = spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
  const pin = (cpu, cmd, args) => (haveTaskset && cpus >= 2 ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args]);
  const haveWrk = spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined;
  if (!fs.existsSync(bin)) {
    console.log(`luaparty binary not found at ${bin} (build it: cmake --build build -j2 --target luaparty)`);
    process.exit(1);
  }

  // ---- the target server ----
  const [tcmd, targs] = pin(1, process.execPath, [fileURLToPath(import.meta.url), '--target-server']);
  const target = spawn(tcmd, targs, { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(target);
  let tout = '';
  target.stdout.setEncoding('utf8');
  target.stdout.on('data', (d) => { tout += d; });
  const lineAfter = async (re, ms, from = 0) => {
    const t0 = Date.now();
    while (Date.now() - t0 < ms) {
      const m = re.exec(tout.slice(from));
      if (m) return m;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`target server: no ${re} within ${ms} ms`);
  };
  const port = Number((await lineAfter(/PORT (\d+)/, 5000))[1]);
  const stats = async () => {
    const from = tout.length;
    target.stdin.write('stats\n');
    const m = await lineAfter(/STATS (\d+) (\d+)/, 2000, from);
    return { connections: Number(m[1]), requests: Number(m[2]) };
  };
  const targetUrl = `http://127.0.0.1:${port}/`;
  console.log(`target: node ${process.version} http server at ${targetUrl} (keep-alive, 2-byte body)` +
    `${haveTaskset && cpus >= 2 ? ', pinned to CPU 1; clients on CPU 0' : ''}`);

  // ---- 1. wrk ----
  let wrkRps = null;
  if (haveWrk) {
    const [wcmd, wargs] = pin(0, 'wrk', ['-t1', `-c${clients}`, `-d${duration}s`, targetUrl]);
    const tc0 = cpuSeconds(target.pid);
    const w0 = Date.now();
    const w = spawnSync(wcmd, wargs, { encoding: 'utf8', timeout: (duration + 10) * 1000 });
    const targetCpu = pctOf(tc0, cpuSeconds(target.pid), (Date.now() - w0) / 1000);
    const m = /Requests\/sec:\s+([\d.]+)/.exec(w.stdout || '');
    if (m) wrkRps = Number(m[1]);
    const errs = /Socket errors:[^\n]*|Non-2xx[^\n]*/g;
    console.log(`wrk -t1 -c${clients} -d${duration}s: ${wrkRps === null ? `failed: ${w.stderr || w.stdout}` : `${wrkRps.toFixed(0)} req/s`}` +
      `${(w.stdout || '').match(errs) ? ` (${(w.stdout || '').match(errs).join('; ')})` : ''}; target CPU ${targetCpu}`);
  } else {
    console.log('wrk: not installed (apt-get install wrk); skipping the direct measurement');
  }

  // ---- 2. luaparty ----
  const project = path.join(tmp, 'project');
  fs.mkdirSync(path.join(project, 'parties'), { recursive: true });
  fs.writeFileSync(path.join(project, 'partykit.json'), JSON.stringify({ name: 'fetchbench', main: 'parties/main.lua' }));
  fs.writeFileSync(path.join(project, 'parties', 'main.lua'), `
local json = require "cjson"
local P = {}
-- GET /parties/main/<room>?n=N&url=U: N sequential fetches of U; answers {ok=, failed=, err=}
function P:onRequest(req)
  local n = tonumber(req.url:match("[?&]n=(%d+)")) or 1
  local url = req.url:match("[?&]url=([^&]+)"):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  local ok, failed, err = 0, 0, nil
  for i = 1, n do
    local good, res = pcall(fetch, url)
    if good and res.status == 200 and res:text() == "ok" then ok = ok + 1
    else failed = failed + 1; err = err or (good and ("status " .. res.status) or tostring(res)) end
  end
  return json.encode({ ok = ok, failed = failed, err = err })
end
return P
`);
  // --workers 1: serve defaults to one worker per core; this is a one-loop
  // figure (luaparty pinned to one CPU), as before workers existed.
  const [lcmd, largs] = pin(0, bin, ['serve', project, '--port', '0', '--host', '127.0.0.1',
    '--persist', path.join(tmp, 'persist'), '--log-level', 'warn', '--workers', '1']);
  const lp = spawn(lcmd, largs, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(lp);
  let lpLog = '';
  lp.stdout.on('data', (d) => { lpLog += d; });
  lp.stderr.on('data', (d) => { lpLog += d; });
  let lpExit = null;
  lp.on('exit', (code, signal) => { lpExit = { code, signal }; });
  const t0 = Date.now();
  let lpPort;
  while (!lpPort) {
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(lpLog);
    if (m) lpPort = Number(m[1]);
    else if (lpExit || Date.now() - t0 > 5000) {
      console.log(`luaparty did not start: ${JSON.stringify(lpExit)}\n${lpLog}`);
      process.exit(1);
    }
    else await new Promise((r) => setTimeout(r, 10));
  }

  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const get = (room) => new Promise((resolve, reject) => {
    const req = http.get({
      host: '127.0.0.1', port: lpPort, agent, timeout: 30_000,
      path: `/parties/main/${room}?n=${perRequest}&url=${encodeURIComponent(targetUrl)}`,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`${res.statusCode} ${body}`))));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', reject);
  });

  // warm-up: wake the rooms and fill the connection pool
  await Promise.all(Array.from({ length: clients }, (_, i) => get(`room-${i}`)));
  const before = await stats();
  const lc0 = cpuSeconds(lp.pid);
  const tc1 = cpuSeconds(target.pid);

  let okCount = 0;
  let failed = 0;
  let firstErr = null;
  const latencies = [];
  const start = Date.now();
  const end = start + duration * 1000;
  await Promise.all(Array.from({ length: clients }, async (_, i) => {
    while (Date.now() < end) {
      const r0 = process.hrtime.bigint();
      const r = await get(`room-${i}`);
      latencies.push(Number(process.hrtime.bigint() - r0) / 1e6 / perRequest);
      okCount += r.ok;
      failed += r.failed;
      firstErr ??= r.err;
    }
  }));
  const elapsed = (Date.now() - start) / 1000;
  const lpCpu = pctOf(lc0, cpuSeconds(lp.pid), elapsed);
  const targetCpu2 = pctOf(tc1, cpuSeconds(target.pid), elapsed);
  const after = await stats();
  const fetchesPerSec = okCount / elapsed;
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];

  console.log(`luaparty: ${clients} clients x onRequest doing ${perRequest} sequential fetch() for ${elapsed.toFixed(1)} s: ` +
    `${okCount} fetches ok, ${failed} failed${firstErr ? ` (first error: ${firstErr})` : ''}`);
  console.log(`luaparty: ${fetchesPerSec.toFixed(0)} outbound fetches/s; per fetch (request time / ${perRequest}): ` +
    `p50 ${pct(50).toFixed(3)} ms, p99 ${pct(99).toFixed(3)} ms; ` +
    `target saw ${after.requests - before.requests} requests on ${after.connections - before.connections} new connections ` +
    `(${after.connections} in all, warm-up included); CPU: luaparty ${lpCpu}, target ${targetCpu2}`);
  if (wrkRps) console.log(`ratio luaparty/wrk: ${(fetchesPerSec / wrkRps).toFixed(2)}`);
  console.log(`RESULT fetch wrk_rps=${wrkRps === null ? 'NA' : wrkRps.toFixed(0)} luaparty_fetches_per_s=${fetchesPerSec.toFixed(0)} ` +
    `ratio=${wrkRps ? (fetchesPerSec / wrkRps).toFixed(3) : 'NA'} failed=${failed}`);

  agent.destroy();
  lp.kill('SIGTERM');
  const exited = await Promise.race([
    new Promise((r) => lp.once('exit', (code, signal) => r({ code, signal }))).then((x) => x),
    new Promise((r) => setTimeout(() => r(null), 5000)),
  ]);
  const lpStatus = lpExit ?? exited;
  if (!lpStatus || lpStatus.code !== 0) console.log(`problem: luaparty did not exit 0 on SIGTERM: ${JSON.stringify(lpStatus)}`);
  if (/error|AddressSanitizer/i.test(lpLog)) console.log(`luaparty log:\n${lpLog.slice(-2000)}`);
  target.stdin.end();
  clearTimeout(watchdog);
  cleanup();
  process.exit(failed ? 1 : 0);
}
