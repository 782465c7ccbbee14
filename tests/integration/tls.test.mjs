// Serving https and wss (src/tls.c, src/server.c on_tls_read/out_push,
// src/cli.c --tls-cert/--tls-key, src/main.c SIGHUP): the seed project
// (examples/multiparty) behind `luaparty serve --tls-cert C --tls-key K`,
// talked to by node's https, `ws` and the npm partysocket client, all
// trusting a private CA made with `openssl` at test time. Also: plaintext
// clients on the TLS port, broken and stalled handshakes, garbage records,
// certificate reload on SIGHUP (good and bad pairs), start-up errors, and
// large/pipelined frames through the echo bench project.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { Duplex } from 'node:stream';
import WS from 'ws';
import PartySocket from 'partysocket';
import {
  REPO, EXAMPLES, mkTmp, sleep, waitFor, rawHttp, runExpectExit, startServer,
} from './lib/server.mjs';
import { testCA } from './lib/certs.mjs';

const MULTIPARTY = path.join(EXAMPLES, 'multiparty');
const BENCH = path.join(REPO, 'bench', 'project');
const ACTIVE = '/parties/connections/active-connections';

// ---- certificates (openssl, at test time) ----

let certs;

function makeCerts() {
  const ca = testCA('tls');
  return {
    dir: ca.dir,
    ca: ca.ca,
    first: ca.leaf('first', 'localhost', 'DNS:localhost,IP:127.0.0.1'),
    second: ca.leaf('second', 'localhost (renewed)', 'DNS:localhost,IP:127.0.0.1'),
    wrongName: ca.leaf('wrong', 'wrong.test', 'DNS:wrong.test'),
    strayKeyFile: ca.strayKeyFile(),
  };
}

/** A fresh cert/key pair at paths this test may overwrite (for SIGHUP). */
function pairCopy(pair) {
  const dir = mkTmp('luaparty-tls-pair-');
  const certFile = path.join(dir, 'server.pem');
  const keyFile = path.join(dir, 'server.key');
  fs.writeFileSync(certFile, pair.cert);
  fs.writeFileSync(keyFile, pair.key);
  return { dir, certFile, keyFile };
}

// ---- luaparty serve with TLS ----

function startTls({ project = MULTIPARTY, certFile, keyFile, args = [], startTimeout = 15000 } = {}) {
  const tlsArgs = [];
  if (certFile) tlsArgs.push('--tls-cert', certFile);
  if (keyFile) tlsArgs.push('--tls-key', keyFile);
  return startServer({ project, command: 'serve', args: [...tlsArgs, ...args], startTimeout });
}

// ---- clients ----

