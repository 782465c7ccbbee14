// room.storage get/put/delete from the "store" party of tests/projects/suite,
// and persistence across a restart (SIGTERM) and a kill -9.
// (The full storage API is covered by storage.test.mjs on tests/projects/storage.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, httpRequest, mkTmp } from './lib/server.mjs';
import { stoppedAfterAll } from './lib/fixtures.mjs';

const servers = stoppedAfterAll();

async function start(persist) {
  const s = await startServer({ project: 'suite', persist });
  servers.push(s);
  return s;
}

async function op(srv, room, body) {
  const r = await httpRequest(`${srv.url}/parties/store/${room}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  assert.equal(r.status, 200, `${JSON.stringify(body)} -> ${r.status} ${r.text}`);
  return r.json();
}

const VALUES = {
  table: { a: 1, b: ['x', 'y'], nested: { deep: true, s: 'h\u00e9llo' } },
  str: 'a string \u2713',
  int: 42,
  float: 3.5,
  neg: -7,
  yes: true,
  no: false,
};

test('put/get/delete within one run; rooms have separate storage', { timeout: 15000 }, async () => {
  const srv = await start();
  assert.deepEqual(await op(srv, 's1', { op: 'get', key: 'missing' }), { found: false });
  for (const [k, v] of Object.entries(VALUES)) await op(srv, 's1', { op: 'put', key: k, value: v });
  for (const [k, v] of Object.entries(VALUES)) {
    const r = await op(srv, 's1', { op: 'get', key: k });
    assert.equal(r.found, true, `key ${k} found`);
    assert.deepEqual(r.value, v, `key ${k}`);
  }
  assert.equal((await op(srv, 's1', { op: 'get', key: 'no' })).luaType, 'boolean');
  assert.equal((await op(srv, 's1', { op: 'get', key: 'int' })).luaType, 'number');
  assert.equal((await op(srv, 's1', { op: 'get', key: 'table' })).luaType, 'table');
  await op(srv, 's1', { op: 'put', key: 'str', value: 'overwritten' });
  assert.equal((await op(srv, 's1', { op: 'get', key: 'str' })).value, 'overwritten');
  await op(srv, 's1', { op: 'delete', key: 'int' });
  assert.deepEqual(await op(srv, 's1', { op: 'get', key: 'int' }), { found: false });
  assert.deepEqual(await op(srv, 's2', { op: 'get', key: 'table' }), { found: false }, 'room s2 does not see s1');
  await op(srv, 's2', { op: 'put', key: 'table', value: 'other' });
  assert.deepEqual((await op(srv, 's1', { op: 'get', key: 'table' })).value, VALUES.table);
});

test('storage persists across a restart (SIGTERM) with the same persist dir', { timeout: 20000 }, async () => {
  const persist = mkTmp('luaparty-store-');
  const srv = await start(persist);
  for (const [k, v] of Object.entries(VALUES)) await op(srv, 'keep', { op: 'put', key: k, value: v });
  await op(srv, 'keep', { op: 'put', key: 'gone', value: 'soon deleted' });
  await op(srv, 'keep', { op: 'delete', key: 'gone' });
  await op(srv, 'keep', { op: 'put', key: 'str', value: 'last write wins' });
  await op(srv, 'keep-2', { op: 'put', key: 'str', value: 'room 2' });
  const st = await srv.stop();
  assert.equal(st.killed, false, 'server exits on SIGTERM within 3 s');

  const srv2 = await start(persist);
  for (const [k, v] of Object.entries({ ...VALUES, str: 'last write wins' })) {
    const r = await op(srv2, 'keep', { op: 'get', key: k });
    assert.equal(r.found, true, `key ${k} survives the restart`);
    assert.deepEqual(r.value, v, `key ${k} after restart`);
  }
  assert.deepEqual(await op(srv2, 'keep', { op: 'get', key: 'gone' }), { found: false }, 'delete survives the restart');
  assert.equal((await op(srv2, 'keep-2', { op: 'get', key: 'str' })).value, 'room 2');
});

test('a fresh persist dir starts empty', { timeout: 10000 }, async () => {
  const srv = await start(mkTmp('luaparty-store-fresh-'));
  assert.deepEqual(await op(srv, 'keep', { op: 'get', key: 'str' }), { found: false });
});

test('a put answered before kill -9 survives it', { timeout: 20000 }, async () => {
  const persist = mkTmp('luaparty-store-kill-');
  const srv = await start(persist);
  await op(srv, 'durable', { op: 'put', key: 'k', value: { written: 'before kill' } });
  await op(srv, 'durable', { op: 'put', key: 'gone', value: 1 });
  await op(srv, 'durable', { op: 'delete', key: 'gone' });
  const e = await srv.kill9();
  assert.equal(e.signal, 'SIGKILL');
  const srv2 = await start(persist);
  assert.deepEqual(await op(srv2, 'durable', { op: 'get', key: 'k' }),
    { found: true, value: { written: 'before kill' }, luaType: 'table' });
  assert.deepEqual(await op(srv2, 'durable', { op: 'get', key: 'gone' }), { found: false });
});
