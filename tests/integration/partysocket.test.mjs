// The npm `partysocket` client (v1.3.0), unchanged, against luaparty:
// id (_pk), query (object and async function), messages both ways,
// reconnection after a server restart on the same port, PartySocket.fetch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import WS from 'ws';
import PartySocket from 'partysocket';
import { startServerPatient as start, mkTmp, sleep } from './lib/server.mjs';
import { sharedServer } from './lib/fixtures.mjs';

const PROJECT = 'ecosystem/app';

const server = sharedServer({ project: PROJECT, startTimeout: 15000 });

/** Wraps a PartySocket: queues its messages and open/close events; every wait is bounded. */
function watch(ps) {
  const msgs = [];
  const events = [];
  const waiters = [];
  const wake = () => { for (const w of waiters.splice(0)) w(); };
  ps.addEventListener('message', (e) => { msgs.push(String(e.data)); wake(); });
  ps.addEventListener('open', () => { events.push('open'); wake(); });
  ps.addEventListener('close', () => { events.push('close'); wake(); });
  const until = (pred, ms, what) => new Promise((resolve, reject) => {
    const check = () => {
      const v = pred();
      if (v !== undefined && v !== false) { clearTimeout(t); resolve(v); return true; }
      return false;
    };
    const t = setTimeout(() => {
      const i = waiters.indexOf(loop);
      if (i >= 0) waiters.splice(i, 1);
      reject(new Error(`partysocket: no ${what} within ${ms} ms (events: ${events.join(',')}, queued: ${msgs.length})`));
    }, ms);
    const loop = () => { if (!check()) waiters.push(loop); };
    loop();
  });
  return {
    ps,
    events,
    next(ms = 3000) { return until(() => (msgs.length ? msgs.shift() : undefined), ms, 'message'); },
    async nextJson(ms = 3000) { return JSON.parse(await this.next(ms)); },
    count(kind) { return events.filter((e) => e === kind).length; },
    waitEvent(kind, n, ms = 5000) { return until(() => this.count(kind) >= n, ms, `${kind} #${n}`); },
  };
}

const host = () => `127.0.0.1:${server.port}`;

test('id becomes _pk and the server sees it as conn.id; query object; messages both ways', { timeout: 10000 }, async () => {
  const ps = new PartySocket({
    host: host(), party: 'echo', room: 'ps-room', id: 'ps-fixed-id',
    query: { name: 'Ann Lee', lang: 'fr', skipped: undefined, nothing: null },
    WebSocket: WS, maxRetries: 0,
  });
  const w = watch(ps);
  try {
    assert.equal(ps.id, 'ps-fixed-id');
    ps.send('queued before open'); // PartySocket buffers until the socket opens
    const hello = await w.nextJson();
    assert.equal(hello.type, 'welcome');
    assert.equal(hello.id, 'ps-fixed-id');
    assert.equal(hello.party, 'echo');
    assert.equal(hello.room, 'ps-room');
    assert.deepEqual(hello.query, { _pk: 'ps-fixed-id', name: 'Ann Lee', lang: 'fr' });
    assert.deepEqual(await w.nextJson(), { type: 'echo', id: 'ps-fixed-id', data: 'queued before open' });
    ps.send('ünïcode ✓');
    assert.deepEqual(await w.nextJson(), { type: 'echo', id: 'ps-fixed-id', data: 'ünïcode ✓' });
    assert.equal(ps.roomUrl, `ws://${host()}/parties/echo/ps-room`);
  } finally {
    ps.close();
  }
});

test('query as an async function; without id a UUID is made and used', { timeout: 10000 }, async () => {
  let calls = 0;
  const ps = new PartySocket({
    host: host(), party: 'echo', room: 'ps-async',
    query: async () => { calls++; await sleep(20); return { token: `t-${calls}` }; },
    WebSocket: WS, maxRetries: 0,
  });
  const w = watch(ps);
  try {
    const hello = await w.nextJson();
    assert.match(ps.id, /^[0-9a-f-]{36}$/);
    assert.equal(hello.id, ps.id);
    assert.equal(hello.query.token, 't-1');
    assert.equal(hello.query._pk, ps.id);
    assert.equal(calls, 1);
  } finally {
    ps.close();
  }
});