/** https request trusting the test CA; resolves {status, body, fingerprint, headers}. */
function httpsGet(port, pathname, { host = 'localhost', ca = certs.ca, timeout = 5000, method = 'GET' } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', servername: host === '127.0.0.1' ? undefined : host, port, path: pathname, method,
      ca, agent: false, headers: { host: `${host}:${port}` }, timeout,
      checkServerIdentity: (h, cert) => tls.checkServerIdentity(host, cert),
    }, (res) => {
      const fingerprint = res.socket.getPeerCertificate()?.fingerprint256;
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), fingerprint }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`https ${method} ${pathname}: no answer within ${timeout} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** A ws client over wss trusting the test CA; queues messages; every wait is bounded. */
function wssConnect(url, { ca = certs.ca, timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WS(url, { ca, handshakeTimeout: timeout });
    const queue = [];
    const waiters = [];
    let closeInfo = null;
    let resolveClosed;
    const closed = new Promise((r) => { resolveClosed = r; });
    ws.on('error', (e) => { if (ws.readyState !== WS.OPEN) reject(e); });
    ws.on('message', (data, isBinary) => {
      const msg = { data: isBinary ? Buffer.from(data) : data.toString('utf8'), isBinary };
      const w = waiters.shift();
      if (w) w(msg); else queue.push(msg);
    });
    ws.on('close', (code, reason) => { closeInfo = { code, reason: reason.toString() }; resolveClosed(closeInfo); });
    ws.on('open', () => resolve({
      ws,
      fingerprint: ws._socket.getPeerCertificate()?.fingerprint256,
      closed,
      get closeInfo() { return closeInfo; },
      next(ms = 3000) {
        if (queue.length) return Promise.resolve(queue.shift());
        return new Promise((res, rej) => {
          const w = (m) => { clearTimeout(t); res(m); };
          const t = setTimeout(() => {
            const i = waiters.indexOf(w);
            if (i >= 0) waiters.splice(i, 1);
            rej(new Error(`no message on ${url} within ${ms} ms (closed: ${JSON.stringify(closeInfo)})`));
          }, ms);
          waiters.push(w);
        });
      },
      async nextJson(ms) {
        const m = await this.next(ms);
        assert.equal(m.isBinary, false, 'expected a text frame');
        return JSON.parse(m.data);
      },
      async close() {
        if (ws.readyState === WS.OPEN || ws.readyState === WS.CONNECTING) ws.close(1000);
        let t;
        const r = await Promise.race([closed, new Promise((res) => { t = setTimeout(() => res(null), 2000); })]);
        clearTimeout(t);
        if (!r) ws.terminate();
        return r;
      },
    }));
  });
}

/** TLS handshake only: resolves the peer certificate's fingerprint, or rejects with the TLS error. */
function tlsFingerprint(port, { ca = certs.ca, servername = 'localhost', timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.setTimeout(timeout, () => s.destroy(new Error(`TLS handshake with 127.0.0.1:${port}: no answer within ${timeout} ms`)));
    s.on('error', reject);
  });
}

/** Resolves when the socket closes (true) or after ms (false). */
function closedWithin(sock, ms) {
  return new Promise((resolve) => {
    if (sock.destroyed && sock.readyState === 'closed') { resolve(true); return; }
    const t = setTimeout(() => resolve(false), ms);
    sock.once('close', () => { clearTimeout(t); resolve(true); });
  });
}

/** The first flight of a real TLS client (its ClientHello), captured by a local listener. */
async function captureClientHello() {
  let resolveHello;
  const hello = new Promise((r) => { resolveHello = r; });
  const srv = net.createServer((s) => {
    s.once('data', (d) => { resolveHello(Buffer.from(d)); s.destroy(); });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const c = tls.connect({ host: '127.0.0.1', port: srv.address().port, servername: 'localhost', ca: certs.ca });
  c.on('error', () => {});
  let t;
  const bytes = await Promise.race([hello, new Promise((_, rej) => { t = setTimeout(() => rej(new Error('no ClientHello captured')), 3000); })]);
  clearTimeout(t);
  c.destroy();
  srv.close();
  return bytes;
}

/**
 * A real TLS handshake whose TCP side we hold: {t: the TLS socket, up: the
 * raw TCP socket}, so junk can be written under the TLS layer.
 */
async function handshakeViaRelay(port) {
  const up = net.connect({ host: '127.0.0.1', port });
  await new Promise((res, rej) => { up.once('connect', res); up.once('error', rej); });
  up.on('error', () => {});
  const duplex = new Duplex({ read() {}, write(chunk, enc, cb) { up.write(chunk, cb); } });
  up.on('data', (d) => duplex.push(d));
  up.on('close', () => duplex.push(null));
  const t = tls.connect({ socket: duplex, servername: 'localhost', ca: certs.ca });
  t.on('error', () => {});
  await new Promise((res, rej) => { t.once('secureConnect', res); t.once('error', rej); });
  return { t, up };
}

const sameMap = (a, b) => { try { assert.deepEqual(a, b); return true; } catch { return false; } };

/** Reads maps from a listener until one equals `expected` (broadcasts of the seed project). */
async function untilMap(listener, expected, ms = 4000) {
  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < ms) {
    last = await listener.nextJson(ms - (Date.now() - t0));
    if (sameMap(last, expected)) return last;
  }
  assert.fail(`listener never saw ${JSON.stringify(expected)}; last ${JSON.stringify(last)}`);
}

// ---- shared server ----

let srv;
before(async () => {
  certs = makeCerts();
  srv = await startTls({ certFile: certs.first.certFile, keyFile: certs.first.keyFile });
});
after(async () => { await srv?.stop(); });

test('the start-up line says https', () => {
  assert.equal(srv.scheme, 'https', srv.logs());
  assert.match(srv.logs(), /listening on https:\/\/127\.0\.0\.1:\d+/);
});

test('(1) https GET of the connections room answers 200 {} and presents the configured certificate', { timeout: 15000 }, async () => {
  const r = await httpsGet(srv.port, ACTIVE);
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(JSON.parse(r.body), {});
  assert.equal(r.fingerprint, certs.first.fingerprint);
  // by IP: the certificate's IP SAN
  const r2 = await httpsGet(srv.port, ACTIVE, { host: '127.0.0.1' });
  assert.equal(r2.status, 200);
  // keep-alive: two requests, one TLS connection
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: certs.ca });
  try {
    const sockets = new Set();
    for (let i = 0; i < 3; i++) {
      const st = await new Promise((resolve, reject) => {
        const req = https.get({ host: 'localhost', port: srv.port, path: ACTIVE, agent, timeout: 5000 }, (res) => {
          sockets.add(res.socket);
          res.resume();
          res.on('end', () => resolve(res.statusCode));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
      });
      assert.equal(st, 200);
    }
    assert.equal(sockets.size, 1, 'keep-alive requests reuse one TLS connection');
  } finally {
    agent.destroy();
  }
});

test('(1b) pipelined requests in one TLS write get answers in order', { timeout: 15000 }, async () => {
  const s = tls.connect({ host: '127.0.0.1', port: srv.port, servername: 'localhost', ca: certs.ca });
  try {
    await new Promise((res, rej) => { s.once('secureConnect', res); s.once('error', rej); });
    const req = (p) => `GET ${p} HTTP/1.1\r\nHost: localhost\r\n\r\n`;
    let got = '';
    s.on('data', (d) => { got += d.toString('latin1'); });
    s.write(req(ACTIVE) + req('/parties/connections/no-such-room-yet') + req(ACTIVE));
    await waitFor(() => (got.match(/HTTP\/1\.1 200/g) || []).length >= 3, 5000, { what: '3 pipelined responses' });
    assert.equal((got.match(/HTTP\/1\.1 /g) || []).length, 3, got);
  } finally {
    s.destroy();
  }
});

test('(2) ws over wss: the listener gets each new map as clients come and go', { timeout: 20000 }, async () => {
  const base = `wss://localhost:${srv.port}`;
  const listener = await wssConnect(base + ACTIVE);
  assert.equal(listener.fingerprint, certs.first.fingerprint);
  const opened = [];
  try {
    const a = await wssConnect(`${base}/parties/main/tls-room`);
    opened.push(a);
    await untilMap(listener, { 'tls-room': 1 });
    const b = await wssConnect(`wss://127.0.0.1:${srv.port}/parties/main/tls-room`); // by IP SAN
    opened.push(b);
    await untilMap(listener, { 'tls-room': 2 });
    const c = await wssConnect(`${base}/parties/main/other-tls-room`);
    opened.push(c);
    await untilMap(listener, { 'tls-room': 2, 'other-tls-room': 1 });
    await a.close();
    await untilMap(listener, { 'tls-room': 1, 'other-tls-room': 1 });
    await b.close();
    await c.close();
    await untilMap(listener, { 'tls-room': 0, 'other-tls-room': 0 });
    const r = await httpsGet(srv.port, ACTIVE);
    assert.deepEqual(JSON.parse(r.body), { 'tls-room': 0, 'other-tls-room': 0 });
  } finally {
    for (const c of opened) await c.close();
    await listener.close();
  }
});

