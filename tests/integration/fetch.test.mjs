// Outbound fetch from party code (src/fetch.c, src/dial.c, src/tls.c): http and https to
// servers this test starts on 127.0.0.1, a private CA made with `openssl` at
// test time, redirects, chunked bodies, limits, errors, the allow-list,
// keep-alive reuse, concurrency and shutdown with a fetch in flight.
// The party (tests/projects/fetch/parties/main.lua) runs one command per POST:
// {op, url, method, headers, body, timeout, ...} -> {ok, status, headers, body} | {error}.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { serverCerts } from './lib/certs.mjs';
import { startServer, httpRequest, waitFor, sleep } from './lib/server.mjs';
import { copyProject } from './lib/fixtures.mjs';

const MiB = 1024 * 1024;

// ---- the servers fetch talks to ----

const pendingTimers = new Set();
const later = (ms, fn) => {
  const t = setTimeout(() => { pendingTimers.delete(t); fn(); }, ms);
  pendingTimers.add(t);
};

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', () => resolve(Buffer.concat(chunks)));
  });
}

function writeBig(res, n, chunked) {
  const block = Buffer.alloc(64 * 1024, 'x');
  if (!chunked) res.setHeader('content-length', String(n));
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  let left = n;
  const pump = () => {
    while (left > 0 && !res.destroyed) {
      const part = block.subarray(0, Math.min(block.length, left));
      left -= part.length;
      if (!res.write(part)) { res.once('drain', pump); return; }
    }
    if (!res.destroyed) res.end();
  };
  res.on('error', () => {});
  pump();
}

const hits = { slow: 0, loop: 0, redirectedPost: 0 };

async function handler(req, res) {
  const u = new URL(req.url, 'http://x');
  const q = u.searchParams;
  const p = u.pathname;
  if (p === '/echo') {
    const body = await readBody(req);
    const status = Number(q.get('status') || 200);
    res.setHeader('X-Multi', ['first', 'second']); // two header lines
    res.writeHead(status, { 'Content-Type': 'application/json', 'X-Echo-Reply': 'Yes Indeed' });
    if (q.get('lenonly') === '1') {
      res.end(JSON.stringify({ method: req.method, length: body.length, sum: body.reduce((a, b) => (a + b) % 65536, 0) }));
      return;
    }
    res.end(JSON.stringify({
      method: req.method, url: req.url, headers: req.headers,
      body: body.toString('utf8'), bodyBase64: body.toString('base64'), secure: !!req.socket.encrypted,
    }));
  } else if (p === '/bytes') {
    const b = Buffer.alloc(256);
    for (let i = 0; i < 256; i++) b[i] = i;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '256' });
    res.end(b);
  } else if (p === '/chunked') {
    res.writeHead(200, { 'content-type': 'text/plain' }); // no content-length: chunked
    const parts = ['alpha-', 'beta-', 'gamma-', 'delta-', 'end'];
    let i = 0;
    const step = () => {
      if (res.destroyed) return;
      if (i < parts.length) { res.write(parts[i++]); later(15, step); } else res.end();
    };
    step();
  } else if (p === '/big') {
    writeBig(res, Number(q.get('n')), q.get('chunked') === '1');
  } else if (p === '/slow') {
    hits.slow++;
    later(Number(q.get('ms') || 3000), () => { if (!res.destroyed) res.end('slow done'); });
  } else if (p === '/redirect') {
    // ?to=<location>&code=<30x>
    if (req.method === 'POST') hits.redirectedPost++;
    await readBody(req);
    res.writeHead(Number(q.get('code') || 302), { location: q.get('to') });
    res.end('moved');
  } else if (p === '/loop') {
    hits.loop++;
    res.writeHead(302, { location: '/loop' });
    res.end();
  } else if (p.startsWith('/hop/')) {
    // /hop/N redirects N more times, then answers "landed"
    const n = Number(p.slice(5));
    if (n > 0) { res.writeHead(302, { location: `/hop/${n - 1}` }); res.end(); } else res.end('landed');
  } else if (p === '/dir/page' && q.has('to')) {
    res.writeHead(302, { location: q.get('to') });
    res.end();
  } else if (p === '/dir/page') {
    res.end(`you reached ${p}${u.search}`);
  } else if (p === '/dir/target' || p === '/target') {
    res.end(`you reached ${p}${u.search}`);
  } else if (p === '/close') {
    res.writeHead(200, { connection: 'close', 'content-length': '3' });
    res.end('bye'); // node closes the connection (TLS: close_notify) right after
  } else if (p === '/small') {
    res.end('ok');
  } else {
    res.writeHead(404);
    res.end('no such path');
  }
}

// Answers with fixed bytes, whatever HTTP says: for responses node:http will not produce.
const RAW = {
  '/eof': 'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nthe body ends at EOF',
  '/http10': 'HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nhi',
  '/truncated': 'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part of it',
  '/garbage': 'THIS IS NOT HTTP\r\n\r\n',
  '/empty': '',
  '/early-hints': 'HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n' +
    'HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nfinal',
};
function rawHandler(sock) {
  let head = '';
  sock.on('error', () => {});
  sock.on('data', (d) => {
    head += d.toString('latin1');
    if (!head.includes('\r\n\r\n')) return;
    const target = head.split(' ')[1];
    sock.end(RAW[target] ?? 'HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
    head = '';
  });
}

function listen(server, host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve(server.address().port));
  });
}

