// Limits a party or a client cannot get past (tests/projects/hardening):
// CPU time (not time spent waiting for a core) and memory per callback step
// (the room is reset, other rooms and the server go on), WebSocket message size (1009), UTF-8 in text frames
// (1007), room id length (414), connections per room (503), and header
// injection from a party's response.
import { test, describe, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import {
  startServer, wsConnect, closeAll, httpRequest, rawHttp, parseRawResponse, waitFor, sleep, PROJECTS,
} from './lib/server.mjs';
import { watched } from './lib/watch.mjs';
import { lineOf as lineIn } from './lib/fixtures.mjs';

const PROJECT = 'hardening';
/** Line number of the line holding `needle` in parties/main.lua. */
const lineOf = (needle) => lineIn(path.join(PROJECTS, PROJECT, 'parties/main.lua'), needle);

const { start, open, died, track } = watched();

async function count(srv, room) {
  const r = await httpRequest(`${srv.url}/parties/main/${room}/count`);
  assert.equal(r.status, 200, `count in ${room}: HTTP ${r.status} ${r.text}`);
  return Number(r.text);
}

/** What onClose / onError stored for connection id (see parties/main.lua). */
async function closedInfo(srv, room, id) {
  const r = await httpRequest(`${srv.url}/parties/main/${room}/closed?id=${encodeURIComponent(id)}`);
  assert.equal(r.status, 200);
  return r.json();
}

function logTail(srv, n = 3000) { return srv.logs().slice(-n); }

/** Waits (bounded) for a log line that contains every one of `parts`. */
async function logLine(srv, parts, what, timeout = 3000) {
  const has = () => srv.logs().split('\n').find((l) => parts.every((p) => l.includes(p)));
  try {
    return await waitFor(has, timeout, { what });
  } catch {
    return assert.fail(`no log line with ${parts.map((p) => JSON.stringify(p)).join(' and ')}; log tail:\n${logTail(srv)}`);
  }
}

/**
 * A raw WebSocket client over node:net (exact frames, no client-side checks).
 * Resolves once the server answered 101; frames() / nextFrame() give the
 * server's frames {fin, opcode, payload}.
 */
function rawWs(port, target, { timeout = 3000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const key = crypto.randomBytes(16).toString('base64');
    let buf = Buffer.alloc(0);
    let upgraded = false;
    const frames = [];
    const waiters = [];
    let ended = false;
    let resolveEnded;
    const endedP = new Promise((r) => { resolveEnded = r; });
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`raw ws ${target}: no 101 within ${timeout} ms`)); }, timeout);
    const parse = () => {
      for (;;) {
        if (buf.length < 2) return;
        let len = buf[1] & 0x7f;
        let off = 2;
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
        if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
        if (buf[1] & 0x80) off += 4; // servers must not mask; tolerate to report it
        if (buf.length < off + len) return;
        const f = { fin: !!(buf[0] & 0x80), opcode: buf[0] & 0x0f, masked: !!(buf[1] & 0x80), payload: buf.subarray(off, off + len) };
        buf = buf.subarray(off + len);
        const w = waiters.shift();
        if (w) w.resolve(f); else frames.push(f);
      }
    };
    sock.on('connect', () => {
      sock.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const i = buf.indexOf('\r\n\r\n');
        if (i < 0) return;
        const head = buf.subarray(0, i).toString('latin1');
        buf = buf.subarray(i + 4);
        clearTimeout(timer);
        if (!/^HTTP\/1\.1 101 /.test(head)) {
          sock.destroy();
          reject(new Error(`raw ws ${target}: ${head.split('\r\n')[0]}`));
          return;
        }
        upgraded = true;
        resolve(api);
      }
      parse();
    });
    const onEnd = () => {
      if (ended) return;
      ended = true;
      resolveEnded(Date.now());
      while (waiters.length) waiters.shift().reject(new Error('connection ended while waiting for a frame'));
    };
    sock.on('end', onEnd);
    sock.on('close', onEnd);
    sock.on('error', (e) => { if (!upgraded) { clearTimeout(timer); reject(e); } onEnd(); });
    const api = {
      sock,
      ended: endedP,
      send(opcode, payload, { fin = true, mask = true } = {}) {
        const p = Buffer.from(payload);
        const head = [(fin ? 0x80 : 0) | opcode];
        const m = mask ? 0x80 : 0;
        if (p.length < 126) head.push(m | p.length);
        else if (p.length <= 0xffff) head.push(m | 126, p.length >> 8, p.length & 0xff);
        else throw new Error('raw ws: payload too long for this helper');
        let body = p;
        const parts = [Buffer.from(head)];
        if (mask) {
          const k = crypto.randomBytes(4);
          body = Buffer.from(p.map((b, i) => b ^ k[i % 4]));
          parts.push(k);
        }
        parts.push(body);
        sock.write(Buffer.concat(parts));
      },
      nextFrame(ms = 3000) {
        if (frames.length) return Promise.resolve(frames.shift());
        if (ended) return Promise.reject(new Error('connection already ended'));
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
      destroy() { sock.destroy(); },
    };
  });
}

