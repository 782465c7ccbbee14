// Helpers for the cluster-mode integration tests: a throwaway redis-server
// (AOF, fsync always, no RDB) on a free 127.0.0.1 port, luaparty nodes joined
// to it, and clients that show which node answered (x-luaparty-node).
//
//   const redis = await startRedis();
//   const a = await startNode(redis, { id: 'a' });    // a.url, a.internalPort, a.epoch
//   ... after(stopAll)                                 // every node, then every redis
//
// Everything is bound to 127.0.0.1, every wait is bounded, and every process
// started here is killed when the test process exits.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import { startServer, mkTmp, sleep, waitFor, BIN, REPO, projectDir } from './server.mjs';

export const SECRET = 's3cret';
const CLUSTER_RE = /cluster: node (\S+), epoch (\d+), internal (127\.0\.0\.1):(\d+)/;

const nodes = new Set();
const redises = new Set();
const procs = new Set();
process.on('exit', () => {
  for (const p of procs) {
    try { p.kill('SIGKILL'); } catch { /* gone */ }
  }
});

/** True when every thread of process pid is stopped (SIGSTOP), per /proc. */
function allStopped(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/task`).every((t) => {
      const stat = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'T';
    });
  } catch {
    return false;
  }
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function encodeCommand(args) {
  let s = `*${args.length}\r\n`;
  for (const a of args) {
    const b = Buffer.from(String(a));
    s += `$${b.length}\r\n${b.toString('latin1')}\r\n`;
  }
  return Buffer.from(s, 'latin1');
}

// Parses one RESP2 reply at buf[pos]; returns [value, next] or null if incomplete.
function parseReply(buf, pos = 0) {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  if (type === '+') return [line, next];
  if (type === '-') return [new RedisError(line), next];
  if (type === ':') return [Number(line), next];
  if (type === '$') {
    const n = Number(line);
    if (n < 0) return [null, next];
    if (buf.length < next + n + 2) return null;
    return [buf.toString('utf8', next, next + n), next + n + 2];
  }
  if (type === '*') {
    const n = Number(line);
    if (n < 0) return [null, next];
    const out = [];
    let p = next;
    for (let i = 0; i < n; i++) {
      const r = parseReply(buf, p);
      if (!r) return null;
      out.push(r[0]);
      p = r[1];
    }
    return [out, p];
  }
  throw new Error(`bad RESP reply: ${buf.toString('latin1', pos, Math.min(buf.length, pos + 80))}`);
}

class RedisError extends Error {}

/** One redis command over a fresh connection; resolves the reply, rejects on error reply or after timeout ms. */
export function redisCommand(port, args, timeout = 2000) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`redis ${args[0]}: no reply within ${timeout} ms`)); }, timeout);
    const done = (err, v) => { clearTimeout(timer); sock.destroy(); if (err) reject(err); else resolve(v); };
    sock.on('connect', () => sock.write(encodeCommand(args)));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      let r;
      try { r = parseReply(buf); } catch (e) { done(e); return; }
      if (!r) return;
      if (r[0] instanceof RedisError) done(r[0]);
      else done(null, r[0]);
    });
    sock.on('error', (e) => done(e));
    sock.on('close', () => done(new Error(`redis ${args[0]}: connection closed before a reply`)));
  });
}

/** Spawns redis-server on port (AOF with fsync always, in dir); resolves once it answers PING. */
async function spawnRedis(port, dir, args, unref, timeout) {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir, '--daemonize', 'no', '--protected-mode', 'yes',
    ...args],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.add(proc);
  const p = { proc, out: '', exitInfo: null };
  proc.stdout.on('data', (d) => { if (p.out.length < 1 << 20) p.out += d; });
  proc.stderr.on('data', (d) => { if (p.out.length < 1 << 20) p.out += d; });
  if (unref) { // it must not keep the test file running: it is killed when the file exits
    proc.unref();
    proc.stdout.unref();
    proc.stderr.unref();
  }
  p.exited = new Promise((r) => proc.on('exit', (code, signal) => { procs.delete(proc); p.exitInfo = { code, signal }; r(p.exitInfo); }));
  try {
    await waitFor(async () => {
      if (p.exitInfo) throw new Error(`redis-server exited (${JSON.stringify(p.exitInfo)}): ${p.out}`);
      return (await redisCommand(port, ['PING'], 500)) === 'PONG';
    }, timeout, { what: `redis-server on port ${port}` });
  } catch (e) {
    try { proc.kill('SIGKILL'); } catch { /* ignore */ }
    await p.exited;
    throw e;
  }
  return p;
}

/**
 * redis-server on a free 127.0.0.1 port, AOF with appendfsync always, in a
 * temp dir; waits for PING. kill9() and restart() (same port, same dir: the
 * AOF brings its data back) are for tests of a Redis outage.
 */
export async function startRedis({ timeout = 5000, args = [], unref = false } = {}) {
  const dir = mkTmp('luaparty-redis-');
  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    let p;
    try {
      p = await spawnRedis(port, dir, args, unref, timeout);
    } catch (e) {
      lastErr = e;
      continue; // the port was taken in between: try another
    }
    const redis = {
      port,
      dir,
      url: `redis://127.0.0.1:${port}`,
      get proc() { return p.proc; },
      logs: () => p.out,
      get exited() { return p.exited; },
      cmd: (...a) => redisCommand(port, a),
      async kill9() {
        if (!p.exitInfo) p.proc.kill('SIGKILL');
        return p.exited;
      },
      async restart() {
        await redis.kill9();
        p = await spawnRedis(port, dir, args, unref, timeout);
      },
      async stop() {
        if (p.exitInfo) return p.exitInfo;
        try { p.proc.kill('SIGTERM'); } catch { /* ignore */ }
        let t;
        const r = await Promise.race([p.exited, new Promise((res) => { t = setTimeout(() => res(null), 3000); })]);
        clearTimeout(t);
        if (r) return r;
        try { p.proc.kill('SIGKILL'); } catch { /* ignore */ }
        return p.exited;
      },
    };
    redises.add(redis);
    return redis;
  }
  throw lastErr;
}

