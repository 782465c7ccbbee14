// Helpers for luaparty's integration tests: start/stop a real server process,
// talk to it over WebSocket (ws), HTTP (fetch) and raw TCP (node:net).
// Everything is bounded in time and bound to 127.0.0.1 only.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const __dirname = path.dirname(fileURLToPath(import.meta.url));

export const REPO = path.resolve(__dirname, '../../..');
export const BIN = process.env.LUAPARTY_BIN
  ? path.resolve(process.env.LUAPARTY_BIN)
  : path.resolve(__dirname, '../../../build/luaparty');
export const PROJECTS = path.resolve(__dirname, '../../projects');
export const EXAMPLES = path.resolve(REPO, 'examples');

const LISTEN_RE = /listening on (https?):\/\/127\.0\.0\.1:(\d+)/;
const MAX_LOG = 4 * 1024 * 1024;

// Every process we spawn, so that a crashing test file never leaks servers.
const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves a project name ("suite"), a path relative to tests/projects, or an absolute path. */
export function projectDir(project) {
  if (path.isAbsolute(project)) return project;
  if (project.startsWith('examples/')) return path.resolve(REPO, project);
  return path.resolve(PROJECTS, project);
}

export function mkTmp(prefix = 'luaparty-test-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// LUAPARTY_TEST_STORAGE=redis runs every server of a test file as a one-node
// cluster whose room storage is in Redis (scripts/test.sh does so for the
// storage suites): one redis-server per test file, one Redis database per
// persist directory (a restart on the same directory finds its data; two
// servers of one file never share rooms), a node id that stays with the
// directory.
const STORAGE_IN_REDIS = process.env.LUAPARTY_TEST_STORAGE === 'redis';
let testRedis;
const redisDbs = new Map();

async function clusterStorageArgs(persist, args) {
  if (!STORAGE_IN_REDIS || args.includes('--cluster')) return [];
  if (!testRedis) testRedis = import('./cluster.mjs').then((c) => c.startRedis({ args: ['--databases', '4096'], unref: true }));
  const redis = await testRedis;
  if (!redisDbs.has(persist)) redisDbs.set(persist, redisDbs.size + 1);
  const db = redisDbs.get(persist);
  return ['--cluster', `${redis.url}/${db}`, '--node-id', `n${db}`, '--internal-port', '0',
    '--cluster-secret', 's3cret', '--lease-ttl', '2000'];
}

function spawnLuaparty(project, persist, args, command = 'dev') {
  const dir = projectDir(project);
  const argv = [command, dir, '--port', '0', '--host', '127.0.0.1', '--persist', persist, ...args];
  // LUAPARTY_TEST_WORKERS=N runs every test against N workers (scripts/test.sh runs the suite with 2).
  if (process.env.LUAPARTY_TEST_WORKERS && !args.includes('--workers')) argv.push('--workers', process.env.LUAPARTY_TEST_WORKERS);
  if (!fs.existsSync(BIN)) {
    throw new Error(`luaparty binary not found at ${BIN} (set LUAPARTY_BIN or build it)`);
  }
  const proc = spawn(BIN, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO });
  live.add(proc);
  let out = '';
  const onData = (d) => {
    if (out.length < MAX_LOG) out += d.toString('utf8');
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      live.delete(proc);
      resolve({ code, signal });
    });
  });
  // LUAPARTY_TEST_LOGDIR=dir keeps every server's output (e.g. to grep for sanitizer reports).
  if (process.env.LUAPARTY_TEST_LOGDIR) {
    proc.on('close', (code, signal) => {
      try {
        fs.mkdirSync(process.env.LUAPARTY_TEST_LOGDIR, { recursive: true });
        fs.writeFileSync(path.join(process.env.LUAPARTY_TEST_LOGDIR, `${path.basename(dir)}-${proc.pid}.log`),
          `argv: ${argv.join(' ')}\nexit: code ${code} signal ${signal}\n${out}`);
      } catch { /* best effort */ }
    });
  }
  proc.on('error', (e) => { out += `\n[spawn error] ${e.message}\n`; });
  return { proc, dir, argv, logs: () => out, exited };
}

const SANITIZER_RE = /ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|: runtime error: /;