// ---------------------------------------------------------------------------

describe('CPU time limit (--cpu-limit 500)', () => {
  let srv;
  let steady = 0;
  before(async () => { srv = await start({ project: PROJECT, args: ['--cpu-limit', '500'] }); });
  after(async () => { if (srv) await srv.stop(); });

  /** Room "steady" is never reset: its instance counter goes on across every test. */
  async function steadyCounts() {
    steady++;
    assert.equal(await count(srv, 'steady'), steady, 'the other room kept its state');
  }

  async function bomb(room, what, needle) {
    await steadyCounts();
    assert.equal(await count(srv, room), 1);
    assert.equal(await count(srv, room), 2);
    const t0 = Date.now();
    const r = await httpRequest(`${srv.url}/parties/main/${room}/${what}`, { timeout: 8000 });
    const ms = Date.now() - t0;
    assert.equal(r.status, 500, `the aborted callback answers 500 (got ${r.status} ${r.text})`);
    assert.ok(ms < 1500, `answered within 1.5 s (took ${ms} ms)`);
    const line = await logLine(srv, [`parties/main.lua:${lineOf(needle)}:`, 'CPU time limit'],
      'the CPU limit error with file:line in the log');
    assert.match(line, new RegExp(`main/${room}`), 'the log line names the room');
    assert.equal(await count(srv, room), 1, 'the same room answers again, from a fresh instance');
    await steadyCounts();
    assert.equal(srv.alive(), true, 'server still running');
  }

  test('while true do end in onRequest is aborted: 500, file:line logged, fresh room', { timeout: 15000 }, async () => {
    await bomb('cpu-a', 'spin', 'BOMB: spin');
  });

  test('an infinite loop wrapped in pcall is aborted too', { timeout: 15000 }, async () => {
    await bomb('cpu-b', 'spin-pcall', 'BOMB: spin-pcall');
  });

  test('an infinite loop in onMessage is aborted; the room resets (1011) and serves again', { timeout: 15000 }, async () => {
    await steadyCounts();
    const victim = await open(srv, '/parties/main/cpu-msg');
    const bystander = await open(srv, '/parties/main/cpu-msg');
    victim.send('count');
    assert.equal(await victim.nextText(), '1');
    const t0 = Date.now();
    victim.send('spin');
    const info = await victim.waitClosed(5000);
    const ms = Date.now() - t0;
    assert.ok(info, 'the room reset closed the socket');
    assert.equal(info.code, 1011, `close code (reason "${info.reason}")`);
    assert.ok(ms < 2000, `closed within 2 s (took ${ms} ms)`);
    const b = await bystander.waitClosed(3000);
    assert.ok(b && b.code === 1011, 'the reset closes every connection of that room with 1011');
    await logLine(srv, [`parties/main.lua:${lineOf('BOMB: message-spin')}:`, 'CPU time limit'], 'the onMessage CPU error');
    const again = await open(srv, '/parties/main/cpu-msg');
    again.send('count');
    assert.equal(await again.nextText(), '1', 'a fresh instance serves the room');
    await steadyCounts();
    assert.equal(srv.alive(), true);
  });

  test('a reset room closes every connection, a cross-party socket among them (its onclose runs at once)', { timeout: 15000 }, async () => {
    // room_close_all walks the room's connections; the cross-party one's
    // close runs the room's onClose right away and takes it off the list
    const first = await open(srv, '/parties/main/cpu-pipe');
    first.send('count');
    assert.equal(await first.nextText(), '1');
    const held = await httpRequest(`${srv.url}/parties/holder/h/open?to=cpu-pipe`);
    assert.equal(held.text, '2', 'the holder\'s socket is a connection of the room');
    const last = await open(srv, '/parties/main/cpu-pipe');
    last.send('count');
    assert.equal(await last.nextText(), '3');
    const r = await httpRequest(`${srv.url}/parties/main/cpu-pipe/spin`, { timeout: 8000 });
    assert.equal(r.status, 500);
    for (const [name, ws] of [['the first socket', first], ['the last socket', last]]) {
      const info = await ws.waitClosed(3000);
      assert.ok(info && info.code === 1011, `${name} closed with 1011 (got ${info && info.code})`);
    }
    await waitFor(async () => (await httpRequest(`${srv.url}/parties/holder/h/state`)).text === '1011', 3000,
      { what: 'the cross-party socket\'s onclose with 1011' });
    await steadyCounts();
    assert.equal(srv.alive(), true);
  });
});