function counted(server) {
  const s = { server, connections: 0, sockets: new Set() };
  server.on('connection', (sock) => {
    s.connections++;
    s.sockets.add(sock);
    sock.on('close', () => s.sockets.delete(sock));
  });
  // whatever the fetching side does, never make it wait for our own keep-alive logic
  if ('keepAliveTimeout' in server) server.keepAliveTimeout = 10_000;
  return s;
}

// ---- luaparty ----

let certs;
let plain, plainPort;         // http echo & friends
let kaServer, kaPort;         // http, only for counting connections
let secure, securePort;       // https, certificate for localhost + 127.0.0.1
let wrongName, wrongPort;     // https, certificate for wrong.test
let lp, lpNoCa, lpConf;       // luaparty: with --tls-ca; without; with partykit.json luaparty limits
let closedPort;               // a port nobody listens on
let silent, silentPort;       // accepts TCP connections and never says anything
let raw, rawPort;             // raw TCP answers (see RAW)
let rawTls, rawTlsPort;       // the same over TLS (certificate for localhost)
let v6, v6Port;               // http echo on [::1], if the machine has IPv6 loopback

const tmpDirs = [];
function configuredProject(extra) {
  const dir = copyProject('fetch', (cfg) => ({ ...cfg, luaparty: extra }), 'luaparty-fetch-project-');
  tmpDirs.push(dir);
  return dir;
}

before(async () => {
  certs = serverCerts('fetch');
  plain = counted(http.createServer(handler));
  plainPort = await listen(plain.server);
  kaServer = counted(http.createServer(handler));
  kaPort = await listen(kaServer.server);
  secure = counted(https.createServer({ key: certs.good.key, cert: certs.good.cert }, handler));
  securePort = await listen(secure.server);
  wrongName = counted(https.createServer({ key: certs.wrong.key, cert: certs.wrong.cert }, handler));
  wrongPort = await listen(wrongName.server);
  raw = counted(net.createServer(rawHandler));
  rawPort = await listen(raw.server);
  rawTls = counted(tls.createServer({ key: certs.good.key, cert: certs.good.cert }, rawHandler));
  rawTlsPort = await listen(rawTls.server);
  try {
    v6 = counted(http.createServer(handler));
    v6Port = await listen(v6.server, '::1');
  } catch {
    v6 = null;
  }
  silent = { accepted: 0, sockets: new Set() };
  silent.server = net.createServer((sock) => {
    silent.accepted++;
    silent.sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => silent.sockets.delete(sock));
  });
  silentPort = await listen(silent.server);
  {
    const tmp = http.createServer();
    closedPort = await listen(tmp);
    await new Promise((r) => tmp.close(r));
  }
  [lp, lpNoCa, lpConf] = await Promise.all([
    startServer({ project: 'fetch', args: ['--tls-ca', certs.caFile] }),
    startServer({ project: 'fetch' }),
    startServer({
      project: configuredProject({ outbound: ['localhost', '*.example.test'], fetchMaxBytes: 1000, fetchTimeout: 1 }),
      args: ['--tls-ca', certs.caFile],
    }),
  ]);
});

after(async () => {
  const results = await Promise.all([lp, lpNoCa, lpConf].filter(Boolean).map((s) => s.stop()));
  for (const t of pendingTimers) clearTimeout(t);
  for (const s of [plain, kaServer, secure, wrongName, silent, raw, rawTls, v6].filter(Boolean)) {
    for (const sock of s.sockets) sock.destroy();
    s.server.close();
  }
  for (const d of [certs?.dir, ...tmpDirs].filter(Boolean)) fs.rmSync(d, { recursive: true, force: true });
  for (const r of results) assert.equal(r.code, 0, `a luaparty server did not exit 0 on SIGTERM: ${JSON.stringify(r)}`);
});

