// WebSocket messaging against tests/projects/suite: echo (text and binary),
// broadcast (with `without`), closing handshakes, partysocket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import PartySocket from 'partysocket';
import WS from 'ws';
import { suiteServer } from './lib/fixtures.mjs';

/** join(room, query) connects to a "main" room and consumes its hello message. */
const { srv, open, join } = suiteServer();

test('text echo', { timeout: 10000 }, async () => {
  const c = await join('echo-text');
  for (const s of ['hello', 'h\u00e9llo w\u00f6rld \u2713 \u{1F389}', ' ', 'x'.repeat(1000)]) {
    c.send(s);
    const m = await c.next();
    assert.equal(m.isBinary, false, `"${s.slice(0, 20)}" comes back as text`);
    assert.equal(m.data, s);
  }
});

test('an empty text frame is echoed as an empty text frame', { timeout: 10000 }, async () => {
  const c = await join('echo-empty');
  c.send('');
  const m = await c.next();
  assert.equal(m.isBinary, false);
  assert.equal(m.data, '');
});

test('binary echo of bytes that are not UTF-8 comes back binary and identical', { timeout: 10000 }, async () => {
  const c = await join('echo-bin');
  const bytes = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0x0a, 0x00]);
  c.send(bytes, { binary: true });
  const m = await c.next();
  assert.equal(m.isBinary, true, 'binary frame echoed as binary');
  assert.deepEqual(m.data, bytes);
});

test('binary echo of bytes that ARE valid UTF-8 still comes back binary', { timeout: 10000 }, async () => {
  const c = await join('echo-bin-utf8');
  const bytes = Buffer.from('h\u00e9llo \u2713 plain ascii too', 'utf8');
  c.send(bytes, { binary: true });
  const m = await c.next();
  assert.equal(m.isBinary, true, 'valid-UTF-8 binary frame must stay binary');
  assert.deepEqual(m.data, bytes);
});

test('large frames (16-bit and 64-bit payload lengths) echo intact', { timeout: 15000 }, async () => {
  const c = await join('echo-large');
  const medium = Buffer.alloc(3000, 0).map((_, i) => (i * 7) & 0xff);
  const big = Buffer.alloc(100_000).map((_, i) => (i * 31 + 3) & 0xff);
  c.send(medium, { binary: true });
  let m = await c.next(5000);
  assert.equal(m.isBinary, true);
  assert.ok(m.data.equals(medium), '3000-byte binary echo');
  c.send(big, { binary: true });
  m = await c.next(5000);
  assert.equal(m.isBinary, true);
  assert.equal(m.data.length, big.length);
  assert.ok(m.data.equals(big), '100 kB binary echo');
  const text = 'abc\u00e9'.repeat(20_000);
  c.send(text);
  m = await c.next(5000);
  assert.equal(m.isBinary, false);
  assert.equal(m.data, text);
});

test('a fragmented text message is reassembled', { timeout: 10000 }, async () => {
  const c = await join('echo-frag');
  c.ws.send('frag', { fin: false });
  c.ws.send('men', { fin: false });
  c.ws.send('ted', { fin: true });
  const m = await c.next();
  assert.equal(m.isBinary, false);
  assert.equal(m.data, 'fragmented');
});

test('quiet sockets give their parser back after a second: a message split across that, and later ones, arrive whole', { timeout: 15000 }, async () => {
  const c = await join('echo-park');
  c.send('before');
  assert.equal((await c.next()).data, 'before');
  c.ws.send('half of ', { fin: false }); // the park sweep must not drop a message half-read
  await new Promise((r) => setTimeout(r, 2300));
  c.ws.send('a message', { fin: true });
  assert.equal((await c.next()).data, 'half of a message');
  await new Promise((r) => setTimeout(r, 2300)); // now quiet between messages: parked
  c.send('after');
  assert.equal((await c.next()).data, 'after');
});

test('a burst of 200 messages is echoed completely and in order', { timeout: 15000 }, async () => {
  const c = await join('echo-burst');
  for (let i = 0; i < 200; i++) {
    if (i % 2) c.send(`m${i}`);
    else c.send(Buffer.from([i & 0xff, 0xff, 0x00]), { binary: true });
  }
  for (let i = 0; i < 200; i++) {
    const m = await c.next(5000);
    if (i % 2) {
      assert.equal(m.isBinary, false, `message ${i} is text`);
      assert.equal(m.data, `m${i}`);
    } else {
      assert.equal(m.isBinary, true, `message ${i} is binary`);
      assert.equal(m.data.toString('hex'), Buffer.from([i & 0xff, 0xff, 0x00]).toString('hex'));
    }
  }
});

