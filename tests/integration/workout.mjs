// A short workout for tests/valgrind.sh: HTTP, echo, cross-party fetch and
// socket against a running server. Exits non-zero on any unexpected answer.
import WebSocket from 'ws';

const port = process.argv[2];
const fail = (msg) => { console.error('workout:', msg); process.exit(1); };
const timer = setTimeout(() => fail('timed out'), 50000);

const res = await fetch(`http://127.0.0.1:${port}/parties/main/w1?x=1`);
const body = await res.json();
if (res.status !== 200 || body.room !== 'w1') fail(`bad HTTP answer ${res.status} ${JSON.stringify(body)}`);

const ws = new WebSocket(`ws://127.0.0.1:${port}/parties/main/w1?_pk=v`);
const next = () => new Promise((resolve) => ws.once('message', (m) => resolve(m.toString())));
await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
for (const [send, expect] of [['hello', 'hello'], ['fetch', 'fetched 1'], ['socket', 'socket pong:ping'], ['fetch', 'fetched 2']]) {
  const p = next();
  ws.send(send);
  const got = await p;
  if (got !== expect) fail(`sent ${send}: expected ${expect}, got ${got}`);
}
ws.close(1000);
await new Promise((resolve) => ws.on('close', resolve));
clearTimeout(timer);
console.log('workout ok');
