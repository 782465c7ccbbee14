// Outbound WebSockets from party code: luaparty.connect (src/wsclient.c,
// src/lua_socket.c, lua/luaparty/init.lua Socket). The party
// (tests/projects/connect/parties/main.lua) runs one JSON command per POST;
// this file runs the other end: `ws` WebSocketServers on 127.0.0.1 (plain,
// wss with a private CA made with `openssl` at test time, wss with a
// certificate for the wrong name) and raw TCP servers that answer the
// upgrade wrongly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { WebSocketServer } from 'ws';
import { serverCerts } from './lib/certs.mjs';
import { startServer, httpRequest, waitFor, sleep } from './lib/server.mjs';
import { copyProject } from './lib/fixtures.mjs';

// ---- the WebSocket servers the party connects to ----
//
// Every connection is recorded under its ?id= (records[id]): the upgrade
// request's url and headers, each message {isBinary, text|hex}, pongs, and
// the close {code, reason} the server saw. The path picks a behaviour:
//   /echo      echo every message as it came (text stays text, binary binary)
//   /push      send "push-0", a binary frame of bytes 0..255, "push-2 é✓"; then echo
//   /close     send "bye-soon", then close with ?code= and ?reason=
//   /silent    say nothing, echo nothing
//   /fragments send one text message as three fragments; then echo
//   /big       send one binary message of ?n= bytes
//   /ping      ping the client (the pong is recorded)
//   /drop      send "dropping", then destroy the TCP connection (no close frame)

const records = new Map();
const sockets = new Map(); // id -> server-side ws

function record(id) {
  if (!records.has(id)) records.set(id, { msgs: [], pongs: [], close: null, headers: null, url: null, connections: 0 });
  return records.get(id);
}

function onConnection(ws, req) {
  const u = new URL(req.url, 'http://x');
  const id = u.searchParams.get('id') || 'anon';
  const rec = record(id);
  rec.url = req.url;
  rec.headers = req.headers;
  rec.rawHeaders = req.rawHeaders;
  rec.connections++;
  rec.secure = !!req.socket.encrypted;
  sockets.set(id, ws);
  const p = u.pathname;
  const echo = !['/silent', '/close', '/big'].includes(p);
  ws.on('message', (data, isBinary) => {
    const buf = Buffer.isBuffer(data) ? data : Buffer.concat(data);
    rec.msgs.push(isBinary ? { isBinary, hex: buf.toString('hex') } : { isBinary, text: buf.toString('utf8') });
    if (echo && ws.readyState === ws.OPEN) ws.send(buf, { binary: isBinary });
  });
  ws.on('pong', (d) => rec.pongs.push(d.toString()));
  ws.on('close', (code, reason) => { rec.close = { code, reason: reason.toString('utf8') }; });
  ws.on('error', () => {});
  if (p === '/push') {
    ws.send('push-0');
    ws.send(Buffer.from(Array.from({ length: 256 }, (_, i) => i)), { binary: true });
    ws.send('push-2 é✓');
  } else if (p === '/close') {
    ws.send('bye-soon');
    ws.close(Number(u.searchParams.get('code') || 1000), u.searchParams.get('reason') || '');
  } else if (p === '/fragments') {
    ws.send('one-', { fin: false });
    ws.send('two-', { fin: false });
    ws.send('three', { fin: true });
  } else if (p === '/big') {
    ws.send(Buffer.alloc(Number(u.searchParams.get('n')), 0x61), { binary: true });
  } else if (p === '/ping') {
    ws.ping('hello-ping');
  } else if (p === '/drop') {
    ws.send('dropping', () => setTimeout(() => ws._socket?.destroy(), 50));
  }
}

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

async function wsServer(tlsOpts) {
  const server = tlsOpts ? https.createServer(tlsOpts) : http.createServer((req, res) => { res.writeHead(426); res.end(); });
  const wss = new WebSocketServer({ server, maxPayload: 64 * 1024 * 1024 });
  wss.on('connection', onConnection);
  const port = await listen(server);
  return { server, wss, port };
}

