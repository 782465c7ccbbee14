#!/usr/bin/env node
// Cluster storage (room data in Redis): what a fenced commit costs, how long
// a room with data takes to come up on a node, and how long a dead node's
// room takes to come back. One redis-server (AOF, appendfsync always) and
// luaparty nodes on 127.0.0.1, all in one run:
//   1. commits: C WebSocket clients (lp_loadgen echo), each in its own room of
//      bench/project's "commit" party, one message in flight each: every
//      message is one storage write, echoed once Redis acknowledged it.
//      Beside it, the raw reference: lp_redis_commit, C hiredis threads
//      calling the same Redis function (lp_commit, same value size), one call
//      in flight each. commits/s and p50/p99 latency, and the ratio.
//      The same load on one node with SQLite storage, for scale.
//   2. activation: the first request to a room with K keys on a node that
//      never had it (claim + load from Redis + onStart), against an empty
//      room, median of R rooms each.
//   3. recovery: kill -9 of a room's owner under requests through another
//      node; time until a request is answered again, for two lease TTLs.
//
//   node bench/cluster-storage.mjs [--duration S (1-10, default 5)] [--clients C (default 16)]
//                                  [--keys K (default 1000)] [--rooms R (default 7)]
//                                  [--commits-only 1]
//   LUAPARTY_BIN=/path/to/luaparty node bench/cluster-storage.mjs
// A watchdog ends the run (and every child) after 150 s.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cpuSeconds, fmt as f, opt, repo, runCapture, watchdog } from './common.mjs';
import {
  startRedis, startNode, stopAll, freshRequest, sleep, waitFor,
} from '../tests/integration/lib/cluster.mjs';
import { startServer, metricsUrl } from '../tests/integration/lib/server.mjs';

const DURATION = Math.min(10, Math.max(1, opt('duration', 5)));
// one client (latency) and CLIENTS (throughput); --clients C sets the second
const CLIENTS = Math.min(128, Math.max(1, opt('clients', 16)));
const KEYS = Math.min(100_000, Math.max(1, opt('keys', 1000)));
const ROOMS = Math.min(21, Math.max(1, opt('rooms', 7)));
const SIZE = 32;
const PROJECT = path.join(repo, 'bench/project');
const BENCH = path.join(repo, 'build/bench');

const disarm = watchdog('cluster-storage.mjs', 150000, stopAll);

/** Runs a bench binary: the key=value pairs of its RESULT line. */
async function run(cmd, args, timeoutMs) {
  const { code, out } = await runCapture(cmd, args, timeoutMs);
  const m = /^RESULT (.*)$/m.exec(out);
  if (!m) throw new Error(`${path.basename(cmd)} ${args.join(' ')} (exit ${code}):\n${out}`);
  return Object.fromEntries(m[1].split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k, Number.isNaN(Number(v)) ? v : Number(v)]));
}

/** lp_loadgen echo against the commit party: C clients, C rooms, 1 in flight each. */
const loadgen = (port, clients) => run(path.join(BENCH, 'lp_loadgen'), ['--mode', 'echo', '--port', String(port),
  '--path', '/parties/commit/c', '--conns', String(clients), '--rooms', String(clients), '--window', '1',
  '--size', String(SIZE), '--duration', String(DURATION)], (DURATION + 30) * 1000);

/** Mean commit time inside the server (storage_commit to its callback), from /metrics. */
async function meanCommitMs(srv) {
  const page = await (await fetch(await metricsUrl(srv))).text();
  const sum = Number(/^luaparty_storage_commit_seconds_sum (\S+)$/m.exec(page)[1]);
  const count = Number(/^luaparty_storage_commit_seconds_count (\S+)$/m.exec(page)[1]);
  return (sum / count) * 1000;
}


async function commits(clients) {
  const redis = await startRedis();
  const node = await startNode(redis, { id: 'a', project: PROJECT, ttl: 5000, args: ['--metrics', '127.0.0.1:0'] });
  const cpu0 = { lp: cpuSeconds(node.proc.pid), redis: cpuSeconds(redis.proc.pid) };
  const lp = await loadgen(node.port, clients);
  lp.cpu = { lp: cpuSeconds(node.proc.pid) - cpu0.lp, redis: cpuSeconds(redis.proc.pid) - cpu0.redis };
  lp.commitMs = await meanCommitMs(node);
  await node.stop();
  const rcpu0 = cpuSeconds(redis.proc.pid);
  const raw = await run(path.join(BENCH, 'lp_redis_commit'), [String(redis.port), path.join(repo, 'lua/redis/luaparty_functions.lua'),
    '--clients', String(clients), '--duration', String(DURATION), '--size', String(SIZE)], (DURATION + 30) * 1000);
  raw.redisCpu = cpuSeconds(redis.proc.pid) - rcpu0;
  const single = await startServer({ project: PROJECT, command: 'serve' });
  const sq = await loadgen(single.port, clients);
  await single.stop();
  await stopAll();
  return { lp, raw, sq };
}