test('a ping from the client is answered with a pong carrying the same payload', { timeout: 10000 }, async () => {
  const c = await join('ping-pong');
  const pong = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no pong within 2 s')), 2000);
    c.ws.once('pong', (data) => { clearTimeout(t); resolve(data); });
  });
  c.ws.ping(Buffer.from('are-you-there'));
  assert.equal((await pong).toString(), 'are-you-there');
  c.send('after ping');
  assert.equal(await c.nextText(), 'after ping');
});

test('Lua sees binary frames as Binary values and text frames as strings', { timeout: 10000 }, async () => {
  const c = await open('/parties/inspect/r1');
  const bytes = Buffer.from([0x01, 0x00, 0xff, 0x41]);
  c.send(bytes, { binary: true });
  const b = await c.nextJson();
  assert.equal(b.isBinary, true, 'luaparty.isBinary(msg) for a binary frame');
  assert.equal(b.len, 4, '#msg of a Binary');
  assert.equal(b.hexBytes, '0100ff41', 'msg:bytes()');
  assert.equal(b.hexTostring, '0100ff41', 'tostring(msg)');
  assert.equal(b.stringIsBinary, false, 'luaparty.isBinary("plain string")');
  assert.equal(b.roundTrip, true, 'luaparty.isBinary(luaparty.binary("x"))');
  c.send('t\u00e9xt');
  const t = await c.nextJson();
  assert.equal(t.isBinary, false);
  assert.equal(t.luaType, 'string');
  assert.equal(t.len, 5);
  assert.equal(t.hexBytes, Buffer.from('t\u00e9xt').toString('hex'));
});

test('luaparty.binary() from the server is sent as a binary frame', { timeout: 10000 }, async () => {
  const c = await join('send-bin');
  c.sendJson({ cmd: 'sendBinary', hex: '00ff7f80c328' });
  const m = await c.next();
  assert.equal(m.isBinary, true);
  assert.equal(m.data.toString('hex'), '00ff7f80c328');
});

test('broadcast reaches everyone, and `without` excludes the given ids', { timeout: 10000 }, async () => {
  const a = await join('bcast', '?_pk=bcast-a');
  const b = await join('bcast', '?_pk=bcast-b');
  const c = await join('bcast', '?_pk=bcast-c');
  const other = await join('bcast-other-room');

  a.sendJson({ cmd: 'broadcast', msg: 'to-all' });
  for (const x of [a, b, c]) assert.equal(await x.nextText(), 'to-all');

  a.sendJson({ cmd: 'broadcast', msg: 'not-b', without: ['bcast-b'] });
  assert.equal(await a.nextText(), 'not-b');
  assert.equal(await c.nextText(), 'not-b');

  a.sendJson({ cmd: 'broadcast', msg: 'not-a-nor-c', without: ['bcast-a', 'bcast-c'] });
  // b's next message must be this one: it never got "not-b"
  assert.equal(await b.nextText(), 'not-a-nor-c');

  a.sendJson({ cmd: 'broadcast', msg: 'again-all' });
  for (const x of [a, b, c]) assert.equal(await x.nextText(), 'again-all');
  // a and c did not get "not-a-nor-c"; another room got nothing at all
  assert.equal(a.queue.length, 0);
  assert.equal(c.queue.length, 0);
  await assert.rejects(other.next(200), /no message/);
});

test('broadcast `without`: a long list, non-string entries, ids that share a prefix', { timeout: 10000 }, async () => {
  // The ids to skip are read once per broadcast (src/lua_conn.c): past the
  // 8 kept inline, numbers among them (compared as strings, as before),
  // and ids that differ only after their first bytes.
  const a = await join('bcast-long', '?_pk=bl-a');
  const b = await join('bcast-long', '?_pk=bl-b');
  const c = await join('bcast-long', '?_pk=bl-bb');
  const d = await join('bcast-long', '?_pk=42');
  const filler = Array.from({ length: 20 }, (_, i) => `nobody-${i}`);
  a.sendJson({ cmd: 'broadcast', msg: 'only-b', without: [...filler, 'bl-a', 'bl-bb', 42, ...filler] });
  assert.equal(await b.nextText(), 'only-b');
  a.sendJson({ cmd: 'broadcast', msg: 'all-but-bb', without: ['bl-b'.slice(0, 3), 'bl-bb'] });
  for (const x of [a, b, d]) assert.equal(await x.nextText(), 'all-but-bb');
  a.sendJson({ cmd: 'broadcast', msg: 'end' });
  for (const x of [a, b, c, d]) assert.equal(await x.nextText(), 'end');
  // a, c and d never got "only-b"; c never got "all-but-bb"
  for (const x of [a, b, c, d]) assert.equal(x.queue.length, 0);
});

