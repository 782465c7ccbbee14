// Hot reload (src/reload.c) against a fresh copy of tests/projects/reload per
// test: the tests rewrite party scripts, project modules and partykit.json
// while clients are connected, and check what the rooms do afterwards.
//
// The template's main party (parties/echo.lua) answers every message with
// VERSION..":"..message (VERSION is "v1" in the template; the tests write
// "v2", "v3", ...), counts messages in self.n ("n" answers VERSION..":n="..n),
// and answers HTTP with {version, X = room.env.X, n, reloads}. A line
// "-- @extra" marks where a test can add methods (e.g. onReload).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  PROJECTS, startServer, wsConnect, closeAll, httpRequest, waitFor, sleep, mkTmp,
} from './lib/server.mjs';

const TEMPLATE = path.join(PROJECTS, 'reload');
const ECHO_TEMPLATE = fs.readFileSync(path.join(TEMPLATE, 'parties/echo.lua'), 'utf8');
const RELOADED_RE = /reloaded (\d+) part(?:y|ies)( and vars)? in ([\d.]+) ms \((\d+) rooms?\)/g;

const cleanups = [];
after(async () => {
  for (const f of cleanups.reverse()) {
    try { await f(); } catch { /* best effort */ }
  }
});

/** A fresh copy of the template project in a temp dir (removed at the end). */
function copyProject() {
  const dir = mkTmp('luaparty-reload-');
  fs.cpSync(TEMPLATE, dir, { recursive: true });
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** echo.lua with another VERSION and optional extra Lua code before `return`. */
function echoSource(version, extra = '') {
  const src = ECHO_TEMPLATE.replace('local VERSION = "v1"', `local VERSION = "${version}"`)
    .replace('-- @extra', extra);
  assert.notEqual(src, ECHO_TEMPLATE, 'template has the VERSION line');
  return src;
}

/** Saves like an editor does: write a temp file next to it, then rename over. */
function saveAtomic(file, text) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/** Saves in place (truncate + write). */
function saveInPlace(file, text) {
  fs.writeFileSync(file, text);
}

/** Starts `luaparty <command> <dir> --port 0 --persist <tmp>` (the lib helper); stopped and cleaned up after the test. */
async function startIn(dir, command, args = []) {
  const srv = await startServer({ project: dir, command, args });
  cleanups.push(async () => {
    await srv.stop();
    fs.rmSync(srv.persist, { recursive: true, force: true });
  });
  return srv;
}
const startDev = (dir) => startIn(dir, 'dev');
const startServe = (dir, args) => startIn(dir, 'serve', args);

/** All "reloaded ..." lines in log text: [{parties, vars, ms, rooms, line}]. */
function reloadedLines(text) {
  return [...text.matchAll(RELOADED_RE)].map((m) => ({
    parties: Number(m[1]), vars: Boolean(m[2]), ms: Number(m[3]), rooms: Number(m[4]), line: m[0],
  }));
}

/** Waits until the log, from offset on, holds `count` "reloaded" lines; returns them. */
async function waitReloaded(srv, offset, count = 1, timeout = 5000) {
  return waitFor(() => {
    const found = reloadedLines(srv.logs().slice(offset));
    return found.length >= count && found;
  }, timeout, { what: `${count} "reloaded ..." log line(s); log since the save:\n${srv.logs().slice(offset)}` });
}

async function waitLog(srv, offset, re, timeout = 5000) {
  return waitFor(() => re.exec(srv.logs().slice(offset)), timeout,
    { what: `log line ${re}; log since the save:\n${srv.logs().slice(offset)}` });
}

/** Opens a ws client; registers it for closing. */
async function join(srv, urlPath, list) {
  const c = await wsConnect(`${srv.wsUrl}${urlPath}`);
  list.push(c);
  return c;
}

async function ask(c, msg, timeout = 3000) {
  c.send(msg);
  return c.nextText(timeout);
}

/**
 * The server is still running; it then shuts down cleanly on SIGTERM (exit 0,
 * no sanitizer report: reloaded, swapped and retired parties are all freed).
 */
async function assertHealthy(srv) {
  assert.equal(srv.alive(), true, `server exited: ${JSON.stringify(srv.exitInfo)}\n${srv.logs().slice(-2000)}`);
  const r = await srv.stop();
  assert.doesNotMatch(srv.logs(), /AddressSanitizer|LeakSanitizer|runtime error:/, 'sanitizer report in the server log');
  assert.deepEqual({ code: r.code, signal: r.signal, killed: r.killed }, { code: 0, signal: null, killed: false },
    `clean exit on SIGTERM; log tail:\n${srv.logs().slice(-2000)}`);
}

function assertOpen(clients) {
  for (const c of clients) {
    assert.equal(c.closeInfo, null, `${c.url} must stay open, got close ${JSON.stringify(c.closeInfo)}`);
  }
}

// ---------------------------------------------------------------- 1
test('clients of 3 rooms x 2 stay connected across a script reload and see the new code', { timeout: 15000 }, async () => {
  const dir = copyProject();
  const srv = await startDev(dir);
  const clients = [];
  try {
    for (const room of ['r1', 'r2', 'r3']) {
      for (let i = 0; i < 2; i++) await join(srv, `/parties/main/${room}?_pk=${room}-${i}`, clients);
    }
    for (const c of clients) assert.equal(await ask(c, 'a'), 'v1:a');

    const off = srv.logs().length;
    saveAtomic(path.join(dir, 'parties/echo.lua'), echoSource('v2'));
    const [line] = await waitReloaded(srv, off);
    assert.equal(line.parties, 1, line.line);
    assert.equal(line.rooms, 3, `every live room of the party is reloaded: ${line.line}`);

    for (const c of clients) assert.equal(await ask(c, 'b'), 'v2:b');
    await sleep(100); // a late close would show up here
    assertOpen(clients);
    assert.equal(clients.every((c) => c.queue.length === 0), true, 'no stray messages');
    await assertHealthy(srv);
  } finally {
    await closeAll(clients);
  }
});

// ---------------------------------------------------------------- 2
test('self survives a reload: a counter in self continues', { timeout: 15000 }, async () => {
  const dir = copyProject();
  const srv = await startDev(dir);
  const clients = [];
  try {
    const c = await join(srv, '/parties/main/counter', clients);
    assert.equal(await ask(c, 'n'), 'v1:n=1');
    assert.equal(await ask(c, 'n'), 'v1:n=2');
    assert.equal(await ask(c, 'n'), 'v1:n=3');

    const off = srv.logs().length;
    saveInPlace(path.join(dir, 'parties/echo.lua'), echoSource('v2'));
    await waitReloaded(srv, off);

    assert.equal(await ask(c, 'n'), 'v2:n=4', 'the instance table (self.n) is kept');
    const r = await httpRequest(`${srv.url}/parties/main/counter`);
    assert.equal(r.status, 200);
    assert.deepEqual({ version: r.json().version, n: r.json().n }, { version: 'v2', n: 4 });
    assertOpen(clients);
    await assertHealthy(srv);
  } finally {
    await closeAll(clients);
  }
});

// ---------------------------------------------------------------- 3
test('onReload runs once per live room, after the swap', { timeout: 15000 }, async () => {
  const dir = copyProject();
  const srv = await startDev(dir);
  const clients = [];
  const onReload = [
    'function Echo:onReload()',
    '  self.reloads = (self.reloads or 0) + 1',
    '  self.room:broadcast(VERSION .. ":reloaded:" .. self.reloads)',
    'end',
  ].join('\n');
  try {
    for (const room of ['a', 'b']) {
      for (let i = 0; i < 2; i++) await join(srv, `/parties/main/${room}`, clients);
    }
    for (const c of clients) assert.equal(await ask(c, 'x'), 'v1:x');
    // a live room with no connection (made by an HTTP request)
    assert.equal((await httpRequest(`${srv.url}/parties/main/quiet`)).json().reloads, 0);

    const file = path.join(dir, 'parties/echo.lua');
    let off = srv.logs().length;
    saveAtomic(file, echoSource('v2', onReload));
    let [line] = await waitReloaded(srv, off);
    assert.equal(line.rooms, 3, line.line);
    // the new code's onReload (VERSION v2) ran, once per room
    for (const c of clients) assert.equal(await c.nextText(3000), 'v2:reloaded:1');
    for (const c of clients) assert.equal(await ask(c, 'y'), 'v2:y', 'nothing else between');
    let q = (await httpRequest(`${srv.url}/parties/main/quiet`)).json();
    assert.deepEqual({ version: q.version, reloads: q.reloads }, { version: 'v2', reloads: 1 });

    off = srv.logs().length;
    saveAtomic(file, echoSource('v3', onReload));
    [line] = await waitReloaded(srv, off);
    assert.equal(line.rooms, 3, line.line);
    for (const c of clients) assert.equal(await c.nextText(3000), 'v3:reloaded:2');
    for (const c of clients) assert.equal(await ask(c, 'z'), 'v3:z');
    q = (await httpRequest(`${srv.url}/parties/main/quiet`)).json();
    assert.deepEqual({ version: q.version, reloads: q.reloads }, { version: 'v3', reloads: 2 });
    assertOpen(clients);
    await assertHealthy(srv);
  } finally {
    await closeAll(clients);
  }
});

// ---------------------------------------------------------------- 4
test('a broken save keeps the old code and logs file:line once; the next good save reloads', { timeout: 20000 }, async () => {
  const dir = copyProject();
  const srv = await startDev(dir);
  const clients = [];
  const file = path.join(dir, 'parties/echo.lua');
  try {
    const c = await join(srv, '/parties/main/broken', clients);
    assert.equal(await ask(c, 'a'), 'v1:a');

    // 1. syntax error on line 5
    const syntax = [
      '-- broken on purpose',
      'local VERSION = "v2"',
      'local Echo = {}',
      'function Echo:onMessage(m, s) s:send(VERSION .. ":" .. m) end',
      'local = 1',
      'return Echo',
      '',
    ].join('\n');
    let off = srv.logs().length;
    saveInPlace(file, syntax);
    await waitLog(srv, off, /parties\/echo\.lua:5:/);
    await sleep(300); // a second message for the same save would come within this
    let since = srv.logs().slice(off);
    let errs = since.split('\n').filter((l) => /parties\/echo\.lua:5:/.test(l));
    assert.equal(errs.length, 1, `exactly one error line for one save:\n${since}`);
    assert.match(errs[0], /reload( of parties\/echo\.lua failed)?: .*parties\/echo\.lua:5:/, errs[0]);
    assert.match(errs[0], /still running the previous code/);
    assert.equal(reloadedLines(since).length, 0, `no "reloaded" line for a broken save:\n${since}`);
    assert.equal(await ask(c, 'b'), 'v1:b', 'old code still runs');

    // 2. good save
    off = srv.logs().length;
    saveInPlace(file, echoSource('v2'));
    await waitReloaded(srv, off);
    assert.equal(await ask(c, 'c'), 'v2:c');

    // 3. module-level code raises (compiles, fails when run)
    const boom = [
      '-- raises at load time',
      'local Echo = {}',
      'error("boom")',
      'return Echo',
      '',
    ].join('\n');
    off = srv.logs().length;
    saveInPlace(file, boom);
    await waitLog(srv, off, /parties\/echo\.lua:3: boom/);
    await sleep(300);
    since = srv.logs().slice(off);
    errs = since.split('\n').filter((l) => /parties\/echo\.lua:3: boom/.test(l));
    assert.equal(errs.length, 1, `exactly one error line for one save:\n${since}`);
    assert.match(errs[0], /reload( of parties\/echo\.lua failed)?: /, errs[0]);
    assert.equal(reloadedLines(since).length, 0, `no "reloaded" line for a failing save:\n${since}`);
    assert.equal(await ask(c, 'd'), 'v2:d', 'old (v2) code still runs');

    // 4. a script that returns no table is refused as well
    off = srv.logs().length;
    saveInPlace(file, 'return 42\n');
    await waitLog(srv, off, /reload.*parties\/echo\.lua.*(table|callbacks)/);
    assert.equal(await ask(c, 'e'), 'v2:e');

    // 5. the next good save reloads normally
    off = srv.logs().length;
    saveInPlace(file, echoSource('v3'));
    const [line] = await waitReloaded(srv, off);
    assert.equal(line.rooms, 1, line.line);
    assert.equal(await ask(c, 'f'), 'v3:f');
    assertOpen(clients);
    await assertHealthy(srv);
  } finally {
    await closeAll(clients);
  }
});

// ---------------------------------------------------------------- 5
test('reloads under message load lose no message and keep per-client order', { timeout: 30000 }, async (t) => {
  const dir = copyProject();
  const srv = await startDev(dir);
  const clients = [];
  const N = 300;
  const BURST = 5;
  const file = path.join(dir, 'parties/echo.lua');
  try {
    for (let i = 0; i < 5; i++) await join(srv, `/parties/main/load-${i % 2}?_pk=c${i}`, clients);

    // Each client sends N numbered messages in bursts of BURST (each burst
    // as fast as ws can write it), a few ms apart, so that messages are in
    // flight in both rooms while the script is rewritten 3 times.
    const senders = clients.map(async (c, i) => {
      for (let k = 0; k < N; k += BURST) {
        for (let j = k; j < Math.min(N, k + BURST); j++) c.send(`c${i}-${j}`);
        await sleep(3);
      }
    });
    const off = srv.logs().length;
    const rewrites = (async () => {
      await sleep(20);
      for (let v = 2; v <= 4; v++) {
        saveInPlace(file, echoSource(`v${v}`));
        await waitReloaded(srv, off, v - 1, 8000);
      }
    })();
    await Promise.all([...senders, rewrites]);
    await waitFor(() => clients.every((c) => c.queue.length >= N), 15000, {
      what: `${N} replies per client (have ${clients.map((c) => c.queue.length).join(', ')})`,
    });
    await sleep(100);

    const seen = new Set();
    const perClient = [];
    clients.forEach((c, i) => {
      const replies = c.queue.map((m) => m.text);
      assert.equal(replies.length, N, `client c${i}: exactly ${N} replies`);
      let last = 0;
      const counts = {};
      replies.forEach((r, j) => {
        const m = /^v(\d+):c(\d+)-(\d+)$/.exec(r);
        assert.ok(m, `client c${i} reply ${j}: unexpected "${r}"`);
        assert.equal(`c${m[2]}-${m[3]}`, `c${i}-${j}`, `client c${i}: reply ${j} answers message ${j}`);
        const v = Number(m[1]);
        assert.ok(v >= 1 && v <= 4, `version ${v}`);
        assert.ok(v >= last, `client c${i}: version went back from v${last} to v${v} at reply ${j}`);
        last = v;
        seen.add(v);
        counts[`v${v}`] = (counts[`v${v}`] || 0) + 1;
      });
      perClient.push(counts);
    });
    const lines = reloadedLines(srv.logs().slice(off));
    assert.equal(lines.length, 3, lines.map((l) => l.line).join('\n'));
    for (const l of lines) assert.equal(l.rooms, 2, l.line);
    // sanity check of the test itself: at least one reload landed mid-stream
    assert.ok(seen.size >= 2, `replies came from more than one version: ${JSON.stringify(perClient)}`);
    for (const c of clients) c.queue.length = 0;
    for (const c of clients) assert.equal(await ask(c, 'last'), 'v4:last');
    assertOpen(clients);
    t.diagnostic(`versions per client: ${JSON.stringify(perClient)}`);
    await assertHealthy(srv);
  } finally {
    await closeAll(clients);
  }
});

// ---------------------------------------------------------------- 6
test('a changed project module (parties/util.lua) reloads every party', { timeout: 15000 }, async () => {
  const dir = copyProject();
  const srv = await startDev(dir);
  const clients = [];
  try {
    const u = await join(srv, '/parties/uses/m1', clients);
    const e = await join(srv, '/parties/main/m2', clients);
    assert.equal(await ask(u, 'a'), 'u1:a');
    assert.equal(await ask(e, 'n'), 'v1:n=1');

    const off = srv.logs().length;
    saveAtomic(path.join(dir, 'parties/util.lua'), 'return { tag = "u2" }\n');
    const [line] = await waitReloaded(srv, off);
    assert.equal(line.parties, 3, `a module change reloads all 3 parties: ${line.line}`);
    assert.equal(line.rooms, 2, line.line);

    assert.equal(await ask(u, 'b'), 'u2:b', 'the module is required afresh');
    assert.equal((await httpRequest(`${srv.url}/parties/uses/m1`)).text, 'u2');
    assert.equal(await ask(e, 'n'), 'v1:n=2', 'the other party was reloaded with its self kept');
    assertOpen(clients);

    // a module with a syntax error is refused (the party that requires it fails to load)
    const off2 = srv.logs().length;
    saveInPlace(path.join(dir, 'parties/util.lua'), 'return { tag = \n');
    await waitLog(srv, off2, /reload.*(parties\/util\.lua:\d+|parties\.util)/);
    assert.equal(reloadedLines(srv.logs().slice(off2)).length, 0, srv.logs().slice(off2));
    assert.equal(await ask(u, 'c'), 'u2:c', 'old code and old module still run');
    assertOpen(clients);
    await assertHealthy(srv);
  } finally {
    await closeAll(clients);
  }
});

// ---------------------------------------------------------------- 7
function editConfig(dir, fn) {
  const file = path.join(dir, 'partykit.json');
  const cfg = JSON.parse(fs.readFileSync(file, 'utf8'));
  fn(cfg);
  saveAtomic(file, `${JSON.stringify(cfg, null, 2)}\n`);
}

test('partykit.json: an added party becomes routable', { timeout: 15000 }, async () => {
  const dir = copyProject();
  const srv = await startDev(dir);
  const before = await httpRequest(`${srv.url}/parties/fresh/x`);
  assert.equal(before.status, 404);
  assert.match(before.text, /Party fresh not found/);

  const off = srv.logs().length;
  editConfig(dir, (cfg) => { cfg.parties.fresh = 'parties/fresh.lua'; });
  await waitLog(srv, off, /party fresh added/);
  await waitReloaded(srv, off);
  const r = await httpRequest(`${srv.url}/parties/fresh/x`);
  assert.equal(r.status, 200);
  assert.equal(r.text, 'fresh:x');
  // the existing parties still answer
  assert.equal((await httpRequest(`${srv.url}/parties/main/x`)).json().version, 'v1');
  await assertHealthy(srv);
});

test('partykit.json: a removed party closes its rooms with 1012 after onClose', { timeout: 15000 }, async () => {
  const dir = copyProject();
  const srv = await startDev(dir);
  const clients = [];
  try {
    const d1 = await join(srv, '/parties/doomed/r1?_pk=d1', clients);
    const d2 = await join(srv, '/parties/doomed/r2?_pk=d2', clients);
    const keep = await join(srv, '/parties/main/keep', clients);
    assert.equal(await d1.nextText(), 'doomed:hello');
    assert.equal(await d2.nextText(), 'doomed:hello');

    const off = srv.logs().length;
    editConfig(dir, (cfg) => { delete cfg.parties.doomed; });
    const closes = await Promise.all([d1.waitClosed(5000), d2.waitClosed(5000)]);
    for (const [i, ci] of closes.entries()) {
      assert.ok(ci, `doomed client ${i + 1} saw a close within 5 s`);
      assert.equal(ci.code, 1012, `close code: ${JSON.stringify(ci)}`);
    }
    await waitLog(srv, off, /party doomed removed \(2 rooms closed\)/);
    // the removed party's onClose ran for each connection
    await waitLog(srv, off, /doomed onClose d1/);
    await waitLog(srv, off, /doomed onClose d2/);

    const r = await httpRequest(`${srv.url}/parties/doomed/r1`);
    assert.equal(r.status, 404, 'no longer routable');
    assert.match(r.text, /Party doomed not found/);
    await assert.rejects(wsConnect(`${srv.wsUrl}/parties/doomed/r1`), (e) => e.status === 404);
    // the rest keeps working
    assert.equal(await ask(keep, 'k'), 'v1:k');
    assertOpen([keep]);
    await assertHealthy(srv);
  } finally {
    await closeAll(clients);
  }
});

test('partykit.json: changed vars reach room.env of a live room', { timeout: 15000 }, async () => {
  const dir = copyProject();
  const srv = await startDev(dir);
  const clients = [];
  try {
    const c = await join(srv, '/parties/main/envroom', clients);
    assert.equal(await ask(c, 'n'), 'v1:n=1');
    assert.equal((await httpRequest(`${srv.url}/parties/main/envroom`)).json().X, 'one');

    const off = srv.logs().length;
    editConfig(dir, (cfg) => { cfg.vars.X = 'two'; });
    const [line] = await waitReloaded(srv, off);
    assert.equal(line.vars, true, `the log mentions vars: ${line.line}`);
    assert.equal(line.parties, 0, `no code changed: ${line.line}`);

    const j = (await httpRequest(`${srv.url}/parties/main/envroom`)).json();
    assert.deepEqual({ X: j.X, n: j.n, version: j.version }, { X: 'two', n: 1, version: 'v1' },
      'same room (self.n kept), new env');
    assert.equal((await httpRequest(`${srv.url}/parties/main/newroom`)).json().X, 'two', 'new rooms too');
    assert.equal(await ask(c, 'n'), 'v1:n=2');
    assertOpen(clients);
    await assertHealthy(srv);
  } finally {
    await closeAll(clients);
  }
});

// ---------------------------------------------------------------- 8
test('luaparty serve does not reload by default', { timeout: 15000 }, async () => {
  const dir = copyProject();
  const srv = await startServe(dir, ['--log-level', 'info']);
  const clients = [];
  try {
    const c = await join(srv, '/parties/main/s', clients);
    assert.equal(await ask(c, 'a'), 'v1:a');
    const off = srv.logs().length;
    saveInPlace(path.join(dir, 'parties/echo.lua'), echoSource('v2'));
    await sleep(600); // 15x the debounce
    assert.equal(await ask(c, 'b'), 'v1:b');
    assert.equal((await httpRequest(`${srv.url}/parties/main/other`)).json().version, 'v1');
    assert.equal(reloadedLines(srv.logs().slice(off)).length, 0, srv.logs().slice(off));
    assertOpen(clients);
    await assertHealthy(srv);
  } finally {
    await closeAll(clients);
  }
});

test('luaparty serve --watch reloads', { timeout: 15000 }, async () => {
  const dir = copyProject();
  const srv = await startServe(dir, ['--watch', '--log-level', 'info']);
  const clients = [];
  try {
    const c = await join(srv, '/parties/main/s', clients);
    assert.equal(await ask(c, 'n'), 'v1:n=1');
    const off = srv.logs().length;
    saveInPlace(path.join(dir, 'parties/echo.lua'), echoSource('v2'));
    const [line] = await waitReloaded(srv, off);
    assert.equal(line.rooms, 1, line.line);
    assert.equal(await ask(c, 'n'), 'v2:n=2');
    assertOpen(clients);
    await assertHealthy(srv);
  } finally {
    await closeAll(clients);
  }
});
