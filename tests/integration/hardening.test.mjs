// Attacks on the network side (tests/projects/hardening, examples/multiparty):
// slowloris and idle keep-alive timeouts, malformed and pipelined requests,
// many idle WebSockets, connect/disconnect floods, a client that stops
// reading while the room broadcasts, and graceful shutdown on SIGTERM.
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  startServer, wsConnect, closeAll, httpRequest, rawHttp, parseRawResponse, waitFor, sleep, mkTmp, EXAMPLES,
} from './lib/server.mjs';
import { watched } from './lib/watch.mjs';

const PROJECT = 'hardening';
const MULTIPARTY = path.join(EXAMPLES, 'multiparty');
const ACTIVE = '/parties/connections/active-connections';

const { start, open, died } = watched();

/** VmRSS of a process in bytes. */
function rssOf(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** The soft limit on open files the server inherits (the shell's `ulimit -n`). */
function fdLimit() {
  try {
    const v = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
    return v === 'unlimited' ? Infinity : Number(v);
  } catch { return 1024; }
}

/** Splits raw bytes into complete HTTP/1.1 responses (content-length framed). */
function splitResponses(buf) {
  const out = [];
  let rest = buf;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const r = parseRawResponse(rest);
    const len = Number(r.headers['content-length'] ?? 0);
    if (rest.length < end + 4 + len) break;
    out.push({ ...r, body: rest.subarray(end + 4, end + 4 + len).toString('utf8') });
    rest = rest.subarray(end + 4 + len);
  }
  return out;
}

/**
 * A minimal WebSocket client on node:net: light enough for thousands of
 * sockets, and exact about frames. Resolves once the server answered 101.
 */
function rawWs(port, target, { timeout = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    let upgraded = false;
    const frames = [];
    const waiters = [];
    const api = {
      sock,
      ended: false,
      endedAt: null,
      frames,
      send(opcode, payload) {
        const p = Buffer.from(payload);
        if (p.length > 125) throw new Error('rawWs: short frames only');
        const k = crypto.randomBytes(4);
        const body = Buffer.from(p.map((b, i) => b ^ k[i % 4]));
        sock.write(Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | p.length]), k, body]));
      },
      nextFrame(ms = 3000) {
        if (frames.length) return Promise.resolve(frames.shift());
        if (api.ended) return Promise.reject(new Error('connection ended'));
        return new Promise((res, rej) => {
          const w = { resolve: (f) => { clearTimeout(t); res(f); }, reject: (e) => { clearTimeout(t); rej(e); } };
          const t = setTimeout(() => {
            const i = waiters.indexOf(w);
            if (i >= 0) waiters.splice(i, 1);
            rej(new Error(`no frame within ${ms} ms`));
          }, ms);
          waiters.push(w);
        });
      },
      /** Resolves the time the server ended the connection, or null after ms. */
      waitEnded(ms) {
        if (api.ended) return Promise.resolve(api.endedAt);
        return new Promise((res) => {
          const t = setTimeout(() => res(null), ms);
          sock.once('close', () => { clearTimeout(t); res(api.endedAt); });
        });
      },
      destroy() { sock.destroy(); },
    };
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`rawWs ${target}: no 101 within ${timeout} ms`)); }, timeout);
    const parse = () => {
      for (;;) {
        if (buf.length < 2) return;
        let len = buf[1] & 0x7f;
        let off = 2;
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
        if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
        if (buf.length < off + len) return;
        const f = { opcode: buf[0] & 0x0f, payload: buf.subarray(off, off + len) };
        buf = buf.subarray(off + len);
        const w = waiters.shift();
        if (w) w.resolve(f); else frames.push(f);
      }
    };
    sock.on('connect', () => {
      sock.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    sock.on('data', (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      if (!upgraded) {
        const i = buf.indexOf('\r\n\r\n');
        if (i < 0) return;
        const head = buf.subarray(0, i).toString('latin1');
        buf = buf.subarray(i + 4);
        clearTimeout(timer);
        if (!/^HTTP\/1\.1 101 /.test(head)) {
          sock.destroy();
          reject(new Error(`rawWs ${target}: ${head.split('\r\n')[0]}`));
          return;
        }
        upgraded = true;
        resolve(api);
      }
      parse();
    });
    const onEnd = () => {
      if (api.ended) return;
      api.ended = true;
      api.endedAt = Date.now();
      while (waiters.length) waiters.shift().reject(new Error('connection ended while waiting for a frame'));
    };
    sock.on('end', onEnd);
    sock.on('close', onEnd);
    sock.on('error', (e) => {
      if (!upgraded) { clearTimeout(timer); reject(e); }
      onEnd();
    });
  });
}

