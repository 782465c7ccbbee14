#!/usr/bin/env node
// What an attack costs everyone else (issue 19), each figure beside a
// reference measured in the same run:
//
//   flood    server RSS while one client floods it and never reads: 125-byte
//            pings (each answered by a pong) against the reference, a flood of
//            125-byte text messages to the echo party (each answered by an
//            echo). Both should be dropped at --max-output (16 MiB), and the
//            memory given back once the client is gone.
//   runaway  round-trip time of a probe room (echo, one message in flight)
//            while 4 rooms on the same worker run `while true do end` (they
//            are restarted whenever the CPU limit kills them), against the
//            probe alone.
//
//   node bench/attacks.mjs [--only flood,runaway] [--mib 200] [--seconds 6]
//   LUAPARTY_BIN=/path/to/luaparty   (default build/luaparty)
//
// Every server is `luaparty serve bench/project --workers 1` on 127.0.0.1, a
// fresh one per measurement. Bounded: each flood stops after --mib MiB or
// 30 s, each probe phase after --seconds; 240 s in all.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { repo, BIN, loadWs, opt, quantile, watchdog } from './common.mjs';

const WebSocket = loadWs();
const args = process.argv.slice(2);
const onlyArg = args.indexOf('--only') >= 0 ? args[args.indexOf('--only') + 1].split(',') : ['flood', 'runaway'];
const MIB = opt('mib', 200);
const SECONDS = opt('seconds', 6);
const TOTAL_MS = 240_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const mib = (b) => (b / 1048576).toFixed(1);
const pct = (xs, p) => quantile(xs, p / 100); // p in percent

const procs = new Set();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'luaparty-attacks-'));
function cleanup() {
  for (const p of procs) { try { p.kill('SIGKILL'); } catch { /* gone */ } }
  fs.rmSync(tmp, { recursive: true, force: true });
}
const disarm = watchdog('attacks.mjs', TOTAL_MS, async () => cleanup());

function rssOf(pid) {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
  } catch { return 0; }
}

async function startServer(extra = []) {
  const persist = fs.mkdtempSync(path.join(tmp, 'persist-'));
  const argv = ['serve', path.join(repo, 'bench/project'), '--workers', '1', '--port', '0', '--host', '127.0.0.1',
    '--persist', persist, '--log-level', 'warn', ...extra];
  const proc = spawn(BIN, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.add(proc);
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const t0 = Date.now();
  for (;;) {
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(log);
    if (m) return { proc, port: Number(m[1]), log: () => log };
    if (proc.exitCode !== null || Date.now() - t0 > 5000) throw new Error(`luaparty did not start:\n${log}`);
    await sleep(5);
  }
}

async function stopServer(s) {
  s.proc.kill('SIGTERM');
  await new Promise((r) => { if (s.proc.exitCode !== null) r(); else s.proc.on('exit', r); });
  procs.delete(s.proc);
}

/** A raw WebSocket that never reads after its 101 (the attacker). */
function rawUpgrade(port, target) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let head = Buffer.alloc(0);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('no 101')); }, 5000);
    sock.on('connect', () => sock.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n` +
      'Sec-WebSocket-Version: 13\r\n\r\n'));
    const onData = (d) => {
      head = Buffer.concat([head, d]);
      if (head.indexOf('\r\n\r\n') < 0) return;
      clearTimeout(timer);
      sock.off('data', onData);
      sock.pause(); // from here on nothing is read: the server's answers pile up
      resolve(sock);
    };
    sock.on('data', onData);
    sock.on('error', reject);
  });
}

/** 1 MiB (about) of masked client frames: opcode, 125-byte payload. */
function frames(opcode) {
  const one = Buffer.alloc(2 + 4 + 125);
  one[0] = 0x80 | opcode;
  one[1] = 0x80 | 125;
  crypto.randomBytes(4).copy(one, 2);
  for (let i = 0; i < 125; i++) one[6 + i] = 0x61 ^ one[2 + (i % 4)];
  return Buffer.concat(Array(Math.floor(1048576 / one.length)).fill(one));
}

/** Floods with `opcode` frames until MIB sent, the server drops us, or 30 s. */
async function flood(label, opcode) {
  const s = await startServer();
  await sleep(200);
  const base = rssOf(s.proc.pid);
  const sock = await rawUpgrade(s.port, '/parties/main/flood');
  const block = frames(opcode);
  let peak = base;
  const sampler = setInterval(() => { peak = Math.max(peak, rssOf(s.proc.pid)); }, 10);
  let sent = 0;
  let dropped = false;
  let droppedAt = null;
  let wake = () => {};
  sock.on('error', () => { dropped = true; droppedAt ??= performance.now(); wake(); });
  sock.on('close', () => { dropped = true; droppedAt ??= performance.now(); wake(); });
  sock.on('drain', () => wake());
  const t0 = performance.now();
  while (!dropped && sent < MIB * 1048576 && performance.now() - t0 < 30_000) {
    const ok = sock.write(block);
    sent += block.length;
    if (!ok) await Promise.race([new Promise((r) => { wake = r; }), sleep(1000)]);
  }
  const t1 = performance.now();
  // the server may still be working through what the kernel buffered
  for (let i = 0; i < 100 && !dropped; i++) await sleep(10);
  const wasDropped = droppedAt !== null;
  sock.destroy();
  await sleep(50);
  peak = Math.max(peak, rssOf(s.proc.pid));
  clearInterval(sampler);
  await sleep(1000);
  const after = rssOf(s.proc.pid);
  await stopServer(s);
  return {
    label, base, peak, after, sentMiB: sent / 1048576, dropped: wasDropped,
    dropMs: wasDropped ? droppedAt - t0 : null, floodMs: t1 - t0,
  };
}

/** An echo WebSocket with one message in flight: resolves an RTT list. */
function probe(port, ms) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/parties/main/probe`);
    const rtts = [];
    let t0;
    let stop = false;
    ws.on('open', () => {
      setTimeout(() => { stop = true; }, ms);
      t0 = performance.now();
      ws.send('p');
    });
    ws.on('message', () => {
      rtts.push(performance.now() - t0);
      if (stop) { ws.close(); resolve(rtts); return; }
      setTimeout(() => { t0 = performance.now(); ws.send('p'); }, 5);
    });
    ws.on('error', reject);
  });
}