describe('the CPU limit counts the step\'s CPU time, not time it waited for a core', () => {
  test('on a core shared with two busy processes, a step of 200 ms of CPU under --cpu-limit 300 ends though it takes longer on the clock; one of 900 ms is stopped', { timeout: 30000 }, async () => {
    const srv = await start({ project: PROJECT, args: ['--workers', '1', '--cpu-limit', '300'] });
    const burners = [];
    try {
      execFileSync('taskset', ['-a', '-p', '-c', '0', String(srv.proc.pid)], { stdio: 'ignore' }); // every thread of it
      for (let i = 0; i < 2; i++) burners.push(spawn('taskset', ['-c', '0', 'sh', '-c', 'while :; do :; done'], { stdio: 'ignore' }));
      await sleep(100);
      const t0 = Date.now();
      const r = await httpRequest(`${srv.url}/parties/main/shared-core/work?ms=200`, { timeout: 15000 });
      const ms = Date.now() - t0;
      assert.ok(ms > 400, `the core was shared (else this test shows nothing): 200 ms of CPU took ${ms} ms`);
      assert.equal(r.status, 200, `200 ms of CPU under a 300 ms limit, ${ms} ms on the clock: got ${r.status} ${r.text}`);
      assert.equal(r.text, 'worked');
      const over = await httpRequest(`${srv.url}/parties/main/shared-core-over/work?ms=900`, { timeout: 20000 });
      assert.equal(over.status, 500, `900 ms of CPU under a 300 ms limit is stopped (got ${over.status} ${over.text})`);
      await logLine(srv, ['CPU time limit', 'shared-core-over'], 'the CPU limit error');
    } finally {
      for (const b of burners) b.kill('SIGKILL');
      await srv.stop();
    }
  });
});

describe('time slices: a long callback pauses so the other rooms of its worker are served (--workers 1)', () => {
  // One worker: every room shares one loop, as the rooms of a worker do.
  let srv;
  before(async () => { srv = await start({ project: PROJECT, args: ['--workers', '1'] }); });
  after(async () => { if (srv) await srv.stop(); });

  /** Probes room `room` of `server` with `n` requests while `busy` (a promise) is pending; each must be answered before it settles. */
  async function probeDuring(server, busy, room, n) {
    let settled = false;
    busy.then(() => { settled = true; }, () => { settled = true; });
    for (let i = 1; i <= n; i++) {
      await sleep(20);
      const r = await httpRequest(`${server.url}/parties/main/${room}/count`, { timeout: 5000 });
      assert.equal(r.text, String(i));
      assert.equal(settled, false, `probe ${i} of room ${room} was answered only after the long callback had ended`);
    }
  }

  for (const [what, needle] of [['spin', 'BOMB: spin'], ['spin-pcall', 'BOMB: spin-pcall']]) {
    test(`${what}: other rooms are answered while it runs, and it is still stopped at the 1 s CPU limit`, { timeout: 20000 }, async () => {
      const t0 = Date.now();
      const spin = httpRequest(`${srv.url}/parties/main/run-${what}/${what}`, { timeout: 15000 });
      await probeDuring(srv, spin, `probe-${what}`, 10);
      const r = await spin;
      const ms = Date.now() - t0;
      assert.equal(r.status, 500, `the runaway callback answers 500 (got ${r.status})`);
      assert.ok(ms >= 900, `stopped after ${ms} ms, before its 1 s of CPU`);
      assert.ok(ms < 8000, `stopped after ${ms} ms`);
      await logLine(srv, [`parties/main.lua:${lineOf(needle)}:`, 'CPU time limit', `run-${what}`], 'the CPU limit error');
    });
  }

  test('a paused callback keeps its room\'s order: the room\'s next events wait for it, other rooms do not', { timeout: 20000 }, async () => {
    // Room for a loaded machine (TSan, parallel tests): the step's slices
    // also pay the interpreter's hook and pauses.
    const roomy = await start({ project: PROJECT, args: ['--workers', '1', '--cpu-limit', '10000'] });
    try {
      await orderedDuringWork(roomy);
    } finally {
      await roomy.stop();
    }
  });

  async function orderedDuringWork(server) {
    const ws = await open(server, '/parties/main/ordered');
    ws.send('work 400'); // 400 ms of CPU: about 200 time slices
    ws.send('count');
    await sleep(50);
    const replies = (async () => [await ws.nextText(8000), await ws.nextText(8000)])();
    // sent while the work runs: had it run then, it would have counted 1 (and the socket 2)
    const http = httpRequest(`${server.url}/parties/main/ordered/count`, { timeout: 8000 });
    await probeDuring(server, replies, 'probe-order', 3);
    assert.deepEqual(await replies, ['worked', '1'], 'the socket\'s messages in order, after the work');
    assert.equal((await http).text, '2', 'the request sent during the work ran after it, and after the socket\'s "count"');
  }
});

