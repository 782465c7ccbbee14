// The seed project, examples/multiparty: "main" rooms report their connection
// counts to the "connections" party (room "active-connections"), which keeps
// a {roomId: count} map in storage and broadcasts every new map.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import PartySocket from 'partysocket';
import WS from 'ws';
import {
  startServer, wsConnect, waitFor, httpRequest, closeAll, EXAMPLES, mkTmp,
} from './lib/server.mjs';
import path from 'node:path';

const PROJECT = path.join(EXAMPLES, 'multiparty');
const ACTIVE = '/parties/connections/active-connections';

let servers = [];
let clients = [];
afterEach(async () => {
  await closeAll(clients);
  clients = [];
  for (const s of servers) await s.stop();
  servers = [];
});

async function start(opts = {}) {
  const s = await startServer({ project: PROJECT, ...opts });
  servers.push(s);
  return s;
}

async function connect(srv, room, pathPrefix = '/parties/main/') {
  const c = await wsConnect(`${srv.wsUrl}${pathPrefix}${encodeURIComponent(room)}`);
  clients.push(c);
  return c;
}

async function getMap(srv) {
  const r = await httpRequest(srv.url + ACTIVE);
  assert.equal(r.status, 200, `GET ${ACTIVE} -> ${r.status}: ${r.text}`);
  return r.json();
}

function sameMap(a, b) {
  try { assert.deepEqual(a, b); return true; } catch { return false; }
}

async function waitForMap(srv, expected, timeout = 5000) {
  let last;
  try {
    await waitFor(async () => { last = await getMap(srv); return sameMap(last, expected); }, timeout);
  } catch (e) {
    assert.fail(`GET ${ACTIVE} never became ${JSON.stringify(expected)} within ${timeout} ms; last: ${JSON.stringify(last)}`);
  }
}

async function listen(srv) {
  const l = await wsConnect(srv.wsUrl + ACTIVE);
  clients.push(l);
  return l;
}

async function nextMap(listener, timeout = 3000) {
  const m = await listener.next(timeout);
  assert.equal(m.isBinary, false, 'the map is broadcast as a text frame');
  return JSON.parse(m.data);
}

test('GET on an empty server returns an empty map', { timeout: 15000 }, async () => {
  const srv = await start();
  assert.deepEqual(await getMap(srv), {});
});

test('a listener receives each new map as clients connect and disconnect', { timeout: 20000 }, async () => {
  const srv = await start();
  const listener = await listen(srv);
  const a = await connect(srv, 'demo-room');
  assert.deepEqual(await nextMap(listener), { 'demo-room': 1 });
  const b = await connect(srv, 'demo-room');
  assert.deepEqual(await nextMap(listener), { 'demo-room': 2 });
  const c = await connect(srv, 'other-room');
  assert.deepEqual(await nextMap(listener), { 'demo-room': 2, 'other-room': 1 });
  await b.closeAndWait();
  assert.deepEqual(await nextMap(listener), { 'demo-room': 1, 'other-room': 1 });
  await a.closeAndWait();
  assert.deepEqual(await nextMap(listener), { 'demo-room': 0, 'other-room': 1 });
  await c.closeAndWait();
  assert.deepEqual(await nextMap(listener), { 'demo-room': 0, 'other-room': 0 });
  assert.deepEqual(await getMap(srv), { 'demo-room': 0, 'other-room': 0 });
  // nothing else was broadcast
  await assert.rejects(listener.next(300), /no message/);
});

test('GET returns the current map while clients are connected', { timeout: 15000 }, async () => {
  const srv = await start();
  await connect(srv, 'get-room');
  await connect(srv, 'get-room');
  await waitForMap(srv, { 'get-room': 2 });
});

test('counts never go below 0', { timeout: 15000 }, async () => {
  const srv = await start();
  const c = await connect(srv, 'zero-room');
  await waitForMap(srv, { 'zero-room': 1 });
  await c.closeAndWait();
  await waitForMap(srv, { 'zero-room': 0 });
  // a stray disconnect (as a "main" room would POST it) is clamped at 0
  const r = await httpRequest(srv.url + ACTIVE, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'disconnect', connectionId: 'ghost', roomId: 'zero-room' }),
  });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json(), { 'zero-room': 0 });
  const r2 = await httpRequest(srv.url + ACTIVE, {
    method: 'POST',
    body: JSON.stringify({ type: 'disconnect', connectionId: 'ghost', roomId: 'never-seen' }),
  });
  assert.deepEqual(r2.json(), { 'zero-room': 0, 'never-seen': 0 });
  assert.deepEqual(await getMap(srv), { 'zero-room': 0, 'never-seen': 0 });
});