test('(3) the npm partysocket client over wss (protocol "wss", ws with the CA)', { timeout: 20000 }, async () => {
  const ca = certs.ca;
  class CaWebSocket extends WS {
    constructor(url, protocols) { super(url, protocols, { ca }); }
  }
  const msgs = [];
  const mk = (party, room) => new PartySocket({
    host: `localhost:${srv.port}`, protocol: 'wss', party, room, WebSocket: CaWebSocket, maxRetries: 0,
  });
  const listener = mk('connections', 'active-connections');
  listener.addEventListener('message', (e) => msgs.push(JSON.parse(String(e.data))));
  let ps;
  try {
    await waitFor(() => listener.readyState === 1, 5000, { what: 'partysocket listener open' });
    assert.match(listener.url, /^wss:\/\/localhost:\d+\/parties\/connections\/active-connections\?_pk=/);
    ps = mk('main', 'partysocket-tls');
    await waitFor(() => msgs.some((m) => m['partysocket-tls'] === 1), 5000, { what: 'map with partysocket-tls: 1' });
    ps.close();
    await waitFor(() => msgs.some((m) => m['partysocket-tls'] === 0), 5000, { what: 'map with partysocket-tls: 0' });
  } finally {
    ps?.close();
    listener.close();
  }
});

test('(4) plaintext http to the TLS port gets no HTTP response; TLS clients go on', { timeout: 20000 }, async () => {
  const listener = await wssConnect(`wss://localhost:${srv.port}${ACTIVE}`);
  try {
    const raw = await rawHttp(srv.port, `GET ${ACTIVE} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, { timeout: 3000 });
    assert.ok(!raw.text.startsWith('HTTP/'), `a plaintext request got an HTTP answer: ${JSON.stringify(raw.text.slice(0, 80))}`);
    assert.equal(raw.closed, true, 'the plaintext client is dropped (not left hanging)');
    await assert.rejects(fetch(`http://127.0.0.1:${srv.port}${ACTIVE}`, { signal: AbortSignal.timeout(3000) }));
    // TLS clients still work, old and new
    const r = await httpsGet(srv.port, ACTIVE);
    assert.equal(r.status, 200);
    const c = await wssConnect(`wss://localhost:${srv.port}/parties/main/after-plaintext`);
    await untilMap(listener, { ...JSON.parse(r.body), 'after-plaintext': 1 });
    await c.close();
    assert.ok(srv.alive());
  } finally {
    await listener.close();
  }
});

test('(5) garbage after the handshake, aborted and stalled handshakes do not hurt others', { timeout: 25000 }, async () => {
  // a separate server with a short header timeout, to see stalled handshakes dropped
  const s2 = await startTls({ certFile: certs.first.certFile, keyFile: certs.first.keyFile, args: ['--header-timeout', '1'] });
  const listener = await wssConnect(`wss://localhost:${s2.port}${ACTIVE}`);
  try {
    const hello = await captureClientHello();
    assert.equal(hello[0], 0x16, 'captured a TLS handshake record');

    // a good handshake, then an application-data record of junk (bad MAC)
    const g = await handshakeViaRelay(s2.port);
    const junk = Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x40]), crypto.randomBytes(64)]);
    g.up.write(junk);

    // plain net sockets for the raw cases
    const rawClient = (bytes, after = 'keep') => new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: s2.port }, () => {
        s.write(bytes);
        if (after === 'end') s.end();
        if (after === 'destroy') s.destroy();
        if (after === 'reset') s.resetAndDestroy();
        resolve(s);
      });
      s.on('error', () => {});
    });
    const junkAfterHello = await rawClient(Buffer.concat([hello, junk]));
    const halfHello = await rawClient(hello.subarray(0, Math.floor(hello.length / 2)), 'destroy');
    const resetHello = await rawClient(hello, 'reset');
    const stalled = await rawClient(hello.subarray(0, 10)); // then says nothing more
    const notTls = await rawClient(crypto.randomBytes(300));
    assert.equal(await closedWithin(g.up, 3000), true, 'junk records after the handshake: dropped');
    g.t.destroy();
    assert.equal(await closedWithin(notTls, 3000), true, 'random bytes instead of a ClientHello: dropped');
    assert.equal(await closedWithin(junkAfterHello, 3000), true, 'junk after the ClientHello: dropped');
    assert.equal(await closedWithin(stalled, 4000), true, 'a stalled handshake is dropped by the header timeout');
    halfHello.destroy();
    resetHello.destroy();

    // a slow request after a good handshake gets its 408, encrypted
    const slow = tls.connect({ host: '127.0.0.1', port: s2.port, servername: 'localhost', ca: certs.ca });
    slow.on('error', () => {});
    await new Promise((res, rej) => { slow.once('secureConnect', res); slow.once('error', rej); });
    let slowGot = '';
    slow.on('data', (d) => { slowGot += d.toString('latin1'); });
    slow.write('GET /parties/connections/x HTTP/1.1\r\nHost: localhost\r\n'); // no blank line
    assert.equal(await closedWithin(slow, 4000), true, 'a slow request over TLS is dropped by the header timeout');
    assert.match(slowGot, /^HTTP\/1\.1 408/, `the 408 arrives over TLS: ${JSON.stringify(slowGot)}`);

    // others are fine
    const r = await httpsGet(s2.port, ACTIVE);
    assert.equal(r.status, 200);
    const c = await wssConnect(`wss://localhost:${s2.port}/parties/main/survivor`);
    await untilMap(listener, { survivor: 1 });
    await c.close();
    await untilMap(listener, { survivor: 0 });
    assert.ok(s2.alive(), s2.logs());
  } finally {
    await listener.close();
    await s2.stop();
  }
});