/**
 * A TCP proxy on a free 127.0.0.1 port to 127.0.0.1:target, for cutting a
 * node off from Redis while clients still reach it: cut() stops every byte
 * both ways (connections stay open, as behind a dead switch, and new ones
 * hang), heal() lets them flow again.
 */
export async function startProxy(target) {
  const pairs = new Set();
  let cut = false;
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: target });
    const pair = { client, upstream };
    pairs.add(pair);
    const pipe = (from, to) => from.on('data', (d) => { if (!cut) to.write(d); });
    pipe(client, upstream);
    pipe(upstream, client);
    const end = () => { pairs.delete(pair); client.destroy(); upstream.destroy(); };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const proxy = {
    port: server.address().port,
    get url() { return `redis://127.0.0.1:${proxy.port}`; },
    cut() { cut = true; },
    /**
     * Ends the cut: the connections that lived through it are reset (what
     * was sent during it is never delivered late, as after a link that
     * timed out); new ones flow.
     */
    heal() {
      cut = false;
      for (const pr of pairs) { pr.client.destroy(); pr.upstream.destroy(); }
      pairs.clear();
    },
    close() {
      for (const pr of pairs) { pr.client.destroy(); pr.upstream.destroy(); }
      return new Promise((r) => server.close(r));
    },
  };
  proxies.add(proxy);
  return proxy;
}
const proxies = new Set();

/** The arguments that join a node to the cluster. */
export function clusterArgs(redis, { id, ttl = 2000, secret = SECRET } = {}) {
  const url = typeof redis === 'string' ? redis : redis.url;
  const a = ['--cluster', url, '--node-id', id, '--internal-port', '0', '--cluster-secret', secret];
  if (ttl) a.push('--lease-ttl', String(ttl));
  return a;
}

/**
 * `luaparty serve <project> ... --cluster <redis> --node-id <id>` and waits for
 * both the "cluster: node ID, epoch N, internal 127.0.0.1:P" and the
 * "listening on" lines. The result is a startServer() server plus id, epoch,
 * internalPort, internalUrl, pause() (SIGSTOP), resume() (SIGCONT).
 */