test('partysocket clients (party "main") are counted', { timeout: 20000 }, async () => {
  const srv = await start();
  const listener = await listen(srv);
  const sockets = [];
  const opened = [];
  try {
    for (let i = 0; i < 2; i++) {
      const ps = new PartySocket({
        host: `127.0.0.1:${srv.port}`, party: 'main', room: 'ps-room', WebSocket: WS, maxRetries: 0,
      });
      sockets.push(ps);
      opened.push(new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('partysocket did not open within 5 s')), 5000);
        ps.addEventListener('open', () => { clearTimeout(t); resolve(); });
      }));
      await opened[i];
      assert.deepEqual(await nextMap(listener), { 'ps-room': i + 1 });
    }
    assert.deepEqual(await getMap(srv), { 'ps-room': 2 });
    sockets[0].close();
    assert.deepEqual(await nextMap(listener), { 'ps-room': 1 });
    sockets[1].close();
    assert.deepEqual(await nextMap(listener), { 'ps-room': 0 });
  } finally {
    for (const ps of sockets) ps.close();
  }
});

test('3 rooms x 3 clients at once: exact counts, partial closes, then all 0', { timeout: 20000 }, async () => {
  const srv = await start();
  const listener = await listen(srv);
  const rooms = ['room-a', 'room-b', 'room-c'];
  const byRoom = {};
  await Promise.all(rooms.flatMap((r) => [0, 1, 2].map(async () => {
    const c = await connect(srv, r);
    (byRoom[r] ??= []).push(c);
  })));
  await waitForMap(srv, { 'room-a': 3, 'room-b': 3, 'room-c': 3 });
  await Promise.all([byRoom['room-a'][0].closeAndWait(), byRoom['room-b'][0].closeAndWait(), byRoom['room-b'][1].closeAndWait()]);
  await waitForMap(srv, { 'room-a': 2, 'room-b': 1, 'room-c': 3 });
  await Promise.all(Object.values(byRoom).flat().map((c) => c.closeAndWait()));
  await waitForMap(srv, { 'room-a': 0, 'room-b': 0, 'room-c': 0 });
  // the listener saw 9 connects + 9 disconnects, each a valid map, ending at all 0
  const seen = [];
  for (let i = 0; i < 18; i++) seen.push(await nextMap(listener));
  for (const m of seen) {
    for (const [k, v] of Object.entries(m)) {
      assert.ok(rooms.includes(k), `unexpected room ${k}`);
      assert.ok(Number.isInteger(v) && v >= 0 && v <= 3, `count out of range in ${JSON.stringify(m)}`);
    }
  }
  assert.deepEqual(seen.at(-1), { 'room-a': 0, 'room-b': 0, 'room-c': 0 });
  await assert.rejects(listener.next(300), /no message/);
});

test('20 simultaneous connects then disconnects end at exactly 20 then 0', { timeout: 25000 }, async () => {
  const srv = await start();
  const listener = await listen(srv);
  const crowd = await Promise.all(Array.from({ length: 20 }, () => connect(srv, 'crowd')));
  await waitForMap(srv, { crowd: 20 });
  const ups = [];
  for (let i = 0; i < 20; i++) ups.push((await nextMap(listener)).crowd);
  assert.deepEqual(ups, Array.from({ length: 20 }, (_, i) => i + 1), 'each connect bumps the count by one');
  await Promise.all(crowd.map((c) => c.closeAndWait()));
  await waitForMap(srv, { crowd: 0 });
  const downs = [];
  for (let i = 0; i < 20; i++) downs.push((await nextMap(listener)).crowd);
  assert.deepEqual(downs, Array.from({ length: 20 }, (_, i) => 19 - i), 'each disconnect lowers the count by one');
  await assert.rejects(listener.next(300), /no message/);
});

test('counts survive a restart with the same persist dir', { timeout: 25000 }, async () => {
  const persist = mkTmp('luaparty-multiparty-');
  const srv = await start({ persist });
  const a = await connect(srv, 'live-room');
  const b = await connect(srv, 'live-room');
  await waitForMap(srv, { 'live-room': 2 });
  await a.closeAndWait();
  await waitForMap(srv, { 'live-room': 1 });
  await b.closeAndWait();
  await waitForMap(srv, { 'live-room': 0 });
  for (let i = 0; i < 3; i++) {
    const r = await httpRequest(srv.url + ACTIVE, {
      method: 'POST',
      body: JSON.stringify({ type: 'connect', connectionId: `c${i}`, roomId: 'kept-room' }),
    });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { 'live-room': 0, 'kept-room': i + 1 });
  }
  const expected = { 'live-room': 0, 'kept-room': 3 };
  assert.deepEqual(await getMap(srv), expected);
  const st = await srv.stop();
  assert.equal(st.killed, false, 'server exits on SIGTERM without needing SIGKILL');

  const srv2 = await start({ persist });
  assert.deepEqual(await getMap(srv2), expected, 'GET after restart shows the last map');
  // and it keeps counting from there
  const listener = await listen(srv2);
  await connect(srv2, 'kept-room');
  assert.deepEqual(await nextMap(listener), { 'live-room': 0, 'kept-room': 4 });
});

test('/party/:room alias reaches the main party too', { timeout: 15000 }, async () => {
  const srv = await start();
  const listener = await listen(srv);
  await connect(srv, 'alias-room', '/party/');
  assert.deepEqual(await nextMap(listener), { 'alias-room': 1 });
});