test('(5b) a keep-alive https client whose next record is garbage is dropped; others go on', { timeout: 15000 }, async () => {
  const g = await handshakeViaRelay(srv.port);
  let got = '';
  g.t.on('data', (d) => { got += d.toString('latin1'); });
  g.t.write(`GET ${ACTIVE} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  await waitFor(() => got.includes('HTTP/1.1 200'), 5000, { what: 'answer over the relay' });
  // now an application-data record full of junk, under the TLS layer
  g.up.write(Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x40]), crypto.randomBytes(64)]));
  assert.equal(await closedWithin(g.up, 3000), true, 'the server closes a connection with a bad record');
  g.t.destroy();
  const r = await httpsGet(srv.port, ACTIVE);
  assert.equal(r.status, 200);
  assert.ok(srv.alive());
});

test('(5c) TLS records dribbled one byte at a time still make a request and a wss session', { timeout: 20000 }, async () => {
  // a relay that forwards client -> server one byte per tick
  const relay = net.createServer((c) => {
    const u = net.connect({ host: '127.0.0.1', port: srv.port });
    u.setNoDelay(true);
    const q = [];
    let pumping = false;
    const pump = () => {
      if (!q.length) { pumping = false; return; }
      pumping = true;
      const b = q.shift();
      u.write(b, () => setImmediate(pump));
    };
    c.on('data', (d) => { for (const byte of d) q.push(Buffer.from([byte])); if (!pumping) pump(); });
    u.on('data', (d) => c.write(d));
    c.on('close', () => u.destroy());
    u.on('close', () => c.destroy());
    c.on('error', () => {});
    u.on('error', () => {});
  });
  await new Promise((r) => relay.listen(0, '127.0.0.1', r));
  try {
    const r = await httpsGet(relay.address().port, ACTIVE, { timeout: 10000 });
    assert.equal(r.status, 200);
    const listener = await wssConnect(`wss://localhost:${relay.address().port}${ACTIVE}`, { timeout: 10000 });
    const c = await wssConnect(`wss://localhost:${srv.port}/parties/main/dribble`);
    await untilMap(listener, { ...JSON.parse(r.body), dribble: 1 }, 6000);
    await c.close();
    await listener.close();
  } finally {
    relay.close();
  }
});

