// `luaparty test` (src/testrun.c, lua/test/luaparty_test.lua): the real binary
// run on fixture projects. tests/projects/testcmd holds passing tests of every
// part of the API (its own tests/*_test.lua check WebSockets, HTTP, hooks,
// virtual time, storage, restarts and hot reload inside the real runtime);
// tests/projects/testfail holds tests that fail in every way a test can, and
// a party with bugs. Here: the output format, exit codes, file:line, the
// filter, named files, --seed, --watch, `luaparty init`'s test and the tests
// the examples ship.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import { spawn, spawnSync } from 'node:child_process';
import { BIN, EXAMPLES, PROJECTS, mkTmp, waitFor } from './lib/server.mjs';
import { copyProject, lineOf, writeProject } from './lib/fixtures.mjs';

const TESTCMD = path.join(PROJECTS, 'testcmd');
const TESTFAIL = path.join(PROJECTS, 'testfail');

/** Runs `luaparty test ...args`; {status, out (stdout), err, lines}. Bounded: 30 s. */
function luapartyTest(args, { cwd } = {}) {
  const r = spawnSync(BIN, ['test', ...args], { cwd, encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.error, undefined, `luaparty test ${args.join(' ')}: ${r.error}`);
  const lines = r.stdout.split('\n').filter((l) => l !== '');
  return { status: r.status, out: r.stdout, err: r.stderr, lines };
}

const testLines = (lines) => lines.filter((l) => /^(ok  |FAIL) /.test(l));
const withoutTimes = (text) => text.replace(/ \(\d+\.\d ms\)/g, '');

test('a passing project: one line per test, "N passed, 0 failed" last, exit 0', () => {
  const r = luapartyTest([TESTCMD]);
  assert.equal(r.status, 0, r.out + r.err);
  const tests = testLines(r.lines);
  let declared = 0;
  for (const f of fs.readdirSync(path.join(TESTCMD, 'tests'))) {
    declared += (fs.readFileSync(path.join(TESTCMD, 'tests', f), 'utf8').match(/^t\.test\(/gm) || []).length;
  }
  assert.equal(tests.length, declared, 'every test of every file ran');
  for (const l of tests) assert.match(l, /^ok {3}tests\/\w+_test\.lua: .+ \(\d+\.\d ms\)$/);
  assert.equal(r.lines.at(-1), `${declared} passed, 0 failed`);
  assert.ok(tests.some((l) => l.includes('tests/reload_test.lua: new code reaches a live room')));
  assert.equal(r.err, '', 'nothing on stderr');
});

test('two runs print the same lines: virtual time and seeded ids make tests deterministic', () => {
  const a = luapartyTest([TESTCMD]), b = luapartyTest([TESTCMD]);
  assert.equal(withoutTimes(a.out), withoutTimes(b.out));
});

test('failures: expected and actual, the file:line of the assertion, party tracebacks; exit 1', () => {
  const r = luapartyTest([TESTFAIL]);
  assert.equal(r.status, 1, r.out);
  const out = withoutTimes(r.out);
  const file = path.join(TESTFAIL, 'tests/fail_test.lua');
  const party = path.join(TESTFAIL, 'parties/main.lua');
  const block = (name) => {
    const i = out.indexOf(`FAIL tests/fail_test.lua: ${name}\n`);
    assert.ok(i >= 0, `a FAIL line for "${name}" in:\n${out}`);
    const rest = out.slice(i).split('\n').slice(1);
    const end = rest.findIndex((l) => !l.startsWith('    '));
    return rest.slice(0, end).join('\n');
  };
  assert.match(out, /^ok {3}tests\/fail_test\.lua: passes$/m);
  // an assertion: where, expected, actual
  assert.equal(block('a wrong value'),
    `    tests/fail_test.lua:${lineOf(file, 't.eq(res:text(), "count 1")')}: values differ\n` +
    '      expected: "count 1"\n' +
    '      actual:   "count 0"');
  // deep inside tables: the path to the difference
  assert.match(block('tables differ deep inside'), /values differ at \.a\[3\]\.b\n {6}expected: "y"\n {6}actual: {3}"x"/);
  // party code raised: the test's line, the party's file:line and its traceback, its print()s
  const raised = block('party code raises');
  assert.match(raised, new RegExp(`^    tests/fail_test\\.lua:${lineOf(file, 'a:send("hello")')}: error in party code: ` +
    `main/x onMessage: parties/main\\.lua:${lineOf(party, 'message.text:upper()')}: attempt to index`));
  assert.match(raised, /stack traceback:/);
  assert.match(raised, new RegExp(`parties/main\\.lua:${lineOf(party, 'sender:send(parse(message))')}: in function`));
  assert.match(raised, /log:\n {6}\[main\/x\] got hello/);
  // the test's own code raised: its traceback
  assert.match(block('the test itself raises'),
    new RegExp(`tests/fail_test\\.lua:${lineOf(file, 'return nothing.field')}: attempt to index local 'nothing'[^]*stack traceback:`));
  // onClose raised while the test's rooms closed
  assert.match(block('onClose raises when the test ends'),
    new RegExp(`error in party code after the test: main/x onClose: parties/main\\.lua:${lineOf(party, 'cannot let')}: cannot let grumpy go`));
  // a file that does not load
  assert.match(out, new RegExp(`FAIL tests/load_test\\.lua: the file\n {4}tests/load_test\\.lua:${lineOf(path.join(TESTFAIL, 'tests/load_test.lua'), 'this is not lua')}:`));
  assert.equal(r.lines.at(-1), '1 passed, 6 failed');
});

test('an error in party code fails that test only: the tests after it run', () => {
  const r = luapartyTest([TESTFAIL, path.join(TESTFAIL, 'tests/fail_test.lua')]);
  const names = testLines(r.lines).map((l) => withoutTimes(l).replace(/^(ok  |FAIL) tests\/fail_test\.lua: /, ''));
  assert.deepEqual(names, ['passes', 'a wrong value', 'party code raises', 'the test itself raises',
    'onClose raises when the test ends', 'tables differ deep inside']);
  assert.equal(r.lines.at(-1), '1 passed, 5 failed');
});

test('--filter runs the tests whose "file: name" has the text', () => {
  const alarms = luapartyTest([TESTCMD, '--filter', 'alarm']);
  assert.equal(alarms.status, 0, alarms.out);
  const names = testLines(alarms.lines);
  assert.equal(names.length, 3, alarms.out);
  for (const l of names) assert.match(l, /alarm/);
  assert.equal(alarms.lines.at(-1), '3 passed, 0 failed');
  const byFile = luapartyTest([TESTCMD, '--filter', 'hooks_test']);
  assert.equal(byFile.lines.at(-1), '3 passed, 0 failed');
  const none = luapartyTest([TESTCMD, '--filter', 'no test has this']);
  assert.equal(none.status, 1, 'no test ran: that is a failure');
  assert.equal(none.lines.at(-1), '0 passed, 0 failed');
});

test('named test files run instead of tests/, from any directory', () => {
  const r = luapartyTest(['testcmd', 'testcmd/tests/http_test.lua'], { cwd: PROJECTS });
  assert.equal(r.status, 0, r.out);
  assert.equal(testLines(r.lines).length, 4);
  assert.ok(testLines(r.lines).every((l) => l.includes('tests/http_test.lua: ')));
  const missing = luapartyTest([TESTCMD, 'no_such_test.lua']);
  assert.equal(missing.status, 1);
  assert.match(missing.out, /FAIL no_such_test\.lua: the file\n {4}cannot read/);
});

test('--seed: connection ids without _pk repeat for a seed and change with it', () => {
  const dir = writeProject({ name: 'seed', main: 'parties/main.lua' }, {
    'parties/main.lua': 'return {}\n',
    'tests/ids_test.lua': 'local t = require "luaparty.test"\n' +
      't.test("ids", function() print("id " .. t.connect("main", "r").id) end)\n',
  });
  const id = (args) => luapartyTest([dir, ...args]).out.match(/^id (\S+)$/m)[1];
  assert.equal(id([]), id([]));
  assert.equal(id(['--seed', '7']), id(['--seed', '7']));
  assert.notEqual(id([]), id(['--seed', '7']));
});

test('a party that fails to load stops the run with its file:line; a bad partykit.json exits 2', () => {
  const dir = writeProject({ name: 'broken', main: 'parties/main.lua' }, {
    'parties/main.lua': 'local P = {}\nlocal x = nil\nx.y = 1\nreturn P\n',
    'tests/a_test.lua': 'local t = require "luaparty.test"\nt.test("x", function() end)\n',
  });
  const r = luapartyTest([dir]);
  assert.equal(r.status, 1);
  assert.match(r.out, /party "main": parties\/main\.lua:3: attempt to index local 'x'/);
  assert.equal(r.lines.at(-1), '0 passed, 1 failed');
  fs.writeFileSync(path.join(dir, 'partykit.json'), '{ "name": "broken", "mian": "parties/main.lua" }');
  const bad = luapartyTest([dir]);
  assert.equal(bad.status, 2);
  assert.match(bad.err, /partykit\.json/);
});

test('an outbound fetch from party code goes to the real network, and the test waits for it', async () => {
  const upstream = http.createServer((req, res) => setTimeout(() => res.end(`pong ${req.url}`), 150));
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  try {
    const dir = writeProject({ name: 'outbound', main: 'parties/main.lua', vars: { UPSTREAM: `http://127.0.0.1:${upstream.address().port}` } }, {
      'parties/main.lua': 'local P = {}\nfunction P:onRequest(req) return fetch(self.room.env.UPSTREAM .. "/x"):text() end\nreturn P\n',
      'tests/out_test.lua': 'local t = require "luaparty.test"\n' +
        't.test("upstream", function() t.eq(t.fetch("main", "r"):text(), "pong /x") end)\n',
    });
    // spawnSync would block this process, and with it the upstream server
    const proc = spawn(BIN, ['test', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d) => { out += d; });
    const code = await new Promise((r) => proc.on('exit', r));
    assert.equal(code, 0, out);
    assert.match(out, /1 passed, 0 failed\n$/);
  } finally {
    upstream.close();
  }
});

test('a project without tests: a message and exit 1', () => {
  const dir = writeProject({ name: 'empty', main: 'parties/main.lua' }, { 'parties/main.lua': 'return {}\n' });
  const r = luapartyTest([dir]);
  assert.equal(r.status, 1);
  assert.match(r.out, /no tests: no tests\/\*_test\.lua in the project/);
  assert.equal(r.lines.at(-1), '0 passed, 0 failed');
});

test('the test from `luaparty init` passes, and fails when the party breaks', () => {
  const dir = path.join(mkTmp('luaparty-init-test-'), 'app');
  const init = spawnSync(BIN, ['init', dir], { encoding: 'utf8' });
  assert.equal(init.status, 0, init.stderr);
  assert.match(init.stdout, /luaparty test /);
  const r = luapartyTest([dir]);
  assert.equal(r.status, 0, r.out);
  assert.equal(r.lines.at(-1), '3 passed, 0 failed');
  const party = path.join(dir, 'parties/main.lua');
  fs.writeFileSync(party, fs.readFileSync(party, 'utf8').replace('self.room.storage:put("count", self.count)', ''));
  const broken = luapartyTest([dir]);
  assert.equal(broken.status, 1);
  assert.match(broken.out, /FAIL tests\/main_test\.lua: the count survives a restart of the room/);
});

test('the examples ship tests, and they pass', () => {
  let ran = 0;
  for (const name of fs.readdirSync(EXAMPLES)) {
    const dir = path.join(EXAMPLES, name);
    if (!fs.existsSync(path.join(dir, 'tests'))) continue;
    const r = luapartyTest([dir]);
    assert.equal(r.status, 0, `examples/${name}:\n${r.out}`);
    assert.match(r.lines.at(-1), /^[1-9]\d* passed, 0 failed$/);
    ran++;
  }
  assert.ok(ran >= 2, 'examples/chat and examples/multiparty have tests');
});

test('--watch runs the tests again when a file is saved', { timeout: 30_000 }, async () => {
  const dir = copyProject(TESTFAIL, (cfg) => cfg);
  fs.rmSync(path.join(dir, 'tests/load_test.lua'));
  const proc = spawn(BIN, ['test', dir, '--watch', '--filter', 'passes'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  try {
    await waitFor(() => /1 passed, 0 failed\nwatching /.test(out), 10_000, { what: 'the first run' });
    // the party changes: the test that passed now fails
    const party = path.join(dir, 'parties/main.lua');
    fs.writeFileSync(party, fs.readFileSync(party, 'utf8').replace('"count "', '"total "'));
    await waitFor(() => out.includes('0 passed, 1 failed'), 10_000, { what: 'a run after the save' });
    assert.match(out, /a file changed: running the tests again\nFAIL tests\/fail_test\.lua: passes/);
    // and a test file changes
    const tests = path.join(dir, 'tests/fail_test.lua');
    fs.writeFileSync(tests, fs.readFileSync(tests, 'utf8').replace('"count 0")', '"total 0")'));
    await waitFor(() => out.split('1 passed, 0 failed').length === 3, 10_000, { what: 'a third run' });
    assert.equal(proc.exitCode, null, 'still watching');
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => (proc.exitCode !== null || proc.signalCode ? r() : proc.on('exit', r)));
  }
});
