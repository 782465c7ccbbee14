// Room API from Lua: getConnection(s), connection tags, conn state, onStart,
// onClose, against tests/projects/suite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { httpRequest, waitFor } from './lib/server.mjs';
import { suiteServer } from './lib/fixtures.mjs';

const { srv, join } = suiteServer();

async function ask(c, cmd) {
  c.sendJson(cmd);
  return c.nextJson();
}

test('getConnections() iterates every connection of the room', { timeout: 10000 }, async () => {
  const a = await join('list-room', '?_pk=l-a');
  await join('list-room', '?_pk=l-b');
  await join('list-room', '?_pk=l-c');
  await join('list-room-2', '?_pk=l-other');
  const r = await ask(a, { cmd: 'list' });
  assert.equal(r.ids, 'l-a,l-b,l-c');
});

test('getConnection(id) finds a connection, or returns nil', { timeout: 10000 }, async () => {
  const a = await join('get-room', '?_pk=g-a');
  const b = await join('get-room', '?_pk=g%20b');
  let r = await ask(a, { cmd: 'get', id: 'g b' });
  assert.equal(r.found, true);
  assert.equal(r.id, 'g b');
  assert.equal(r.uri, b.hello.uri);
  r = await ask(a, { cmd: 'get', id: 'nobody' });
  assert.equal(r.found, false);
  r = await ask(a, { cmd: 'sendTo', id: 'g b', msg: 'direct' });
  assert.equal(r.found, true);
  assert.equal(await b.nextText(), 'direct');
  // conn.send called with another connection as self sends to that one, as
  // the Connection method does
  for (const via of ['sender', 'method']) {
    r = await ask(a, { cmd: 'sendTo', id: 'g b', msg: `via ${via}`, via });
    assert.equal(r.found, true);
    assert.equal(await b.nextText(), `via ${via}`);
  }
  await b.closeAndWait();
  await waitFor(async () => (await ask(a, { cmd: 'get', id: 'g b' })).found === false, 3000,
    { what: 'getConnection to return nil after close' });
});

test('getConnectionTags + getConnections(tag)', { timeout: 10000 }, async () => {
  const a = await join('tag-room', '?_pk=t-a&tags=red');
  await join('tag-room', '?_pk=t-b&tags=red,blue');
  const c = await join('tag-room', '?_pk=t-c');
  await join('tag-room-2', '?_pk=t-other&tags=red');
  assert.equal((await ask(a, { cmd: 'tagged', tag: 'red' })).ids, 't-a,t-b');
  assert.equal((await ask(a, { cmd: 'tagged', tag: 'blue' })).ids, 't-b');
  assert.equal((await ask(a, { cmd: 'tagged', tag: 'green' })).ids, '');
  // a connection's id is one of its tags, with or without getConnectionTags
  assert.equal((await ask(a, { cmd: 'tagged', tag: 't-b' })).ids, 't-b');
  assert.equal((await ask(a, { cmd: 'tagged', tag: 't-c' })).ids, 't-c');
  assert.equal((await ask(c, { cmd: 'list' })).ids, 't-a,t-b,t-c');
  await a.closeAndWait();
  await waitFor(async () => (await ask(c, { cmd: 'tagged', tag: 'red' })).ids === 't-b', 3000,
    { what: 'tag "red" to list only t-b after t-a closed' });
});

test('a connection whose Lua handle was collected still gets its messages', { timeout: 10000 }, async () => {
  const a = await join('drop-room', '?_pk=d-a');
  assert.deepEqual(await ask(a, { cmd: 'dropHandle' }), { type: 'dropped', id: 'd-a' });
  // the next messages (each made afresh on the Lua side) still find the connection
  assert.deepEqual(await ask(a, { cmd: 'whoami' }), { type: 'whoami', id: 'd-a' });
  assert.deepEqual(await ask(a, { cmd: 'whoami' }), { type: 'whoami', id: 'd-a' });
});

test('conn:setState / conn.state, visible through getConnection', { timeout: 10000 }, async () => {
  const a = await join('state-room', '?_pk=s-a');
  const b = await join('state-room', '?_pk=s-b');
  let r = await ask(a, { cmd: 'getState' });
  assert.equal(r.state, null, 'state is nil before setState');
  r = await ask(a, { cmd: 'setState', state: { n: 1, name: 'alice', tags: ['x', 'y'] } });
  assert.deepEqual(r.state, { n: 1, name: 'alice', tags: ['x', 'y'] });
  r = await ask(a, { cmd: 'getState' });
  assert.deepEqual(r.state, { n: 1, name: 'alice', tags: ['x', 'y'] }, 'state survives to the next message');
  r = await ask(b, { cmd: 'getState', id: 's-a' });
  assert.equal(r.id, 's-a');
  assert.deepEqual(r.state, { n: 1, name: 'alice', tags: ['x', 'y'] }, 'another handler sees it');
  r = await ask(b, { cmd: 'getState', id: 's-b' });
  assert.equal(r.state, null, 'state is per connection');
  r = await ask(a, { cmd: 'setState', state: 'replaced' });
  assert.equal(r.state, 'replaced');
  r = await ask(b, { cmd: 'getState', id: 's-a' });
  assert.equal(r.state, 'replaced');
});

test('onStart runs once, before onConnect/onMessage/onRequest', { timeout: 10000 }, async () => {
  const a = await join('start-room');
  assert.equal(a.hello.starts, 1);
  assert.equal(a.hello.firstLog, 'start');
  assert.equal(a.hello.noStartBefore, null);
  const b = await join('start-room');
  assert.equal(b.hello.starts, 1, 'second connection: onStart did not run again');
  const info = await ask(b, { cmd: 'info' });
  assert.equal(info.starts, 1);
  assert.match(info.log, /^start,connect,connect,message/);
  const r = await httpRequest(`${srv.url}/parties/main/start-room`);
  assert.equal(r.json().starts, 1);

  // a room whose first contact is an HTTP request
  const h = await httpRequest(`${srv.url}/parties/main/start-by-http`);
  assert.equal(h.status, 200);
  assert.equal(h.json().starts, 1);
  assert.equal(h.json().firstLog, 'start');
  assert.equal(h.json().noStartBefore, null);
  // two requests racing into a fresh room still start it once
  const [x, y] = await Promise.all([
    httpRequest(`${srv.url}/parties/main/start-race`),
    httpRequest(`${srv.url}/parties/main/start-race`),
  ]);
  assert.equal(x.json().starts, 1);
  assert.equal(y.json().starts, 1);
});

test('onClose runs and the others can be told', { timeout: 10000 }, async () => {
  const a = await join('close-room', '?_pk=c-a');
  const b = await join('close-room', '?_pk=c-b&announce=1');
  await b.closeAndWait();
  const left = await a.nextJson();
  assert.deepEqual(left, { type: 'left', id: 'c-b' });
  const info = await ask(a, { cmd: 'info' });
  assert.match(info.log, /close/);
});

test('a room instance is shared by all its connections and requests', { timeout: 10000 }, async () => {
  const a = await join('shared-room', '?_pk=sh-a');
  // the /count route iterates the connections from an HTTP request
  const r = await httpRequest(`${srv.url}/parties/main/shared-room/count`);
  assert.deepEqual(r.json(), { count: 1 });
  await join('shared-room', '?_pk=sh-b');
  const r2 = await httpRequest(`${srv.url}/parties/main/shared-room/count`);
  assert.deepEqual(r2.json(), { count: 2 });
  assert.equal((await ask(a, { cmd: 'list' })).ids, 'sh-a,sh-b');
});