export async function startNode(redis, { id, project = 'cluster', ttl = 2000, secret = SECRET, args = [], persist, startTimeout = 10_000 } = {}) {
  if (!id) throw new Error('startNode: id is required');
  const s = await startServer({ project, command: 'serve', persist, startTimeout, args: [...clusterArgs(redis, { id, ttl, secret }), ...args] });
  nodes.add(s);
  procs.add(s.proc);
  s.exited.then(() => procs.delete(s.proc));
  const m = CLUSTER_RE.exec(s.logs());
  if (!m) {
    await s.kill9();
    throw new Error(`node ${id} listens but printed no "cluster: node ${id}, epoch N, internal 127.0.0.1:PORT" line; logs:\n${s.logs()}`);
  }
  s.id = id;
  s.epoch = Number(m[2]);
  s.internalPort = Number(m[4]);
  s.internalUrl = `http://127.0.0.1:${s.internalPort}`;
  s.paused = false;
  // kill() returns before every thread has stopped: a thread running on the
  // other core can still handle a packet for a moment. pause() resolves once
  // /proc shows every thread of the node stopped (state T), so what a test
  // sends next is surely read only after SIGCONT.
  s.pause = async () => {
    s.proc.kill('SIGSTOP');
    s.paused = true;
    const end = Date.now() + 2000;
    while (Date.now() < end && !allStopped(s.proc.pid)) await sleep(2);
  };
  s.resume = () => { s.proc.kill('SIGCONT'); s.paused = false; };
  const stop = s.stop.bind(s);
  s.stop = async (grace) => {
    if (s.paused) s.resume();
    return stop(grace);
  };
  return s;
}

/** Starts n nodes named a, b, c, ... on one redis (started unless given). */
export async function startCluster({ n = 3, redis, ttl = 2000, project = 'cluster', args = [] } = {}) {
  const r = redis ?? await startRedis();
  const list = [];
  for (let i = 0; i < n; i++) list.push(await startNode(r, { id: String.fromCharCode(97 + i), ttl, project, args }));
  return { redis: r, nodes: list };
}

/** Stops every node (SIGCONT first if paused; SIGTERM, SIGKILL after 3 s), then every redis. */
export async function stopAll() {
  const stopped = await Promise.allSettled([...nodes].map((s) => s.stop()));
  nodes.clear();
  await Promise.all([...redises].map((r) => r.stop().catch(() => {})));
  redises.clear();
  await Promise.all([...proxies].map((p) => p.close().catch(() => {})));
  proxies.clear();
  // a node that could not be stopped cleanly is ignored; one that leaked is not
  const report = stopped.find((r) => r.status === 'rejected' && /sanitizer report/.test(r.reason?.message));
  if (report) throw report.reason;
}

/**
 * One HTTP request on its own TCP connection (no keep-alive), bounded.
 * Resolves {status, headers (lowercase object), body, node (x-luaparty-node), json()}.
 */
export function freshRequest(url, { method = 'GET', headers = {}, body, timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false, headers: { connection: 'close', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({
        status: res.statusCode,
        headers: res.headers,
        body: text,
        node: res.headers['x-luaparty-node'],
        json() {
          try { return JSON.parse(text); } catch { throw new Error(`${method} ${url}: expected JSON, got ${res.statusCode} ${text}`); }
        },
      }));
      res.on('error', reject);
    });
    req.on('error', (e) => reject(new Error(`${method} ${url}: ${e.message}`)));
    req.setTimeout(timeout, () => req.destroy(new Error(`no response within ${timeout} ms`)));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/**
 * A ws client that keeps the 101's headers: c.upgradeHeaders, c.node
 * (x-luaparty-node). Messages queue up; next(ms) / nextText(ms) await one.
 * Rejects (err.status set for HTTP refusals) if the upgrade fails or takes
 * longer than timeout ms.
 */
