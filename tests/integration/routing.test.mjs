// URL routing, connection ids, HTTP responses and vars, against tests/projects/suite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  wsConnect, httpRequest, rawHttp, parseRawResponse, UUID_V4,
} from './lib/server.mjs';
import { suiteServer } from './lib/fixtures.mjs';

const { srv, open } = suiteServer();

async function join(pathAndQuery) {
  const c = await open(pathAndQuery);
  const hello = await c.nextJson();
  assert.equal(hello.type, 'hello');
  return { c, hello };
}

test('_pk sets conn.id, URL-decoded', { timeout: 10000 }, async () => {
  const { hello } = await join('/parties/main/ids?_pk=a%20b%2Fc');
  assert.equal(hello.id, 'a b/c');
  const { hello: h2 } = await join('/parties/main/ids?x=1&_pk=plain-id&y=2');
  assert.equal(h2.id, 'plain-id');
  const { hello: h3 } = await join('/parties/main/ids?_pk=%E2%9C%93%2B%26');
  assert.equal(h3.id, '\u2713+&');
});

test('without _pk, conn.id is a fresh UUID v4', { timeout: 10000 }, async () => {
  const { hello: a } = await join('/parties/main/uuids');
  const { hello: b } = await join('/parties/main/uuids?other=1');
  assert.match(a.id, UUID_V4);
  assert.match(b.id, UUID_V4);
  assert.notEqual(a.id, b.id);
});

test('/party/:room reaches the same room as /parties/main/:room', { timeout: 10000 }, async () => {
  const { c: a, hello: ha } = await join('/parties/main/alias-room?_pk=via-parties');
  const { c: b, hello: hb } = await join('/party/alias-room?_pk=via-party');
  assert.equal(hb.room, 'alias-room');
  assert.equal(hb.party, 'main');
  assert.equal(ha.room, 'alias-room');
  a.sendJson({ cmd: 'list' });
  assert.equal((await a.nextJson()).ids, 'via-parties,via-party');
  b.sendJson({ cmd: 'broadcast', msg: 'alias-hi' });
  assert.equal(await a.nextText(), 'alias-hi');
  assert.equal(await b.nextText(), 'alias-hi');
  const r = await httpRequest(`${srv.url}/party/alias-room`);
  assert.equal(r.status, 200);
  assert.equal(r.json().room, 'alias-room');
  assert.equal(r.json().party, 'main');
});

test('sub-path and query are visible in conn.uri and ctx.request.url', { timeout: 10000 }, async () => {
  const { hello } = await join('/parties/main/r1/sub/path?x=1&_pk=abc');
  assert.equal(hello.room, 'r1', 'the room id is the first segment only');
  assert.equal(hello.id, 'abc');
  for (const [name, value] of [['conn.uri', hello.uri], ['ctx.request.url', hello.url]]) {
    assert.equal(typeof value, 'string', `${name} is a string`);
    const u = new URL(value);
    assert.equal(u.protocol, 'http:', `${name}: ${value}`);
    assert.equal(u.host, `127.0.0.1:${srv.port}`, `${name}: ${value}`);
    assert.equal(u.pathname, '/parties/main/r1/sub/path', `${name}: ${value}`);
    assert.equal(u.searchParams.get('x'), '1', `${name}: ${value}`);
    assert.equal(u.searchParams.get('_pk'), 'abc', `${name}: ${value}`);
  }
  const { hello: plain } = await join('/parties/main/r1?_pk=abc2');
  assert.equal(plain.uri, `http://127.0.0.1:${srv.port}/parties/main/r1?_pk=abc2`);
});

