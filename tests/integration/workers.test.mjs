// --workers N: one event loop per thread, each room owned by one worker.
// Clients land on whichever worker accepts them; these tests check that a
// room is still one instance (one Lua state, one set of connections), that
// cross-party calls, alarms and storage work across workers, that /metrics
// shows the placement, and that the process-wide limits stay process-wide.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import {
  startServer, httpRequest, wsConnect, waitFor, closeAll, mkTmp, runExpectExit, metricsUrl,
} from './lib/server.mjs';
import { stoppedAfterAll, copyProject } from './lib/fixtures.mjs';

const servers = stoppedAfterAll();

async function start(args = [], persist) {
  const s = await startServer({ project: 'workers', args: ['--workers', '2', '--metrics', '127.0.0.1:0', ...args], persist });
  servers.push(s);
  s.metricsUrl = await metricsUrl(s);
  return s;
}

async function metric(s, re) {
  const r = await httpRequest(s.metricsUrl);
  const m = re.exec(r.text);
  return m ? Number(m[1]) : NaN;
}

// One request per new TCP connection (no keep-alive), so the kernel hands
// each to whichever worker accepts first.
function freshRequest(url, method = 'GET') {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

test('2 workers: the log says so, /metrics counts them, and rooms spread over both', async () => {
  const s = await start();
  assert.match(s.logs(), /2 workers \(event loop threads\)/);
  assert.equal(await metric(s, /^luaparty_workers (\d+)$/m), 2);
  await Promise.all(Array.from({ length: 24 }, (_, i) => freshRequest(`${s.url}/parties/main/spread-${i}`)));
  const w0 = await metric(s, /^luaparty_worker_rooms\{worker="0"\} (\d+)$/m);
  const w1 = await metric(s, /^luaparty_worker_rooms\{worker="1"\} (\d+)$/m);
  assert.equal(w0 + w1, 24, `rooms per worker: ${w0} + ${w1}`);
  assert.ok(w0 > 0 && w1 > 0, `both workers own rooms: ${w0} + ${w1}`);
  assert.equal(await metric(s, /^luaparty_rooms\{party="main"\} (\d+)$/m), 24);
});

test('one room is one instance: 40 POSTs over 40 fresh connections all reach the same Lua state', async () => {
  const s = await start();
  const url = `${s.url}/parties/main/counter`;
  const posts = await Promise.all(Array.from({ length: 40 }, () => freshRequest(url, 'POST')));
  assert.ok(posts.every((p) => p.status === 200), JSON.stringify(posts.filter((p) => p.status !== 200)));
  const view = JSON.parse((await freshRequest(url)).body);
  assert.equal(view.hits, 40, 'the in-memory counter saw every request (one instance)');
  assert.equal(view.stored, 40, 'and so did storage');
});

test('one keep-alive connection alternating between rooms of both workers gets every answer right', async () => {
  const s = await start();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = (room) => new Promise((resolve, reject) => {
    http.get(`${s.url}/parties/main/${room}`, { agent }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(JSON.parse(body)));
    }).on('error', reject);
  });
  for (let i = 0; i < 60; i++) {
    const room = `alt-${i % 6}`;
    const v = await get(room);
    assert.equal(v.id, room, `answer ${i} came from the right room`);
  }
  agent.destroy();
});

test('WebSockets of one room on many connections all meet: broadcast reaches every other, counts agree', async () => {
  const s = await start();
  const n = 16;
  const clients = [];
  for (let i = 0; i < n; i++) clients.push(await wsConnect(`${s.wsUrl}/parties/main/chat?_pk=c${i}`));
  clients[0].send('who');
  assert.equal(await clients[0].nextText(), `conns:${n}`);
  clients[3].send('hello');
  for (let i = 0; i < n; i++) {
    if (i === 3) continue;
    assert.equal(await clients[i].nextText(), 'c3:hello', `client ${i} got the broadcast`);
  }
  const view = JSON.parse((await freshRequest(`${s.url}/parties/main/chat`)).body);
  assert.equal(view.conns, n);
  await closeAll(clients);
  await waitFor(async () => JSON.parse((await freshRequest(`${s.url}/parties/main/chat`)).body).conns === 0, 3000,
    { what: 'onClose of every connection' });
});

test('cross-party fetch to 20 rooms (spread over both workers) from one callback', async () => {
  const s = await start();
  const r = await httpRequest(`${s.url}/parties/hub/h1/fetch?n=20`, { timeout: 10_000 });
  assert.equal(r.status, 200, r.text);
  const out = r.json();
  assert.equal(out.length, 20);
  out.forEach((o, i) => {
    assert.equal(o.post, 200);
    assert.equal(o.view.id, `w-${i + 1}`);
    assert.equal(o.view.hits, 1);
  });
  const w0 = await metric(s, /^luaparty_worker_rooms\{worker="0"\} (\d+)$/m);
  const w1 = await metric(s, /^luaparty_worker_rooms\{worker="1"\} (\d+)$/m);
  assert.ok(w0 > 0 && w1 > 0, `the called rooms live on both workers: ${w0} + ${w1}`);
});

