#!/usr/bin/env node
// Cluster mode: what owning rooms costs Redis, and what a claim costs a
// request. One redis-server and luaparty nodes on 127.0.0.1, one run:
//   1. claim latency: the first request for each of N fresh rooms (the node
//      claims it in Redis, then starts it) against the next request for the
//      same room (cached: no Redis), and the raw lp_claim round trip of a
//      client calling the function directly; p50/p99 of each.
//   2. lease renewal load: a node's renewals (lp_renew, every TTL/5) while it
//      owns no room, then while 100,000 rooms are recorded as its own in
//      Redis: Redis time per renewal (INFO commandstats) and renewals/s,
//      side by side. A renewal touches the node's keys only, never a room's.
//
//   node bench/cluster-lease.mjs [--rooms N (claim latency, default 500)]
//                                [--owned N (default 100000)] [--seconds S (default 10)]
// A watchdog ends the run (and every child) after 120 s.
import { spawn } from 'node:child_process';
import { fmt as f, opt, quantile as q, watchdog } from './common.mjs';
import {
  startRedis, startNode, stopAll, freshRequest, sleep, redisCommand,
} from '../tests/integration/lib/cluster.mjs';

const ROOMS = Math.min(5000, Math.max(10, opt('rooms', 500)));
const OWNED = Math.min(1_000_000, Math.max(1000, opt('owned', 100_000)));
const SECONDS = Math.min(30, Math.max(2, opt('seconds', 10)));

const disarm = watchdog('cluster-lease.mjs', 120000, stopAll);

const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

async function claimLatency() {
  const redis = await startRedis();
  const a = await startNode(redis, { id: 'a', ttl: 5000, args: ['--workers', '1'] });
  const first = [];
  const again = [];
  for (let i = 0; i < ROOMS; i++) {
    const url = `${a.url}/parties/main/claim-${i}`;
    let t0 = process.hrtime.bigint();
    if ((await freshRequest(url)).status !== 200) throw new Error(`${url}: not 200`);
    first.push(ms(t0));
    t0 = process.hrtime.bigint();
    await freshRequest(url);
    again.push(ms(t0));
  }
  const epoch = String(a.epoch);
  const raw = [];
  for (let i = 0; i < ROOMS; i++) {
    const t0 = process.hrtime.bigint();
    await redisCommand(redis.port, ['FCALL', 'lp_claim', '1', `lp:own:{main/raw-${i}}`, 'a', epoch, '', '']);
    raw.push(ms(t0));
  }
  await stopAll();
  return { first, again, raw };
}

/** INFO commandstats' FCALL line: {calls, usec}. */
async function fcallStats(port) {
  const info = await redisCommand(port, ['INFO', 'commandstats']);
  const m = /cmdstat_fcall:calls=(\d+),usec=(\d+)/.exec(info);
  return m ? { calls: Number(m[1]), usec: Number(m[2]) } : { calls: 0, usec: 0 };
}

/** Renewals of one node over SECONDS: Redis usec per call and calls/s (nothing else calls FCALL meanwhile). */
async function renewWindow(port) {
  const s0 = await fcallStats(port);
  const t0 = Date.now();
  await sleep(SECONDS * 1000);
  const s1 = await fcallStats(port);
  const calls = s1.calls - s0.calls;
  return { calls, perSec: calls / ((Date.now() - t0) / 1000), usecPerCall: calls ? (s1.usec - s0.usec) / calls : NaN };
}

/** Records OWNED rooms as the node's own, as its claims would (redis-cli --pipe, one lp_claim each). */
function claimMany(port, epoch) {
  return new Promise((resolve, reject) => {
    const p = spawn('redis-cli', ['-p', String(port), '--pipe'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('error', reject);
    p.on('close', (code) => (code === 0 && /errors: 0/.test(out) ? resolve() : reject(new Error(`redis-cli --pipe: ${out}`))));
    const enc = (args) => `*${args.length}\r\n${args.map((x) => `$${Buffer.byteLength(x)}\r\n${x}\r\n`).join('')}`;
    let chunk = '';
    for (let i = 0; i < OWNED; i++) {
      chunk += enc(['FCALL', 'lp_claim', '1', `lp:own:{main/owned-${i}}`, 'a', epoch, '', '']);
      if (chunk.length > 1 << 20) { p.stdin.write(chunk); chunk = ''; }
    }
    p.stdin.end(chunk);
  });
}

async function renewalLoad() {
  const redis = await startRedis();
  // --cluster-storage local: no alarm sweeps (lp_alarm_due, twice a second
  // with room storage in Redis), so every FCALL in the window is a renewal.
  const a = await startNode(redis, { id: 'a', ttl: 1000, args: ['--cluster-storage', 'local'] });
  await sleep(500);
  const none = await renewWindow(redis.port);
  const t0 = Date.now();
  await claimMany(redis.port, String(a.epoch));
  const claimSecs = (Date.now() - t0) / 1000;
  const owned = Number(await redisCommand(redis.port, ['EVAL', "return #redis.call('KEYS', 'lp:own:{main/owned-*')", '0']));
  const many = await renewWindow(redis.port);
  const mem = /used_memory:(\d+)/.exec(await redisCommand(redis.port, ['INFO', 'memory']))[1];
  await stopAll();
  return { none, many, owned, claimSecs, mem: Number(mem) };
}

try {
  const c = await claimLatency();
  console.log(`\nclaim latency: ${ROOMS} fresh rooms, one node (--workers 1), each request on a new connection\n`);
  console.log('| | p50 | p99 |');
  console.log('|---|---|---|');
  console.log(`| first request of a room (claim in Redis + onStart) | ${f(q(c.first, 0.5), 2)} ms | ${f(q(c.first, 0.99), 2)} ms |`);
  console.log(`| next request of the same room (owner cached) | ${f(q(c.again, 0.5), 2)} ms | ${f(q(c.again, 0.99), 2)} ms |`);
  console.log(`| raw FCALL lp_claim from a client (new connection each) | ${f(q(c.raw, 0.5), 2)} ms | ${f(q(c.raw, 0.99), 2)} ms |`);
  console.log(`claim overhead at p50: +${f(q(c.first, 0.5) - q(c.again, 0.5), 2)} ms on the first request of a room`);
  const r = await renewalLoad();
  console.log(`\nlease renewal load (--lease-ttl 1000: a renewal every 200 ms; ${SECONDS} s windows)\n`);
  console.log('| rooms owned by the node | renewals/s | Redis time per renewal | ratio |');
  console.log('|---|---|---|---|');
  console.log(`| 0 | ${f(r.none.perSec, 1)} | ${f(r.none.usecPerCall, 1)} us | 1.00 |`);
  console.log(`| ${r.owned} | ${f(r.many.perSec, 1)} | ${f(r.many.usecPerCall, 1)} us | ${f(r.many.usecPerCall / r.none.usecPerCall, 2)} |`);
  console.log(`(${r.owned} rooms recorded in ${f(r.claimSecs, 1)} s; Redis memory ${f(r.mem / 1048576, 1)} MiB)`);
} finally {
  disarm();
  await stopAll().catch(() => {});
}