/** One command to the fetch party; resolves {res (parsed JSON), ms, status}. */
async function run(server, room, cmd, { timeout = 10_000 } = {}) {
  const t0 = Date.now();
  const r = await httpRequest(`${server.url}/parties/main/${room}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(cmd), timeout,
  });
  const ms = Date.now() - t0;
  if (r.status !== 200) {
    throw new Error(`party answered ${r.status}: ${r.text}\nserver log tail:\n${server.logs().slice(-2000)}`);
  }
  return { res: r.json(), ms };
}
const fetchVia = (server, room, cmd, opts) => run(server, room, { op: 'fetch', ...cmd }, opts).then((x) => x.res);
// lua-cjson encodes an empty Lua table as {}
const list = (v) => (Array.isArray(v) ? v : Object.values(v ?? {}));
const H = () => `http://127.0.0.1:${plainPort}`;
const S = () => `https://localhost:${securePort}`;

function ok(r, what) {
  assert.ok(!r.error, `${what}: fetch raised "${r.error}"`);
  return r;
}

// ---- basics ----

test('GET: status, lowercase response headers, ok, body; the server sees host and user-agent', async () => {
  const r = ok(await fetchVia(lp, 'basic', { url: `${H()}/echo?x=1&y=two`, decode: true }), 'GET');
  assert.equal(r.status, 200);
  assert.equal(r.ok, true);
  assert.equal(r.headers['x-echo-reply'], 'Yes Indeed');
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.json.method, 'GET');
  assert.equal(r.json.url, '/echo?x=1&y=two');
  assert.equal(r.json.headers.host, `127.0.0.1:${plainPort}`);
  assert.match(r.json.headers['user-agent'] ?? '', /^luaparty\//);
  assert.equal(r.json.body, '');
});

test('the global fetch and require("luaparty").fetch are the same function, both work', async () => {
  const { res } = await run(lp, 'basic', { op: 'same' });
  assert.deepEqual(res, { same: true, kind: 'function' });
  const r = ok(await fetchVia(lp, 'basic', { url: `${H()}/small`, via: 'module' }), 'module fetch');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'ok');
});

for (const method of ['POST', 'PUT', 'DELETE', 'GET']) {
  test(`${method} with a string body and custom headers reaches the server intact`, async () => {
    const body = `payload for ${method}: {"a":1} ünïcode`;
    const r = ok(await fetchVia(lp, 'methods', {
      url: `${H()}/echo`, method, body, decode: true,
      headers: { 'X-Custom-One': 'first value', authorization: 'Bearer t0k3n', 'content-type': 'text/x-test' },
    }), method);
    assert.equal(r.status, 200);
    const seen = r.json;
    assert.equal(seen.method, method);
    assert.equal(seen.body, body);
    assert.equal(seen.headers['x-custom-one'], 'first value');
    assert.equal(seen.headers.authorization, 'Bearer t0k3n');
    assert.equal(seen.headers['content-type'], 'text/x-test');
    assert.equal(seen.headers['content-length'], String(Buffer.byteLength(body)));
    assert.equal(seen.headers.host, `127.0.0.1:${plainPort}`);
  });
}

test('a lowercase method is upper-cased; PATCH works', async () => {
  const r = ok(await fetchVia(lp, 'methods', { url: `${H()}/echo`, method: 'patch', body: 'p', decode: true }), 'patch');
  assert.equal(r.json.method, 'PATCH');
  assert.equal(r.json.body, 'p');
});

test('bodies are binary-safe both ways (Binary request body, 256-byte response)', async () => {
  const bytes = Array.from({ length: 256 }, (_, i) => i);
  const r = ok(await fetchVia(lp, 'binary', { url: `${H()}/echo`, method: 'POST', bodyBytes: bytes, decode: true }), 'binary body');
  assert.equal(r.json.bodyBase64, Buffer.from(bytes).toString('base64'));
  const r2 = ok(await fetchVia(lp, 'binary', { url: `${H()}/bytes`, hex: true }), 'binary response');
  assert.equal(r2.length, 256);
  assert.equal(r2.hex, Buffer.from(bytes).toString('hex'));
});

test('non-2xx statuses come back as responses with ok = false', async () => {
  const r = ok(await fetchVia(lp, 'status', { url: `${H()}/echo?status=418` }), '418');
  assert.equal(r.status, 418);
  assert.equal(r.ok, false);
  const r2 = ok(await fetchVia(lp, 'status', { url: `${H()}/nope` }), '404');
  assert.equal(r2.status, 404);
  assert.equal(r2.body, 'no such path');
  const r3 = ok(await fetchVia(lp, 'status', { url: `${H()}/echo?status=201`, method: 'POST', body: 'x' }), '201');
  assert.equal(r3.status, 201);
  assert.equal(r3.ok, true);
});

test('HEAD: status and headers, no body, and the kept-alive connection still works after it', async () => {
  const r = ok(await fetchVia(lp, 'head', { url: `${H()}/big?n=5000`, method: 'HEAD' }), 'HEAD');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-length'], '5000');
  assert.equal(r.length, 0);
  const r2 = ok(await fetchVia(lp, 'head', { url: `${H()}/small` }), 'GET after HEAD');
  assert.equal(r2.body, 'ok');
});

test('a chunked response (several writes, no content-length) arrives whole', async () => {
  const r = ok(await fetchVia(lp, 'chunked', { url: `${H()}/chunked` }), 'chunked');
  assert.equal(r.status, 200);
  assert.equal(r.headers['transfer-encoding'], 'chunked');
  assert.equal(r.headers['content-length'], undefined);
  assert.equal(r.body, 'alpha-beta-gamma-delta-end');
});

test('a 5 MiB body (under the default 16 MiB limit) arrives whole', async () => {
  const r = ok(await fetchVia(lp, 'big', { url: `${H()}/big?n=${5 * MiB}`, lengthOnly: true }), '5 MiB');
  assert.equal(r.status, 200);
  assert.equal(r.length, 5 * MiB);
});

test('repeated response headers are joined with ", "', async () => {
  const r = ok(await fetchVia(lp, 'basic', { url: `${H()}/echo` }), 'x-multi');
  assert.equal(r.headers['x-multi'], 'first, second');
});

test('2 MiB request bodies go out whole, over http and https', async () => {
  const body = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(Math.ceil((2 * MiB) / 36)).slice(0, 2 * MiB);
  const sum = Buffer.from(body).reduce((a, b) => (a + b) % 65536, 0);
  for (const base of [H(), S()]) {
    const r = ok(await fetchVia(lp, 'upload', { url: `${base}/echo?lenonly=1`, method: 'PUT', body, decode: true }), `${base} upload`);
    assert.deepEqual(r.json, { method: 'PUT', length: 2 * MiB, sum }, base);
  }
});

test('IPv6 literal: http://[::1]:PORT, with host header [::1]:PORT', async (t) => {
  if (!v6) { t.skip('no IPv6 loopback here'); return; }
  const r = ok(await fetchVia(lp, 'v6', { url: `http://[::1]:${v6Port}/echo`, decode: true }), '[::1]');
  assert.equal(r.status, 200);
  assert.equal(r.json.headers.host, `[::1]:${v6Port}`);
});

test('a body delimited by the end of the connection (connection: close, no length) arrives', async () => {
  const r = ok(await fetchVia(lp, 'raw', { url: `http://127.0.0.1:${rawPort}/eof` }), 'EOF body');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'the body ends at EOF');
});

