// The reference for bench/yjs.mjs: npm y-partykit's own server code
// (onConnect from 'y-partykit', the code PartyKit runs for a Yjs room) on
// Node + npm ws, with a small adapter for what PartyKit would give it: a
// connection (the ws socket with an id) and a room whose storage keeps
// Durable Object storage's API (get, put, delete, list, transaction) in a
// Map. Persistence is y-partykit's recommended { mode: "snapshot" }: every
// update stored as it comes, the log merged into one when the last client
// leaves.
//   node bench/yjs-node-server.mjs    prints "PORT n"; GET /stats/<room> gives
//   {bytes, keys} of that room's storage (keys and values, in bytes)
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let req;
for (const base of ['bench', 'tests']) {
  try { createRequire(path.join(repo, base, 'package.json')).resolve('y-partykit'); req = createRequire(path.join(repo, base, 'package.json')); break; } catch { /* next */ }
}
if (!req) { console.error('npm y-partykit not found (npm install in bench/ or tests/)'); process.exit(1); }
const { WebSocketServer } = req('ws');
const { onConnect } = await import(req.resolve('y-partykit'));

class MemoryStorage {
  constructor() { this.map = new Map(); }
  async get(k) { return Array.isArray(k) ? new Map(k.filter((x) => this.map.has(x)).map((x) => [x, this.map.get(x)])) : this.map.get(k); }
  async put(k, v) {
    if (typeof k === 'object') for (const [kk, vv] of Object.entries(k)) this.map.set(kk, vv);
    else this.map.set(k, v);
  }
  async delete(k) {
    if (Array.isArray(k)) { let n = 0; for (const x of k) if (this.map.delete(x)) n++; return n; }
    return this.map.delete(k);
  }
  async list({ start, end, prefix, reverse, limit } = {}) {
    let keys = [...this.map.keys()].sort();
    keys = keys.filter((k) => (start === undefined || k >= start) && (end === undefined || k < end) && (!prefix || k.startsWith(prefix)));
    if (reverse) keys.reverse();
    if (limit !== undefined) keys = keys.slice(0, limit);
    return new Map(keys.map((k) => [k, this.map.get(k)]));
  }
  async transaction(fn) { return fn(this); }
  bytes() {
    let n = 0;
    for (const [k, v] of this.map) n += Buffer.byteLength(k) + (v.byteLength ?? Buffer.byteLength(String(v)));
    return n;
  }
}

const rooms = new Map();
const server = http.createServer((q, res) => {
  const m = /^\/stats\/([^/?]+)/.exec(q.url);
  const room = m && rooms.get(m[1]);
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(room ? { bytes: room.storage.bytes(), keys: room.storage.map.size } : { bytes: 0, keys: 0 }));
});
const wss = new WebSocketServer({ server });
let nextId = 0;
wss.on('connection', (ws, q) => {
  const id = decodeURIComponent(new URL(q.url, 'http://x').pathname.split('/').pop());
  if (!rooms.has(id)) rooms.set(id, { id, storage: new MemoryStorage(), env: {} });
  ws.id = String(nextId++);
  onConnect(ws, rooms.get(id), { persist: { mode: 'snapshot' } });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`PORT ${server.address().port}\n`));
