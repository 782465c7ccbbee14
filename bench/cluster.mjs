#!/usr/bin/env node
// Cluster mode: what the proxy hop costs. One redis-server (AOF, fsync
// always) and two nodes, a and b (`luaparty serve tests/projects/cluster
// --workers 1 --cluster ...`); the room main/bench is owned by a. Then, for
// the same room:
//   1. wrk -t1 -c<connections> -d<S>s HTTP GET direct to a, then via b (proxied to a): req/s, latency;
//   2. one WebSocket client sending "echo:<i>" and waiting for each echo for <S> s,
//      direct to a, then via b: round trips/s and p50/p99 latency;
// and prints one table with the ratio proxied/direct.
//
//   node bench/cluster.mjs [--duration S (1-10, default 5)] [--connections N (default 16)]
//   LUAPARTY_BIN=/path/to/luaparty node bench/cluster.mjs
//
// Everything is on 127.0.0.1 and bounded: a watchdog ends the run (and every
// child) after 90 s.
import os from 'node:os';
import { cpuSeconds, fmt as f, opt, quantile, runCapture, watchdog } from './common.mjs';
import {
  startRedis, startNode, stopAll, freshRequest, wsOpen,
} from '../tests/integration/lib/cluster.mjs';

const DURATION = Math.min(10, Math.max(1, opt('duration', 5)));
const CONNECTIONS = Math.min(256, Math.max(1, opt('connections', 16)));
const ROOM = 'bench';

const disarm = watchdog('cluster.mjs', 90000, stopAll);

async function wrk(url) {
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${DURATION}s`, '--timeout', '2s', '--latency', url];
  const { code, out } = await runCapture('wrk', args, (DURATION + 10) * 1000)
    .catch((e) => { throw new Error(`wrk: ${e.message} (is wrk installed?)`); });
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (code !== 0 || !rps) throw new Error(`wrk ${args.join(' ')} failed (${code}):\n${out}`);
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const sockErr = /Socket errors: (.*)/.exec(out);
  const lat = (q) => {
    const m = new RegExp(`^\\s+${q}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(out);
    if (!m) return NaN;
    return Number(m[1]) * ({ us: 0.001, ms: 1, s: 1000 }[m[2]]);
  };
  return { rps: Number(rps[1]), p50: lat(50), p99: lat(99), non2xx: errors ? Number(errors[1]) : 0, sockErr: sockErr ? sockErr[1] : '' };
}

async function echoLoop(url) {
  const c = await wsOpen(url, { timeout: 5000 });
  const node = c.node;
  const lat = [];
  const end = Date.now() + DURATION * 1000;
  let i = 0;
  try {
    while (Date.now() < end) {
      const t0 = process.hrtime.bigint();
      c.send(`echo:${i}`);
      const got = await c.nextText(3000);
      if (got !== `echo:${i}`) throw new Error(`echo ${i}: got ${got}`);
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
      i++;
    }
  } finally {
    await c.closeAndWait(2000);
  }
  return { node, n: lat.length, rps: lat.length / DURATION, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99) };
}



/** Runs fn while counting the CPU both nodes use: {result, a, b} (seconds). */
async function withCpu(a, b, fn) {
  const a0 = cpuSeconds(a.proc.pid);
  const b0 = cpuSeconds(b.proc.pid);
  const result = await fn();
  return { result, a: cpuSeconds(a.proc.pid) - a0, b: cpuSeconds(b.proc.pid) - b0 };
}