/** n rooms of the spin party, each running away, restarted when killed. */
function runaways(port, n) {
  const socks = [];
  let kills = 0;
  let stopped = false;
  const open = (i) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/parties/spin/runaway-${i}`);
    ws.on('open', () => ws.send('spin'));
    ws.on('close', () => { if (!stopped) { kills++; open(i); } });
    ws.on('error', () => {});
    socks[i] = ws;
  };
  for (let i = 0; i < n; i++) open(i);
  return {
    kills: () => kills,
    stop() { stopped = true; for (const ws of socks) ws.terminate(); },
  };
}

async function runaway() {
  const s = await startServer();
  const alone = await probe(s.port, SECONDS * 1000);
  const r = runaways(s.port, 4);
  await sleep(300); // the four are spinning
  const busy = await probe(s.port, SECONDS * 1000);
  const kills = r.kills();
  r.stop();
  await stopServer(s);
  return { alone, busy, kills };
}

async function main() {
  if (!fs.existsSync(BIN)) throw new Error(`luaparty binary not found at ${BIN}`);
  console.log(`luaparty attacks bench: ${BIN}`);
  if (onlyArg.includes('flood')) {
    const ping = await flood('ping flood (125 B pings)', 0x9);
    const text = await flood('text-echo flood (125 B text, reference)', 0x1);
    console.log(`\nA client that floods and never reads (up to ${MIB} MiB, --max-output 16 MiB default):`);
    console.log('| flood | sent MiB | dropped after | base RSS MiB | peak RSS MiB | RSS 1 s after it left MiB |');
    console.log('|---|---|---|---|---|---|');
    for (const x of [ping, text]) {
      console.log(`| ${x.label} | ${x.sentMiB.toFixed(0)} | ${x.dropped ? `${x.dropMs.toFixed(0)} ms` : 'never'} | ` +
        `${mib(x.base)} | ${mib(x.peak)} | ${mib(x.after)} |`);
    }
    console.log(`ping/text: peak growth ${((ping.peak - ping.base) / Math.max(1, text.peak - text.base)).toFixed(2)}, ` +
      `held after ${((ping.after - ping.base) / Math.max(1, text.after - text.base)).toFixed(2)} ` +
      `(growth ${mib(ping.peak - ping.base)} vs ${mib(text.peak - text.base)} MiB; ` +
      `held ${mib(ping.after - ping.base)} vs ${mib(text.after - text.base)} MiB)`);
    console.log(`RESULT test=flood ping_peak_mib=${mib(ping.peak)} ping_after_mib=${mib(ping.after)} ` +
      `text_peak_mib=${mib(text.peak)} text_after_mib=${mib(text.after)} ping_dropped=${ping.dropped}`);
  }
  if (onlyArg.includes('runaway')) {
    const { alone, busy, kills } = await runaway();
    const row = (name, xs) => `| ${name} | ${xs.length} | ${pct(xs, 50).toFixed(2)} | ${pct(xs, 99).toFixed(2)} | ` +
      `${Math.max(...xs).toFixed(2)} |`;
    console.log(`\nProbe room round trips (ms), one worker, ${SECONDS} s each:`);
    console.log('| probe | round trips | p50 | p99 | max |');
    console.log('|---|---|---|---|---|');
    console.log(row('alone (reference)', alone));
    console.log(row(`beside 4 runaway rooms (${kills} kills by the CPU limit)`, busy));
    console.log(`busy/alone: p50 ${(pct(busy, 50) / pct(alone, 50)).toFixed(1)}x, p99 ${(pct(busy, 99) / pct(alone, 99)).toFixed(1)}x`);
    console.log(`RESULT test=runaway alone_p99_ms=${pct(alone, 99).toFixed(2)} busy_p50_ms=${pct(busy, 50).toFixed(2)} ` +
      `busy_p99_ms=${pct(busy, 99).toFixed(2)} busy_n=${busy.length} kills=${kills}`);
  }
}

main().then(() => { disarm(); cleanup(); }, (e) => {
  console.error(e);
  disarm();
  cleanup();
  process.exit(1);
});