describe('memory limit (--room-memory 33554432)', () => {
  // One server per test: a bomb that takes the whole server down must not
  // hide what the next one does. A generous CPU limit, so that the
  // allocation (slow under ASan) runs into the memory limit first.
  let srv;
  let steady = 0;
  beforeEach(async () => {
    steady = 0;
    srv = await start({ project: PROJECT, args: ['--room-memory', '33554432', '--cpu-limit', '10000'] });
  });
  afterEach(async () => { if (srv) await srv.stop(); });

  async function steadyCounts() {
    steady++;
    assert.equal(await count(srv, 'steady'), steady, 'the other room kept its state');
  }

  async function bomb(room, what) {
    await steadyCounts();
    assert.equal(await count(srv, room), 1);
    assert.equal(await count(srv, room), 2);
    let r;
    try {
      r = await httpRequest(`${srv.url}/parties/main/${room}/${what}`, { timeout: 12000 });
    } catch (e) {
      assert.fail(`GET /parties/main/${room}/${what} got no response (${e.message})${await died(srv)}`);
    }
    assert.equal(r.status, 500, `the aborted callback answers 500 (got ${r.status} ${r.text.slice(0, 200)})`);
    const line = await logLine(srv, [`main/${room}`, 'memory limit'], 'a memory limit error for the room');
    assert.match(line, /memory limit/);
    assert.equal(await count(srv, room), 1, 'the same room answers again, from a fresh instance');
    await steadyCounts();
    assert.equal(srv.alive(), true, 'server still running');
  }

  test('a table that grows without end is aborted at the room memory limit', { timeout: 20000 }, async () => {
    await bomb('mem-a', 'alloc-table');
  });

  test('string.rep("x", 200 MiB) is aborted at the room memory limit', { timeout: 20000 }, async () => {
    await bomb('mem-b', 'alloc-rep');
  });
});