test('the default party is "main"', { timeout: 10000 }, async () => {
  const ps = new PartySocket({ host: host(), room: 'ps-main', id: 'ps-main-id', WebSocket: WS, maxRetries: 0 });
  const w = watch(ps);
  try {
    await w.waitEvent('open', 1);
    ps.send('to main');
    assert.equal(await w.next(), 'echo:to main');
  } finally {
    ps.close();
  }
});

test('PartySocket.fetch: GET and POST reach onRequest with path and query', { timeout: 10000 }, async () => {
  const opts = { host: host(), party: 'echo', room: 'ps-fetch', query: { q: 'a b', n: '1' } };
  const get = await PartySocket.fetch(opts, { signal: AbortSignal.timeout(3000) });
  assert.equal(get.status, 200);
  const g = await get.json();
  assert.equal(g.method, 'GET');
  assert.equal(g.room, 'ps-fetch');
  assert.equal(g.party, 'echo');
  assert.deepEqual(g.query, { q: 'a b', n: '1' });

  const post = await PartySocket.fetch({ ...opts, path: 'sub/path' }, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ hello: 'world' }),
    signal: AbortSignal.timeout(3000),
  });
  assert.equal(post.status, 200);
  const p = await post.json();
  assert.equal(p.method, 'POST');
  assert.equal(p.contentType, 'application/json');
  assert.deepEqual(JSON.parse(p.body), { hello: 'world' });
  assert.match(p.url, /^http:\/\/127\.0\.0\.1:\d+\/parties\/echo\/ps-fetch\/sub\/path\?/);

  const main = await PartySocket.fetch({ host: host(), room: 'ps-main-fetch' }, { signal: AbortSignal.timeout(3000) });
  assert.deepEqual(await main.json(), { room: 'ps-main-fetch', method: 'GET' });
});

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

test('reconnects after the server restarts on the same port, with the same id', { timeout: 30000 }, async () => {
  const port = await freePort();
  const persist = mkTmp('luaparty-ps-restart-');
  let s = await start({ project: PROJECT, persist, args: ['--port', String(port)] });
  assert.equal(s.port, port);
  const ps = new PartySocket({
    host: `127.0.0.1:${port}`, party: 'echo', room: 'ps-restart', id: 'sticky-id', query: { v: '1' },
    WebSocket: WS, minReconnectionDelay: 100, maxReconnectionDelay: 400, connectionTimeout: 2000, minUptime: 200,
  });
  const w = watch(ps);
  try {
    const first = await w.nextJson();
    assert.equal(first.id, 'sticky-id');
    assert.equal(first.connects, 1);
    ps.send('before');
    assert.equal((await w.nextJson()).data, 'before');

    await s.stop();
    await w.waitEvent('close', 1);
    ps.send('sent while down'); // buffered by PartySocket
    await sleep(300); // a few failed attempts while nothing listens

    s = await start({ project: PROJECT, persist, args: ['--port', String(port)] });
    assert.equal(s.port, port);
    await w.waitEvent('open', 2, 10000);
    const again = await w.nextJson(5000);
    assert.equal(again.type, 'welcome');
    assert.equal(again.id, 'sticky-id', 'the same id after reconnecting');
    assert.equal(again.query._pk, 'sticky-id');
    assert.equal(again.query.v, '1');
    assert.equal(again.connects, 1, 'a fresh server process');
    assert.equal(ps.id, 'sticky-id');
    assert.deepEqual(await w.nextJson(), { type: 'echo', id: 'sticky-id', data: 'sent while down' });
    ps.send('after');
    assert.equal((await w.nextJson()).data, 'after');
  } finally {
    ps.close();
    await s.stop();
  }
});