test('"connection: close" responses work over http and https (node:https closes right after the body)', async () => {
  for (const base of [H(), S()]) {
    const results = [];
    for (let i = 0; i < 20; i++) results.push(await fetchVia(lp, 'close', { url: `${base}/close` }));
    const bad = results.filter((r) => r.body !== 'bye');
    assert.equal(bad.length, 0, `${base}/close: ${bad.length} of 20 failed, e.g. ${JSON.stringify(bad[0])}`);
  }
});

test('https: a body that ends when the server closes the TLS session (close_notify) arrives', async () => {
  const r = ok(await fetchVia(lp, 'raw', { url: `https://localhost:${rawTlsPort}/eof` }), 'https EOF body');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'the body ends at EOF');
});

test('an HTTP/1.0 response works, over http and https (20 times each)', async () => {
  for (const base of [`http://127.0.0.1:${rawPort}`, `https://localhost:${rawTlsPort}`]) {
    const results = [];
    for (let i = 0; i < 20; i++) results.push(await fetchVia(lp, 'raw', { url: `${base}/http10` }));
    const bad = results.filter((r) => r.body !== 'hi');
    assert.equal(bad.length, 0, `${base}/http10: ${bad.length} of 20 failed, e.g. ${JSON.stringify(bad[0])}`);
  }
});

test('a 1xx interim response (103 Early Hints) is skipped: the final 200 is the response', async () => {
  const r = await fetchVia(lp, 'raw', { url: `http://127.0.0.1:${rawPort}/early-hints`, timeout: 3000 });
  assert.ok(!r.error, `fetch raised "${r.error}"`);
  assert.equal(r.status, 200, `got ${JSON.stringify(r)}`);
  assert.equal(r.body, 'final');
});

test('broken responses fail with a message, without waiting for the timeout', async () => {
  const cases = [
    ['/truncated', /closed the connection before the response was complete/],
    ['/empty', /closed the connection before the response was complete/],
    ['/garbage', /bad HTTP response from 127\.0\.0\.1/],
  ];
  for (const [p, re] of cases) {
    const { res, ms } = await run(lp, 'raw', { url: `http://127.0.0.1:${rawPort}${p}`, timeout: 3000 });
    assert.match(res.error ?? '', re, `${p}: ${JSON.stringify(res)}`);
    assert.ok(ms < 2000, `${p} took ${ms} ms`);
  }
});

// ---- redirects ----

test('redirects are followed for GET: relative (/path) and absolute Location, 301/302/303/307/308', async () => {
  for (const code of [301, 302, 303, 307, 308]) {
    const to = encodeURIComponent('/echo?from=relative');
    const r = ok(await fetchVia(lp, 'redir', { url: `${H()}/redirect?code=${code}&to=${to}`, decode: true }), `${code} relative`);
    assert.equal(r.status, 200, `${code} relative`);
    assert.equal(r.json.url, '/echo?from=relative');
    assert.equal(r.json.method, 'GET');
  }
  const abs = encodeURIComponent(`http://localhost:${plainPort}/echo?from=absolute`);
  const r = ok(await fetchVia(lp, 'redir', { url: `${H()}/redirect?code=302&to=${abs}`, decode: true }), 'absolute');
  assert.equal(r.status, 200);
  assert.equal(r.json.url, '/echo?from=absolute');
  assert.equal(r.json.headers.host, `localhost:${plainPort}`, 'the host header follows the redirect');
  // http -> https on another port
  const toTls = encodeURIComponent(`${S()}/echo?from=http`);
  const r2 = ok(await fetchVia(lp, 'redir', { url: `${H()}/redirect?to=${toTls}`, decode: true }), 'to https');
  assert.equal(r2.status, 200);
  assert.equal(r2.json.secure, true);
});

test('HEAD follows redirects too', async () => {
  const r = ok(await fetchVia(lp, 'redir', { url: `${H()}/hop/2`, method: 'HEAD' }), 'HEAD redirect');
  assert.equal(r.status, 200);
});

test('5 redirects are followed; a 6th, and a redirect loop, fail with "too many redirects"', async () => {
  const r = ok(await fetchVia(lp, 'redir', { url: `${H()}/hop/5` }), '5 hops');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'landed');
  const r6 = await fetchVia(lp, 'redir', { url: `${H()}/hop/6` });
  assert.match(r6.error ?? '', /too many redirects/, JSON.stringify(r6));
  const before = hits.loop;
  const loop = await fetchVia(lp, 'redir', { url: `${H()}/loop` });
  assert.match(loop.error ?? '', /too many redirects/, JSON.stringify(loop));
  assert.equal(hits.loop - before, 6, 'the first request plus 5 followed redirects');
});