test('(6) SIGHUP loads the renewed pair; open wss connections stay; a bad pair keeps the old certificate', { timeout: 30000 }, async () => {
  const files = pairCopy(certs.first);
  const s = await startTls({ certFile: files.certFile, keyFile: files.keyFile });
  let listener;
  const opened = [];
  const hup = async (what, re) => {
    const before = s.logs().length;
    s.proc.kill('SIGHUP');
    await waitFor(() => re.test(s.logs().slice(before)), 5000, { what: `log after SIGHUP (${what})` });
    return s.logs().slice(before);
  };
  try {
    assert.equal(await tlsFingerprint(s.port), certs.first.fingerprint);
    listener = await wssConnect(`wss://localhost:${s.port}${ACTIVE}`);
    const a = await wssConnect(`wss://localhost:${s.port}/parties/main/before-hup`);
    opened.push(a);
    await untilMap(listener, { 'before-hup': 1 });

    // renewed pair written over the same paths
    fs.writeFileSync(files.certFile, certs.second.cert);
    fs.writeFileSync(files.keyFile, certs.second.key);
    const log1 = await hup('renewed pair', /SIGHUP: reloaded|SIGHUP: .*previous certificate/);
    assert.match(log1, /SIGHUP: reloaded/, log1);
    assert.equal(await tlsFingerprint(s.port), certs.second.fingerprint, 'new connections get the new certificate');
    const r = await httpsGet(s.port, ACTIVE);
    assert.equal(r.fingerprint, certs.second.fingerprint);
    // the connections made before the reload are still open and working
    assert.equal(listener.closeInfo, null);
    assert.equal(listener.fingerprint, certs.first.fingerprint);
    const b = await wssConnect(`wss://localhost:${s.port}/parties/main/after-hup`);
    opened.push(b);
    assert.equal(b.fingerprint, certs.second.fingerprint);
    await untilMap(listener, { 'before-hup': 1, 'after-hup': 1 });
    await a.close();
    await untilMap(listener, { 'before-hup': 0, 'after-hup': 1 });

    // a broken key file: refused, old (second) certificate stays
    fs.writeFileSync(files.keyFile, '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n');
    const log2 = await hup('broken key', /SIGHUP: reloaded|still using the previous certificate/);
    assert.match(log2, /still using the previous certificate/, log2);
    assert.ok(log2.includes(files.keyFile), `the message names the key file: ${log2}`);
    assert.equal(await tlsFingerprint(s.port), certs.second.fingerprint);

    // a key that does not match the certificate: refused too
    fs.writeFileSync(files.keyFile, fs.readFileSync(certs.strayKeyFile));
    const log3 = await hup('mismatched key', /SIGHUP: reloaded|still using the previous certificate/);
    assert.match(log3, /still using the previous certificate/, log3);
    assert.ok(log3.includes(files.keyFile), `the message names the key file: ${log3}`);
    assert.equal(await tlsFingerprint(s.port), certs.second.fingerprint);

    // the certificate file gone: refused, names the certificate file
    fs.writeFileSync(files.keyFile, certs.second.key);
    fs.unlinkSync(files.certFile);
    const log4 = await hup('missing cert', /SIGHUP: reloaded|still using the previous certificate/);
    assert.match(log4, /still using the previous certificate/, log4);
    assert.ok(log4.includes(files.certFile), `the message names the certificate file: ${log4}`);

    // still serving, with the second certificate, on old and new connections
    const r2 = await httpsGet(s.port, ACTIVE);
    assert.equal(r2.status, 200);
    assert.equal(r2.fingerprint, certs.second.fingerprint);
    assert.equal(listener.closeInfo, null);
    assert.equal(b.closeInfo, null);

    // and a good pair again (the first one) is taken
    fs.writeFileSync(files.certFile, certs.first.cert);
    fs.writeFileSync(files.keyFile, certs.first.key);
    const log5 = await hup('first pair again', /SIGHUP: reloaded|still using the previous certificate/);
    assert.match(log5, /SIGHUP: reloaded/, log5);
    assert.equal(await tlsFingerprint(s.port), certs.first.fingerprint);
    assert.ok(s.alive());
  } finally {
    for (const c of opened) await c.close();
    await listener?.close();
    const st = await s.stop();
    assert.equal(st.code, 0, `clean exit after SIGTERM: ${JSON.stringify(st)}\n${s.logs()}`);
  }
});

