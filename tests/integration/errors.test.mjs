// Lua errors in party callbacks (tests/projects/suite/parties/faulty.lua):
// logged with file:line and a traceback; the server, the room and the
// connection keep working; onConnect errors close with 1011; onRequest -> 500.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { httpRequest, waitFor, PROJECTS } from './lib/server.mjs';
import { suiteServer, lineOf as lineIn } from './lib/fixtures.mjs';

const FAULTY = path.join(PROJECTS, 'suite/parties/faulty.lua');
const lineOf = (needle) => lineIn(FAULTY, needle);

const { srv, open } = suiteServer();

test('error in onMessage: logged with file:line and traceback; everything keeps working', { timeout: 15000 }, async () => {
  const line = lineOf('error("boom in onMessage")');
  const victim = await open('/parties/faulty/f1');
  const sameRoom = await open('/parties/faulty/f1');
  const otherRoom = await open('/parties/faulty/f2');
  const mainRoom = await open('/parties/main/not-faulty');
  await mainRoom.nextJson(); // hello

  victim.send('before');
  assert.equal(await victim.nextText(), 'echo:before');
  victim.send('boom');

  const where = `parties/faulty.lua:${line}: boom in onMessage`;
  await waitFor(() => srv.logs().includes(where), 3000, { what: `"${where}" in the server log` })
    .catch(() => assert.fail(`log lacks "${where}"; log:\n${srv.logs().slice(-3000)}`));
  const tail = srv.logs().slice(srv.logs().indexOf(where));
  assert.match(tail, /stack traceback/, 'a stack traceback follows the error');
  assert.match(srv.logs(), new RegExp(`(?<![\\w/.])parties/faulty\\.lua:${line}: boom in onMessage`),
    'the file name is project-relative (no absolute path before it)');

  assert.equal(srv.alive(), true, 'server still running');
  otherRoom.send('other room');
  assert.equal(await otherRoom.nextText(), 'echo:other room');
  sameRoom.send('same room');
  assert.equal(await sameRoom.nextText(), 'echo:same room');
  mainRoom.send('main party');
  assert.equal(await mainRoom.nextText(), 'main party');
  victim.send('after');
  assert.equal(await victim.nextText(), 'echo:after', 'the connection that raised keeps working');
  assert.equal(victim.closeInfo, null, 'the connection was not closed');
  const r = await httpRequest(`${srv.url}/parties/main/not-faulty/plain`);
  assert.equal(r.status, 200);
});

test('error in onConnect closes that socket with 1011', { timeout: 10000 }, async () => {
  const line = lineOf('error("connect exploded")');
  const good = await open('/parties/faulty/fc');
  let bad;
  try {
    bad = await open('/parties/faulty/fc?fail=1');
  } catch (e) {
    assert.fail(`the upgrade itself should succeed, then close with 1011; got ${e.message}`);
  }
  const info = await bad.waitClosed(3000);
  assert.ok(info, 'closed within 3 s');
  assert.equal(info.code, 1011);
  await waitFor(() => srv.logs().includes(`parties/faulty.lua:${line}: connect exploded`), 3000,
    { what: 'the onConnect error in the log' });
  good.send('still here');
  assert.equal(await good.nextText(), 'echo:still here');
});

test('error in onRequest gives HTTP 500 with the message (dev) and is logged', { timeout: 10000 }, async () => {
  const line = lineOf('error("request exploded")');
  const r = await httpRequest(`${srv.url}/parties/faulty/fr`);
  assert.equal(r.status, 500);
  assert.match(r.text, /request exploded/);
  await waitFor(() => srv.logs().includes(`parties/faulty.lua:${line}: request exploded`), 3000,
    { what: 'the onRequest error in the log' });
  assert.match(srv.logs(), /stack traceback/);
  // and again: one failure does not break the next request
  const r2 = await httpRequest(`${srv.url}/parties/faulty/fr`);
  assert.equal(r2.status, 500);
  const r3 = await httpRequest(`${srv.url}/parties/main/after-500/plain`);
  assert.equal(r3.status, 200);
  assert.equal(r3.text, 'plain text');
});

test('a bad argument to room:broadcast is named as the party wrote it: #1 the message, #2 the ids', { timeout: 10000 }, async () => {
  const r = await httpRequest(`${srv.url}/parties/faulty/fb/bad-broadcast`);
  assert.equal(r.status, 200, r.text);
  const [message, ids] = r.text.split('\n');
  assert.equal(message, `parties/faulty.lua:${lineOf('broadcast(123)')}: bad argument #1 to 'broadcast' (string or Binary expected, got number)`);
  assert.equal(ids, `parties/faulty.lua:${lineOf('"not a table"')}: bad argument #2 to 'broadcast' (table expected, got string)`);
});

test('many errors in a row do not leak or wedge the room', { timeout: 15000 }, async () => {
  const c = await open('/parties/faulty/many');
  for (let i = 0; i < 50; i++) c.send('boom');
  c.send('alive?');
  assert.equal(await c.nextText(5000), 'echo:alive?');
  assert.equal(srv.alive(), true);
});