test('POST is not redirected: the 30x comes back as the response', async () => {
  for (const code of [302, 307]) {
    const before = hits.redirectedPost;
    const r = ok(await fetchVia(lp, 'redir', {
      url: `${H()}/redirect?code=${code}&to=${encodeURIComponent('/echo')}`, method: 'POST', body: 'data',
    }), `POST ${code}`);
    assert.equal(r.status, code);
    assert.equal(r.ok, false);
    assert.equal(r.headers.location, '/echo');
    assert.equal(r.body, 'moved');
    assert.equal(hits.redirectedPost - before, 1);
  }
});

test('a path-relative Location ("target", "../target?q") is resolved against the current URL', async () => {
  const r = await fetchVia(lp, 'redir', { url: `${H()}/dir/page?to=target` });
  assert.ok(!r.error, `Location "target" from /dir/page: fetch raised "${r.error}"`);
  assert.equal(r.body, 'you reached /dir/target');
  const r2 = await fetchVia(lp, 'redir', { url: `${H()}/dir/page?to=${encodeURIComponent('../target?q=1')}` });
  assert.ok(!r2.error, `Location "../target?q=1" from /dir/page: fetch raised "${r2.error}"`);
  assert.equal(r2.body, 'you reached /target?q=1');
});

test('Location forms of RFC 3986: "./x", "../../../x", "//host:port/x", "?query", "/x?next=http://..."', async () => {
  // /dir/page?to=<Location> answers 302 with that Location; /dir/target, /target and
  // /dir/page (without ?to) answer "you reached <path><query>"
  const cases = [
    ['./target', '/dir/target'],
    ['../../../target', '/target'],
    [`//127.0.0.1:${plainPort}/target?via=network-path`, '/target?via=network-path'],
    ['/target?next=http://example.com/a', '/target?next=http://example.com/a'],
    ['target?next=https://example.com/', '/dir/target?next=https://example.com/'],
    ['?q=2', '/dir/page?q=2'],
  ];
  const wrong = [];
  for (const [loc, want] of cases) {
    const r = await fetchVia(lp, 'redir', { url: `${H()}/dir/page?to=${encodeURIComponent(loc)}` });
    const got = r.error ? `error "${r.error}"` : r.body;
    if (got !== `you reached ${want}`) wrong.push(`Location "${loc}": expected "you reached ${want}", got ${got}`);
  }
  assert.deepEqual(wrong, []);
});

test('a long redirect Location (3000-byte query) is followed exactly, not truncated', async () => {
  const pad = 'p'.repeat(3000);
  const to = encodeURIComponent(`/echo?pad=${pad}`);
  const r = await fetchVia(lp, 'redir', { url: `${H()}/redirect?to=${to}`, decode: true });
  assert.ok(!r.error, `fetch raised "${r.error}"`);
  assert.equal(r.status, 200);
  const want = `/echo?pad=${pad}`.length;
  assert.equal(r.json.url.length, want, `the server was asked for ${r.json.url.length} bytes of target, the Location had ${want}`);
});

// ---- timeouts, concurrency within a room ----

test('{timeout=500} against a 3 s server fails in ~0.5 s; the room and other rooms keep serving meanwhile', async () => {
  // a long fetch in room A, started first
  const slowHits = hits.slow;
  const long = run(lp, 'slow-a', { url: `${H()}/slow?ms=3000` });
  await waitFor(() => hits.slow > slowHits, 3000, { what: 'the slow server to see the fetch' });

  // another room answers at once
  let t0 = Date.now();
  const other = await httpRequest(`${lp.url}/parties/main/slow-b`, { timeout: 2000 });
  const otherMs = Date.now() - t0;
  assert.equal(other.text, 'pong');
  assert.ok(otherMs < 200, `another room took ${otherMs} ms while room A waits on fetch`);
  // and so does room A itself: only the fetching callback is suspended
  t0 = Date.now();
  const same = await httpRequest(`${lp.url}/parties/main/slow-a`, { timeout: 2000 });
  const sameMs = Date.now() - t0;
  assert.equal(same.text, 'pong');
  assert.ok(sameMs < 200, `room A itself took ${sameMs} ms while one of its callbacks waits on fetch`);

  // a fetch with a 500 ms timeout, while the long one is still waiting
  const { res: timed, ms } = await run(lp, 'slow-c', { url: `${H()}/slow?ms=3000`, timeout: 500 });
  assert.match(timed.error ?? '', /fetch http:\/\/127\.0\.0\.1:\d+\/slow\?ms=3000 timed out/, JSON.stringify(timed));
  assert.ok(ms >= 450 && ms < 1500, `the 500 ms timeout fired after ${ms} ms`);

  const { res: longRes, ms: longMs } = await long;
  ok(longRes, 'the 3 s fetch');
  assert.equal(longRes.body, 'slow done');
  assert.ok(longMs >= 2900 && longMs < 6000, `the 3 s fetch took ${longMs} ms`);
});

test('partykit.json fetchTimeout (1 s) is the default timeout', async () => {
  const { res, ms } = await run(lpConf, 'timeout', { url: `http://localhost:${plainPort}/slow?ms=3000` });
  assert.match(res.error ?? '', /timed out/, JSON.stringify(res));
  assert.ok(ms >= 900 && ms < 2000, `fetchTimeout 1 s fired after ${ms} ms`);
});

test('a TLS handshake that never completes times out ({timeout=300})', async () => {
  const { res, ms } = await run(lp, 'timeout', { url: `https://localhost:${silentPort}/`, timeout: 300 });
  assert.match(res.error ?? '', /timed out/, JSON.stringify(res));
  assert.ok(ms >= 250 && ms < 1500, `took ${ms} ms`);
});