test('cross-party sockets to 20 rooms across workers: each echo comes back to its own socket', async () => {
  const s = await start();
  const r = await httpRequest(`${s.url}/parties/hub/h2/socket?n=20`, { timeout: 10_000 });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json(), Array.from({ length: 20 }, (_, i) => `echo:${i + 1}`));
  // the sockets were closed: every target room saw onClose
  await waitFor(async () => {
    const views = await Promise.all([1, 7, 13, 20].map((i) => freshRequest(`${s.url}/parties/main/s-${i}`)));
    return views.every((v) => JSON.parse(v.body).conns === 0);
  }, 3000, { what: 'the pipes to close' });
});

test('alarms of rooms on both workers fire (one alarm timer, rooms woken on their owners)', async () => {
  const s = await start();
  const rooms = Array.from({ length: 10 }, (_, i) => `alarm-${i}`);
  for (const r of rooms) {
    const res = await freshRequest(`${s.url}/parties/main/${r}?alarm=2000`, 'POST');
    assert.equal(res.status, 200);
  }
  const early = await Promise.all(rooms.map((r) => freshRequest(`${s.url}/parties/main/${r}`)));
  assert.ok(early.every((v) => JSON.parse(v.body).fired === false), 'no alarm fired before its time');
  await waitFor(async () => {
    const views = await Promise.all(rooms.map((r) => freshRequest(`${s.url}/parties/main/${r}`)));
    return views.every((v) => JSON.parse(v.body).fired === true);
  }, 8000, { what: 'every onAlarm' });
});

test('storage written by 2 workers is all there after a restart with 1 worker, and with 3', async () => {
  const persist = mkTmp('luaparty-workers-');
  const s = await start([], persist);
  const rooms = Array.from({ length: 12 }, (_, i) => `keep-${i}`);
  for (const r of rooms) for (let k = 0; k <= rooms.indexOf(r) % 3; k++) await freshRequest(`${s.url}/parties/main/${r}`, 'POST');
  const stop = await s.stop(8000);
  assert.equal(stop.code, 0, s.logs().slice(-2000));
  for (const workers of ['1', '3']) {
    const t = await startServer({ project: 'workers', args: ['--workers', workers], persist });
    servers.push(t);
    for (const r of rooms) {
      const v = JSON.parse((await freshRequest(`${t.url}/parties/main/${r}`)).body);
      assert.equal(v.stored, rooms.indexOf(r) % 3 + 1, `${r} with ${workers} worker(s)`);
    }
    assert.equal((await t.stop(8000)).code, 0);
  }
});

test('--max-connections is one limit for the whole process, not per worker', async () => {
  const s = await start(['--max-connections', '6']);
  const clients = [];
  for (let i = 0; i < 6; i++) clients.push(await wsConnect(`${s.wsUrl}/parties/main/full-${i}`));
  await assert.rejects(wsConnect(`${s.wsUrl}/parties/main/full-x`), /503/);
  await closeAll(clients);
});

test('SIGTERM with WebSockets open on both workers: 1001 to every client, exit 0', async () => {
  const s = await start();
  const clients = [];
  for (let i = 0; i < 12; i++) clients.push(await wsConnect(`${s.wsUrl}/parties/main/bye-${i}`));
  const r = await s.stop(8000);
  assert.equal(r.killed, false);
  assert.equal(r.code, 0, s.logs().slice(-2000));
  const infos = await Promise.all(clients.map((c) => c.closed));
  assert.ok(infos.every((i) => i.code === 1001), JSON.stringify(infos.map((i) => i.code)));
});

test('"luaparty": {"workers": 3} in partykit.json sets the worker count; --workers wins', async () => {
  const dir = copyProject('workers', (cfg) => ({ ...cfg, luaparty: { workers: 3 } }), 'luaparty-workers-json-');
  const forced = process.env.LUAPARTY_TEST_WORKERS; // the suite's --workers would win over the file
  delete process.env.LUAPARTY_TEST_WORKERS;
  const a = await startServer({ project: dir }).finally(() => {
    if (forced !== undefined) process.env.LUAPARTY_TEST_WORKERS = forced;
  });
  servers.push(a);
  assert.match(a.logs(), /3 workers \(event loop threads\)/);
  const b = await startServer({ project: dir, args: ['--workers', '2'] });
  servers.push(b);
  assert.match(b.logs(), /2 workers \(event loop threads\)/);
});

test('bad --workers values are refused with a clear message', async () => {
  for (const v of ['0', 'two', '-1', '1000']) {
    const r = await runExpectExit({ project: 'workers', args: ['--workers', v] });
    assert.equal(r.code, 2, r.logs);
    assert.match(r.logs, /--workers .*(not a positive number|at most 256)/);
  }
});
