// Static files ("serve"), onFetch, crons (/__scheduled__ in dev), CORS,
// /metrics and JSON logs, on tests/projects/ecosystem/{app,spa}.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  startServerPatient as start, httpRequest, rawHttp, parseRawResponse, wsConnect, waitFor, closeAll, PROJECTS,
} from './lib/server.mjs';
import { sharedServer } from './lib/fixtures.mjs';
import { parsePromText } from './lib/promtext.mjs';

const APP = 'ecosystem/app';
const PUBLIC = path.join(PROJECTS, 'ecosystem/app/public');
const SECRET = 'secret: never served';

const server = sharedServer({ project: APP, startTimeout: 15000 });

/** GET (or another method) with a raw request line, so the path is sent exactly as written. */
async function raw(port, target, { method = 'GET', headers = {} } = {}) {
  const head = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  const r = await rawHttp(port, `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${head}Connection: close\r\n\r\n`, { timeout: 3000 });
  const res = parseRawResponse(r.data);
  return { ...res, text: res.body.toString('utf8') };
}

describe('static files', () => {
  test('content types, directory index, names with spaces', async () => {
    const cases = [
      ['/', 'text/html; charset=utf-8', /ecosystem index/],
      ['/index.html', 'text/html; charset=utf-8', /ecosystem index/],
      ['/app.js', 'text/javascript; charset=utf-8', /ecosystem app\.js/],
      ['/css/site.css', 'text/css; charset=utf-8', /font-family/],
      ['/data.json', 'application/json', /"ok":true/],
      ['/dot.svg', 'image/svg+xml', /<svg/],
      ['/hello.txt', 'text/plain; charset=utf-8', /^plain text file\n$/],
      ['/raw.dat', 'application/octet-stream', /binary/],
      ['/with%20space.txt', 'text/plain; charset=utf-8', /weird name/],
      ['/sub/', 'text/html; charset=utf-8', /sub index/],
      ['/alias.txt', 'text/plain; charset=utf-8', /plain text file/], // a symlink that stays inside
      ['/hello.txt?v=123', 'text/plain; charset=utf-8', /plain text file/],
    ];
    for (const [p, type, body] of cases) {
      const res = await httpRequest(`${server.url}${p}`);
      assert.equal(res.status, 200, `${p}: ${res.status} ${res.text}`);
      assert.equal(res.headers.get('content-type'), type, p);
      assert.match(res.text, body, p);
      assert.ok(res.headers.get('etag'), `${p} has an ETag`);
    }
  });

  test('ETag + If-None-Match gives 304 with no body; another tag gives 200', async () => {
    const first = await httpRequest(`${server.url}/hello.txt`);
    const etag = first.headers.get('etag');
    assert.match(etag, /^"[^"]+"$/);
    for (const inm of [etag, `"nope", ${etag}`, `W/${etag}`]) {
      const r = await raw(server.port, '/hello.txt', { headers: { 'If-None-Match': inm } });
      assert.equal(r.status, 304, `If-None-Match: ${inm}`);
      assert.equal(r.headers.etag, etag);
      assert.equal(r.body.length, 0);
    }
    const other = await httpRequest(`${server.url}/hello.txt`, { headers: { 'if-none-match': '"something-else"' } });
    assert.equal(other.status, 200);
    assert.equal(other.text, 'plain text file\n');
    // a changed file gets a new tag
    const again = await httpRequest(`${server.url}/app.js`);
    assert.notEqual(again.headers.get('etag'), etag);
  });

  test('HEAD: the same headers and Content-Length as GET, no body', async () => {
    for (const p of ['/hello.txt', '/index.html', '/data.json']) {
      const g = await raw(server.port, p);
      const h = await raw(server.port, p, { method: 'HEAD' });
      assert.equal(h.status, 200);
      assert.equal(h.body.length, 0, `HEAD ${p} has no body`);
      assert.equal(Number(h.headers['content-length']), fs.statSync(path.join(PUBLIC, p)).size);
      assert.equal(g.headers['content-length'], h.headers['content-length']);
      for (const k of ['content-type', 'etag', 'cache-control']) assert.equal(h.headers[k], g.headers[k], `${p} ${k}`);
    }
  });

  test('no way out of the folder: .., %2e%2e, encoded slashes, NUL, symlinks out: all 404', async () => {
    const targets = [
      '/../secret.txt', '/../partykit.json', '/%2e%2e/secret.txt', '/%2E%2E/secret.txt', '/sub/%2e%2e/%2e%2e/secret.txt',
      '/%2e%2e%2fsecret.txt', '/..%2fsecret.txt', '/sub/..%2f..%2fsecret.txt', '/..%5csecret.txt',
      '/link-out.txt', '/link-dir/secret.txt', '/link-dir/partykit.json', '/link-dir/parties/main.lua',
      '/secret.txt', '/hello.txt%00.html', '//secret.txt', '/./../secret.txt',
      '/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd', '/../../../../../../etc/passwd',
    ];
    for (const t of targets) {
      const r = await raw(server.port, t);
      assert.equal(r.status, 404, `${t}: ${r.status} ${r.text}`);
      assert.ok(!r.text.includes(SECRET) && !r.text.includes('"main"') && !r.text.includes('root:'), `${t} leaked: ${r.text}`);
    }
    // the file outside exists and the symlinks point at it: only the folder guard stops them
    assert.equal(fs.readFileSync(path.join(PUBLIC, 'link-out.txt'), 'utf8').trim(), SECRET);
    const inside = await raw(server.port, '/./sub/../hello.txt');
    assert.equal(inside.status, 200, 'dots that stay inside are fine');
  });

  test('a single-page app gets index.html for paths that are not files (and cors: true gives *)', { timeout: 15000 }, async () => {
    const spa = await start({ project: 'ecosystem/spa' });
    try {
      for (const p of ['/', '/some/deep/route', '/users/42']) {
        const r = await httpRequest(`${spa.url}${p}`);
        assert.equal(r.status, 200, p);
        assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
        assert.match(r.text, /spa shell/);
      }
      const js = await httpRequest(`${spa.url}/assets/app.js`);
      assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
      assert.equal((await httpRequest(`${spa.url}/assets/missing.js`)).status, 404, 'a missing file is not the app');
      const party = await httpRequest(`${spa.url}/parties/main/r`);
      assert.equal(party.text, 'party r', 'party URLs still reach the party');
      // this project has "cors": true: any origin, so no Vary
      assert.equal(party.headers.get('access-control-allow-origin'), '*');
      assert.equal(party.headers.get('vary'), null);
      assert.equal((await raw(spa.port, '/../partykit.json')).status, 404);
    } finally {
      await spa.stop();
    }
    // without singlePageApp an unknown path is 404
    assert.equal((await httpRequest(`${server.url}/some/deep/route`)).status, 404);
  });
});

