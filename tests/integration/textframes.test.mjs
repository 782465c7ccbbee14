// A text frame must be valid UTF-8 (RFC 6455 8.1): clients close the socket
// with 1007 on one that is not. Party code cannot make one: conn:send,
// room:broadcast, socket:send (cross-party and luaparty.connect) and
// conn:close's reason raise an error pointing at luaparty.binary; an error
// message used as a 1011 close reason is cut to valid UTF-8. And the party
// `luaparty init` writes passes binary messages on as binary.
// tests/projects/textframes.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { BIN, mkTmp, startServerPatient, wsConnect, waitFor, closeAll } from './lib/server.mjs';

const LATIN1 = Buffer.from('café crème', 'latin1');
const ADVICE = /parties\/main\.lua:\d+: a text message is not valid UTF-8 \(bad byte at offset 3 of 10\): .*luaparty\.binary\(s\)/;

describe('text frames from party code are valid UTF-8', () => {
  let srv;
  before(async () => { srv = await startServerPatient({ project: 'textframes' }); });
  after(async () => { await srv?.stop(); });

  const CLOSE = /parties\/main\.lua:\d+: the close reason is not valid UTF-8 \(bad byte at offset 3 of 10\)/;
  for (const [how, what, error] of [['send', 'a string', ADVICE], ['broadcast', 'a string', ADVICE],
    ['pipe', 'a string', ADVICE], ['connect', 'a string', ADVICE], ['close', 'a close reason', CLOSE]]) {
    test(`${how} of ${what} that is not UTF-8 raises an error at the party's line${error === ADVICE ? ', naming luaparty.binary' : ''}`, { timeout: 10000 }, async () => {
      const c = await wsConnect(`${srv.wsUrl}/parties/main/${how}-room`);
      try {
        c.send(how);
        const m = await c.next();
        assert.equal(m.isBinary, false);
        assert.match(m.data, error);
        // nothing invalid went out, and the socket is still fine
        c.send('after');
        assert.equal(await c.nextText(), 'echo after');
        assert.equal(c.closeInfo, null);
      } finally {
        await closeAll([c]);
      }
    });
  }

  test('the same bytes as luaparty.binary go out as a binary frame', { timeout: 10000 }, async () => {
    const c = await wsConnect(`${srv.wsUrl}/parties/main/binary-room`);
    try {
      c.send('binary');
      const m = await c.next();
      assert.equal(m.isBinary, true);
      assert.deepEqual(m.data, LATIN1);
    } finally {
      await closeAll([c]);
    }
  });

  test('uncaught, the error is logged with file:line and the advice; the socket stays open', { timeout: 10000 }, async () => {
    const c = await wsConnect(`${srv.wsUrl}/parties/main/unguarded-room`);
    try {
      c.send('unguarded');
      await waitFor(() => /main\/unguarded-room onMessage: parties\/main\.lua:\d+: a text message is not valid UTF-8/.test(srv.logs()),
        5000, { what: 'the logged error' });
      assert.match(srv.logs(), /send bytes as a binary frame with luaparty\.binary\(s\)/);
      c.send('still');
      assert.equal(await c.nextText(), 'echo still');
      assert.equal(c.closeInfo, null, 'no 1007 close');
    } finally {
      await closeAll([c]);
    }
  });

  test('an onConnect error holding bytes that are not UTF-8 closes with 1011 and a valid reason', { timeout: 10000 }, async () => {
    const c = await wsConnect(`${srv.wsUrl}/parties/main/fail-bytes?fail=bytes`);
    const info = await c.waitClosed(5000);
    assert.ok(info, 'closed');
    assert.equal(info.code, 1011);
    assert.match(info.reason, /^parties\/main\.lua:\d+: bad bytes $/, 'cut before the first byte that is not UTF-8');
  });

  test('a long onConnect error cut to 123 bytes is not cut inside a character', { timeout: 10000 }, async () => {
    const c = await wsConnect(`${srv.wsUrl}/parties/main/fail-long?fail=long`);
    const info = await c.waitClosed(5000);
    assert.ok(info, 'closed');
    assert.equal(info.code, 1011);
    assert.equal(info.reason, 'é'.repeat(61), '122 bytes: the 123rd would be half a character');
  });
});

test('the party `luaparty init` writes passes binary messages on as binary frames, not as JSON text', { timeout: 20000 }, async () => {
  const work = mkTmp('luaparty-init-binary-');
  const init = spawnSync(BIN, ['init', 'app'], { cwd: work, encoding: 'utf8' });
  assert.equal(init.status, 0, init.stderr);
  const srv = await startServerPatient({ project: path.join(work, 'app') });
  const clients = [];
  try {
    const a = await wsConnect(`${srv.wsUrl}/parties/main/bin`);
    clients.push(a);
    assert.equal((await a.nextJson()).type, 'welcome');
    const b = await wsConnect(`${srv.wsUrl}/parties/main/bin`);
    clients.push(b);
    assert.equal((await b.nextJson()).type, 'welcome');
    const bytes = Buffer.from([0xff, 0x00, 0x80, 0xc3, 0x28]);
    a.send(bytes, { binary: true });
    const got = await b.next();
    assert.equal(got.isBinary, true, 'a binary frame');
    assert.deepEqual(got.data, bytes);
    // text still works, and nobody was closed (a 1007 would have closed b)
    a.send('hello');
    const m = await b.nextMatching((x) => !x.isBinary);
    assert.deepEqual({ ...JSON.parse(m.data), from: undefined }, { type: 'message', text: 'hello', count: 1, from: undefined });
    const own = await a.nextJson();
    assert.equal(own.text, 'hello', 'the sender did not get its own binary back, only the text');
    assert.equal(a.closeInfo, null);
    assert.equal(b.closeInfo, null);
    assert.ok(fs.existsSync(path.join(work, 'app', 'public', 'index.html')));
  } finally {
    await closeAll(clients);
    await srv.stop();
  }
});
