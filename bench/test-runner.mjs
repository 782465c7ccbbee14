#!/usr/bin/env node
// `luaparty test` speed: a hundred small tests, in-process, against the same
// hundred interactions over a real server with the npm ws client.
//
//   node bench/test-runner.mjs [--tests 100] [--runs 5]
//   LUAPARTY_BIN=/path/to/luaparty   (default build/luaparty)
//
// The project (made in a temporary directory) has one party: onConnect sends
// a welcome, onMessage stores a count and echoes, onRequest answers the count.
// Each test connects to its own room, reads the welcome, sends a message,
// reads the echo, fetches the count over HTTP and checks it (4 assertions).
//   in-process  `luaparty test DIR`, the whole process (start, every test on
//               a fresh world, exit), best and median of --runs runs; and the
//               sum of the per-test times it prints
//   over ws     `luaparty serve DIR --workers 1` started once (not timed);
//               then the same interactions from node: a WebSocket per room,
//               welcome, message, echo, fetch, close; one after the other,
//               best and median of --runs runs
// Prints the figures and the ratio (over ws / in-process). Bounded: 120 s.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { BIN, loadWs, opt } from './common.mjs';

const WebSocket = loadWs();
const TESTS = opt('tests', 100);
const RUNS = opt('runs', 5);
setTimeout(() => { console.error('bench/test-runner.mjs: over 120 s, giving up'); process.exit(1); }, 120_000).unref();

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'luaparty-bench-test-'));
fs.mkdirSync(path.join(dir, 'parties'));
fs.mkdirSync(path.join(dir, 'tests'));
fs.writeFileSync(path.join(dir, 'partykit.json'), JSON.stringify({ name: 'bench-test', main: 'parties/main.lua' }));
fs.writeFileSync(path.join(dir, 'parties/main.lua'), `local json = require "cjson"
local Main = {}
function Main:onConnect(conn) conn:send(json.encode({ type = "welcome", id = conn.id })) end
function Main:onMessage(message, sender)
  self.count = (self.count or 0) + 1
  self.room.storage:put("count", self.count)
  sender:send("echo: " .. message)
end
function Main:onRequest(req) return require("luaparty").Response.json({ count = self.count or 0 }) end
return Main
`);
let tests = 'local t = require "luaparty.test"\n';
for (let i = 0; i < TESTS; i++) {
  tests += `t.test("case ${i}", function()
  local a = t.connect("main", "room-${i}", { id = "u${i}" })
  t.eq(a:receiveJson().type, "welcome")
  a:send("hi")
  t.eq(a:receive(), "echo: hi")
  t.eq(t.fetch("main", "room-${i}"):json().count, 1)
  t.eq(t.storage("main", "room-${i}"):get("count"), 1)
end)
`;
}
fs.writeFileSync(path.join(dir, 'tests/bench_test.lua'), tests);

// ---- in-process
const walls = [];
let perTest = [];
for (let r = 0; r < RUNS; r++) {
  const t0 = performance.now();
  const out = spawnSync(BIN, ['test', dir], { encoding: 'utf8' });
  walls.push(performance.now() - t0);
  const last = out.stdout.trim().split('\n').pop();
  if (out.status !== 0 || last !== `${TESTS} passed, 0 failed`) {
    console.error(`luaparty test failed (exit ${out.status}):\n${out.stdout}\n${out.stderr}`);
    process.exit(1);
  }
  perTest.push([...out.stdout.matchAll(/\((\d+\.\d) ms\)/g)].reduce((s, m) => s + Number(m[1]), 0));
}

// ---- the same over a real server
const server = spawn(BIN, ['serve', dir, '--port', '0', '--host', '127.0.0.1', '--workers', '1',
  '--persist', path.join(dir, '.data')], { stdio: ['ignore', 'pipe', 'pipe'] });
let log = '';
const port = await new Promise((resolve, reject) => {
  const seen = (d) => {
    log += d;
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(log);
    if (m) resolve(Number(m[1]));
  };
  server.stdout.on('data', seen);
  server.stderr.on('data', seen);
  server.on('exit', () => reject(new Error(`the server exited:\n${log}`)));
});

function once(ws, event) {
  return new Promise((resolve, reject) => {
    ws.once(event, resolve);
    ws.once('error', reject);
  });
}

async function overWs(run) {
  for (let i = 0; i < TESTS; i++) {
    const room = `ws-${run}-${i}`;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/parties/main/${room}?_pk=u${i}`);
    const welcome = JSON.parse(String(await once(ws, 'message')));
    if (welcome.type !== 'welcome') throw new Error('no welcome');
    const echo = once(ws, 'message');
    ws.send('hi');
    if (String(await echo) !== 'echo: hi') throw new Error('no echo');
    const res = await fetch(`http://127.0.0.1:${port}/parties/main/${room}`);
    if ((await res.json()).count !== 1) throw new Error('wrong count');
    const closed = once(ws, 'close');
    ws.close();
    await closed;
  }
}

const wsTimes = [];
try {
  await overWs('warmup');
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    await overWs(r);
    wsTimes.push(performance.now() - t0);
  }
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.on('exit', r));
  fs.rmSync(dir, { recursive: true, force: true });
}

const best = Math.min(...walls), med = median(walls);
const wsBest = Math.min(...wsTimes), wsMed = median(wsTimes);
console.log(`${TESTS} small tests (connect, welcome, message, echo, HTTP fetch, storage read; 4 assertions each)`);
console.log(`  luaparty test, whole process:  best ${best.toFixed(1)} ms, median ${med.toFixed(1)} ms ` +
  `(${(best / TESTS * 1000).toFixed(0)} us per test; the tests alone: median ${median(perTest).toFixed(1)} ms)`);
console.log(`  the same over ws (real server): best ${wsBest.toFixed(1)} ms, median ${wsMed.toFixed(1)} ms ` +
  `(server already running; node ws + fetch over loopback)`);
console.log(`  ratio over ws / luaparty test:  ${(wsBest / best).toFixed(1)}x (best), ${(wsMed / med).toFixed(1)}x (median)`);
