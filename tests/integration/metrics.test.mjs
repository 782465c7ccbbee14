// /metrics: a page promtool would accept (lib/promtext.mjs), the standard
// process_* metrics, messages and callback errors by party, and storage
// commit latency buckets up to 10 s (a slow fsync shows in the upper ones:
// the server runs --storage-sync full over lib/slowsync.c, a shim that makes
// fsync slow on demand). The project is written to a temporary folder.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkTmp, startServerPatient, metricsUrl, wsConnect, closeAll, waitFor } from './lib/server.mjs';
import { parsePromText } from './lib/promtext.mjs';

const PARTY = `
local P = {}
function P:onMessage(msg, sender)
  if msg == "fail" then error("failed on purpose") end
  if msg == "put" then self.room.storage:put("k", (self.room.storage:get("k") or 0) + 1) end
  sender:send("ok " .. msg)
end
return P
`;

let srv;
let url;
let startedAt;
const persist = mkTmp('luaparty-metrics-data-');
const shim = mkTmp('luaparty-slowsync-');
const SLOW = path.join(shim, 'slow-now'); // fsync is slow while this file exists

before(async () => {
  const src = path.join(path.dirname(fileURLToPath(import.meta.url)), 'lib/slowsync.c');
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', path.join(shim, 'slowsync.so'), src, '-ldl'], { timeout: 30000 });
  const dir = mkTmp('luaparty-metrics-');
  fs.mkdirSync(path.join(dir, 'parties'));
  fs.writeFileSync(path.join(dir, 'parties/main.lua'), PARTY);
  fs.writeFileSync(path.join(dir, 'partykit.json'), JSON.stringify({
    name: 'metrics', main: 'parties/main.lua', parties: { other: 'parties/main.lua' },
  }));
  startedAt = Date.now() / 1000;
  const saved = { ...process.env };
  Object.assign(process.env, {
    LD_PRELOAD: path.join(shim, 'slowsync.so'), SLOWSYNC_FLAG: SLOW, SLOWSYNC_MS: '300',
    // the shim is preloaded before ASan's runtime (an ASan build would refuse to start)
    ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:` : ''}verify_asan_link_order=0`,
  });
  try {
    srv = await startServerPatient({ project: dir, persist, args: ['--metrics', '127.0.0.1:0', '--storage-sync', 'full'] });
  } finally {
    for (const k of ['LD_PRELOAD', 'SLOWSYNC_FLAG', 'SLOWSYNC_MS', 'ASAN_OPTIONS']) {
      if (k in saved) process.env[k] = saved[k];
      else delete process.env[k];
    }
  }
  url = await metricsUrl(srv);
});
after(async () => { await srv?.stop(); });

async function scrape() {
  const r = await fetch(url);
  assert.equal(r.status, 200);
  return parsePromText(await r.text()); // throws on anything promtool would refuse
}

test('process_* metrics: CPU, memory, open fds (they follow the sockets), start time', { timeout: 20000 }, async () => {
  const a = await scrape();
  for (const [name, type] of [['process_cpu_seconds_total', 'counter'], ['process_resident_memory_bytes', 'gauge'],
    ['process_virtual_memory_bytes', 'gauge'], ['process_open_fds', 'gauge'], ['process_max_fds', 'gauge'],
    ['process_start_time_seconds', 'gauge']]) {
    assert.equal(a.families.get(name)?.type, type, `${name} is a ${type}`);
  }
  const start = a.value('process_start_time_seconds');
  assert.ok(start >= startedAt - 2 && start <= Date.now() / 1000 + 1, `start time ${start}, spawned at ${startedAt}`);
  assert.ok(a.value('process_resident_memory_bytes') > 1024 * 1024);
  assert.ok(a.value('process_virtual_memory_bytes') >= a.value('process_resident_memory_bytes'));
  assert.ok(a.value('process_max_fds') >= a.value('process_open_fds'));
  const clients = [];
  try {
    for (let i = 0; i < 20; i++) clients.push(await wsConnect(`${srv.wsUrl}/parties/main/fds-${i}`));
    const b = await scrape();
    assert.ok(b.value('process_open_fds') >= a.value('process_open_fds') + 20,
      `open fds ${a.value('process_open_fds')} -> ${b.value('process_open_fds')} with 20 more sockets`);
    assert.ok(b.value('process_cpu_seconds_total') >= a.value('process_cpu_seconds_total'));
  } finally {
    await closeAll(clients);
  }
  await waitFor(async () => (await scrape()).value('process_open_fds') <= a.value('process_open_fds') + 2, 5000,
    { what: 'the fds to be closed again' });
});

