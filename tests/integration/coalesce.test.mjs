// Write coalescing, observed through /metrics: all writes of one callback
// step are one SQLite commit.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { httpRequest, metricsUrl as metricsUrlOf } from './lib/server.mjs';
import { sharedServer } from './lib/fixtures.mjs';

const server = sharedServer({ project: 'coalesce', args: ['--metrics', '127.0.0.1:0'] });
let metricsUrl;
before(async () => { metricsUrl = await metricsUrlOf(server); });

async function commits() {
  const text = await (await fetch(metricsUrl)).text();
  return Number(text.match(/^luaparty_storage_commit_seconds_count (\d+)$/m)[1]);
}

test('100 puts in one callback are one commit', async () => {
  const c0 = await commits();
  assert.equal((await httpRequest(`${server.url}/parties/main/a?n=100`)).text, 'ok');
  assert.equal(await commits() - c0, 1);
});

test('a callback that suspends commits once per step (before and after the fetch)', async () => {
  await httpRequest(`${server.url}/parties/peer/p`); // wake the peer first: its own start costs nothing
  const c0 = await commits();
  assert.equal((await httpRequest(`${server.url}/parties/main/b?n=50&suspend=1`)).text, 'ok');
  assert.equal(await commits() - c0, 2);
});