/** Throws with the report if the server printed one. */
function checkSanitizers(s) {
  const m = SANITIZER_RE.exec(s.logs());
  if (m) {
    throw new Error(`luaparty printed a sanitizer report (${m[0].trim()}); argv: ${s.argv.join(' ')}\n` +
      `logs:\n${s.logs().slice(Math.max(0, m.index - 2000), m.index + 4000)}`);
  }
}

/**
 * Starts `luaparty dev <project> --port 0 --host 127.0.0.1 --persist <dir>` (or
 * `command`, e.g. 'serve') and waits (at most startTimeout ms) for the
 * "listening on http(s)://127.0.0.1:PORT" line; `scheme` says which.
 */
export async function startServer({ project, args = [], persist, startTimeout = 5000, command = 'dev' } = {}) {
  if (!project) throw new Error('startServer: project is required');
  const persistDir = persist ?? mkTmp('luaparty-persist-');
  const s = spawnLuaparty(project, persistDir, [...args, ...await clusterStorageArgs(persistDir, args)], command);
  let exitInfo = null;
  s.exited.then((e) => { exitInfo = e; });

  let scheme;
  const port = await new Promise((resolve, reject) => {
    const t0 = Date.now();
    const timer = setInterval(() => {
      const m = LISTEN_RE.exec(s.logs());
      if (m) {
        clearInterval(timer);
        scheme = m[1];
        resolve(Number(m[2]));
      } else if (exitInfo) {
        clearInterval(timer);
        reject(new Error(`luaparty exited before listening (code ${exitInfo.code}, signal ${exitInfo.signal}); ` +
          `argv: ${s.argv.join(' ')}\nlogs:\n${s.logs()}`));
      } else if (Date.now() - t0 > startTimeout) {
        clearInterval(timer);
        try { s.proc.kill('SIGKILL'); } catch { /* ignore */ }
        reject(new Error(`luaparty did not print "listening on http(s)://127.0.0.1:PORT" within ${startTimeout} ms; ` +
          `argv: ${s.argv.join(' ')}\nlogs:\n${s.logs()}`));
      }
    }, 10);
  });

  const url = `${scheme}://127.0.0.1:${port}`;
  const server = {
    scheme,
    port,
    url,
    wsUrl: `${scheme === 'https' ? 'wss' : 'ws'}://127.0.0.1:${port}`,
    persist: persistDir,
    dir: s.dir,
    proc: s.proc,
    logs: s.logs,
    exited: s.exited,
    get exitInfo() { return exitInfo; },
    alive() { return exitInfo === null; },
    /** SIGTERM, wait for exit; SIGKILL after 3 s. Resolves {code, signal, killed, ms}.
     *  Throws if the server's output has a sanitizer report (a leak at
     *  shutdown, a bad access, undefined behaviour, a data race): a test
     *  whose server leaked fails, whatever it asserted. */
    async stop(graceMs = 3000) {
      if (exitInfo) {
        checkSanitizers(s);
        return { ...exitInfo, killed: false, ms: 0 };
      }
      const t0 = Date.now();
      try { s.proc.kill('SIGTERM'); } catch { /* ignore */ }
      let timer;
      const r = await Promise.race([
        s.exited.then((e) => ({ ...e, killed: false })),
        new Promise((resolve) => { timer = setTimeout(() => resolve(null), graceMs); }),
      ]);
      clearTimeout(timer);
      if (r) {
        await new Promise((resolve) => { // the report is the last thing it writes
          if (s.proc.stderr.readableEnded) resolve();
          s.proc.stderr.once('end', resolve);
          setTimeout(resolve, 1000);
        });
        checkSanitizers(s);
        return { ...r, ms: Date.now() - t0 };
      }
      try { s.proc.kill('SIGKILL'); } catch { /* ignore */ }
      const e = await s.exited;
      return { ...e, killed: true, ms: Date.now() - t0 };
    },
    async kill9() {
      if (exitInfo) return exitInfo;
      try { s.proc.kill('SIGKILL'); } catch { /* ignore */ }
      return s.exited;
    },
  };
  return server;
}

/** startServer for a loaded machine (ASan, parallel files), where starting can take seconds. */
export const startServerPatient = (opts) => startServer({ startTimeout: 15000, ...opts });

/**
 * Runs luaparty on a project that is expected to fail at startup.
 * Resolves {code, signal, logs, ms, timedOut}; kills it after `timeout` ms.
 */