/** A TCP server that answers any request with fixed bytes. */
async function rawServer(reply) {
  const conns = new Set();
  const server = net.createServer((s) => {
    conns.add(s);
    s.on('close', () => conns.delete(s));
    s.on('error', () => {});
    let got = '';
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n\r\n') && reply !== null) {
        const key = /sec-websocket-key: *(\S+)/i.exec(got)?.[1];
        s.write(typeof reply === 'function' ? reply(key) : reply);
      }
    });
  });
  const port = await listen(server);
  return { server, port, conns };
}

// ---- fixtures ----

let certs;
let plain; // ws://
let secure; // wss:// with the CA's localhost certificate
let wrongName; // wss:// with a certificate for wrong.test
let answers200; // answers the upgrade with 200
let badAccept; // answers 101 with a wrong Sec-WebSocket-Accept
let mute; // accepts TCP, never answers
let refusedPort; // nothing listens there
let lp; // luaparty with --tls-ca
const rawServers = [];

before(async () => {
  certs = serverCerts('connect');
  plain = await wsServer(null);
  secure = await wsServer({ key: certs.good.key, cert: certs.good.cert });
  wrongName = await wsServer({ key: certs.wrong.key, cert: certs.wrong.cert });
  answers200 = await rawServer('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello');
  badAccept = await rawServer('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n' +
    'sec-websocket-accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n');
  mute = await rawServer(null);
  rawServers.push(answers200, badAccept, mute);
  const tmp = net.createServer();
  refusedPort = await listen(tmp);
  await new Promise((r) => tmp.close(r));
  lp = await startServer({ project: 'connect', args: ['--tls-ca', certs.caFile], startTimeout: 15000 });
});

after(async () => {
  await lp?.stop();
  for (const s of [plain, secure, wrongName]) {
    if (!s) continue;
    for (const c of s.wss.clients) c.terminate();
    s.wss.close();
    s.server.closeAllConnections?.();
    s.server.close();
  }
  for (const r of rawServers) {
    for (const c of r.conns) c.destroy();
    r.server.close();
  }
});

let seq = 0;
const uid = (name) => `${name}-${++seq}`;

/** POSTs a command to a room of the connect party; resolves its JSON answer. */
async function cmd(body, { srv = lp, room = 'r', timeout = 8000 } = {}) {
  const r = await httpRequest(`${srv.url}/parties/main/${room}`, {
    method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, timeout,
  });
  assert.equal(r.status, 200, `POST ${JSON.stringify(body)} -> ${r.status}: ${r.text}`);
  return r.json();
}

const wsUrl = (p, id, port = plain.port, host = '127.0.0.1') => `ws://${host}:${port}${p}${p.includes('?') ? '&' : '?'}id=${id}`;
const wssUrl = (p, id, host = 'localhost', port = secure.port) => `wss://${host}:${port}${p}${p.includes('?') ? '&' : '?'}id=${id}`;
const asList = (v) => (Array.isArray(v) ? v : []); // an empty Lua table encodes as {}

// ---- tests ----

test('text and binary echo both ways over ws://', { timeout: 15000 }, async () => {
  const id = uid('echo');
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('hex');
  const r = await cmd({
    url: wsUrl('/echo', id),
    steps: [
      { send: 'hello é✓' }, { sendHex: '00ff10' }, { sendHex: all }, { send: '' },
      { receive: true, timeout: 3000 }, { receive: true, timeout: 3000 }, { receive: true, timeout: 3000 },
      { receive: true, timeout: 3000 },
      { close: true },
    ],
  });
  assert.equal(r.error, undefined, r.error);
  assert.deepEqual(r.results.slice(0, 4), [{ sent: true }, { sent: true }, { sent: true }, { sent: true }]);
  assert.deepEqual(r.results[4], { kind: 'text', data: 'hello é✓' });
  assert.deepEqual(r.results[5], { kind: 'binary', hex: '00ff10', isBinary: true, len: 3 });
  assert.deepEqual(r.results[6], { kind: 'binary', hex: all, isBinary: true, len: 256 });
  assert.deepEqual(r.results[7], { kind: 'text', data: '' });
  // what the server got: a Binary from Lua is a binary frame, a string a text frame
  const rec = records.get(id);
  assert.deepEqual(rec.msgs, [
    { isBinary: false, text: 'hello é✓' },
    { isBinary: true, hex: '00ff10' },
    { isBinary: true, hex: all },
    { isBinary: false, text: '' },
  ]);
  assert.equal(r.closed, true);
  await waitFor(() => rec.close, 3000, { what: 'the server to see the close' });
  assert.equal(rec.close.code, 1000, JSON.stringify(rec.close));
});