test('50 concurrent fetches from 10 rooms all succeed', async () => {
  const jobs = [];
  for (let i = 0; i < 50; i++) {
    const room = `many-${i % 10}`;
    const url = i % 5 === 4 ? `${S()}/echo?i=${i}` : `${H()}/echo?i=${i}`;
    jobs.push(fetchVia(lp, room, { url, method: 'POST', body: `body ${i}`, decode: true }).then((r) => ({ i, r })));
  }
  const results = await Promise.all(jobs);
  for (const { i, r } of results) {
    ok(r, `fetch #${i}`);
    assert.equal(r.status, 200, `fetch #${i}`);
    assert.equal(r.json.url, `/echo?i=${i}`);
    assert.equal(r.json.body, `body ${i}`);
  }
});

// ---- limits ----

test('a 20 MiB response (content-length) is refused: "larger than" the default 16 MiB', async () => {
  const r = await fetchVia(lp, 'limit', { url: `${H()}/big?n=${20 * MiB}`, lengthOnly: true });
  assert.match(r.error ?? '', /response from 127\.0\.0\.1 is larger than 16777216 bytes/, JSON.stringify(r).slice(0, 500));
});

test('a 20 MiB chunked response is refused: "larger than" the default 16 MiB', async () => {
  const r = await fetchVia(lp, 'limit', { url: `${H()}/big?chunked=1&n=${20 * MiB}`, lengthOnly: true });
  assert.match(r.error ?? '', /response from 127\.0\.0\.1 is larger than 16777216 bytes/, JSON.stringify(r).slice(0, 500));
});

test('HEAD of a 20 MiB resource is not refused by the size limit (there is no body)', async () => {
  const r = await fetchVia(lp, 'limit', { url: `${H()}/big?n=${20 * MiB}`, method: 'HEAD' });
  assert.ok(!r.error, `HEAD of a 20 MiB resource raised "${r.error}"`);
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-length'], String(20 * MiB));
});

test('fetchMaxBytes 1000: 1000 bytes pass; a chunked body past 1000 bytes is "larger than 1000 bytes"', async () => {
  const base = `http://localhost:${plainPort}`;
  const r = ok(await fetchVia(lpConf, 'limit', { url: `${base}/big?n=1000`, lengthOnly: true }), '1000 bytes');
  assert.equal(r.length, 1000);
  const r2 = ok(await fetchVia(lpConf, 'limit', { url: `${base}/big?chunked=1&n=1000`, lengthOnly: true }), '1000 bytes chunked');
  assert.equal(r2.length, 1000);
  for (const q of ['chunked=1&n=1001', 'chunked=1&n=100000']) {
    const big = await fetchVia(lpConf, 'limit', { url: `${base}/big?${q}`, lengthOnly: true });
    assert.match(big.error ?? '', /response from localhost is larger than 1000 bytes/, `${q}: ${JSON.stringify(big)}`);
  }
});

test('fetchMaxBytes 1000: a content-length of 1001 is "larger than 1000 bytes"', async () => {
  const big = await fetchVia(lpConf, 'limit', { url: `http://localhost:${plainPort}/big?n=1001`, lengthOnly: true });
  assert.match(big.error ?? '', /response from localhost is larger than 1000 bytes/, JSON.stringify(big));
});

test('the server still works after the size-limit failures (a fresh connection is used)', async () => {
  const r = ok(await fetchVia(lp, 'limit', { url: `${H()}/small` }), 'after limits');
  assert.equal(r.body, 'ok');
});

// ---- errors ----

test('connection refused', async () => {
  const r = await fetchVia(lp, 'errors', { url: `http://127.0.0.1:${closedPort}/` });
  assert.match(r.error ?? '', new RegExp(`connect to 127\\.0\\.0\\.1:${closedPort} failed: connection refused`), JSON.stringify(r));
});

test('DNS failure for a .invalid name: "could not resolve host"', async () => {
  const { res, ms } = await run(lp, 'errors', { url: 'http://no-such-host.invalid/x', timeout: 5000 });
  assert.match(res.error ?? '', /could not resolve host no-such-host\.invalid/, JSON.stringify(res));
  assert.ok(ms < 5000, `took ${ms} ms`);
});