test('(6d) SIGHUP while the key file is missing: refused, and the message says the key is missing', { timeout: 15000 }, async () => {
  const files = pairCopy(certs.first);
  const s = await startTls({ certFile: files.certFile, keyFile: files.keyFile });
  try {
    fs.unlinkSync(files.keyFile); // e.g. a renewal tool that replaces files one by one
    const before = s.logs().length;
    s.proc.kill('SIGHUP');
    await waitFor(() => /SIGHUP: reloaded|still using the previous certificate/.test(s.logs().slice(before)), 5000,
      { what: 'the SIGHUP log line' });
    const log = s.logs().slice(before);
    assert.match(log, /still using the previous certificate/);
    assert.ok(log.includes(files.keyFile), log);
    assert.equal(await tlsFingerprint(s.port), certs.first.fingerprint);
    assert.doesNotMatch(log, /does not match|mismatch/, `misleading: the key file is missing, not mismatched: ${log}`);
  } finally {
    await s.stop();
  }
});

test('(6b) SIGHUP on a plaintext server is harmless', { timeout: 15000 }, async () => {
  const s = await startServer({ project: MULTIPARTY, startTimeout: 15000 });
  try {
    s.proc.kill('SIGHUP');
    await sleep(300);
    assert.ok(s.alive(), `the server died on SIGHUP: ${s.logs()}`);
    const r = await fetch(`${s.url}${ACTIVE}`, { signal: AbortSignal.timeout(3000) });
    assert.equal(r.status, 200);
  } finally {
    await s.stop();
  }
});