test('a binary frame pushed by the server is a Binary in Lua; text stays text; fragments are joined', { timeout: 15000 }, async () => {
  const r = await cmd({
    url: wsUrl('/push', uid('push')),
    steps: [{ receive: true, timeout: 3000 }, { receive: true, timeout: 3000 }, { receive: true, timeout: 3000 }, { close: true }],
  });
  assert.deepEqual(r.results[0], { kind: 'text', data: 'push-0' });
  assert.equal(r.results[1].kind, 'binary');
  assert.equal(r.results[1].isBinary, true);
  assert.equal(r.results[1].hex, Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('hex'));
  assert.deepEqual(r.results[2], { kind: 'text', data: 'push-2 é✓' });
  const f = await cmd({ url: wsUrl('/fragments', uid('frag')), steps: [{ receive: true, timeout: 3000 }, { close: true }] });
  assert.deepEqual(f.results[0], { kind: 'text', data: 'one-two-three' });
});

test('wss:// with --tls-ca: echo both kinds, by name and by IP', { timeout: 15000 }, async () => {
  for (const host of ['localhost', '127.0.0.1']) {
    const id = uid(`wss-${host}`);
    const r = await cmd({
      url: wssUrl('/echo', id, host),
      steps: [{ send: 'secret' }, { sendHex: 'cafe' }, { receive: true, timeout: 3000 }, { receive: true, timeout: 3000 }, { close: true }],
    });
    assert.equal(r.error, undefined, r.error);
    assert.deepEqual(r.results[2], { kind: 'text', data: 'secret' }, `${host}: ${JSON.stringify(r)}`);
    assert.deepEqual(r.results[3], { kind: 'binary', hex: 'cafe', isBinary: true, len: 2 });
    const rec = records.get(id);
    assert.equal(rec.secure, true);
    assert.deepEqual(rec.msgs, [{ isBinary: false, text: 'secret' }, { isBinary: true, hex: 'cafe' }]);
  }
});

test('custom headers reach the upgrade request, with host and the usual ones', { timeout: 15000 }, async () => {
  const id = uid('headers');
  const r = await cmd({
    url: wsUrl('/echo?x=1', id),
    headers: { 'X-Custom-Thing': 'value 1', Authorization: 'Bearer abc.def' },
    steps: [{ send: 'hi' }, { receive: true, timeout: 3000 }, { close: true }],
  });
  assert.deepEqual(r.results[1], { kind: 'text', data: 'hi' });
  const rec = records.get(id);
  assert.equal(rec.headers['x-custom-thing'], 'value 1');
  assert.equal(rec.headers.authorization, 'Bearer abc.def');
  assert.equal(rec.headers.host, `127.0.0.1:${plain.port}`);
  assert.equal(rec.headers['sec-websocket-version'], '13');
  assert.match(rec.headers['user-agent'] || '', /^luaparty\//);
  assert.equal(rec.url, `/echo?x=1&id=${id}`, 'path and query as given');
  // header values with CR/LF are refused when connect is called
  const bad = await cmd({ op: 'bad', url: wsUrl('/echo', uid('badhdr')), options: { headers: { 'x-evil': 'a\r\nx-injected: 1' } } });
  assert.equal(bad.raised, true, JSON.stringify(bad));
});

test('a Host given in headers makes one Host line, not a second one', { timeout: 15000 }, async () => {
  // Two Host lines are a 400 for many servers (RFC 9112 3.2; nginx: "client sent duplicate host header")
  const id = uid('host');
  const r = await cmd({ url: wsUrl('/echo', id), headers: { Host: 'virtual.example' }, steps: [{ send: 'h' }, { receive: true, timeout: 3000 }, { close: true }] });
  assert.deepEqual(r.results[1], { kind: 'text', data: 'h' }, JSON.stringify(r));
  const raw = records.get(id).rawHeaders;
  const hosts = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === 'host') hosts.push(raw[i + 1]);
  assert.equal(hosts.length, 1, `Host lines sent: ${JSON.stringify(hosts)}`);
});