test('bad URLs and bad arguments raise clear errors (nothing is sent)', async () => {
  const cases = [
    [{ url: 'ftp://127.0.0.1/x' }, /fetch\('ftp:\/\/127\.0\.0\.1\/x'\): .*http:\/\/, https:\/\//],
    [{ url: `ws://127.0.0.1:${plainPort}/` }, /fetch\('ws:\/\/127\.0\.0\.1:\d+\/'\): /],
    [{ url: `http://127.0.0.1:99999/` }, /bad port in URL/],
    [{ url: 'http:///path' }, /bad host in URL/],
    [{ url: `${H()}/echo`, headers: { 'x-evil': 'a\r\nx-injected: 1' } }, /header values must be strings without CR, LF or NUL/],
    [{ url: `${H()}/echo`, method: 'GE T' }, /method must be an uppercase token/],
  ];
  for (const [cmd, re] of cases) {
    const r = await fetchVia(lp, 'errors', cmd);
    assert.match(r.error ?? '', re, `${JSON.stringify(cmd)} -> ${JSON.stringify(r)}`);
  }
});

test('plain http to a TLS port fails (no hang)', async () => {
  const { res, ms } = await run(lp, 'errors', { url: `http://127.0.0.1:${securePort}/echo`, timeout: 3000 });
  assert.ok(res.error, `expected an error, got ${JSON.stringify(res).slice(0, 300)}`);
  assert.doesNotMatch(res.error, /timed out/, `it only failed by its timeout (${ms} ms)`);
});

test('fetch inside storage:transaction raises a clear error and the transaction is rolled back', async () => {
  const { res } = await run(lp, 'txn', { op: 'txn', url: `${H()}/small` });
  assert.match(res.error ?? '', /fetch cannot be called inside storage:transaction\(\)/, JSON.stringify(res));
  assert.equal(res.stored, undefined, 'the write made inside the failed transaction was undone');
});

test('fetch from a coroutine the script created raises a clear error', async () => {
  const { res } = await run(lp, 'co', { op: 'coroutine', url: `${H()}/small` });
  assert.match(res.error ?? '', /fetch must be called from a party callback/, JSON.stringify(res));
});

// ---- https ----

test('https with --tls-ca: 200, to "localhost" (DNS SAN) and to 127.0.0.1 (IP SAN)', async () => {
  const r = ok(await fetchVia(lp, 'tls', { url: `${S()}/echo`, method: 'POST', body: 'over tls', decode: true }), 'https localhost');
  assert.equal(r.status, 200);
  assert.equal(r.json.secure, true);
  assert.equal(r.json.body, 'over tls');
  assert.equal(r.json.headers.host, `localhost:${securePort}`);
  const r2 = ok(await fetchVia(lp, 'tls', { url: `https://127.0.0.1:${securePort}/chunked` }), 'https 127.0.0.1');
  assert.equal(r2.body, 'alpha-beta-gamma-delta-end');
  const r3 = ok(await fetchVia(lp, 'tls', { url: `${S()}/big?n=${3 * MiB}`, lengthOnly: true }), 'https 3 MiB');
  assert.equal(r3.length, 3 * MiB);
});

test('https without --tls-ca: "certificate verify failed"', async () => {
  const r = await fetchVia(lpNoCa, 'tls', { url: `${S()}/echo` });
  assert.match(r.error ?? '', /TLS with localhost failed: certificate verify failed/, JSON.stringify(r));
});

test('https to a certificate for another name: "certificate verify failed" (hostname mismatch)', async () => {
  const r = await fetchVia(lp, 'tls', { url: `https://localhost:${wrongPort}/echo` });
  assert.match(r.error ?? '', /TLS with localhost failed: certificate verify failed: hostname mismatch/i, JSON.stringify(r));
  const r2 = await fetchVia(lp, 'tls', { url: `https://127.0.0.1:${wrongPort}/echo` });
  assert.match(r2.error ?? '', /certificate verify failed: IP address mismatch/i, JSON.stringify(r2));
});

test('https to a plain-http port: a TLS error, quickly', async () => {
  const { res, ms } = await run(lp, 'tls', { url: `https://localhost:${plainPort}/echo`, timeout: 3000 });
  assert.match(res.error ?? '', /TLS with localhost failed/, JSON.stringify(res));
  assert.ok(ms < 2000, `took ${ms} ms`);
});

// ---- allow-list ----

test('allow-list ["localhost", "*.example.test"]: localhost works, 127.0.0.1 is refused with the message', async () => {
  const r = ok(await fetchVia(lpConf, 'allow', { url: `http://localhost:${plainPort}/small` }), 'localhost');
  assert.equal(r.body, 'ok');
  const before = plain.connections;
  const refused = await fetchVia(lpConf, 'allow', { url: `http://127.0.0.1:${plainPort}/small` });
  assert.match(refused.error ?? '',
    /fetch to 127\.0\.0\.1 refused: the host is not in luaparty\.outbound of partykit\.json/, JSON.stringify(refused));
  assert.equal(plain.connections, before, 'a refused host is never connected to');
  // the wildcard: sub-domains pass the allow-list (then fail DNS), the bare and look-alike domains do not
  const sub = await fetchVia(lpConf, 'allow', { url: 'http://api.example.test/', timeout: 3000 });
  assert.doesNotMatch(sub.error ?? '', /refused/, `api.example.test: ${JSON.stringify(sub)}`);
  for (const host of ['example.test', 'badexample.test']) {
    const r2 = await fetchVia(lpConf, 'allow', { url: `http://${host}/` });
    assert.match(r2.error ?? '', new RegExp(`fetch to ${host.replace(/\./g, '\\.')} refused`), JSON.stringify(r2));
  }
});

test('allow-list: a redirect to a host not on the list is refused', async () => {
  const to = encodeURIComponent(`http://127.0.0.1:${plainPort}/small`);
  const r = await fetchVia(lpConf, 'allow', { url: `http://localhost:${plainPort}/redirect?to=${to}` });
  assert.match(r.error ?? '', /fetch to 127\.0\.0\.1 refused/, JSON.stringify(r));
});

// ---- keep-alive ----

test('keep-alive: 20 sequential fetches to one origin use at most 2 TCP connections (http and https)', async () => {
  const c0 = kaServer.connections;
  const { res } = await run(lp, 'ka', { op: 'seq', n: 20, url: `http://127.0.0.1:${kaPort}/small` });
  assert.deepEqual(list(res.errors), [], JSON.stringify(res.errors));
  assert.equal(list(res.statuses).length, 20);
  const used = kaServer.connections - c0;
  assert.ok(used >= 1 && used <= 2, `20 sequential fetches opened ${used} connections`);

  // across separate callbacks (separate party requests) too
  const c1 = kaServer.connections;
  for (let i = 0; i < 20; i++) {
    const r = ok(await fetchVia(lp, `ka-${i % 3}`, { url: `http://127.0.0.1:${kaPort}/small` }), `request ${i}`);
    assert.equal(r.body, 'ok');
  }
  const used2 = kaServer.connections - c1;
  assert.ok(used2 <= 2, `20 fetches from separate requests opened ${used2} connections`);

  const s0 = secure.connections;
  const { res: tlsRes } = await run(lp, 'ka', { op: 'seq', n: 20, url: `${S()}/small` });
  assert.deepEqual(list(tlsRes.errors), [], JSON.stringify(tlsRes.errors));
  assert.equal(list(tlsRes.statuses).length, 20);
  const usedTls = secure.connections - s0;
  assert.ok(usedTls <= 2, `20 sequential https fetches opened ${usedTls} connections`);
});

test('a kept-alive connection the peer closed is not reused: the next fetch still succeeds', async () => {
  const r = ok(await fetchVia(lp, 'ka', { url: `http://127.0.0.1:${kaPort}/small` }), 'first');
  assert.equal(r.body, 'ok');
  for (const sock of kaServer.sockets) sock.destroy(); // the server drops its idle connections
  await sleep(100);
  const r2 = ok(await fetchVia(lp, 'ka', { url: `http://127.0.0.1:${kaPort}/small` }), 'after the peer closed');
  assert.equal(r2.body, 'ok');
});

// ---- survival ----

test('a fetch that times out while the name is still being resolved does not hurt the server', async () => {
  // timeout = 1 ms to names that need a DNS query (a few ms even when the resolver
  // answers at once): the deadline fires, and the connection is closed, while
  // uv_getaddrinfo is still running in the thread pool. Then the same with 200 lookups
  // of "localhost" queued on the thread pool at once.
  // Its own server, so that a crash here is reported here and nowhere else.
  const s = await startServer({ project: 'fetch' });
  let failure;
  try {
    for (let i = 0; i < 5 && s.alive(); i++) {
      const r = await fetchVia(s, 'dns-race', { url: `http://race-${i}.invalid/`, timeout: 1 })
        .catch((e) => ({ error: `request failed: ${e.message}` }));
      assert.ok(r.error, JSON.stringify(r));
      await sleep(20);
    }
    if (s.alive()) {
      const rs = await Promise.all(Array.from({ length: 200 }, (_, i) =>
        fetchVia(s, `dns-race-${i % 10}`, { url: `http://localhost:${closedPort}/`, timeout: 1 })
          .catch((e) => ({ error: `request failed: ${e.message}` }))));
      for (const r of rs) assert.ok(r.error, JSON.stringify(r));
    }
    await sleep(200);
    assert.ok(s.alive(), `luaparty died (${JSON.stringify(s.exitInfo)}) after fetches with timeout=1 ms to ` +
      `names that need a DNS query; log tail:\n${s.logs().slice(-4000)}`);
    const r = ok(await fetchVia(s, 'dns-race', { url: `${H()}/small` }), 'after the race');
    assert.equal(r.body, 'ok');
  } catch (e) {
    failure = e;
  }
  const r = await s.stop();
  if (failure) throw failure;
  assert.equal(r.code, 0, `exit: ${JSON.stringify(r)}`);
});

test('SIGTERM with fetches in flight (http waiting for a response, https mid-handshake): no crash, exit 0', async () => {
  const s = await startServer({ project: 'fetch', args: ['--tls-ca', certs.caFile] });
  const slowHits = hits.slow;
  const silentSeen = silent.accepted;
  const post = (room, cmd) => httpRequest(`${s.url}/parties/main/${room}`, {
    method: 'POST', body: JSON.stringify(cmd), timeout: 10_000,
  }).then((r) => ({ status: r.status, text: r.text }), (e) => ({ error: e.message }));
  const inflight = [
    post('term-http', { url: `${H()}/slow?ms=20000`, timeout: 30_000 }),
    post('term-tls', { url: `${S()}/slow?ms=20000`, timeout: 30_000 }),
    post('term-handshake', { url: `https://localhost:${silentPort}/`, timeout: 30_000 }),
  ];
  await waitFor(() => hits.slow >= slowHits + 2 && silent.accepted > silentSeen, 3000,
    { what: 'the three fetches to reach their servers' });
  const r = await s.stop(8000);
  const answers = await Promise.all(inflight); // settled either way; must not hang
  assert.equal(r.killed, false, `luaparty ignored SIGTERM for 8 s:\n${s.logs().slice(-2000)}`);
  assert.equal(r.signal, null, `luaparty died by ${r.signal}:\n${s.logs().slice(-3000)}`);
  assert.equal(r.code, 0, `exit code ${r.code}:\n${s.logs().slice(-3000)}`);
  assert.ok(r.ms < 7000, `shutdown took ${r.ms} ms (the README promises at most 5 s)`);
  assert.doesNotMatch(s.logs(), /AddressSanitizer|runtime error|Segmentation|Assertion/);
  console.log(`# SIGTERM with 3 fetches in flight: exit ${r.code} after ${r.ms} ms; clients got ${JSON.stringify(answers)}`);
});