test('(6c) a client that trusts only the CA refuses the wrong-name certificate', { timeout: 15000 }, async () => {
  const s = await startTls({ certFile: certs.wrongName.certFile, keyFile: certs.wrongName.keyFile });
  try {
    await assert.rejects(httpsGet(s.port, ACTIVE), /altnames|does not match|ERR_TLS_CERT_ALTNAME_INVALID/i);
    // under its own name it is fine
    assert.equal(await tlsFingerprint(s.port, { servername: 'wrong.test' }), certs.wrongName.fingerprint);
  } finally {
    await s.stop();
  }
});

const reEsc = (x) => new RegExp(x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));

async function expectStartupFailure(c) {
  const r = await runExpectExit({ project: MULTIPARTY, args: c.args, timeout: 5000 });
  assert.equal(r.timedOut, false, `${c.what}: still running after 5 s:\n${r.logs}`);
  assert.notEqual(r.code, 0, `${c.what}: exit code ${r.code}:\n${r.logs}`);
  assert.equal(r.signal, null, `${c.what}: killed by ${r.signal}:\n${r.logs}`);
  for (const re of [].concat(c.re)) assert.match(r.logs, re, `${c.what}: the message says it:\n${r.logs}`);
  for (const re of [].concat(c.notRe || [])) assert.doesNotMatch(r.logs, re, `${c.what}: misleading message:\n${r.logs}`);
  assert.doesNotMatch(r.logs, /listening on/, `${c.what}: it must not start listening`);
  return r;
}

