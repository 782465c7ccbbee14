// Static hooks: onBeforeConnect / onBeforeRequest / onFetch (issue: hardening, auth hooks).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { httpRequest, wsConnect } from './lib/server.mjs';
import { sharedServer } from './lib/fixtures.mjs';

const server = sharedServer({ project: 'hooks' });

test('onBeforeConnect: a good token passes and adds a header onConnect sees', async () => {
  const c = await wsConnect(`${server.wsUrl}/parties/main/r1?token=secret-r1`);
  assert.equal((await c.next(3000)).data, 'welcome user:r1');
  c.close();
});

test('onBeforeConnect: a returned Response rejects; the room never sees the attempt', async () => {
  await assert.rejects(wsConnect(`${server.wsUrl}/parties/main/r2?token=wrong`), (e) => e.status === 403 && /bad token/.test(e.body));
  // r2 never ran onConnect: its connect counter (read through onRequest) stays 0
  const res = await httpRequest(`${server.url}/parties/main/r2`, { headers: { authorization: 'Bearer ok' } });
  assert.equal(res.json().connects, 0);
});

test('onBeforeConnect: an error rejects with 401 and the message (dev)', async () => {
  await assert.rejects(wsConnect(`${server.wsUrl}/parties/main/r3`), (e) => e.status === 401 && /missing token/.test(e.body));
});

test('onBeforeRequest: rejects without credentials, passes a modified request with them', async () => {
  const no = await httpRequest(`${server.url}/parties/main/r4`);
  assert.equal(no.status, 401);
  assert.deepEqual(no.json(), { error: 'unauthorized', room: 'r4', party: 'main' });
  const yes = await httpRequest(`${server.url}/parties/main/r4`, { headers: { authorization: 'Bearer ok' } });
  assert.equal(yes.status, 200);
  assert.equal(yes.json().checked, 'yes');
});

test('onBeforeRequest: a returned request with a bad header is a 500 that says so, not passed on', async () => {
  for (const [path, why] of [['bad-header', /header values must be strings without CR, LF or NUL/],
                             ['bad-name', /invalid header name/]]) {
    const res = await httpRequest(`${server.url}/parties/main/r5/${path}`, { headers: { authorization: 'Bearer ok' } });
    assert.equal(res.status, 500, `${path}: ${res.text}`);
    assert.match(res.text, why);
  }
  assert.ok(server.alive());
});

test('cross-party fetch skips the hooks, as in PartyKit', async () => {
  const res = await httpRequest(`${server.url}/parties/open/x`);
  assert.equal(res.status, 200);
  assert.match(res.text, /^via stub: 200 /);
  assert.match(res.text, /"connects":1/); // r1 had one accepted connection
});

test('onFetch answers URLs outside the parties; nil means 404', async () => {
  const hello = await httpRequest(`${server.url}/hello`);
  assert.equal(hello.status, 200);
  assert.equal(hello.text, 'hello from onFetch');
  const json = await httpRequest(`${server.url}/status.json`);
  assert.equal(json.status, 200);
  assert.equal(json.headers.get('content-type'), 'application/json');
  assert.deepEqual(JSON.parse(json.text), { up: true });
  const other = await httpRequest(`${server.url}/nothing/here`);
  assert.equal(other.status, 404);
  assert.ok(server.alive());
});

test('onSocket gets WebSockets to URLs outside the parties (no onBeforeConnect there)', async () => {
  const c = await wsConnect(`${server.wsUrl}/live/feed`);
  assert.equal((await c.next(3000)).data, 'hello from onSocket at /live/feed');
  c.send('ping');
  assert.equal((await c.next(3000)).data, 'lobby echo: ping');
  c.close();
  const { waitFor } = await import('./lib/server.mjs');
  await waitFor(() => /onSocket connection closed 1005|onSocket connection closed 1000/.test(server.logs()), 3000,
    { what: 'the onclose handler' });
  // a party URL still needs its token
  await assert.rejects(wsConnect(`${server.wsUrl}/parties/main/r9`), (e) => e.status === 401);
});