test('messages sent before the handshake completes arrive in order', { timeout: 15000 }, async () => {
  const id = uid('order');
  const steps = [];
  const expected = [];
  for (let i = 0; i < 60; i++) {
    if (i % 4 === 3) {
      const hex = Buffer.from(`b${i}`).toString('hex');
      steps.push({ sendHex: hex });
      expected.push({ isBinary: true, hex });
    } else {
      steps.push({ send: `m${i}` });
      expected.push({ isBinary: false, text: `m${i}` });
    }
  }
  for (let i = 0; i < 60; i++) steps.push({ receive: true, timeout: 3000 });
  steps.push({ close: true });
  const r = await cmd({ url: wsUrl('/echo', id), steps });
  assert.deepEqual(records.get(id).msgs, expected, 'the server got them in order');
  const echoed = r.results.slice(60, 120).map((x) => (x.kind === 'binary' ? { isBinary: true, hex: x.hex } : { isBinary: false, text: x.data }));
  assert.deepEqual(echoed, expected, 'and Lua got the echoes in order');
});

test('messages that arrive while nobody receives are queued for the next receive()', { timeout: 15000 }, async () => {
  const id = uid('queued');
  const room = 'holder-q';
  await cmd({ op: 'hold', name: 'q', noHandler: true, url: wsUrl('/push', id), send: [{ send: 'echo-me' }] }, { room });
  await waitFor(() => records.get(id)?.msgs.length === 1, 3000, { what: 'the server to get echo-me' });
  await sleep(200); // the pushes and the echo are in the socket's queue by now
  const t0 = Date.now();
  const r = await cmd({ op: 'holdReceive', name: 'q', n: 5, timeout: 1000 }, { room });
  assert.deepEqual(r.results[0], { kind: 'text', data: 'push-0' });
  assert.equal(r.results[1].len, 256);
  assert.deepEqual(r.results[2], { kind: 'text', data: 'push-2 é✓' });
  assert.deepEqual(r.results[3], { kind: 'text', data: 'echo-me' });
  assert.deepEqual(r.results[4], { kind: 'nil', r2: 'timeout' });
  assert.ok(Date.now() - t0 < 2500, 'queued messages come without waiting');
  await cmd({ op: 'holdClose', name: 'q' }, { room });
});

test('onmessage receives server-pushed messages; onclose gets the server close code', { timeout: 15000 }, async () => {
  const id = uid('onmessage');
  const room = 'holder-1';
  const h = await cmd({ op: 'hold', name: 'a', url: wsUrl('/push', id), send: [{ send: 'from-lua' }] }, { room });
  assert.deepEqual(h, { ok: true, sent: [true] });
  let box;
  await waitFor(async () => {
    box = await cmd({ op: 'inbox', name: 'a' }, { room });
    return asList(box.messages).length >= 4;
  }, 5000, { what: 'four messages in the inbox' });
  const msgs = asList(box.messages);
  assert.deepEqual(msgs[0], { kind: 'text', data: 'push-0' });
  assert.equal(msgs[1].kind, 'binary');
  assert.equal(msgs[1].len, 256);
  assert.deepEqual(msgs[2], { kind: 'text', data: 'push-2 é✓' });
  assert.deepEqual(msgs[3], { kind: 'text', data: 'from-lua' }, 'the echo of what Lua sent');
  // more, later: sent from another request to the room
  await cmd({ op: 'holdSend', name: 'a', sendHex: '0102' }, { room });
  await waitFor(async () => asList((await cmd({ op: 'inbox', name: 'a' }, { room })).messages).length >= 5, 5000,
    { what: 'the fifth message' });
  box = await cmd({ op: 'inbox', name: 'a' }, { room });
  assert.deepEqual(asList(box.messages)[4], { kind: 'binary', hex: '0102', isBinary: true, len: 2 });
  assert.equal(box.closed, false);
  // the server closes with a code: onclose(code) runs, closeCode is set
  sockets.get(id).close(4002, 'server says bye');
  await waitFor(async () => (box = await cmd({ op: 'inbox', name: 'a' }, { room })).onclose, 5000, { what: 'onclose' });
  assert.deepEqual(box.onclose, { code: 4002 });
  assert.equal(box.closed, true);
  assert.equal(box.closeCode, 4002);
});