async function main() {
  const redis = await startRedis();
  const common = { ttl: 5000, args: ['--workers', '1'] };
  const a = await startNode(redis, { id: 'a', ...common });
  const b = await startNode(redis, { id: 'b', ...common });
  const claim = await freshRequest(`${a.url}/parties/main/${ROOM}`);
  const via = await freshRequest(`${b.url}/parties/main/${ROOM}`);
  if (claim.node !== 'a' || via.node !== 'a') throw new Error(`room ownership is not as expected: direct ${claim.node}, via b ${via.node}`);
  console.log(`redis ${redis.url}; owner a ${a.url}, ingress b ${b.url}; ${DURATION} s per run, wrk -c${CONNECTIONS}`);

  const direct = await withCpu(a, b, () => wrk(`${a.url}/parties/main/${ROOM}`));
  const proxied = await withCpu(a, b, () => wrk(`${b.url}/parties/main/${ROOM}`));
  const httpDirect = direct.result;
  const httpProxied = proxied.result;
  // µs of each node's CPU per request: what a request costs where, whatever
  // the two nodes share here
  const perReq = (cpu, r) => (cpu * 1e6) / (r.rps * DURATION);
  const wsDirect = await echoLoop(`${a.wsUrl}/parties/main/${ROOM}`);
  const wsProxied = await echoLoop(`${b.wsUrl}/parties/main/${ROOM}`);
  if (wsDirect.node !== 'a' || wsProxied.node !== 'a') throw new Error(`echo sockets landed on ${wsDirect.node}/${wsProxied.node}, not a`);

  const rows = [
    ['HTTP GET req/s (wrk)', httpDirect.rps, httpProxied.rps, 0],
    ['HTTP p50 latency ms', httpDirect.p50, httpProxied.p50, 3],
    ['HTTP p99 latency ms', httpDirect.p99, httpProxied.p99, 3],
    ['WS echo round trips/s (1 client)', wsDirect.rps, wsProxied.rps, 0],
    ['WS echo p50 ms', wsDirect.p50, wsProxied.p50, 3],
    ['WS echo p99 ms', wsDirect.p99, wsProxied.p99, 3],
  ];
  const w = [34, 12, 16, 16];
  const line = (cells) => cells.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join(' | ');
  console.log('');
  console.log(line(['', 'direct (a)', 'via b (proxied)', 'proxied/direct']));
  console.log(w.map((n) => '-'.repeat(n)).join('-|-'));
  for (const [name, d, p, dec] of rows) console.log(line([name, f(d, dec), f(p, dec), f(p / d, 2)]));
  const bad = [];
  if (httpDirect.non2xx || httpProxied.non2xx) bad.push(`non-2xx answers: direct ${httpDirect.non2xx}, proxied ${httpProxied.non2xx}`);
  if (httpDirect.sockErr || httpProxied.sockErr) bad.push(`socket errors: direct "${httpDirect.sockErr}", proxied "${httpProxied.sockErr}"`);
  if (bad.length) console.log(`\nwarning: ${bad.join('; ')}`);
  const cDirect = perReq(direct.a, httpDirect);
  const cOwner = perReq(proxied.a, httpProxied);
  const cIngress = perReq(proxied.b, httpProxied);
  console.log(`\nHTTP CPU per request: direct, the owner a ${f(cDirect, 1)} us; proxied, the owner a ${f(cOwner, 1)} us + the ingress b ${f(cIngress, 1)} us`);
  console.log(`Here both nodes and wrk share ${os.cpus().length} cores, so the proxied throughput pays for both. With the nodes on`);
  console.log(`machines of their own, the slower of the two bounds it: an estimate (not a measurement) of proxied/direct is`);
  console.log(`${f(cDirect / Math.max(cOwner, cIngress), 2)} (direct CPU per request over the busier node's).`);
  console.log(`\nRESULT cluster http_direct_rps=${f(httpDirect.rps)} http_proxied_rps=${f(httpProxied.rps)} ` +
    `ws_direct_rtps=${f(wsDirect.rps)} ws_proxied_rtps=${f(wsProxied.rps)}`);
}

try {
  await main();
} catch (e) {
  console.error(`bench/cluster.mjs: ${e.stack || e.message}`);
  process.exitCode = 1;
} finally {
  await stopAll().catch(() => {});
  disarm();
}