// ---------------------------------------------------------------------------

describe('HTTP: timeouts, malformed and pipelined requests', () => {
  let srv;
  before(async () => {
    srv = await start({ project: PROJECT, args: ['--header-timeout', '1', '--keepalive-timeout', '1'] });
  });
  after(async () => { if (srv) await srv.stop(); });

  test('slowloris: headers trickling in get 408 and a close within ~2 s; others are served meanwhile', { timeout: 15000 }, async () => {
    const N = 10;
    const slow = Array.from({ length: N }, () => new Promise((resolve) => {
      const sock = net.connect({ host: '127.0.0.1', port: srv.port });
      let data = '';
      let t0 = 0;
      let tick;
      const done = { status: null, endMs: null };
      const finish = () => {
        clearInterval(tick);
        clearTimeout(guard);
        if (done.endMs === null) done.endMs = Date.now() - t0;
        const m = /^HTTP\/1\.1 (\d{3})/.exec(data);
        done.status = m ? Number(m[1]) : null;
        done.head = data.split('\r\n')[0];
        sock.destroy();
        resolve(done);
      };
      const guard = setTimeout(finish, 6000);
      sock.on('connect', () => {
        t0 = Date.now();
        sock.write('GET /parties/main/slow/count HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
        // one more header byte every 200 ms, never the end of the headers
        tick = setInterval(() => { if (!sock.destroyed) sock.write('a'); }, 200);
      });
      sock.on('data', (d) => {
        data += d.toString('latin1');
        clearInterval(tick); // answered: stop writing
      });
      sock.on('end', finish);
      sock.on('close', finish);
      sock.on('error', (e) => { done.error = e.message; finish(); });
    }));

    // a normal client, served quickly all along
    const served = [];
    const normal = (async () => {
      for (let i = 0; i < 15; i++) {
        const t0 = Date.now();
        const r = await httpRequest(`${srv.url}/parties/main/normal/count`, { timeout: 2000 });
        served.push({ status: r.status, ms: Date.now() - t0 });
        await sleep(100);
      }
    })();

    const results = await Promise.all(slow);
    await normal;
    for (const r of results) {
      if (r.status !== 408) assert.fail(`slowloris client answered ${r.head || '(nothing)'} ${r.error || ''}${await died(srv)}`);
      assert.ok(r.endMs <= 2500, `the server closed the slow socket ${r.endMs} ms after its first byte`);
      assert.ok(r.endMs >= 800, `not before the 1 s header timeout (${r.endMs} ms)`);
    }
    assert.equal(served.length, 15);
    for (const s of served) {
      assert.equal(s.status, 200);
      assert.ok(s.ms < 1000, `a normal request took ${s.ms} ms during the attack`);
    }
  });

  test('an idle keep-alive connection is closed after --keepalive-timeout 1', { timeout: 10000 }, async () => {
    const sock = net.connect({ host: '127.0.0.1', port: srv.port });
    let data = Buffer.alloc(0);
    let endedAt = null;
    sock.on('data', (d) => { data = Buffer.concat([data, d]); });
    const ended = new Promise((r) => { sock.on('close', () => { endedAt = Date.now(); r(); }); sock.on('end', () => { endedAt ??= Date.now(); }); });
    sock.on('error', () => {});
    await new Promise((r) => sock.on('connect', r));
    const req = 'GET /parties/main/ka/count HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
    sock.write(req);
    await waitFor(() => splitResponses(data).length === 1, 3000, { what: 'the first response' });
    await sleep(400);
    assert.equal(endedAt, null, 'still open 400 ms after a response');
    sock.write(req);
    await waitFor(() => splitResponses(data).length === 2, 3000, { what: 'the second response on the same connection' });
    const answeredAt = Date.now();
    const rs = splitResponses(data);
    assert.deepEqual(rs.map((r) => [r.status, r.body]), [[200, '1'], [200, '2']], 'keep-alive works');
    await Promise.race([ended, sleep(4000)]);
    sock.destroy();
    assert.ok(endedAt, 'the server closed the idle connection');
    const idle = endedAt - answeredAt;
    assert.ok(idle >= 700 && idle <= 2500, `closed ${idle} ms after the last response (timeout 1 s)`);
  });

  test('a malformed request line gets 400 and the connection is closed', { timeout: 10000 }, async () => {
    const lines = [
      'GET /parties/main/x HTTP/1.1 junk',
      'GET /parties/main/a b HTTP/1.1',
      'GET /parties/main/x HTTP/9.9',
      'GET /parties/main/x HTQP/1.1',
      '/parties/main/x HTTP/1.1',
    ];
    for (const line of lines) {
      // a valid request follows in the same write: it must not be answered
      const r = await rawHttp(srv.port, `${line}\r\nHost: 127.0.0.1\r\n\r\nGET /parties/main/x/count HTTP/1.1\r\nHost: h\r\n\r\n`,
        { timeout: 3000 });
      const res = parseRawResponse(r.data);
      assert.equal(res.status, 400, `${JSON.stringify(line)} -> ${res.statusLine}`);
      assert.equal(res.headers.connection, 'close', `${JSON.stringify(line)}: connection: close`);
      assert.ok(r.closed, `${JSON.stringify(line)}: the server closed the connection`);
      assert.equal(splitResponses(r.data).length, 1, `${JSON.stringify(line)}: nothing after the 400`);
    }
  });

  test('strict framing: chunk data without its CRLF, a folded header line and a request without a version get 400 and a close; what follows is not served', { timeout: 10000 }, async () => {
    const next = 'GET /parties/main/smuggled/count HTTP/1.1\r\nHost: h\r\n\r\n';
    const cases = {
      'chunk data not followed by CRLF': 'POST /parties/main/sm/count HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n' +
        '3\r\nabcXX0\r\n\r\n',
      'obsolete line folding': 'GET /parties/main/sm/count HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n',
      'HTTP/0.9 (no version)': 'GET /parties/main/sm/count\r\n\r\n',
    };
    for (const [what, bytes] of Object.entries(cases)) {
      const r = await rawHttp(srv.port, bytes + next, { timeout: 3000 });
      const res = parseRawResponse(r.data);
      assert.equal(res.status, 400, `${what} -> ${res.statusLine} ${res.body}`);
      assert.equal(res.headers.connection, 'close', `${what}: connection: close`);
      assert.ok(r.closed, `${what}: the server closed the connection`);
      assert.equal(splitResponses(r.data).length, 1, `${what}: the pipelined request after it was not served`);
    }
    const r = await httpRequest(`${srv.url}/parties/main/smuggled/count`);
    assert.equal(r.text, '1', 'no smuggled request reached the room');
  });

  test('the header limit counts the header section as received: 15,000 empty headers get 431', { timeout: 15000 }, async () => {
    // a cap on header lines would stop them first: lift it, the byte count must hold alone
    const big = await start({ project: PROJECT, args: ['--max-headers', '100000'] });
    try {
      const r = await rawHttp(big.port, `GET /parties/main/h/count HTTP/1.1\r\nHost: h\r\n${'a:\r\n'.repeat(15000)}\r\n`,
        { timeout: 3000 });
      assert.equal(parseRawResponse(r.data).status, 431, r.text.split('\r\n')[0]);
      assert.ok(r.closed, 'closed');
    } finally {
      await big.stop();
    }
  });

  test('at most 100 header lines (--max-headers): 100 pass, 101 get 431', { timeout: 10000 }, async () => {
    const lines = (n) => Array.from({ length: n }, (_, i) => `x-${i}: v\r\n`).join('');
    // Host + 98 + Connection = 100 lines; Host + 100 = 101
    const ok = await rawHttp(srv.port, `GET /parties/main/hc/count HTTP/1.1\r\nHost: h\r\n${lines(98)}Connection: close\r\n\r\n`,
      { timeout: 3000 });
    assert.equal(parseRawResponse(ok.data).status, 200, ok.text.split('\r\n')[0]);
    const over = await rawHttp(srv.port, `GET /parties/main/hc/count HTTP/1.1\r\nHost: h\r\n${lines(100)}\r\n`,
      { timeout: 3000 });
    const res = parseRawResponse(over.data);
    assert.equal(res.status, 431, res.statusLine);
    assert.match(res.body.toString(), /too many header fields/);
  });

  test('a request line with a method but no target gets 400 (not 501)', { timeout: 5000 }, async () => {
    // RFC 9110: 501 means the method is not recognized; GET is.
    const r = await rawHttp(srv.port, 'GET\r\nHost: 127.0.0.1\r\n\r\n', { timeout: 3000 });
    const res = parseRawResponse(r.data);
    assert.ok(r.closed, 'closed');
    assert.equal(res.status, 400, `"GET" alone -> ${res.statusLine} (${res.body.toString()})`);
  });

  test('three pipelined requests in one write are answered in order', { timeout: 10000 }, async () => {
    const reqs = 'GET /parties/main/pipe/count HTTP/1.1\r\nHost: h\r\n\r\n' +
      'POST /parties/main/pipe/count HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello' +
      'GET /parties/main/pipe/count HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n';
    const r = await rawHttp(srv.port, reqs, { timeout: 3000 });
    const rs = splitResponses(r.data);
    assert.deepEqual(rs.map((x) => [x.status, x.body]), [[200, '1'], [200, '2'], [200, '3']],
      `responses: ${JSON.stringify(r.text)}`);
    assert.equal(rs[2].headers.connection, 'close');
    assert.ok(r.closed, 'closed after the last one (Connection: close)');
  });
});

describe('WebSocket load', () => {
  let srv;
  afterEach(async () => {
    if (srv) await srv.stop();
    srv = null;
  });

  test('10,000 concurrent idle WebSockets (or as many as the fd limit allows) stay up and echo', { timeout: 50000 }, async (t) => {
    const limit = fdLimit();
    // The server and this process each need one fd per socket (plus a few).
    const N = Math.max(100, Math.min(10000, Math.floor(limit - 500)));
    if (N < 10000) t.diagnostic(`ulimit -n is ${limit}: opening ${N} sockets instead of 10,000`);
    srv = await start({ project: PROJECT, args: ['--log-level', 'warn'] });
    const rss0 = rssOf(srv.proc.pid);
    const socks = [];
    const t0 = Date.now();
    try {
      for (let i = 0; i < N; i += 200) {
        const batch = [];
        for (let j = i; j < Math.min(N, i + 200); j++) batch.push(rawWs(srv.port, `/parties/echo/idle-${j % 20}?_pk=c${j}`));
        socks.push(...await Promise.all(batch));
      }
      const openMs = Date.now() - t0;
      t.diagnostic(`${N} sockets open in ${openMs} ms; server RSS ${(rssOf(srv.proc.pid) / 1048576).toFixed(0)} MB ` +
        `(was ${(rss0 / 1048576).toFixed(0)} MB)`);
      await sleep(3000);
      const gone = socks.filter((s) => s.ended).length;
      assert.equal(gone, 0, `${gone} of ${N} idle sockets were closed while held`);
      const step = Math.floor(N / 50);
      const sample = Array.from({ length: 50 }, (_, k) => socks[k * step]);
      await Promise.all(sample.map(async (s, k) => {
        s.send(1, `hello ${k}`);
        const f = await s.nextFrame(5000);
        assert.equal(f.opcode, 1);
        assert.equal(f.payload.toString(), `hello ${k}`);
      }));
      assert.equal((await httpRequest(`${srv.url}/parties/main/x/count`)).status, 200, 'HTTP still served');
      // close them all with a close handshake, 500 at a time
      for (let i = 0; i < socks.length; i += 500) {
        const batch = socks.slice(i, i + 500);
        for (const s of batch) s.send(8, Buffer.from([0x03, 0xe8]));
        const ends = await Promise.all(batch.map((s) => s.waitEnded(10000)));
        assert.equal(ends.filter((e) => e === null).length, 0, 'the server ends every closed socket');
      }
    } finally {
      for (const s of socks) s.destroy();
    }
    assert.equal(srv.alive(), true);
    assert.equal((await httpRequest(`${srv.url}/parties/main/x/count`)).status, 200);
  });

  test('2,000 connect/disconnect cycles (50 in parallel) on examples/multiparty: server answers, counts end at 0', { timeout: 50000 }, async () => {
    srv = await start({ project: MULTIPARTY, args: ['--log-level', 'warn'] });
    const rooms = Array.from({ length: 10 }, (_, i) => `flood-${i}`);
    let next = 0;
    let failures = 0;
    const worker = async () => {
      while (next < 2000) {
        const i = next++;
        try {
          const c = await wsConnect(`${srv.wsUrl}/parties/main/${rooms[i % rooms.length]}`, { timeout: 10000 });
          if (i % 2) c.terminate(); // abrupt: no close handshake
          else await c.closeAndWait(1000, undefined, 5000);
        } catch {
          failures++;
        }
      }
    };
    await Promise.all(Array.from({ length: 50 }, worker));
    assert.equal(failures, 0, `${failures} of 2000 connections failed`);
    assert.equal(srv.alive(), true);
    let last;
    try {
      await waitFor(async () => {
        const r = await httpRequest(srv.url + ACTIVE);
        last = r.json();
        return rooms.every((room) => last[room] === 0);
      }, 15000, { interval: 200 });
    } catch {
      assert.fail(`counts did not all return to 0: ${JSON.stringify(last)}`);
    }
    const c = await open(srv, '/parties/main/after-flood');
    c.close();
    assert.equal((await httpRequest(srv.url + ACTIVE)).status, 200, 'the server answers');
  });

  test('a client that stops reading is dropped past 16 MiB of output; the server stays bounded, others unaffected', { timeout: 50000 }, async (t) => {
    srv = await start({ project: PROJECT });
    const fast = await open(srv, '/parties/flood/fl?_pk=fast');
    const slow = await open(srv, '/parties/flood/fl?_pk=slow');
    const other = await open(srv, '/parties/echo/bystander');
    let slowGot = 0;
    slow.ws.on('message', () => { slowGot++; });
    slow.ws._socket.pause();
    // let the connections settle before the baseline
    fast.send('sync');
    assert.equal(await fast.nextText(), 'sync');
    const rss0 = rssOf(srv.proc.pid);
    let maxRss = rss0;
    const PER = 64;
    const SIZE = 64 * 1024;
    let bursts = 0;
    let dropped = false;
    let fastGot = 0;
    const t0 = Date.now();
    try {
      while (bursts < 24 && !dropped) {
        fast.send(`burst ${PER} ${SIZE}`);
        bursts++;
        for (;;) {
          const m = await fast.next(10000);
          if (m.text === `done ${bursts}`) break;
          assert.equal(m.data.length, SIZE);
          fastGot++;
        }
        maxRss = Math.max(maxRss, rssOf(srv.proc.pid));
        dropped = /dropping connection slow/.test(srv.logs());
        other.send(`still ${bursts}`);
        assert.equal(await other.nextText(5000), `still ${bursts}`, 'another room is served during the flood');
      }
    } catch (e) {
      e.message += await died(srv);
      throw e;
    }
    t.diagnostic(`bursts ${bursts}, ${(Date.now() - t0)} ms`);
    const growth = maxRss - rss0;
    assert.ok(dropped, `the slow client was not dropped after ${bursts * PER * SIZE / 1048576} MiB of broadcasts; log tail:\n${srv.logs().slice(-1500)}`);
    assert.ok(growth < 200 * 1048576, `server RSS grew by ${(growth / 1048576).toFixed(0)} MB`);
    assert.equal(fastGot, bursts * PER, 'the reading client got every message');
    fast.send('after');
    assert.equal(await fast.nextText(), 'after');

    slow.ws._socket.resume();
    const info = await slow.waitClosed(10000);
    assert.ok(info, 'the slow client sees its connection closed once it reads again');
    assert.ok(slowGot < bursts * PER, `the slow client got ${slowGot} of ${bursts * PER} messages`);
    assert.equal(srv.alive(), true);
  });
});

/**
 * Writes `block` to a socket that never reads, over and over, until the
 * server drops it or `maxBytes` went out. Resolves {sent, dropped}.
 */
async function floodUntilDropped(sock, block, maxBytes) {
  sock.pause(); // nothing is read from here on: whatever the server answers piles up
  let dropped = false;
  let wake = () => {};
  const gone = () => { dropped = true; wake(); };
  sock.on('close', gone);
  sock.on('error', gone);
  sock.on('drain', () => wake());
  let sent = 0;
  while (!dropped && sent < maxBytes) {
    const ok = sock.write(block);
    sent += block.length;
    if (!ok) await Promise.race([new Promise((r) => { wake = r; }), sleep(2000)]);
  }
  for (let i = 0; i < 200 && !dropped; i++) await sleep(10); // what the kernel holds is still being read
  sock.destroy();
  return { sent, dropped };
}

/** About 1 MiB of one masked client frame (opcode, 125-byte payload), repeated. */
function frameBlock(opcode) {
  const one = Buffer.alloc(2 + 4 + 125);
  one[0] = 0x80 | opcode;
  one[1] = 0x80 | 125;
  crypto.randomBytes(4).copy(one, 2);
  return Buffer.concat(Array(8000).fill(one));
}

describe('every byte queued for a client counts against --max-output (16 MiB)', () => {
  let srv;
  // warn: dev would log every one of the flood's requests
  before(async () => { srv = await start({ project: PROJECT, args: ['--log-level', 'warn'] }); });
  after(async () => { if (srv) await srv.stop(); });

  test('a client that floods pings and never reads the pongs is dropped; others are served', { timeout: 60000 }, async () => {
    const ws = await rawWs(srv.port, '/parties/echo/pinger');
    const other = await open(srv, '/parties/echo/bystander-p');
    // 125-byte pings: each is answered with a 127-byte pong, so 64 MiB of
    // pings would queue about 64 MiB of pongs.
    const { sent, dropped } = await floodUntilDropped(ws.sock, frameBlock(0x9), 64 * 1048576);
    assert.ok(dropped, `not dropped after ${(sent / 1048576).toFixed(0)} MiB of pings${await died(srv)}`);
    assert.ok(sent < 48 * 1048576, `dropped only after ${(sent / 1048576).toFixed(0)} MiB of pings`);
    await waitFor(() => /dropping connection .* it stopped reading/.test(srv.logs()), 3000,
      { what: 'the log line about the dropped client' });
    other.send('still here');
    assert.equal(await other.nextText(), 'still here', 'another room is served');
    assert.equal(srv.alive(), true);
  });

  test('an HTTP client that pipelines requests and never reads the answers is dropped', { timeout: 60000 }, async () => {
    const sock = net.connect({ host: '127.0.0.1', port: srv.port });
    await new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); });
    // answered at once (no room involved), each answer ~3x the request
    const req = 'GET /nowhere HTTP/1.1\r\nHost: h\r\n\r\n';
    const { sent, dropped } = await floodUntilDropped(sock, Buffer.from(req.repeat(Math.floor(1048576 / req.length))),
      64 * 1048576);
    assert.ok(dropped, `not dropped after ${(sent / 1048576).toFixed(0)} MiB of requests${await died(srv)}`);
    await waitFor(() => /dropping a client that stopped reading/.test(srv.logs()), 3000,
      { what: 'the log line about the dropped client' });
    const r = await httpRequest(`${srv.url}/parties/main/after-flood/count`);
    assert.equal(r.status, 200, 'the server goes on serving');
  });
});