/**
 * Holds a socket (no onmessage) in a room, runs n receive() calls in one
 * request, then reads the socket's fields in another request (after the
 * close event has run). Resolves {results, box}.
 */
async function holdAndReceive(url, n, { timeout = 3000, room = uid('hr-room') } = {}) {
  const h = await cmd({ op: 'hold', name: 'h', noHandler: true, url }, { room });
  assert.equal(h.error, undefined, h.error);
  const { results } = await cmd({ op: 'holdReceive', name: 'h', n, timeout }, { room });
  let box;
  await waitFor(async () => (box = await cmd({ op: 'inbox', name: 'h' }, { room })).closed, 3000,
    { what: 'socket.closed after the close event' });
  return { results, box };
}

test('the server closing with a code: receive() -> nil, "closed"; then closeCode, closeReason, onclose(code)', { timeout: 15000 }, async () => {
  const { results, box } = await holdAndReceive(wsUrl('/close?code=4001&reason=going%20away%20now', uid('closed')), 3);
  assert.deepEqual(results[0], { kind: 'text', data: 'bye-soon' });
  assert.equal(results[1].kind, 'nil');
  assert.equal(results[1].r2, 'closed');
  assert.equal(results[2].kind, 'nil', 'receive after the close is still nil, "closed"');
  assert.equal(results[2].r2, 'closed');
  assert.equal(box.closeCode, 4001);
  assert.deepEqual(box.onclose, { code: 4001 });
  assert.equal(box.closeReason, 'going away now', `the server's close reason reaches closeReason (observed ${JSON.stringify(box)})`);
});

test('a close started by the server completes: the server gets Lua\'s whole close frame back', { timeout: 15000 }, async () => {
  for (const [scheme, url] of [['ws', wsUrl], ['wss', wssUrl]]) {
    const id = uid(`closed-hs-${scheme}`);
    await holdAndReceive(url('/close?code=4001&reason=bye', id), 2);
    // without a complete reply, ws waits 30 s and then reports 1006
    await waitFor(() => records.get(id).close, 3000, { what: 'the TCP connection to end' });
    assert.equal(records.get(id).close.code, 4001, `${scheme}: the server saw ${JSON.stringify(records.get(id).close)}`);
  }
});

test('right after receive() -> nil, "closed", the socket already says so (closed, closeCode) in that callback', { timeout: 15000 }, async () => {
  const r = await cmd({
    url: wsUrl('/close?code=4001&reason=bye', uid('closed-now')),
    steps: [{ receive: true, timeout: 3000 }, { receive: true, timeout: 3000 }, { send: 'after' }],
  });
  assert.deepEqual(r.results[0], { kind: 'text', data: 'bye-soon' });
  assert.equal(r.results[1].r2, 'closed');
  assert.deepEqual(r.results[2], { sent: false }, 'send on a closed socket returns false');
  assert.equal(r.closed, true, `socket.closed after receive said "closed" (observed ${JSON.stringify(r)})`);
  assert.equal(r.closeCode, 4001, `socket.closeCode after receive said "closed" (observed ${JSON.stringify(r)})`);
});

test('receive(timeout) -> nil, "timeout"; the socket still works afterwards', { timeout: 15000 }, async () => {
  const t0 = Date.now();
  const r = await cmd({
    url: wsUrl('/echo', uid('timeout')),
    steps: [{ receive: true, timeout: 300 }, { send: 'after-timeout' }, { receive: true, timeout: 3000 }, { receive: true, timeout: 0 }, { close: true }],
  });
  const ms = Date.now() - t0;
  assert.deepEqual(r.results[0], { kind: 'nil', r2: 'timeout' });
  assert.deepEqual(r.results[2], { kind: 'text', data: 'after-timeout' });
  assert.deepEqual(r.results[3], { kind: 'nil', r2: 'timeout' }, 'receive(0) with nothing queued times out at once');
  assert.ok(ms >= 280 && ms < 3000, `took ${ms} ms`);
});