test('HTTP: method, full url with sub-path and query, lowercase headers, body', { timeout: 10000 }, async () => {
  const r = await httpRequest(`${srv.url}/parties/main/http-room/deep/sub?q=2&z=%20`, {
    method: 'POST',
    headers: { 'X-Test-Header': 'Yes', 'Content-Type': 'text/plain' },
    body: 'the body \u2713',
  });
  assert.equal(r.status, 200);
  const j = r.json();
  assert.equal(j.method, 'POST');
  const u = new URL(j.url);
  assert.equal(u.host, `127.0.0.1:${srv.port}`);
  assert.equal(u.pathname, '/parties/main/http-room/deep/sub');
  assert.equal(u.searchParams.get('q'), '2');
  assert.equal(u.searchParams.get('z'), ' ');
  assert.equal(j.headers['x-test-header'], 'Yes');
  assert.equal(j.headers['X-Test-Header'], undefined, 'header names are lowercase');
  assert.equal(j.body, 'the body \u2713');
  assert.equal(j.room, 'http-room');
  assert.equal(j.party, 'main');
});

test('req.headers: repeated headers joined, empty values kept, readable after a suspension, one table', { timeout: 10000 }, async () => {
  const req = 'GET /parties/main/hdr-room/headers-later HTTP/1.1\r\nHost: h.example\r\nX-Dup: a\r\n' +
    'x-empty:\r\nX-DUP: b\r\nConnection: close\r\n\r\n';
  const r = await rawHttp(srv.port, req, { timeout: 5000 });
  const res = parseRawResponse(r.data);
  assert.equal(res.status, 200, r.text);
  const j = JSON.parse(res.body.toString());
  assert.equal(j.peer, 'plain text');
  assert.equal(j.dup, 'a, b');
  assert.equal(j.empty, '');
  assert.equal(j.added, 'yes');
  assert.equal(j.names, 'connection,host,x-added,x-dup,x-empty');
  assert.equal(j.same, true, 'req.headers is the same table each time');
});

test('HTTP responses: plain string, nil, Response.new, Response.json', { timeout: 10000 }, async () => {
  const base = `${srv.url}/parties/main/resp`;
  let r = await httpRequest(`${base}/plain`);
  assert.equal(r.status, 200);
  assert.equal(r.text, 'plain text');
  assert.match(r.headers.get('content-type') || '', /^text\/plain/);

  r = await httpRequest(`${base}/nil`);
  assert.equal(r.status, 204);
  assert.equal(r.text, '');

  r = await httpRequest(`${base}/status/418`);
  assert.equal(r.status, 418);
  assert.equal(r.text, 'teapot');
  assert.equal(r.headers.get('x-custom'), 'yes');
  assert.equal(r.headers.get('content-type'), 'text/x-tea');

  r = await httpRequest(`${base}/json`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') || '', /^application\/json/);
  assert.deepEqual(r.json(), { ok: true, n: 7, list: [1, 2, 3], s: 'h\u00e9llo' });

  r = await httpRequest(`${base}/created`);
  assert.equal(r.status, 201);
  assert.equal(r.headers.get('x-created'), '1');
  assert.match(r.headers.get('content-type') || '', /^application\/json/);
  assert.deepEqual(r.json(), { created: true });

  // Response.json's headers can be read and changed before it is returned
  r = await httpRequest(`${base}/json-extra`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/json');
  assert.equal(r.headers.get('x-extra'), 'application/json');
  assert.deepEqual(r.json(), { a: 1 });

  r = await httpRequest(`${base}/json-body`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ a: [1, 'two'], b: { c: false } }),
  });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json(), { got: { a: [1, 'two'], b: { c: false } } });
});