test('broadcast of a Binary value arrives as binary frames', { timeout: 10000 }, async () => {
  const a = await join('bcast-bin', '?_pk=bb-a');
  const b = await join('bcast-bin', '?_pk=bb-b');
  a.sendJson({ cmd: 'broadcastBinary', hex: 'deadbeef00', without: ['bb-a'] });
  const m = await b.next();
  assert.equal(m.isBinary, true);
  assert.equal(m.data.toString('hex'), 'deadbeef00');
  a.sendJson({ cmd: 'broadcast', msg: 'text-after' });
  const t = await a.next();
  assert.equal(t.isBinary, false);
  assert.equal(t.data, 'text-after', 'the sender was excluded from the binary broadcast');
});

test('HTTP-triggered broadcast reaches the room sockets', { timeout: 10000 }, async () => {
  const a = await join('http-bcast');
  const r = await fetch(`${srv.url}/parties/main/http-bcast/broadcast`, { method: 'POST', body: 'from-http', signal: AbortSignal.timeout(5000) });
  assert.equal(r.status, 200);
  assert.equal(await r.text(), 'ok');
  assert.equal(await a.nextText(), 'from-http');
});

test('client close(1000) gets a close frame back promptly', { timeout: 10000 }, async () => {
  const c = await join('close-handshake');
  const t0 = Date.now();
  c.close(1000, 'done');
  const info = await c.waitClosed(5000);
  assert.ok(info, 'close event within 5 s');
  const ms = Date.now() - t0;
  assert.equal(info.code, 1000, `close code ${info.code} (1006 means no close frame came back)`);
  assert.ok(ms < 1500, `close completed in ${ms} ms`);
});

test('client close with another code (4000) is answered too', { timeout: 10000 }, async () => {
  const c = await join('close-4000');
  const t0 = Date.now();
  c.close(4000, 'custom');
  const info = await c.waitClosed(5000);
  assert.ok(info);
  assert.notEqual(info.code, 1006, 'a close frame came back');
  assert.ok(Date.now() - t0 < 1500);
});

test('conn:close(4001, "bye") reaches the client with code and reason', { timeout: 10000 }, async () => {
  const c = await join('server-close');
  c.sendJson({ cmd: 'close', code: 4001, reason: 'bye' });
  const info = await c.waitClosed(3000);
  assert.ok(info, 'closed within 3 s');
  assert.equal(info.code, 4001);
  assert.equal(info.reason, 'bye');
});

test('the room forgets a closed connection', { timeout: 10000 }, async () => {
  const a = await join('forget', '?_pk=f-a');
  const b = await join('forget', '?_pk=f-b');
  a.sendJson({ cmd: 'list' });
  assert.equal((await a.nextJson()).ids, 'f-a,f-b');
  await b.closeAndWait();
  // onClose is asynchronous to the client; bounded retry
  let ids;
  for (let i = 0; i < 40; i++) {
    a.sendJson({ cmd: 'list' });
    ids = (await a.nextJson()).ids;
    if (ids === 'f-a') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(ids, 'f-a');
});

test('partysocket client: id from `id`, echo, close', { timeout: 10000 }, async () => {
  const ps = new PartySocket({
    host: `127.0.0.1:${srv.port}`, party: 'main', room: 'ps-echo', id: 'ps-client-1', WebSocket: WS, maxRetries: 0,
  });
  try {
    const msgs = [];
    let wake;
    ps.addEventListener('message', (e) => { msgs.push(e.data); if (wake) wake(); });
    const nextMsg = () => new Promise((resolve, reject) => {
      if (msgs.length) return resolve(msgs.shift());
      const t = setTimeout(() => reject(new Error('no partysocket message within 3 s')), 3000);
      wake = () => { clearTimeout(t); wake = null; resolve(msgs.shift()); };
    });
    const hello = JSON.parse(String(await nextMsg()));
    assert.equal(hello.id, 'ps-client-1');
    assert.equal(hello.party, 'main');
    assert.equal(hello.room, 'ps-echo');
    assert.equal(ps.id, 'ps-client-1');
    ps.send('via partysocket');
    assert.equal(String(await nextMsg()), 'via partysocket');
  } finally {
    ps.close();
  }
});