export async function runExpectExit({ project, args = [], persist, timeout = 5000 } = {}) {
  const dir = persist ?? mkTmp('luaparty-persist-');
  const s = spawnLuaparty(project, dir, [...args, ...await clusterStorageArgs(dir, args)]);
  const t0 = Date.now();
  let timer;
  const r = await Promise.race([
    s.exited.then((e) => ({ ...e, timedOut: false })),
    new Promise((resolve) => { timer = setTimeout(() => resolve(null), timeout); }),
  ]);
  clearTimeout(timer);
  if (r) {
    // let the pipes drain
    await sleep(50);
    return { ...r, logs: s.logs(), ms: Date.now() - t0 };
  }
  try { s.proc.kill('SIGKILL'); } catch { /* ignore */ }
  const e = await s.exited;
  return { ...e, timedOut: true, logs: s.logs(), ms: Date.now() - t0 };
}

/** Polls fn (sync or async) until it returns a truthy value; throws after timeout ms. */
export async function waitFor(fn, timeout = 5000, { interval = 25, what = 'condition' } = {}) {
  const t0 = Date.now();
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await fn();
      lastErr = undefined;
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() - t0 > timeout) {
      const detail = lastErr ? `last error: ${lastErr.message}` : `last value: ${JSON.stringify(last)}`;
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; ${detail}`);
    }
    await sleep(interval);
  }
}

const METRICS_RE = /metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/;

/** The /metrics URL of a server started with --metrics 127.0.0.1:0, from its log (waits for the line). */
export async function metricsUrl(server, timeout = 3000) {
  await waitFor(() => METRICS_RE.test(server.logs()), timeout, { what: 'metrics line' });
  return METRICS_RE.exec(server.logs())[1];
}

/**
 * HTTP request with the global fetch, bounded in time.
 * Resolves {status, headers (Headers), text, json() }.
 */
export async function httpRequest(url, { method = 'GET', headers = {}, body, timeout = 5000 } = {}) {
  const t0 = Date.now();
  let res;
  let text;
  try {
    res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(timeout), redirect: 'manual' });
    text = await res.text();
  } catch (e) {
    const why = e.name === 'TimeoutError' || e.name === 'AbortError'
      ? `no complete response within ${timeout} ms`
      : `${e.message}${e.cause ? ` (${e.cause.code || e.cause.message})` : ''}`;
    const err = new Error(`${method} ${url}: ${why}${res ? ` (status ${res.status} came after ${Date.now() - t0} ms)` : ''}`);
    err.cause = e;
    throw err;
  }
  return {
    status: res.status,
    headers: res.headers,
    text,
    json() { return JSON.parse(text); },
  };
}

/**
 * Sends raw bytes to 127.0.0.1:port and collects everything until the peer closes
 * or `timeout` ms pass (or `until(buffer)` returns true). Resolves {data: Buffer, closed, text}.
 */
export function rawHttp(port, bytes, { timeout = 2000, until } = {}) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let done = false;
    const sock = net.connect({ host: '127.0.0.1', port });
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const data = Buffer.concat(chunks);
      resolve({ data, closed, text: data.toString('latin1') });
    };
    const timer = setTimeout(() => finish(false), timeout);
    sock.on('connect', () => sock.write(bytes));
    sock.on('data', (d) => {
      chunks.push(d);
      if (until && until(Buffer.concat(chunks))) finish(false);
    });
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('error', (e) => {
      if (done) return;
      if (chunks.length) finish(true);
      else { done = true; clearTimeout(timer); reject(e); }
    });
  });
}

/** Parses a raw HTTP/1.1 response head. */
export function parseRawResponse(buf) {
  const text = buf.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const head = end >= 0 ? text.slice(0, end) : text;
  const [statusLine, ...lines] = head.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine || '');
  const headers = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: m ? Number(m[1]) : null, statusLine, headers, body: end >= 0 ? buf.subarray(end + 4) : Buffer.alloc(0) };
}

/**
 * Opens a ws client. Resolves once open; rejects (with err.status for HTTP refusals)
 * if the upgrade fails or does not complete within `timeout` ms.
 * The client keeps every message in a queue; `next(ms)` awaits the next one as
 * {data: string|Buffer, isBinary, text}.
 */
export function wsConnect(url, { timeout = 5000, headers, protocols } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers, handshakeTimeout: timeout });
    const queue = [];
    const waiters = [];
    let closeInfo = null;
    let settled = false;
    let resolveClosed;
    const closed = new Promise((r) => { resolveClosed = r; });
    const openedAt = Date.now();

    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      try { ws.terminate(); } catch { /* ignore */ }
      reject(new Error(`ws connect to ${url} timed out after ${timeout} ms`));
    }, timeout);

    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      const done = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const err = new Error(`ws upgrade to ${url} refused with HTTP ${res.statusCode}: ${body}`);
        err.status = res.statusCode;
        err.body = body;
        try { req.destroy(); } catch { /* ignore */ }
        reject(err);
      };
      res.on('end', done);
      res.on('error', done);
      setTimeout(done, 500);
    });
    ws.on('error', (e) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        reject(e);
      }
    });
    ws.on('message', (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]);
      const msg = { data: isBinary ? buf : buf.toString('utf8'), isBinary, text: buf.toString('utf8') };
      const w = waiters.shift();
      if (w) w.resolve(msg);
      else queue.push(msg);
    });
    ws.on('close', (code, reason) => {
      closeInfo = { code, reason: reason.toString('utf8'), at: Date.now() };
      resolveClosed(closeInfo);
      while (waiters.length) {
        const w = waiters.shift();
        w.reject(new Error(`socket closed (code ${code}, reason "${closeInfo.reason}") while waiting for a message`));
      }
    });
    ws.on('open', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(client);
    });

    const client = {
      ws,
      url,
      openedAt,
      queue,
      closed,
      get closeInfo() { return closeInfo; },
      /** Next message (FIFO), or rejects after timeoutMs. */
      next(timeoutMs = 3000) {
        if (queue.length) return Promise.resolve(queue.shift());
        if (closeInfo) {
          return Promise.reject(new Error(`socket already closed (code ${closeInfo.code}) while waiting for a message`));
        }
        return new Promise((res, rej) => {
          const w = {
            resolve: (m) => { clearTimeout(t); res(m); },
            reject: (e) => { clearTimeout(t); rej(e); },
          };
          const t = setTimeout(() => {
            const i = waiters.indexOf(w);
            if (i >= 0) waiters.splice(i, 1);
            rej(new Error(`no message on ${url} within ${timeoutMs} ms`));
          }, timeoutMs);
          waiters.push(w);
        });
      },
      async nextText(timeoutMs) {
        const m = await client.next(timeoutMs);
        if (m.isBinary) throw new Error(`expected a text frame, got binary ${m.data.toString('hex')}`);
        return m.data;
      },
      async nextJson(timeoutMs) {
        const t = await client.nextText(timeoutMs);
        try { return JSON.parse(t); } catch { throw new Error(`expected JSON text, got: ${t}`); }
      },
      /** Skips messages until pred(msg) is true; bounded by timeoutMs overall. */
      async nextMatching(pred, timeoutMs = 3000) {
        const t0 = Date.now();
        for (;;) {
          const left = timeoutMs - (Date.now() - t0);
          if (left <= 0) throw new Error(`no matching message on ${url} within ${timeoutMs} ms`);
          const m = await client.next(left);
          if (pred(m)) return m;
        }
      },
      send(data, opts) { ws.send(data, opts); },
      sendJson(v) { ws.send(JSON.stringify(v)); },
      close(code, reason) {
        if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(code, reason);
      },
      /** Close and wait (bounded) for the close event; resolves closeInfo or null on timeout. */
      async closeAndWait(code = 1000, reason, timeoutMs = 3000) {
        client.close(code, reason);
        return client.waitClosed(timeoutMs);
      },
      async waitClosed(timeoutMs = 3000) {
        let t;
        const r = await Promise.race([closed, new Promise((res) => { t = setTimeout(() => res(null), timeoutMs); })]);
        clearTimeout(t);
        return r;
      },
      terminate() { try { ws.terminate(); } catch { /* ignore */ } },
    };
  });
}

/** Closes (then terminates) a list of clients; never throws. */
export async function closeAll(clients, timeoutMs = 2000) {
  await Promise.all(clients.filter(Boolean).map(async (c) => {
    try {
      const r = await c.closeAndWait(1000, undefined, timeoutMs);
      if (!r) c.terminate();
    } catch { c.terminate(); }
  }));
}

export const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
