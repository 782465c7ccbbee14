// Runs every code block of README.md's "Writing a party" tutorial, in order,
// and checks the outputs the README shows. Blocks are marked with
// <!-- doc-test: shell | file PATH | shell, server | node --> comments.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { BIN, REPO, mkTmp, startServer, wsConnect, closeAll } from './lib/server.mjs';

const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
const section = readme.slice(readme.indexOf('## Writing a party'), readme.indexOf('## The Lua API'));

// [{kind, arg, code, after}] where `after` is the text up to the next marked block
function blocks(text) {
  const re = /<!-- doc-test: ([^>]*?) -->\n```[a-z]*\n([\s\S]*?)```/g;
  const out = [];
  let m;
  while ((m = re.exec(text))) {
    const [kind, ...rest] = m[1].split(' ');
    const next = text.indexOf('<!-- doc-test:', re.lastIndex);
    out.push({ kind: kind.replace(/,$/, ''), arg: rest.join(' '), code: m[2], after: text.slice(re.lastIndex, next < 0 ? undefined : next) });
  }
  return out;
}

function runNode(code, timeoutMs, wantLines) {
  const file = path.join(REPO, 'tests', `.readme-snippet-${process.pid}.mjs`); // tests/ resolves 'ws'
  fs.writeFileSync(file, code);
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const done = () => { clearTimeout(timer); try { p.kill('SIGKILL'); } catch { } fs.rmSync(file, { force: true }); resolve(out); };
    const timer = setTimeout(done, timeoutMs);
    p.stdout.on('data', (d) => { out += d; if (out.split('\n').filter(Boolean).length >= wantLines) done(); });
    p.stderr.on('data', (d) => { out += d; });
  });
}

