// What `luaparty dev` logs: every connect and disconnect (with the close code
// and reason), every message at --log-level debug, and the "listening on"
// line at info (printed whatever the level, since scripts wait for it); a
// browser's /favicon.ico on a served folder without one is not an error.
// tests/projects/textframes (its party echoes "echo <text>").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { BIN, mkTmp, startServerPatient, wsConnect, waitFor, closeAll, httpRequest } from './lib/server.mjs';

const project = 'textframes';

test('the "listening on" line is at info, also at --log-level error, and in JSON logs', { timeout: 20000 }, async () => {
  for (const args of [[], ['--log-level', 'error'], ['--log-format', 'json']]) {
    const s = await startServerPatient({ project, args });
    await s.stop();
    const line = s.logs().split('\n').find((l) => l.includes('listening on'));
    assert.ok(line, `${args.join(' ')}: the line is printed`);
    if (args[0] === '--log-format') assert.equal(JSON.parse(line).level, 'info');
    else assert.match(line, /^\S+ info\s+listening on http:\/\/127\.0\.0\.1:\d+ \(ready in/, `${args.join(' ')}: ${line}`);
    if (args[1] === 'error') {
      assert.deepEqual(s.logs().split('\n').filter((l) => / info /.test(l) && !l.includes('listening on')), [],
        'nothing else at info');
    }
  }
});

test('dev logs connects and disconnects with code and reason; messages only at debug', { timeout: 20000 }, async () => {
  const s = await startServerPatient({ project });
  const clients = [];
  try {
    const a = await wsConnect(`${s.wsUrl}/parties/main/log-room?_pk=alice`);
    const b = await wsConnect(`${s.wsUrl}/parties/main/log-room?_pk=bob`);
    clients.push(a, b);
    a.send('hello there');
    assert.equal(await a.nextText(), 'echo hello there');
    await waitFor(() => /connect main\/log-room id=alice/.test(s.logs()), 3000, { what: 'the connect line' });
    a.close(4001, 'bye now');
    await a.waitClosed();
    await waitFor(() => /disconnect main\/log-room id=alice code=4001 reason="bye now"/.test(s.logs()), 3000,
      { what: 'the disconnect line of a clean close' });
    b.terminate(); // no close frame at all
    await waitFor(() => /disconnect main\/log-room id=bob code=1006(?! reason)/.test(s.logs()), 3000,
      { what: 'the disconnect line of a dropped socket' });
    assert.doesNotMatch(s.logs(), /message main\/log-room/, 'messages are not logged at info');
  } finally {
    await closeAll(clients);
    await s.stop();
  }
});

test('dev --log-level debug logs each message: text with a one-line preview, binary by size', { timeout: 20000 }, async () => {
  const s = await startServerPatient({ project, args: ['--log-level', 'debug'] });
  const clients = [];
  try {
    const c = await wsConnect(`${s.wsUrl}/parties/main/debug-room?_pk=carol`);
    clients.push(c);
    c.send('line one\nline two');
    assert.equal(await c.nextText(), 'echo line one\nline two');
    c.send(Buffer.from([1, 2, 3, 255]), { binary: true });
    c.send('x'.repeat(1000));
    assert.equal(await c.nextText(), `echo ${'x'.repeat(1000)}`);
    await waitFor(() => /message main\/debug-room id=carol text 1000 bytes: x+\.\.\.$/m.test(s.logs()), 3000,
      { what: 'the long message, cut' });
    assert.match(s.logs(), /debug message main\/debug-room id=carol text 17 bytes: line one\\x0aline two$/m);
    assert.match(s.logs(), /debug message main\/debug-room id=carol binary 4 bytes$/m);
  } finally {
    await closeAll(clients);
    await s.stop();
  }
});

test('a favicon request on a served folder without one is 204 (no error in the browser or the log)', { timeout: 20000 }, async () => {
  const work = mkTmp('luaparty-favicon-');
  assert.equal(spawnSync(BIN, ['init', 'app'], { cwd: work }).status, 0);
  const s = await startServerPatient({ project: path.join(work, 'app') });
  try {
    for (const method of ['GET', 'HEAD']) {
      const r = await httpRequest(`${s.url}/favicon.ico`, { method });
      assert.equal(r.status, 204, `${method} /favicon.ico`);
      assert.equal(r.text, '');
    }
    assert.equal((await httpRequest(`${s.url}/favicon.png`)).status, 404, 'other missing files are still 404');
    await waitFor(() => /GET \/favicon\.ico 204/.test(s.logs()), 3000, { what: 'the request line' });
    assert.doesNotMatch(s.logs(), /favicon\.ico 404/);
  } finally {
    await s.stop();
  }
  // without a served folder there is nothing to say: the usual 404
  const plain = await startServerPatient({ project });
  try {
    assert.equal((await httpRequest(`${plain.url}/favicon.ico`)).status, 404);
  } finally {
    await plain.stop();
  }
});