test('connect to a refused port: receive -> nil, "closed", "connect to ... failed: connection refused"', { timeout: 15000 }, async () => {
  const r = await cmd({ url: `ws://127.0.0.1:${refusedPort}/x`, steps: [{ send: 'queued-before-failure' }, { receive: true, timeout: 3000 }] });
  assert.equal(r.error, undefined, 'connect itself does not raise');
  assert.deepEqual(r.results[0], { sent: true }, 'sending before the failure is known queues it');
  assert.equal(r.results[1].kind, 'nil');
  assert.equal(r.results[1].r2, 'closed');
  const why = new RegExp(`connect to 127\\.0\\.0\\.1:${refusedPort} failed: connection refused`);
  assert.match(r.results[1].r3 || '', why);
  // the socket's fields, once the close event ran
  // (here the failure came before receive() was called: the reason is in closeReason;
  // receive() then gives nil, "closed" and maybe no third value)
  const { results, box } = await holdAndReceive(`ws://127.0.0.1:${refusedPort}/x`, 1);
  assert.equal(results[0].r2, 'closed');
  if (results[0].r3 !== undefined) assert.match(results[0].r3, why);
  assert.equal(box.closeCode, 1006);
  assert.match(box.closeReason || '', why);
});

test('wss:// to a certificate for another name: "certificate verify failed: hostname mismatch"', { timeout: 15000 }, async () => {
  const r = await cmd({ url: wssUrl('/echo', uid('wrongname'), 'localhost', wrongName.port), steps: [{ receive: true, timeout: 3000 }] });
  assert.equal(r.results[0].r2, 'closed');
  assert.match(r.results[0].r3 || '', /certificate verify failed: hostname mismatch/);
});

test('wss:// without --tls-ca: "certificate verify failed"', { timeout: 20000 }, async () => {
  const noCa = await startServer({ project: 'connect', startTimeout: 15000 });
  try {
    const id = uid('noca');
    const r = await cmd({ url: wssUrl('/echo', id), steps: [{ send: 'x' }, { receive: true, timeout: 3000 }] }, { srv: noCa });
    assert.equal(r.results[1].kind, 'nil');
    assert.equal(r.results[1].r2, 'closed');
    assert.match(r.results[1].r3 || '', /certificate verify failed/);
    assert.equal(records.get(id), undefined, 'no upgrade reached the server');
  } finally {
    await noCa.stop();
  }
});

test('an upgrade answered with 200 -> "did not switch protocols"; a wrong accept key is refused', { timeout: 15000 }, async () => {
  const r = await cmd({ url: `ws://127.0.0.1:${answers200.port}/x`, steps: [{ send: 'x' }, { receive: true, timeout: 3000 }] });
  assert.equal(r.results[1].r2, 'closed');
  assert.match(r.results[1].r3 || '', /did not switch protocols/);
  const b = await cmd({ url: `ws://127.0.0.1:${badAccept.port}/x`, steps: [{ receive: true, timeout: 3000 }] });
  assert.equal(b.results[0].r2, 'closed');
  assert.match(b.results[0].r3 || '', /Sec-WebSocket-Accept/);
});

test('a server that never answers the upgrade: receive(timeout) times out, close() ends it', { timeout: 15000 }, async () => {
  const r = await cmd({
    url: `ws://127.0.0.1:${mute.port}/x`,
    steps: [{ send: 'never-sent' }, { receive: true, timeout: 300 }, { close: true }, { receive: true, timeout: 300 }],
  });
  assert.deepEqual(r.results[1], { kind: 'nil', r2: 'timeout' });
  assert.equal(r.results[3].r2, 'closed');
  await waitFor(() => mute.conns.size === 0, 3000, { what: 'the TCP connection to be closed' });
});

test('the server dropping TCP without a close frame: nil, "closed" with a reason; closeCode 1006', { timeout: 15000 }, async () => {
  const { results, box } = await holdAndReceive(wsUrl('/drop', uid('drop')), 2);
  assert.deepEqual(results[0], { kind: 'text', data: 'dropping' });
  assert.equal(results[1].r2, 'closed');
  assert.match(results[1].r3 || '', /closed the connection/);
  assert.equal(box.closeCode, 1006);
  assert.match(box.closeReason || '', /closed the connection/);
});