describe('graceful shutdown', () => {
  test('SIGTERM: every client gets 1001, exit 0 within 5 s; after a restart the counts are 0', { timeout: 30000 }, async () => {
    const persist = mkTmp('luaparty-hardening-');
    let srv = await start({ project: MULTIPARTY, persist });
    const rooms = ['g1', 'g2', 'g3'];
    const socks = [];
    try {
      for (const room of rooms) {
        for (let i = 0; i < 3; i++) socks.push(await wsConnect(`${srv.wsUrl}/parties/main/${room}`));
      }
      const listener = await wsConnect(srv.wsUrl + ACTIVE);
      socks.push(listener);
      await waitFor(async () => {
        const m = (await httpRequest(srv.url + ACTIVE)).json();
        return rooms.every((r) => m[r] === 3);
      }, 5000, { what: 'counts of 3 per room' });

      const t0 = Date.now();
      srv.kill('SIGTERM');
      const closes = await Promise.all(socks.map((s) => s.waitClosed(5000)));
      const exit = await Promise.race([srv.exited, sleep(5000).then(() => null)]);
      const ms = Date.now() - t0;
      assert.deepEqual(closes.map((c) => c && c.code), socks.map(() => 1001), 'every client got 1001');
      assert.ok(exit, `the server exited within 5 s (still running after ${ms} ms)`);
      assert.equal(exit.code, 0, `exit code (signal ${exit.signal}); log tail:\n${srv.logs().slice(-1500)}`);
    } finally {
      for (const s of socks) s.terminate();
      await srv.stop();
    }

    srv = await start({ project: MULTIPARTY, persist });
    try {
      const m = (await httpRequest(srv.url + ACTIVE)).json();
      for (const r of rooms) assert.equal(m[r], 0, `count of ${r} after the restart: ${JSON.stringify(m)}`);
    } finally {
      await srv.stop();
    }
  });

  test('a second signal during the graceful shutdown exits at once, non-zero', { timeout: 15000 }, async () => {
    const srv = await start({ project: PROJECT });
    // a peer that never answers the close frame keeps the shutdown waiting
    const mute = await rawWs(srv.port, '/parties/echo/mute');
    try {
      srv.kill('SIGTERM');
      const f = await mute.nextFrame(3000);
      assert.equal(f.opcode, 8, 'the server sent a close frame');
      assert.equal(f.payload.readUInt16BE(0), 1001);
      await sleep(200);
      assert.equal(srv.alive(), true, 'still waiting for the close handshake after the first signal');
      const t0 = Date.now();
      srv.kill('SIGINT');
      const exit = await Promise.race([srv.exited, sleep(2000).then(() => null)]);
      const ms = Date.now() - t0;
      assert.ok(exit, 'the second signal ended the process within 2 s');
      assert.ok(ms < 1000, `exited ${ms} ms after the second signal`);
      assert.notEqual(exit.code, 0, `exit code ${exit.code} (signal ${exit.signal})`);
    } finally {
      mute.destroy();
      await srv.stop();
    }
  });
});