test('raw HTTP/1.1 request gets a well-formed response with Content-Length', { timeout: 10000 }, async () => {
  const body = 'raw-body';
  const req = `POST /parties/main/raw-room/plain HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n` +
    `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
  const r = await rawHttp(srv.port, Buffer.from(req), { timeout: 3000 });
  const p = parseRawResponse(r.data);
  assert.equal(p.status, 200, `status line: ${p.statusLine}`);
  assert.equal(p.body.toString(), 'plain text');
  if (p.headers['content-length'] !== undefined) {
    assert.equal(Number(p.headers['content-length']), 'plain text'.length);
  } else {
    assert.match(p.headers['transfer-encoding'] || '', /chunked/, 'either Content-Length or chunked');
  }
  assert.equal(r.closed, true, 'server closes after Connection: close');
});

test('keep-alive: two requests on one connection', { timeout: 10000 }, async () => {
  const one = `GET /parties/main/ka/plain HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n\r\n`;
  const two = `GET /parties/main/ka/json HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nConnection: close\r\n\r\n`;
  const r = await rawHttp(srv.port, Buffer.from(one + two), { timeout: 3000 });
  const statuses = [...r.text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
  assert.deepEqual(statuses, ['200', '200'], r.text);
  assert.match(r.text, /plain text/);
  assert.match(r.text, /"n":7/);
});

test('404 for an unknown party (HTTP)', { timeout: 10000 }, async () => {
  const r = await httpRequest(`${srv.url}/parties/nope/r1`);
  assert.equal(r.status, 404);
  assert.match(r.text, /Party nope not found/);
  const r2 = await httpRequest(`${srv.url}/parties/nope/r1/sub?x=1`);
  assert.equal(r2.status, 404);
  assert.match(r2.text, /Party nope not found/);
});

test('404 for a WebSocket upgrade to an unknown party', { timeout: 10000 }, async () => {
  await assert.rejects(wsConnect(`${srv.wsUrl}/parties/nope/r1`), (e) => {
    assert.equal(e.status, 404, e.message);
    return true;
  });
});

test('404 "Not found" for other paths', { timeout: 10000 }, async () => {
  for (const p of ['/', '/parties/main', '/parties/', '/parties', '/party/', '/favicon.ico', '/partiesx/main/r1']) {
    const r = await httpRequest(srv.url + p);
    assert.equal(r.status, 404, `GET ${p} -> ${r.status}`);
    assert.match(r.text, /Not found/i, `GET ${p} body: ${r.text}`);
  }
  await assert.rejects(wsConnect(`${srv.wsUrl}/`), (e) => { assert.equal(e.status, 404, e.message); return true; });
});

test('party names with a dash ("my-party") and "connections" work', { timeout: 10000 }, async () => {
  const c = await open('/parties/my-party/dash-room?_pk=d1');
  const hello = await c.nextJson();
  assert.deepEqual(hello, { party: 'my-party', room: 'dash-room', id: 'd1' });
  c.send('hi');
  assert.equal(await c.nextText(), 'my-party:hi');
  const c2 = await open('/parties/my-party/dash-room?_pk=d2');
  await c2.nextJson();
  c.send('tagged:d2');
  assert.equal(await c.nextText(), 'tagged:d2', 'a party without getConnectionTags: the id is a tag');
  c.send('tagged:nobody');
  assert.equal(await c.nextText(), 'tagged:');
  const r = await httpRequest(`${srv.url}/parties/my-party/dash-room`);
  assert.equal(r.status, 200);
  assert.equal(r.json().party, 'my-party');

  const k = await open('/parties/connections/conn-room');
  assert.deepEqual(await k.nextJson(), { party: 'connections', room: 'conn-room' });
  const r2 = await httpRequest(`${srv.url}/parties/connections/conn-room`);
  assert.equal(r2.status, 200);
  assert.equal(r2.text, 'connections:conn-room');
});

test('vars from partykit.json reach room.env', { timeout: 10000 }, async () => {
  const r = await httpRequest(`${srv.url}/parties/main/env-room/env`);
  assert.equal(r.status, 200);
  const env = r.json();
  assert.equal(env.GREETING, 'hello from vars');
  assert.equal(env.ANSWER, 42);
  const r2 = await httpRequest(`${srv.url}/parties/my-party/env-room`);
  assert.equal(r2.json().greeting, 'hello from vars', 'every party sees the vars');
});

test('print() goes to the server log', { timeout: 10000 }, async () => {
  await httpRequest(`${srv.url}/parties/main/printing-room/plain`);
  const t0 = Date.now();
  while (!srv.logs().includes('main onStart printing-room') && Date.now() - t0 < 3000) {
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.ok(srv.logs().includes('main onStart printing-room'), 'print output in the log');
});