export function wsOpen(url, { timeout = 5000, headers } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: timeout, perMessageDeflate: false });
    const queue = [];
    const all = [];
    const waiters = [];
    let closeInfo = null;
    let settled = false;
    let resolveClosed;
    const closed = new Promise((r) => { resolveClosed = r; });
    const fail = (e) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try { ws.terminate(); } catch { /* ignore */ }
      reject(e);
    };
    const timer = setTimeout(() => fail(new Error(`ws connect to ${url} timed out after ${timeout} ms`)), timeout + 500);
    const client = {
      ws,
      url,
      upgradeHeaders: null,
      node: undefined,
      queue,
      all, // every message ever received, with its arrival time: {text, at}
      closed,
      get closeInfo() { return closeInfo; },
      next(ms = 3000) {
        if (queue.length) return Promise.resolve(queue.shift());
        if (closeInfo) return Promise.reject(new Error(`socket ${url} closed (code ${closeInfo.code}) while waiting for a message`));
        return new Promise((res, rej) => {
          const w = { resolve: (m) => { clearTimeout(t); res(m); }, reject: (e) => { clearTimeout(t); rej(e); } };
          const t = setTimeout(() => {
            const i = waiters.indexOf(w);
            if (i >= 0) waiters.splice(i, 1);
            rej(new Error(`no message on ${url} within ${ms} ms`));
          }, ms);
          waiters.push(w);
        });
      },
      async nextText(ms) { return (await client.next(ms)).text; },
      send(d) { ws.send(d); },
      async waitClosed(ms = 3000) {
        let t;
        const r = await Promise.race([closed, new Promise((res) => { t = setTimeout(() => res(null), ms); })]);
        clearTimeout(t);
        return r;
      },
      async closeAndWait(ms = 2000) {
        if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
          try { ws.close(1000); } catch { /* ignore */ }
        }
        const r = await client.waitClosed(ms);
        if (!r) client.terminate();
        return r;
      },
      terminate() { try { ws.terminate(); } catch { /* ignore */ } },
    };
    ws.on('upgrade', (res) => {
      client.upgradeHeaders = res.headers;
      client.node = res.headers['x-luaparty-node'];
    });
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      const done = () => {
        const err = new Error(`ws upgrade to ${url} refused with HTTP ${res.statusCode}: ${body}`);
        err.status = res.statusCode;
        err.headers = res.headers;
        err.body = body;
        try { req.destroy(); } catch { /* ignore */ }
        fail(err);
      };
      res.on('end', done);
      res.on('error', done);
      setTimeout(done, 500);
    });
    ws.on('error', (e) => fail(e));
    ws.on('message', (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]);
      const m = { text: buf.toString('utf8'), data: buf, isBinary, at: Date.now() };
      all.push(m);
      const w = waiters.shift();
      if (w) w.resolve(m);
      else queue.push(m);
    });
    ws.on('close', (code, reason) => {
      closeInfo = { code, reason: reason.toString('utf8'), at: Date.now() };
      resolveClosed(closeInfo);
      while (waiters.length) waiters.shift().reject(new Error(`socket ${url} closed (code ${code}) while waiting for a message`));
    });
    ws.on('open', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(client);
    });
  });
}

/** Closes every client (terminates the stubborn ones); never throws. */
export async function closeClients(clients, ms = 2000) {
  await Promise.all(clients.filter(Boolean).map((c) => c.closeAndWait(ms).catch(() => c.terminate())));
}

/**
 * Runs `luaparty serve <project> --port 0 --host 127.0.0.1 --persist TMP <args>`
 * expecting it to exit at start-up. Resolves {code, signal, stdout, stderr, ms, timedOut}.
 */
export async function serveExpectExit({ project = 'cluster', args = [], timeout = 8000 } = {}) {
  const argv = ['serve', projectDir(project), '--port', '0', '--host', '127.0.0.1', '--persist', mkTmp('luaparty-persist-'), ...args];
  return runBin(argv, timeout);
}

/** `luaparty cluster status --cluster URL`: {code, stdout, stderr, lines}. */
export async function clusterStatus(redis, timeout = 5000) {
  const r = await runBin(['cluster', 'status', '--cluster', redis.url ?? redis], timeout);
  return { ...r, lines: r.stdout.split('\n').filter((l) => l.trim() !== '') };
}

function runBin(argv, timeout) {
  if (!fs.existsSync(BIN)) throw new Error(`luaparty binary not found at ${BIN}`);
  return new Promise((resolve) => {
    const t0 = Date.now();
    const proc = spawn(BIN, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO });
    procs.add(proc);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    proc.stdout.on('data', (d) => { stdout += d; });
    proc.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { timedOut = true; try { proc.kill('SIGKILL'); } catch { /* ignore */ } }, timeout);
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      procs.delete(proc);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0, timedOut, argv });
    });
  });
}

/** Sums a counter over its label sets in a Prometheus text page (NaN if absent). */
export function metricValue(text, name) {
  const re = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'gm');
  let sum = NaN;
  for (const m of text.matchAll(re)) sum = (Number.isNaN(sum) ? 0 : sum) + Number(m[1]);
  return sum;
}

export { sleep, waitFor, path };