test('onFetch answers URLs that are neither parties nor files', async () => {
  const hello = await httpRequest(`${server.url}/api/hello`);
  assert.equal(hello.status, 200);
  assert.deepEqual(hello.json(), { hello: 'hello', party: 'main', method: 'GET' });
  const echo = await httpRequest(`${server.url}/api/echo?x=1`, { method: 'POST', body: 'ping' });
  assert.equal(echo.status, 201);
  assert.equal(echo.text, 'ping');
  assert.equal(echo.headers.get('x-echo'), 'POST');
  const fail = await httpRequest(`${server.url}/api/fail`);
  assert.equal(fail.status, 500);
  assert.match(fail.text, /onFetch failed on purpose/);
  assert.equal((await httpRequest(`${server.url}/api/unknown`)).status, 404);
  // party URLs and files do not reach onFetch
  assert.deepEqual((await httpRequest(`${server.url}/parties/main/api`)).json(), { room: 'api', method: 'GET' });
  assert.equal((await httpRequest(`${server.url}/hello.txt`)).text, 'plain text file\n');
  assert.ok(server.alive());
});

test('crons: /__scheduled__?cron=NAME runs onCron now (dev)', { timeout: 10000 }, async () => {
  const log = () => httpRequest(`${server.url}/parties/main/cron-log`).then((r) => r.json());
  const before0 = (await log()).count;
  const r = await httpRequest(`${server.url}/__scheduled__?cron=nightly`);
  assert.equal(r.status, 200);
  assert.equal(r.text, 'cron ran');
  let after = await log();
  assert.equal(after.count, before0 + 1);
  const run = after.runs[after.runs.length - 1];
  assert.equal(run.name, 'nightly');
  assert.equal(run.cron, '0 3 * * *');
  assert.ok(Math.abs(run.scheduledTime - Date.now()) < 120000, `scheduledTime ${run.scheduledTime} is now, in ms`);
  await waitFor(() => server.logs().includes('cron nightly (0 3 * * *) ran'), 3000, { what: 'the print of onCron' });

  assert.equal((await httpRequest(`${server.url}/__scheduled__?cron=yearly`)).status, 200);
  after = await log();
  assert.equal(after.runs[after.runs.length - 1].name, 'yearly');
  assert.equal(after.count, before0 + 2);

  assert.equal((await httpRequest(`${server.url}/__scheduled__?cron=nope`)).status, 404);
  assert.equal((await httpRequest(`${server.url}/__scheduled__`)).status, 400);
  assert.equal((await log()).count, before0 + 2, 'unknown crons run nothing');
});