test('(7) bad TLS start-up options exit non-zero within 5 s naming the file or flag', { timeout: 40000 }, async () => {
  const missing = path.join(certs.dir, 'does-not-exist.pem');
  const garbage = path.join(certs.dir, 'garbage.pem');
  fs.writeFileSync(garbage, 'this is not PEM at all\n');
  const cases = [
    { what: 'missing cert file', args: ['--tls-cert', missing, '--tls-key', certs.first.keyFile], re: reEsc(missing) },
    { what: 'key not matching the cert', args: ['--tls-cert', certs.first.certFile, '--tls-key', certs.second.keyFile], re: [reEsc(certs.second.keyFile), /mismatch|does not match/] },
    { what: 'stray key', args: ['--tls-cert', certs.first.certFile, '--tls-key', certs.strayKeyFile], re: [reEsc(certs.strayKeyFile), /mismatch|does not match/] },
    { what: 'cert file not PEM', args: ['--tls-cert', garbage, '--tls-key', certs.first.keyFile], re: reEsc(garbage) },
    { what: 'key file not PEM', args: ['--tls-cert', certs.first.certFile, '--tls-key', garbage], re: reEsc(garbage) },
    { what: 'only --tls-cert', args: ['--tls-cert', certs.first.certFile], re: /--tls-cert and --tls-key/ },
    { what: 'only --tls-key', args: ['--tls-key', certs.first.keyFile], re: /--tls-cert and --tls-key/ },
    { what: '--tls-ca missing', args: ['--tls-ca', missing], re: [/--tls-ca/, reEsc(missing)] },
  ];
  await Promise.all(cases.map(expectStartupFailure));
});

test('(7b) a missing key file is reported as missing, not as a key that does not match', { timeout: 15000 }, async () => {
  const missing = path.join(certs.dir, 'no-such-key.pem');
  await expectStartupFailure({
    what: 'missing key file',
    args: ['--tls-cert', certs.first.certFile, '--tls-key', missing],
    re: reEsc(missing),
    notRe: /does not match|mismatch/,
  });
});

test('(8) wss through the echo project: a 900 KB binary frame and 300 pipelined messages come back intact', { timeout: 20000 }, async () => {
  const s = await startTls({ project: BENCH, certFile: certs.first.certFile, keyFile: certs.first.keyFile });
  const c = await wssConnect(`wss://localhost:${s.port}/parties/main/big`);
  try {
    const big = crypto.randomBytes(900 * 1024);
    c.ws.send(big);
    const m = await c.next(8000);
    assert.equal(m.isBinary, true);
    assert.equal(m.data.length, big.length);
    assert.ok(m.data.equals(big), 'the echoed bytes are the same');
    for (let i = 0; i < 300; i++) c.ws.send(i % 3 === 0 ? Buffer.from(`bin-${i}`) : `msg-${i}-é✓`);
    for (let i = 0; i < 300; i++) {
      const e = await c.next(5000);
      if (i % 3 === 0) {
        assert.equal(e.isBinary, true);
        assert.equal(e.data.toString(), `bin-${i}`);
      } else {
        assert.equal(e.data, `msg-${i}-é✓`);
      }
    }
  } finally {
    await c.close();
    await s.stop();
  }
});

test('(9) --max-connections on a TLS port: the extra client gets a 503 over TLS; the others go on', { timeout: 15000 }, async () => {
  const s = await startTls({ certFile: certs.first.certFile, keyFile: certs.first.keyFile, args: ['--max-connections', '1'] });
  try {
    const first = await wssConnect(`wss://localhost:${s.port}${ACTIVE}`);
    try {
      // like plain http: the request is read (after the handshake), answered 503, closed
      const r = await httpsGet(s.port, ACTIVE).catch((e) => ({ status: null, error: e.message }));
      assert.equal(r.status, 503, `observed: ${JSON.stringify(r)}`);
      assert.match(r.body, /server is full/);
      assert.equal(first.closeInfo, null, 'the client inside the limit is unaffected');
    } finally {
      await first.close();
    }
    // the slot is free again at once (refused clients do not linger in the count)
    const t0 = Date.now();
    await waitFor(async () => (await httpsGet(s.port, ACTIVE).catch(() => null))?.status === 200, 3000,
      { interval: 100, what: 'a new client once the first left' });
    assert.ok(Date.now() - t0 < 3000);
    assert.ok(s.alive());
  } finally {
    await s.stop();
  }
});