/** Median ms of the first GET to fresh rooms on a node that has never seen them. */
async function activation() {
  const redis = await startRedis();
  const writer = await startNode(redis, { id: 'w', project: 'cluster', ttl: 5000 });
  const full = [];
  const empty = [];
  for (let r = 0; r < ROOMS; r++) {
    const room = `full-${r}`;
    // fill through the ledger party: one POST per 100 keys (a body of 100 lines would need another party)
    for (let k = 0; k < KEYS; k++) {
      const res = await freshRequest(`${writer.url}/parties/ledger/${room}`, { method: 'POST', body: `k:${k}` });
      if (res.status !== 200) throw new Error(`fill ${room}: ${res.status} ${res.body}`);
    }
    full.push(room);
    empty.push(`empty-${r}`);
  }
  await writer.stop(); // releases its rooms: the next node claims and loads them
  const reader = await startNode(redis, { id: 'r', project: 'cluster', ttl: 5000 });
  const time = async (room, expectKeys) => {
    const t0 = process.hrtime.bigint();
    const res = await freshRequest(`${reader.url}/parties/ledger/${room}`);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const keys = res.json().keys;
    const n = Array.isArray(keys) ? keys.length : 0; // cjson writes an empty table as {}
    if (n !== expectKeys) throw new Error(`${room}: ${n} keys, expected ${expectKeys}`);
    return ms;
  };
  const tFull = [];
  const tEmpty = [];
  for (let r = 0; r < ROOMS; r++) { // alternate which comes first: the node warms up as it goes
    if (r % 2) tEmpty.push(await time(empty[r], 0));
    tFull.push(await time(full[r], KEYS));
    if (!(r % 2)) tEmpty.push(await time(empty[r], 0));
  }
  await stopAll();
  const med = (a) => a.sort((x, y) => x - y)[Math.floor(a.length / 2)];
  return { full: med(tFull), empty: med(tEmpty) };
}

/** ms from kill -9 of the owner to the first 200 through the other node. */
async function recovery(ttl) {
  const redis = await startRedis();
  const a = await startNode(redis, { id: 'a', project: 'cluster', ttl });
  const b = await startNode(redis, { id: 'b', project: 'cluster', ttl });
  const room = `rec-${ttl}`;
  await freshRequest(`${a.url}/parties/ledger/${room}`, { method: 'POST', body: 'before' });
  const tKill = Date.now();
  await a.kill9();
  let n = 0;
  await waitFor(async () => {
    const r = await freshRequest(`${b.url}/parties/ledger/${room}`, { method: 'POST', body: `after-${++n}`, timeout: 2000 }).catch(() => null);
    return r && r.status === 200;
  }, ttl + 10_000, { interval: 20, what: 'the room back on b' });
  const ms = Date.now() - tKill;
  const keys = (await freshRequest(`${b.url}/parties/ledger/${room}`)).json().keys;
  if (!keys.includes('before')) throw new Error('the write acknowledged before the kill is missing');
  await stopAll();
  return ms;
}


for (const bin of ['lp_loadgen', 'lp_redis_commit']) {
  if (!fs.existsSync(path.join(BENCH, bin))) {
    console.error(`missing build/bench/${bin}: cmake --build build`);
    process.exit(1);
  }
}

try {
  for (const clients of [1, CLIENTS]) {
    const c = await commits(clients);
    console.log(`\ncommits: ${clients} client(s), each in its own room, one write of ${SIZE} B in flight each, ${DURATION} s; redis AOF appendfsync always\n`);
    console.log('| | commits/s | p50 | p99 | vs raw |');
    console.log('|---|---|---|---|---|');
    console.log(`| luaparty, storage in Redis (WebSocket message -> put -> echo after the ack) | ${f(c.lp.msgs_per_s)} | ${f(c.lp.p50_us / 1000, 2)} ms | ${f(c.lp.p99_us / 1000, 2)} ms | ${f(c.lp.msgs_per_s / c.raw.rate, 2)} |`);
    console.log(`| raw hiredis, the same lp_commit call | ${f(c.raw.rate)} | ${f(c.raw.p50_us / 1000, 2)} ms | ${f(c.raw.p99_us / 1000, 2)} ms | 1.00 |`);
    console.log(`| luaparty, one node, SQLite storage (the same load) | ${f(c.sq.msgs_per_s)} | ${f(c.sq.p50_us / 1000, 2)} ms | ${f(c.sq.p99_us / 1000, 2)} ms | ${f(c.sq.msgs_per_s / c.raw.rate, 2)} |`);
    console.log(`mean commit inside luaparty (local SQLite + the lp_commit round trip): ${f(c.lp.commitMs, 2)} ms;` +
      ` raw mean lp_commit: ${f(c.raw.mean_us / 1000, 2)} ms`);
    console.log(`CPU: luaparty ${f(c.lp.cpu.lp, 1)} s + redis ${f(c.lp.cpu.redis, 1)} s (+ the load generator) in ${DURATION} s on ${os.cpus().length} cores;` +
      ` raw: redis ${f(c.raw.redisCpu, 1)} s`);
  }
  if (opt('commits-only', 0)) process.exit(0);
  const act = await activation();
  console.log(`\nactivation (first request on a node that never had the room; median of ${ROOMS}):`);
  console.log(`  room with ${KEYS} keys: ${f(act.full, 2)} ms; empty room: ${f(act.empty, 2)} ms; ratio ${f(act.full / act.empty, 1)}`);
  console.log('\nrecovery after kill -9 of the owner (first write answered through another node):');
  for (const ttl of [2000, 5000]) {
    const ms = await recovery(ttl);
    console.log(`  --lease-ttl ${ttl}: ${ms} ms (${f(ms / ttl, 2)} x the TTL)`);
  }
} finally {
  disarm();
  await stopAll().catch(() => {});
}
