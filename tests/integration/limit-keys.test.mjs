// Limits from partykit.json's "luaparty" key, and the command line winning over them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, httpRequest, rawHttp, wsConnect } from './lib/server.mjs';

test('luaparty.maxHeader / maxBody / maxMessage from partykit.json apply', async () => {
  const server = await startServer({ project: 'limitkeys' });
  try {
    const big = await rawHttp(server.port, `GET /parties/main/a HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(2500)}\r\n\r\n`);
    assert.match(big.text, /^HTTP\/1\.1 431 /);
    assert.equal((await httpRequest(`${server.url}/parties/main/a`, { method: 'POST', body: 'b'.repeat(1000) })).text, 'got 1000');
    const over = await rawHttp(server.port, `POST /parties/main/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n${'b'.repeat(1001)}`);
    assert.match(over.text, /^HTTP\/1\.1 413 /);
    const ws = await wsConnect(`${server.wsUrl}/parties/main/a`);
    ws.send('m'.repeat(501));
    const closed = await ws.closed;
    assert.equal(closed.code, 1009);
  } finally {
    await server.stop();
  }
});

test('the command line wins over partykit.json', async () => {
  const server = await startServer({ project: 'limitkeys', args: ['--max-body', '5000'] });
  try {
    assert.equal((await httpRequest(`${server.url}/parties/main/a`, { method: 'POST', body: 'b'.repeat(3000) })).text, 'got 3000');
  } finally {
    await server.stop();
  }
});