test('close from Lua sends a close frame: 1000 by default, or a code and reason (ws and wss)', { timeout: 15000 }, async () => {
  for (const [scheme, url] of [['ws', wsUrl], ['wss', wssUrl]]) {
    const id = uid(`luaclose-${scheme}`);
    const r = await cmd({ url: url('/echo', id), steps: [{ send: 'a' }, { receive: true, timeout: 3000 }, { close: 4000, reason: 'lua is done' }, { receive: true, timeout: 1000 }, { send: 'b' }] });
    assert.deepEqual(r.results[2], { closedNow: true });
    assert.equal(r.results[3].r2, 'closed', 'receive after close is nil, "closed"');
    assert.deepEqual(r.results[4], { sent: false });
    await waitFor(() => records.get(id).close, 3000, { what: 'the server to see the close' });
    assert.deepEqual(records.get(id).close, { code: 4000, reason: 'lua is done' }, scheme);
    assert.deepEqual(records.get(id).msgs, [{ isBinary: false, text: 'a' }]);
    const id2 = uid(`luaclose-default-${scheme}`);
    await cmd({ url: url('/echo', id2), steps: [{ send: 'x' }, { receive: true, timeout: 3000 }, { send: 'y' }, { close: true }] });
    await waitFor(() => records.get(id2)?.close, 3000, { what: 'the server to see the close' });
    assert.equal(records.get(id2).close.code, 1000, scheme);
    assert.deepEqual(records.get(id2).msgs, [{ isBinary: false, text: 'x' }, { isBinary: false, text: 'y' }],
      'a message sent just before close() still arrives');
  }
});

test('close() before the handshake aborts it, as in browsers: queued messages are dropped, receive says closed', { timeout: 15000 }, async () => {
  const id = uid('early-close');
  const r = await cmd({ url: wsUrl('/echo', id), steps: [{ send: 'early' }, { close: 4005, reason: 'early' }, { receive: true, timeout: 500 }] });
  assert.deepEqual(r.results.slice(0, 2), [{ sent: true }, { closedNow: true }]);
  assert.deepEqual(r.results[2], { r2: 'closed', kind: 'nil' });
  await sleep(300);
  assert.deepEqual(records.get(id)?.msgs ?? [], [], 'no message reached the server');
});

test('a room holding an open socket, closed later from Lua: the server sees close 1000', { timeout: 15000 }, async () => {
  const id = uid('holdclose');
  const room = 'holder-2';
  await cmd({ op: 'hold', name: 'b', url: wsUrl('/echo', id) }, { room });
  await waitFor(() => records.get(id)?.connections === 1, 3000, { what: 'the upgrade' });
  await sleep(200);
  assert.equal(records.get(id).close, null, 'still open between requests');
  const c = await cmd({ op: 'holdClose', name: 'b' }, { room });
  assert.deepEqual(c, { closed: true });
  await waitFor(() => records.get(id).close, 3000, { what: 'the server to see the close' });
  assert.equal(records.get(id).close.code, 1000);
  assert.equal(sockets.get(id).readyState, sockets.get(id).CLOSED);
});

test('the server pings: Lua answers with a pong', { timeout: 15000 }, async () => {
  const id = uid('ping');
  await cmd({ url: wsUrl('/ping', id), steps: [{ receive: true, timeout: 500 }, { close: true }] });
  assert.deepEqual(records.get(id).pongs, ['hello-ping']);
});