test('README "Writing a party": every code block runs and prints what the README says', { timeout: 30000 }, async () => {
  const steps = blocks(section);
  assert.deepEqual(steps.map((s) => s.kind), ['shell', 'file', 'shell', 'node', 'shell', 'file', 'shell'],
    'the tutorial blocks changed: update this test');
  const work = mkTmp('luaparty-readme-');
  const persist = mkTmp('luaparty-readme-data-');
  let server;
  try {
    // 1. luaparty init chat
    const init = spawnSync(BIN, steps[0].code.trim().split(/\s+/).slice(1), { cwd: work, encoding: 'utf8' });
    assert.equal(init.status, 0, init.stderr);
    assert.match(init.stdout, /luaparty dev chat/);
    // 2. the party file
    fs.writeFileSync(path.join(work, steps[1].arg), steps[1].code);
    // 3. luaparty dev chat (on a free port instead of 1999)
    assert.equal(steps[2].code.trim(), 'luaparty dev chat');
    const project = path.join(work, 'chat');
    server = await startServer({ project, persist });
    const page = await fetch(`${server.url}/`);
    assert.equal(page.status, 200, 'the page from luaparty init is served');
    assert.match(await page.text(), /<html/);
    // 4. the node snippet, and the output the README shows after it
    const expected = steps[3].after.match(/```\n([\s\S]*?)```/)[1].trim().split('\n');
    const out = await runNode(steps[3].code.replaceAll('127.0.0.1:1999', `127.0.0.1:${server.port}`), 8000, expected.length);
    // same lines, JSON compared as values (cjson's key order is not fixed)
    const parse = (line) => { const i = line.indexOf('{'); return [line.slice(0, i), JSON.parse(line.slice(i))]; };
    assert.deepEqual(out.trim().split('\n').map(parse), expected.map(parse));
    // 5. after a restart, curl prints the history
    await server.stop();
    server = await startServer({ project, persist });
    const url = steps[4].code.trim().match(/http:\/\/\S+/)[0].replace('127.0.0.1:1999', `127.0.0.1:${server.port}`);
    const shown = steps[4].after.match(/prints `([^`]*)`/)[1];
    const res = await fetch(url);
    assert.deepEqual(JSON.parse(await res.text()), JSON.parse(shown)); // key order is cjson's
    // 6. the test file, 7. luaparty test chat prints what the README shows (times aside)
    fs.writeFileSync(path.join(work, steps[5].arg), steps[5].code);
    assert.equal(steps[6].code.trim(), 'luaparty test chat');
    const run = spawnSync(BIN, ['test', 'chat'], { cwd: work, encoding: 'utf8', timeout: 20000 });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    const printed = steps[6].after.match(/```\n([\s\S]*?)```/)[1];
    const untimed = (text) => text.trim().replace(/ \(\d+\.\d ms\)/g, '');
    assert.equal(untimed(run.stdout), untimed(printed));
  } finally {
    await server?.stop();
  }
});

test('the LuaLS stubs (lua/meta/*.lua) are valid Lua', async () => {
  // a party script must return a table, and the stub files do: load them as parties
  const dir = mkTmp('luaparty-stubs-');
  fs.mkdirSync(path.join(dir, 'parties'));
  fs.copyFileSync(path.join(REPO, 'lua/meta/luaparty.lua'), path.join(dir, 'parties/stubs.lua'));
  fs.copyFileSync(path.join(REPO, 'lua/meta/luaparty_test.lua'), path.join(dir, 'parties/test_stubs.lua'));
  fs.writeFileSync(path.join(dir, 'partykit.json'), JSON.stringify({ name: 'stubs', main: 'parties/stubs.lua',
    parties: { test: 'parties/test_stubs.lua' } }));
  const server = await startServer({ project: dir });
  await server.stop();
});

test('README "Porting from PartyKit": the Lua party does what the README says its TypeScript twin does', { timeout: 30000 }, async () => {
  const start = readme.indexOf('## Porting from PartyKit');
  assert.ok(start > 0, 'the section exists');
  const porting = readme.slice(start, readme.indexOf('\n## ', start + 10));
  assert.match(porting, /```ts\n[\s\S]*export default class Counter implements Party\.Server/, 'the TypeScript party is there');
  const steps = blocks(porting);
  assert.deepEqual(steps.map((b) => `${b.kind} ${b.arg}`), ['file parties/main.lua', 'file .env']);
  // what the README claims, checked below
  for (const claim of ['`{"type":"add","by":2}`', '`{"type":"count","count":2,"by":"<its id>"}`',
    "`curl -H 'authorization: Bearer\nchange-me' http://127.0.0.1:1999/parties/main/lobby`", '`{"room":"lobby","count":2}`']) {
    assert.ok(porting.includes(claim), `the README says ${claim}`);
  }
  const dir = mkTmp('luaparty-porting-');
  fs.mkdirSync(path.join(dir, 'parties'));
  fs.writeFileSync(path.join(dir, 'partykit.json'), JSON.stringify({ name: 'counter', main: 'parties/main.lua' }));
  for (const b of steps) fs.writeFileSync(path.join(dir, b.arg), b.code);
  const server = await startServer({ project: dir });
  const clients = [];
  try {
    const a = await wsConnect(`${server.wsUrl}/parties/main/lobby?_pk=ann`);
    const b = await wsConnect(`${server.wsUrl}/parties/main/lobby?_pk=bob`);
    clients.push(a, b);
    assert.deepEqual(await a.nextJson(), { type: 'count', count: 0 });
    assert.deepEqual(await b.nextJson(), { type: 'count', count: 0 });
    a.send(JSON.stringify({ type: 'add', by: 2 }));
    assert.deepEqual(await a.nextJson(), { type: 'count', count: 2, by: 'ann' });
    assert.deepEqual(await b.nextJson(), { type: 'count', count: 2, by: 'ann' });
    const url = `${server.url}/parties/main/lobby`;
    const ok = await fetch(url, { headers: { authorization: 'Bearer change-me' } });
    assert.deepEqual(await ok.json(), { room: 'lobby', count: 2 });
    const no = await fetch(url);
    assert.equal(no.status, 401);
    assert.equal(await no.text(), 'unauthorized');
  } finally {
    await closeAll(clients);
    await server.stop();
  }
});
