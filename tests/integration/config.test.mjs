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

test('serve.build is ignored with a warning that gives the esbuild command to run instead', { timeout: 10000 }, async () => {
  const dir = project({
    name: 'x', main: 'parties/main.lua',
    serve: { path: 'public', build: { entry: ['src/client.ts', 'src/admin.ts'], outdir: 'public/js' }, browserTTL: 60 },
  }, { 'parties/main.lua': OK_LUA, 'public/index.html': '<p>hi</p>' });
  const srv = await startServer({ project: dir });
  servers.push(srv);
  const lines = srv.logs().split('\n');
  const build = lines.filter((l) => l.includes('serve.build'));
  assert.equal(build.length, 1, `one line about serve.build:\n${srv.logs()}`);
  assert.match(build[0], / warn /);
  assert.ok(build[0].includes('npx esbuild src/client.ts src/admin.ts --bundle --format=esm --splitting --sourcemap --outdir=public/js --watch'),
    build[0]);
  assert.match(build[0], /README "Porting from PartyKit"/);
  assert.ok(lines.some((l) => /"serve\.browserTTL" is ignored by luaparty: files are served with an ETag/.test(l)), srv.logs());
  // the folder is still served
  assert.equal((await httpRequest(`${srv.url}/`)).text, '<p>hi</p>');
});

test('serve.build as a string: the outdir defaults to <serve>/dist, as partykit dev', { timeout: 10000 }, async () => {
  const dir = project({ name: 'x', main: 'parties/main.lua', serve: { path: 'static', build: 'app/main.tsx' } },
    { 'parties/main.lua': OK_LUA, 'static/index.html': '<p>hi</p>' });
  const srv = await startServer({ project: dir });
  servers.push(srv);
  assert.ok(srv.logs().includes('npx esbuild app/main.tsx --bundle --format=esm --splitting --sourcemap --outdir=static/dist --watch'),
    srv.logs());
});

test('each ignored PartyKit key says what to do instead', { timeout: 10000 }, async () => {
  const dir = project({ name: 'x', main: 'parties/main.lua', define: { X: '1' }, build: { command: 'make' }, ai: { binding: 'AI' } });
  const srv = await startServer({ project: dir });
  servers.push(srv);
  const logs = srv.logs();
  assert.match(logs, /"define" is ignored by luaparty: no bundle to substitute into: put values in "vars" or \.env and read room\.env/);
  assert.match(logs, /"build" is ignored by luaparty: luaparty runs no build step: run the command yourself/);
  assert.match(logs, /"ai" is ignored by luaparty: a Cloudflare binding luaparty does not have: call the service with fetch\(\)/);
});

test('a TypeScript or JavaScript main says in one line that parties are Lua, pointing at the README', { timeout: 10000 }, async () => {
  for (const [main, kind] of [['src/server.ts', 'TypeScript'], ['party/index.js', 'JavaScript']]) {
    const r = await expectBad(project({ name: 'x', main }, { [main]: 'export default class Server {}\n' }), main);
    const lines = r.logs.trim().split('\n');
    assert.equal(lines.length, 1, `one line:\n${r.logs}`);
    assert.ok(lines[0].endsWith(`partykit.json: party "main": ${main} is ${kind}, and luaparty runs parties written in Lua: ` +
      'README "Porting from PartyKit" shows a TypeScript party next to its Lua version'), lines[0]);
  }
});