describe('CORS (luaparty.cors = "http://app.example")', () => {
  test('a preflight to a party URL: 204 with allow-origin, -methods, -headers', async () => {
    const r = await httpRequest(`${server.url}/parties/main/cors-room`, {
      method: 'OPTIONS',
      headers: { origin: 'http://app.example', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'content-type, x-token' },
    });
    assert.equal(r.status, 204);
    assert.equal(r.text, '');
    assert.equal(r.headers.get('access-control-allow-origin'), 'http://app.example');
    assert.match(r.headers.get('access-control-allow-methods'), /\bPUT\b/);
    assert.match(r.headers.get('access-control-allow-methods'), /\bPOST\b/);
    assert.equal(r.headers.get('access-control-allow-headers'), 'content-type, x-token');
    assert.match(r.headers.get('vary') || '', /Origin/);
  });

  test('party responses carry allow-origin (errors too); a plain OPTIONS reaches onRequest', async () => {
    const ok = await httpRequest(`${server.url}/parties/main/cors-room`, { headers: { origin: 'http://app.example' } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('access-control-allow-origin'), 'http://app.example');
    const err = await httpRequest(`${server.url}/parties/main/cors-room/fail`);
    assert.equal(err.status, 500);
    assert.equal(err.headers.get('access-control-allow-origin'), 'http://app.example');
    const opt = await httpRequest(`${server.url}/parties/main/cors-room`, { method: 'OPTIONS' });
    assert.equal(opt.status, 200);
    assert.deepEqual(opt.json(), { room: 'cors-room', method: 'OPTIONS' });
  });
});

/** Checks the page as promtool would (lib/promtext.mjs) and gives { 'name{labels}': number },
 * plus, for families with a party label, { name: the sum over the parties }. */
function parseMetrics(text) {
  const page = parsePromText(text);
  const out = Object.fromEntries(page.series);
  for (const f of page.families.values()) {
    if (f.samples.some((x) => 'party' in x.labels) && !(f.name in out)) out[f.name] = page.sum(f.name);
  }
  return out;
}

test('/metrics: counters move by the traffic, gauges count rooms and connections', { timeout: 20000 }, async () => {
  const s = await start({ project: APP, args: ['--metrics', '127.0.0.1:0'] });
  const clients = [];
  try {
    const m = /metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(s.logs());
    assert.ok(m, `the metrics line is in the log:\n${s.logs()}`);
    const scrape = async () => {
      const r = await httpRequest(m[1]);
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
      assert.match(r.text, /# TYPE luaparty_messages_in_total counter/);
      return parseMetrics(r.text);
    };
    assert.equal((await httpRequest(m[1].replace('/metrics', '/other'))).status, 404);
    const a = await scrape();
    assert.equal(a['luaparty_rooms{party="main"}'], 0);
    assert.equal(a.luaparty_connections, 0);

    // traffic: 2 sockets in room m1; 3 messages echoed; 1 that fails; HTTP 200, 404, 500
    const c1 = await wsConnect(`${s.wsUrl}/parties/main/m1`);
    const c2 = await wsConnect(`${s.wsUrl}/parties/main/m1`);
    clients.push(c1, c2);
    const sent = ['one', 'two2', 'three33'];
    for (const t of sent) {
      c1.send(t);
      assert.equal(await c1.nextText(), `echo:${t}`);
    }
    c2.send('fail');
    // one broadcast to both: one frame encoded, sent twice
    c2.send('all');
    assert.equal(await c1.nextText(), 'to all');
    assert.equal(await c2.nextText(), 'to all');
    assert.equal((await httpRequest(`${s.url}/parties/main/m2`)).status, 200);
    assert.equal((await httpRequest(`${s.url}/no/such/thing`)).status, 404);
    assert.equal((await httpRequest(`${s.url}/parties/main/m3/fail`)).status, 500);
    await waitFor(() => /onMessage failed on purpose/.test(s.logs()), 3000, { what: 'the onMessage error' });
    // both connects reached the connections party (a room of its own)
    await waitFor(async () => (await scrape())['luaparty_rooms{party="connections"}'] === 1, 3000, { what: 'connections room' });

    const b = await scrape();
    const d = (k) => (b[k] ?? 0) - (a[k] ?? 0);
    assert.equal(d('luaparty_connections_opened_total'), 2);
    assert.equal(d('luaparty_messages_in_total'), 5);
    assert.equal(d('luaparty_messages_out_total'), 5);
    assert.equal(d('luaparty_ws_frames_encoded_total'), 4, '3 echoes + 1 broadcast frame shared by its 2 sends');
    assert.equal(d('luaparty_bytes_in_total'), sent.join('').length + 'fail'.length + 'all'.length);
    assert.equal(d('luaparty_bytes_out_total'), sent.map((t) => `echo:${t}`).join('').length + 2 * 'to all'.length);
    assert.equal(d('luaparty_http_requests_total{status="200"}'), 1);
    assert.equal(d('luaparty_http_requests_total{status="404"}'), 1);
    assert.equal(d('luaparty_http_requests_total{status="500"}'), 1);
    assert.equal(d('luaparty_callback_errors_total'), 2);
    // by party: all of it was the main party's
    assert.equal(d('luaparty_messages_in_total{party="main"}'), 5);
    assert.equal(d('luaparty_messages_out_total{party="main"}'), 5);
    assert.equal(d('luaparty_callback_errors_total{party="main"}'), 2);
    assert.equal(d('luaparty_messages_in_total{party="echo"}'), 0);
    assert.equal(b['luaparty_rooms{party="main"}'], 3, 'm1, m2, m3 (the lobby is not a room)');
    assert.equal(b['luaparty_rooms{party="echo"}'], 0);
    assert.equal(b.luaparty_connections, 2);
    assert.ok(b.luaparty_lua_memory_bytes > 0);
    assert.ok(d('luaparty_storage_commit_seconds_count') >= 2, 'the connections party stored its counts');

    await closeAll(clients);
    await waitFor(async () => (await scrape()).luaparty_connections === 0, 3000, { what: 'connections back to 0' });
  } finally {
    await closeAll(clients);
    await s.stop();
  }
});

test('--log-format json: every log line is one JSON object with ts, level, msg', { timeout: 15000 }, async () => {
  const s = await start({ project: APP, args: ['--log-format', 'json'] });
  try {
    const c = await wsConnect(`${s.wsUrl}/parties/main/logs`);
    c.send('fail'); // an error with a multi-line traceback
    c.send('x');
    assert.equal(await c.nextText(), 'echo:x');
    await c.closeAndWait();
    await httpRequest(`${s.url}/__scheduled__?cron=nightly`); // print() from onCron
    // quotes and a backslash in a logged URL (onFetch answers 201, which dev logs)
    assert.equal((await raw(s.port, '/api/echo?q="quoted"\\back', { method: 'POST' })).status, 201);
    await waitFor(() => /cron nightly/.test(s.logs()), 3000, { what: 'the cron print' });
  } finally {
    await s.stop();
  }
  const lines = s.logs().split('\n').filter((l) => l !== '');
  assert.ok(lines.length >= 5, `some log lines:\n${s.logs()}`);
  const parsed = lines.map((l) => {
    let o;
    assert.doesNotThrow(() => { o = JSON.parse(l); }, `not JSON: ${l}`);
    assert.equal(typeof o, 'object');
    assert.equal(typeof o.ts, 'number', l);
    assert.ok(Math.abs(o.ts * 1000 - Date.now()) < 600000, `ts is epoch seconds: ${l}`);
    assert.match(o.level, /^(debug|info|warn|error)$/, l);
    assert.equal(typeof o.msg, 'string', l);
    return o;
  });
  const err = parsed.find((o) => o.level === 'error' && /onMessage failed on purpose/.test(o.msg));
  assert.ok(err, 'the callback error is logged');
  assert.match(err.msg, /\n/, 'its traceback keeps its newlines inside msg');
  assert.ok(parsed.some((o) => /listening on http:\/\/127\.0\.0\.1:\d+/.test(o.msg)));
  assert.ok(parsed.some((o) => /cron nightly \(0 3 \* \* \*\) ran/.test(o.msg)));
  assert.ok(parsed.some((o) => o.msg.includes('POST /api/echo?q="quoted"\\back 201')), 'quotes and backslashes survive');
});

test('the example pages are served by their projects and load nothing from elsewhere', { timeout: 20000 }, async () => {
  for (const [project, files, marker] of [
    ['examples/multiparty', ['/', '/app.js', '/style.css', '/favicon.svg'], /multiparty/],
    ['examples/chat', ['/', '/app.js', '/style.css', '/favicon.svg'], /luaparty chat/],
  ]) {
    const s = await start({ project });
    try {
      for (const f of files) {
        const r = await httpRequest(`${s.url}${f}`);
        assert.equal(r.status, 200, `${project}${f}`);
        // no CDN, no absolute URL to another host (the pages use their own host)
        const outside = r.text.match(/(?:https?|wss?):\/\/(?!www\.w3\.org\/2000\/svg)[^\s"'`)]+/g) || [];
        assert.deepEqual(outside, [], `${project}${f} refers to ${outside.join(', ')}`);
        if (f === '/') assert.match(r.text, marker);
      }
    } finally {
      await s.stop();
    }
  }
});