test('large messages both ways (300 KB)', { timeout: 15000 }, async () => {
  const id = uid('large');
  const big = Buffer.alloc(300 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  const r = await cmd({ url: wssUrl('/echo', id), steps: [{ sendHex: big.toString('hex') }, { receive: true, timeout: 5000 }, { close: true }] }, { timeout: 10000 });
  assert.equal(r.results[1].kind, 'binary');
  assert.equal(r.results[1].len, big.length);
  assert.equal(r.results[1].hex, big.toString('hex'));
  assert.equal(records.get(id).msgs[0].hex.length, big.length * 2);
});

test('a message from the server over --max-message closes the socket with 1009', { timeout: 15000 }, async () => {
  const id = uid('toobig');
  const { results, box } = await holdAndReceive(wsUrl('/big?n=2000000', id), 1);
  assert.equal(results[0].kind, 'nil');
  assert.equal(results[0].r2, 'closed');
  await waitFor(() => records.get(id).close, 3000, { what: 'the server to see the close' });
  const seen = `server saw ${JSON.stringify(records.get(id).close)}; Lua: ${JSON.stringify({ results, box })}`;
  assert.equal(box.closeCode, 1009, `closeCode is 1009 (${seen})`);
});

test('bad arguments raise from connect', { timeout: 15000 }, async () => {
  const http1 = await cmd({ op: 'bad', url: `http://127.0.0.1:${plain.port}/` });
  assert.equal(http1.raised, true);
  assert.match(http1.error, /ws:\/\/ or wss:\/\//);
  const num = await cmd({ op: 'bad', url: 42 });
  assert.equal(num.raised, true);
  assert.match(num.error, /url must be a string/);
  const junk = await cmd({ op: 'bad', url: 'not a url' });
  assert.equal(junk.raised, true);
});

test('the allow-list (luaparty.outbound) refuses other hosts with an error from connect', { timeout: 20000 }, async () => {
  // a copy of the project with an allow-list
  const dir = copyProject('connect', () => ({
    name: 'connect-allow', main: 'parties/main.lua', luaparty: { outbound: ['localhost', '*.example.net'] },
  }), 'luaparty-connect-allow-');
  const s = await startServer({ project: dir, args: ['--tls-ca', certs.caFile], startTimeout: 15000 });
  try {
    for (const host of ['127.0.0.1', 'example.net', 'evil-example.net', 'localhost.evil.test']) {
      const id = uid('refused');
      const r = await cmd({ url: `ws://${host}:${plain.port}/echo?id=${id}`, steps: [] }, { srv: s });
      assert.match(r.error || '', new RegExp(`connect to ${host.replace(/\./g, '\\.')} refused: .*luaparty\\.outbound`),
        `${host}: ${JSON.stringify(r)}`);
      assert.equal(records.get(id), undefined);
    }
    // allowed: localhost, plain and wss
    const id = uid('allowed');
    const ok = await cmd({ url: wsUrl('/echo', id, plain.port, 'localhost'), steps: [{ send: 'ok' }, { receive: true, timeout: 3000 }, { close: true }] }, { srv: s });
    assert.deepEqual(ok.results[1], { kind: 'text', data: 'ok' }, JSON.stringify(ok));
    const okTls = await cmd({ url: wssUrl('/echo', uid('allowed-tls')), steps: [{ send: 'ok' }, { receive: true, timeout: 3000 }, { close: true }] }, { srv: s });
    assert.deepEqual(okTls.results[1], { kind: 'text', data: 'ok' }, JSON.stringify(okTls));
  } finally {
    await s.stop();
  }
});

test('20 rooms, each with its own outbound socket at once', { timeout: 20000 }, async () => {
  const ids = Array.from({ length: 20 }, (_, i) => uid(`many${i}`));
  const rs = await Promise.all(ids.map((id, i) => cmd({
    url: i % 2 ? wssUrl('/echo', id) : wsUrl('/echo', id),
    steps: [{ send: `n${i}` }, { receive: true, timeout: 5000 }, { close: true }],
  }, { room: `many-${i}` })));
  rs.forEach((r, i) => assert.deepEqual(r.results[1], { kind: 'text', data: `n${i}` }));
});

test('shutdown with an open outbound socket: it is closed and luaparty exits 0', { timeout: 20000 }, async (t) => {
  const s = await startServer({ project: 'connect', startTimeout: 15000 });
  const id = uid('shutdown');
  await cmd({ op: 'hold', name: 'c', url: wsUrl('/echo', id) }, { srv: s, room: 'holder-3' });
  await waitFor(() => records.get(id)?.connections === 1, 3000, { what: 'the upgrade' });
  const st = await s.stop(6000);
  assert.equal(st.killed, false, `luaparty needed SIGKILL:\n${s.logs()}`);
  assert.equal(st.code, 0, s.logs());
  await waitFor(() => records.get(id).close, 3000, { what: 'the server to see the socket closed' });
  // a close frame (1000/1001) would be polite; 1006 means the TCP connection just went
  t.diagnostic(`the remote server saw ${JSON.stringify(records.get(id).close)}`);
  assert.ok([1000, 1001, 1006].includes(records.get(id).close.code), JSON.stringify(records.get(id).close));
});
