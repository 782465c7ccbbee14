// Server pings find dead peers: a client that completed the handshake and
// then never answers (no pong, nothing) is closed after two ping intervals,
// and its onClose runs; a live client (ws answers pings) stays connected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import crypto from 'node:crypto';
import { startServer, wsConnect, httpRequest, waitFor, sleep } from './lib/server.mjs';

test('--ping-interval 0.5: a silent peer is dropped within ~1.5 s, a live one stays', { timeout: 20000 }, async () => {
  const server = await startServer({ project: 'pings', args: ['--ping-interval', '0.5'] });
  try {
    const live = await wsConnect(`${server.wsUrl}/parties/main/p`);
    // a raw client: handshake, then silence (it reads, so its socket stays open, but never replies)
    const sock = net.connect(server.port, '127.0.0.1');
    const key = crypto.randomBytes(16).toString('base64');
    let got = '';
    let closedAt = null;
    sock.on('data', (d) => { got += d.toString('latin1'); });
    sock.on('close', () => { closedAt = Date.now(); });
    sock.on('error', () => {});
    await new Promise((r) => sock.on('connect', r));
    sock.write(`GET /parties/main/p HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    await waitFor(() => got.includes('101 Switching Protocols'), 3000, { what: 'the 101' });
    const t0 = Date.now();
    await waitFor(() => closedAt !== null, 5000, { what: 'the server to drop the silent peer' });
    assert.ok(closedAt - t0 < 2500, `dropped after ${closedAt - t0} ms`);
    assert.ok(got.includes('\x89'), 'the server sent it a ping frame first');
    await waitFor(async () => (await httpRequest(`${server.url}/parties/main/p`)).text === '1', 3000,
      { what: 'onClose of the dead peer' });
    await sleep(1200); // the live client answered every ping meanwhile
    assert.equal(live.ws.readyState, 1, 'the live client (it answers pings) was not dropped');
    live.close();
  } finally {
    await server.stop();
  }
});