test('messages in and out, and callback errors, are counted by party', { timeout: 20000 }, async () => {
  const a = await scrape();
  const m = await wsConnect(`${srv.wsUrl}/parties/main/by-party`);
  const o = await wsConnect(`${srv.wsUrl}/parties/other/by-party`);
  try {
    for (const t of ['1', '2', '3']) { m.send(t); assert.equal(await m.nextText(), `ok ${t}`); }
    for (const t of ['x', 'y']) { o.send(t); assert.equal(await o.nextText(), `ok ${t}`); }
    m.send('fail');
    m.send('after');
    assert.equal(await m.nextText(), 'ok after');
  } finally {
    await closeAll([m, o]);
  }
  const b = await scrape();
  const d = (k) => (b.value(k) ?? 0) - (a.value(k) ?? 0);
  assert.equal(d('luaparty_messages_in_total{party="main"}'), 5);
  assert.equal(d('luaparty_messages_out_total{party="main"}'), 4);
  assert.equal(d('luaparty_callback_errors_total{party="main"}'), 1);
  assert.equal(d('luaparty_messages_in_total{party="other"}'), 2);
  assert.equal(d('luaparty_messages_out_total{party="other"}'), 2);
  assert.equal(b.value('luaparty_callback_errors_total{party="other"}'), 0, 'a party without errors shows 0');
  assert.equal(b.value('luaparty_messages_in_total'), undefined, 'no unlabelled total beside the labelled ones');
});

test('commit latency buckets go up to 10 s: a commit whose fsync takes 300 ms lands in le="0.5"', { timeout: 30000 }, async () => {
  const c = await wsConnect(`${srv.wsUrl}/parties/main/slow-commit`);
  try {
    c.send('put');
    assert.equal(await c.nextText(), 'ok put');
    const a = await scrape();
    const bounds = a.families.get('luaparty_storage_commit_seconds').samples
      .filter((s) => s.name.endsWith('_bucket')).map((s) => s.labels.le);
    assert.deepEqual(bounds, ['0.0001', '0.00025', '0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1',
      '0.25', '0.5', '1', '2.5', '5', '10', '+Inf']);
    fs.writeFileSync(SLOW, '');
    const t0 = Date.now();
    try {
      c.send('put');
      assert.equal(await c.nextText(5000), 'ok put', 'the write went through, after its slow commit');
    } finally {
      fs.rmSync(SLOW, { force: true });
    }
    assert.ok(Date.now() - t0 >= 300, 'the answer waited for the commit (output gate)');
    const b = await scrape();
    const d = (le) => b.value(`luaparty_storage_commit_seconds_bucket{le="${le}"}`) - a.value(`luaparty_storage_commit_seconds_bucket{le="${le}"}`);
    assert.equal(d('+Inf'), 1, 'one commit');
    assert.equal(d('0.25'), 0, 'it took more than 250 ms');
    assert.equal(d('0.5'), 1, 'and less than 500 ms');
    assert.ok(b.value('luaparty_storage_commit_seconds_sum') - a.value('luaparty_storage_commit_seconds_sum') >= 0.3);
  } finally {
    await closeAll([c]);
  }
});
