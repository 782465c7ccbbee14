// Cross-party calls from Lua: stub:fetch() and stub:socket()
// (tests/projects/suite/parties/caller.lua and recur.lua).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, wsConnect, httpRequest, waitFor } from './lib/server.mjs';
import { suiteServer } from './lib/fixtures.mjs';

const { srv, join } = suiteServer();

async function call(action, room = 'c1', timeout = 5000) {
  const r = await httpRequest(`${srv.url}/parties/caller/${room}/${action}`, { timeout });
  assert.equal(r.status, 200, `caller/${action} -> ${r.status}: ${r.text}\nlog tail:\n${srv.logs().slice(-2000)}`);
  return r;
}

test('cross-party fetch: status, headers, text(), json(), method/headers/body, path', { timeout: 15000 }, async () => {
  const j = (await call('fetch')).json();
  assert.equal(j.s1, 418);
  assert.equal(j.h1, 'yes', 'res.headers["x-custom"]');
  assert.equal(j.t1, 'teapot');
  assert.equal(j.s2, 200);
  assert.match(j.ct2 ?? '', /^application\/json/);
  assert.deepEqual(j.j2, { ok: true, n: 7, list: [1, 2, 3], s: 'h\u00e9llo' });
  assert.equal(j.s3, 200);
  assert.equal(j.method3, 'POST');
  const u3 = new URL(j.url3);
  assert.equal(u3.pathname, '/parties/main/fetch-target/echo/path');
  assert.equal(u3.searchParams.get('x'), '1');
  assert.equal(j.from3, 'caller');
  assert.equal(j.body3, 'payload');
  assert.equal(j.s4, 200);
  assert.equal(j.method4, 'POST');
  assert.equal(new URL(j.url4).pathname, '/parties/main/fetch-target');
  assert.equal(j.body4, 'table-only');
  assert.equal(j.s5, 204);
  assert.equal(j.t5, '');
});

test('cross-party socket: receive, send, broadcast to real clients, close', { timeout: 15000 }, async () => {
  const watcher = await join('sock-target', '?_pk=watcher');
  const j = (await call('socket')).json();
  assert.equal(j.e1, null);
  const hello = JSON.parse(j.hello);
  assert.equal(hello.type, 'hello');
  assert.equal(hello.party, 'main');
  assert.equal(hello.room, 'sock-target');
  assert.equal(j.echo, 'ping');
  assert.equal(j.b, 'from-caller', 'the socket receives its own broadcast');
  assert.equal(await watcher.nextText(), 'from-caller', 'a real client in the target room got the broadcast');
  // after ws:close() the room is down to the watcher again
  await waitFor(async () => {
    watcher.sendJson({ cmd: 'list' });
    return (await watcher.nextJson()).ids === 'watcher';
  }, 3000, { what: 'the cross-party socket to leave the room after ws:close()' });
});

test('cross-party socket: receive(200) with nothing to read -> nil, "timeout", socket still usable', { timeout: 15000 }, async () => {
  const t0 = Date.now();
  const j = (await call('timeout', 'c-timeout')).json();
  const ms = Date.now() - t0;
  assert.equal(JSON.parse(j.hello).type, 'hello');
  assert.equal(j.none, null);
  assert.equal(j.terr, 'timeout');
  assert.equal(j.echo, 'still open', 'the socket still works after a receive timeout');
  assert.ok(ms < 2000, `took ${ms} ms for a 200 ms receive timeout`);
});

test('cross-party socket: receive after the server closes it -> nil, "closed"', { timeout: 15000 }, async () => {
  const j = (await call('closed')).json();
  assert.equal(JSON.parse(j.hello).type, 'hello');
  assert.equal(j.m, null);
  assert.equal(j.err, 'closed');
});

test('cross-party socket: ws.onmessage receives messages', { timeout: 15000 }, async () => {
  assert.equal((await call('listen', 'l1')).text, 'listening');
  const c = await join('listen-target');
  c.sendJson({ cmd: 'broadcast', msg: 'hi-listeners' });
  assert.equal(await c.nextText(), 'hi-listeners');
  await waitFor(async () => {
    const r = (await call('received', 'l1')).json();
    return r.all.split('\n').includes('hi-listeners');
  }, 3000, { what: 'onmessage to collect "hi-listeners"' });
});

test('mutual recursion a -> b -> a -> b -> a completes (no deadlock)', { timeout: 15000 }, async () => {
  let t0 = Date.now();
  const r = await httpRequest(`${srv.url}/parties/recur/a/4`, { timeout: 5000 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.text, 'a>b>a>b>a');
  let ms = Date.now() - t0;
  assert.ok(ms < 2000, `4 nested loopback fetches took ${ms} ms (a timeout breaking a deadlock?)`);
  t0 = Date.now();
  const r2 = await httpRequest(`${srv.url}/parties/recur/b/5`, { timeout: 5000 });
  assert.equal(r2.text, 'b>a>b>a>b>a');
  ms = Date.now() - t0;
  assert.ok(ms < 2000, `5 nested loopback fetches took ${ms} ms`);
});

test('concurrent cross-party fetches from several rooms all complete', { timeout: 15000 }, async () => {
  const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => call('fetch', `par-${i}`)));
  for (const r of rs) assert.equal(r.json().t1, 'teapot');
});

test('the server keeps serving while a room waits on a cross-party call', { timeout: 15000 }, async () => {
  // recursion keeps rooms a/b suspended; other traffic proceeds meanwhile
  const pending = httpRequest(`${srv.url}/parties/recur/a/6`, { timeout: 5000 });
  const quick = await httpRequest(`${srv.url}/parties/main/bystander/plain`);
  assert.equal(quick.text, 'plain text');
  assert.equal((await pending).text, 'a>b>a>b>a>b>a');
});

test('SIGTERM with a cross-party socket still open exits cleanly (code 0, no SIGKILL)', { timeout: 15000 }, async () => {
  const own = await startServer({ project: 'suite' });
  try {
    assert.equal((await httpRequest(`${own.url}/parties/caller/l-exit/listen`)).text, 'listening');
    const c = await wsConnect(`${own.wsUrl}/parties/main/listen-target`);
    await c.nextJson();
    c.sendJson({ cmd: 'broadcast', msg: 'before-exit' });
    assert.equal(await c.nextText(), 'before-exit');
    await waitFor(async () => (await httpRequest(`${own.url}/parties/caller/l-exit/received`)).json().all.includes('before-exit'),
      3000, { what: 'the cross-party socket to get the broadcast' });
    const st = await own.stop();
    assert.equal(st.killed, false, 'exited on SIGTERM within 3 s');
    assert.equal(st.code, 0, `exit code ${st.code} (signal ${st.signal}); log tail:\n${own.logs().slice(-3000)}`);
  } finally {
    await own.kill9();
  }
});
