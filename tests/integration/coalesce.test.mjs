// Write coalescing, observed through /metrics: all writes of one callback
// step are one SQLite commit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, httpRequest, waitFor } from './lib/server.mjs';

let server, metricsUrl;
before(async () => {
  server = await startServer({ project: 'coalesce', args: ['--metrics', '127.0.0.1:0'] });
  await waitFor(() => /metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/.test(server.logs()), 3000, { what: 'metrics line' });
  metricsUrl = server.logs().match(/metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/)[1];
});
after(async () => { await server?.stop(); });

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