describe('messages, room ids and responses (default limits)', () => {
  let srv;
  before(async () => { srv = await start({ project: PROJECT }); });
  after(async () => { if (srv) await srv.stop(); });

  test('a 1 MiB message passes; 1 MiB + 1 closes with 1009 and onError/onClose run', { timeout: 15000 }, async () => {
    const ok = await open(srv, '/parties/main/big?_pk=big-ok');
    const exact = 'a'.repeat(1024 * 1024);
    ok.send(exact);
    const echo = await ok.nextText(5000);
    assert.equal(echo.length, exact.length, 'a message of exactly 1 MiB is echoed');

    const c = await open(srv, '/parties/main/big?_pk=big-1');
    c.send('b'.repeat(1024 * 1024 + 1));
    const info = await c.waitClosed(5000);
    assert.ok(info, 'the socket was closed');
    assert.equal(info.code, 1009, `close code (reason "${info.reason}")`);
    await waitFor(async () => (await closedInfo(srv, 'big', 'big-1')).closed === 1, 3000, { what: 'onClose of big-1' })
      .catch(async () => assert.fail(`onClose did not run: ${JSON.stringify(await closedInfo(srv, 'big', 'big-1'))}`));
    const rec = await closedInfo(srv, 'big', 'big-1');
    assert.match(String(rec.error), /too big/i, `onError got the reason: ${JSON.stringify(rec)}`);
    ok.send('still here');
    assert.equal(await ok.nextText(), 'still here', 'the other connection of the room is unaffected');
  });

  test('bad frames get a close frame with 1002: a fragmented ping, a 126-byte ping, a 1-byte close payload, a 64-bit length with the top bit set', { timeout: 15000 }, async () => {
    const mask = [0x11, 0x22, 0x33, 0x44];
    const cases = {
      'fragmented ping': Buffer.from([0x09, 0x81, ...mask, 0x70]),
      '126-byte ping': Buffer.concat([Buffer.from([0x89, 0xfe, 0x00, 126, ...mask]), Buffer.alloc(126, 1)]),
      '1-byte close payload': Buffer.from([0x88, 0x81, ...mask, 0x12]),
      'top bit of the 64-bit length': Buffer.from([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 1, 0, ...mask, 1, 2, 3]),
    };
    for (const [what, bytes] of Object.entries(cases)) {
      const id = `pe-${what.replace(/\W+/g, '-')}`;
      const ws = await rawWs(srv.port, `/parties/main/proto?_pk=${id}`);
      try {
        ws.sock.write(bytes);
        const f = await ws.nextFrame(3000);
        assert.equal(f.opcode, 8, `${what}: a close frame (got opcode ${f.opcode})`);
        assert.ok(f.payload.length >= 2, `${what}: the close frame carries a code (the client would see 1005)`);
        assert.equal(f.payload.readUInt16BE(0), 1002, `${what}: close code`);
      } finally {
        ws.destroy();
      }
      await waitFor(async () => (await closedInfo(srv, 'proto', id)).closed === 1, 3000, { what: `onClose after ${what}` });
    }
  });

  test('a frame header announcing 2^62 bytes gets 1009 at once, before any payload', { timeout: 10000 }, async () => {
    const ws = await rawWs(srv.port, '/parties/main/huge?_pk=huge');
    try {
      ws.sock.write(Buffer.from([0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44]));
      const f = await ws.nextFrame(3000);
      assert.equal(f.opcode, 8, `a close frame (got opcode ${f.opcode})`);
      assert.equal(f.payload.readUInt16BE(0), 1009);
    } finally {
      ws.destroy();
    }
  });

  test('invalid UTF-8 in a text frame closes with 1007 and onClose runs', { timeout: 10000 }, async () => {
    const ws = await rawWs(srv.port, '/parties/main/utf?_pk=u8-bad');
    try {
      ws.send(1, Buffer.from('héllo €𝄞', 'utf8'));
      const f = await ws.nextFrame();
      assert.equal(f.opcode, 1);
      assert.equal(f.payload.toString('utf8'), 'héllo €𝄞', 'valid UTF-8 is echoed');
      ws.send(1, Buffer.from([0x68, 0x69, 0xc3, 0x28])); // "hi" + a broken 2-byte sequence
      let close;
      for (let i = 0; i < 5 && !close; i++) {
        const g = await ws.nextFrame(3000);
        if (g.opcode === 8) close = g;
      }
      assert.ok(close, 'a close frame arrived');
      assert.equal(close.masked, false, 'server frames are not masked');
      assert.ok(close.payload.length >= 2, 'the close frame has a code');
      assert.equal(close.payload.readUInt16BE(0), 1007, `close code (reason "${close.payload.subarray(2)}")`);
      ws.send(8, Buffer.from([0x03, 0xef])); // answer the close (1007)
      const endedAt = await Promise.race([ws.ended, new Promise((r) => setTimeout(() => r(null), 3000))]);
      assert.ok(endedAt, 'the server closed the TCP connection');
    } finally {
      ws.destroy();
    }
    await waitFor(async () => (await closedInfo(srv, 'utf', 'u8-bad')).closed === 1, 3000, { what: 'onClose of u8-bad' });
  });

  test('room id of 257 bytes -> 414 (HTTP and upgrade); 256 bytes is served', { timeout: 10000 }, async () => {
    const id256 = 'r'.repeat(256);
    const ok = await httpRequest(`${srv.url}/parties/main/${id256}`);
    assert.equal(ok.status, 200, `256-byte id: ${ok.status} ${ok.text.slice(0, 100)}`);
    const long = await httpRequest(`${srv.url}/parties/main/${id256}x`);
    assert.equal(long.status, 414);
    const longAlias = await httpRequest(`${srv.url}/party/${'q'.repeat(300)}/count`);
    assert.equal(longAlias.status, 414, '/party/:room alias too');
    await assert.rejects(wsConnect(`${srv.wsUrl}/parties/main/${id256}x`, { timeout: 3000 }),
      (e) => e.status === 414, 'an upgrade with a 257-byte room id is refused with 414');
  });

  test('a header value with CR LF from a party never reaches the wire as a header', { timeout: 10000 }, async () => {
    const r = await rawHttp(srv.port,
      `GET /parties/main/inj/inject HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
      { timeout: 3000 });
    const res = parseRawResponse(r.data);
    assert.ok(res.status, `a response arrived: ${JSON.stringify(r.text.slice(0, 200))}`);
    const head = r.text.split('\r\n\r\n')[0];
    assert.doesNotMatch(head, /(^|\n)\s*x-b\s*:/im, `no injected x-b header; head:\n${head}`);
    assert.ok(!('x-b' in res.headers), 'no x-b header');
    if (res.status === 200) assert.doesNotMatch(res.headers['x-a'] ?? '', /[\r\n]/);
    else assert.equal(res.status, 500, `refused as a server error (got ${res.status})`);
    // the server goes on serving
    const again = await httpRequest(`${srv.url}/parties/main/inj/count`);
    assert.equal(again.status, 200);
  });
});

describe('--max-message 1000', () => {
  let srv;
  before(async () => { srv = await start({ project: PROJECT, args: ['--max-message', '1000'] }); });
  after(async () => { if (srv) await srv.stop(); });

  test('1000 bytes pass, 1001 bytes close with 1009 (text and binary)', { timeout: 10000 }, async () => {
    const c = await open(srv, '/parties/main/mm?_pk=mm-text');
    c.send('x'.repeat(1000));
    assert.equal((await c.nextText()).length, 1000, 'exactly the limit is accepted');
    c.send('x'.repeat(1001));
    const info = await c.waitClosed(3000);
    assert.ok(info, 'closed');
    assert.equal(info.code, 1009);
    const b = await open(srv, '/parties/main/mm?_pk=mm-bin');
    b.send(Buffer.alloc(1001, 7));
    const binfo = await b.waitClosed(3000);
    assert.ok(binfo && binfo.code === 1009, `binary too: ${JSON.stringify(binfo)}`);
    await waitFor(async () => (await closedInfo(srv, 'mm', 'mm-text')).closed === 1
      && (await closedInfo(srv, 'mm', 'mm-bin')).closed === 1, 3000, { what: 'onClose of both' });
  });

  test('a fragmented message over the limit closes with 1009', { timeout: 10000 }, async () => {
    const ws = await rawWs(srv.port, '/parties/main/mm?_pk=mm-frag');
    try {
      ws.send(1, 'a'.repeat(600), { fin: false });
      ws.send(0, 'b'.repeat(600), { fin: true });
      const f = await ws.nextFrame(3000);
      assert.equal(f.opcode, 8, `a close frame (got opcode ${f.opcode})`);
      assert.equal(f.payload.readUInt16BE(0), 1009);
    } finally {
      ws.destroy();
    }
  });
});

describe('--max-room-connections 3', () => {
  let srv;
  before(async () => { srv = await start({ project: PROJECT, args: ['--max-room-connections', '3'] }); });
  after(async () => { if (srv) await srv.stop(); });

  test('the 4th WebSocket of a room gets HTTP 503; other rooms and freed slots work', { timeout: 15000 }, async () => {
    const three = [];
    for (let i = 0; i < 3; i++) three.push(await open(srv, `/parties/main/full?_pk=f${i}`));
    await assert.rejects(wsConnect(`${srv.wsUrl}/parties/main/full?_pk=f3`, { timeout: 3000 }),
      (e) => e.status === 503, 'the 4th upgrade is refused with 503');
    for (const c of three) {
      c.send('ping');
      assert.equal(await c.nextText(), 'ping', 'the three admitted sockets work');
    }
    const other = await open(srv, '/parties/main/not-full');
    other.send('hi');
    assert.equal(await other.nextText(), 'hi', 'another room is not affected');
    const http = await httpRequest(`${srv.url}/parties/main/full/count`);
    assert.equal(http.status, 200, 'HTTP requests to the full room are still served');

    await three[0].closeAndWait();
    const fourth = await waitFor(async () => {
      try { return await wsConnect(`${srv.wsUrl}/parties/main/full?_pk=f4`, { timeout: 2000 }); } catch (e) {
        if (e.status === 503) return null;
        throw e;
      }
    }, 5000, { what: 'a free slot after one socket closed' });
    track(fourth);
    fourth.send('in');
    assert.equal(await fourth.nextText(), 'in');
  });
});
