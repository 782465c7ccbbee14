// partykit.json validation: bad configs exit with code 2 within 5 s and a
// message naming partykit.json; keys PartyKit knows but luaparty does not use
// only warn. Projects are written to fresh temp dirs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runExpectExit, startServer, httpRequest, mkTmp } from './lib/server.mjs';
import { stoppedAfterAll, writeProject } from './lib/fixtures.mjs';

const OK_LUA = 'return { onRequest = function(self, req) return "ok:" .. self.room.name end }\n';

const project = (config, files = { 'parties/main.lua': OK_LUA }) => writeProject(config, files, 'luaparty-config-');

async function expectBad(dir, ...mentions) {
  const r = await runExpectExit({ project: dir, timeout: 5000 });
  assert.equal(r.timedOut, false, `should exit within 5 s; log:\n${r.logs}`);
  assert.doesNotMatch(r.logs, /listening on/, 'must not start listening');
  assert.equal(r.code, 2, `exit code (log:\n${r.logs})`);
  assert.match(r.logs, /partykit\.json/, 'message names partykit.json');
  for (const m of mentions) assert.ok(r.logs.includes(m), `message mentions ${JSON.stringify(m)}; log:\n${r.logs}`);
  return r;
}

const servers = stoppedAfterAll();

test('partykit.json that is not JSON', { timeout: 10000 }, async () => {
  await expectBad(project('{"name": "x", "main": "parties/main.lua",'));
});

test('a JSON error in partykit.json gives its line and column', { timeout: 10000 }, async () => {
  await expectBad(project('{\n  "name": "x",\n  "main": "parties/main.lua"\n  "vars": {}\n}\n'),
    'partykit.json:4:3: not valid JSON');
});

test('partykit.json holding an array names the type, not a missing key', { timeout: 10000 }, async () => {
  const r = await expectBad(project('[1,2,3]'), 'must hold a JSON object, not an array');
  assert.doesNotMatch(r.logs, /"main" is missing/);
});

test('partykit.json without "main"', { timeout: 10000 }, async () => {
  await expectBad(project({ name: 'x', parties: {} }), 'main');
});

test('partykit.json whose main script is missing', { timeout: 10000 }, async () => {
  await expectBad(project({ name: 'x', main: 'parties/nothere.lua' }), 'nothere.lua');
});

test('partykit.json whose party script is missing', { timeout: 10000 }, async () => {
  await expectBad(project({ name: 'x', main: 'parties/main.lua', parties: { other: 'parties/missing-other.lua' } }),
    'missing-other.lua');
});

test('partykit.json with a bad party name', { timeout: 10000 }, async () => {
  await expectBad(project({ name: 'x', main: 'parties/main.lua', parties: { 'bad name!': 'parties/main.lua' } }),
    'bad name!');
});

test('partykit.json with an unknown key suggests the nearest known key', { timeout: 10000 }, async () => {
  await expectBad(project({ name: 'x', main: 'parties/main.lua', partiez: { other: 'parties/main.lua' } }),
    'partiez', 'parties');
});

test('a missing partykit.json', { timeout: 10000 }, async () => {
  const dir = mkTmp('luaparty-config-empty-');
  await expectBad(dir);
});

test('a PartyKit key luaparty does not use ("compatibilityDate") only warns', { timeout: 10000 }, async () => {
  const dir = project({
    name: 'x', main: 'parties/main.lua', compatibilityDate: '2024-01-01', parties: { 'my-party': 'parties/main.lua' },
  });
  const srv = await startServer({ project: dir });
  servers.push(srv);
  assert.match(srv.logs(), /compatibilityDate/, 'the warning names the key');
  const r = await httpRequest(`${srv.url}/parties/main/r`);
  assert.equal(r.status, 200);
  assert.equal(r.text, 'ok:main');
  const r2 = await httpRequest(`${srv.url}/parties/my-party/r`);
  assert.equal(r2.text, 'ok:my-party');
});

test('a Lua syntax error in a party script is reported with the file name', { timeout: 10000 }, async () => {
  // Either the server refuses to start, or it starts and the room fails with 500:
  // both must name the script.
  const dir = project({ name: 'x', main: 'parties/main.lua' }, { 'parties/main.lua': 'return {\n  onRequest = function(self\n' });
  let srv;
  try {
    srv = await startServer({ project: dir });
  } catch (e) {
    assert.match(e.message, /exited before listening/, e.message);
    assert.match(e.message, /parties\/main\.lua/, e.message);
    return;
  }
  servers.push(srv);
  const r = await httpRequest(`${srv.url}/parties/main/r`);
  assert.equal(r.status, 500);
  assert.match(srv.logs() + r.text, /parties\/main\.lua/);
});
