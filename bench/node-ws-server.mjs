// Node reference server for the luaparty benchmarks (npm `ws`), same
// behaviour as lp_rawserver:
//   HTTP GET any path          -> 200 {"ok":true,"room":"<path>"} (keep-alive)
//   WebSocket on any path      -> echo every message to its sender
//   ...on a path with /broadcast -> send every message to every *other*
//                                   socket on the same path (query ignored)
// Usage: node node-ws-server.mjs [--port N] [--host 127.0.0.1]
// --port 0 picks a free port; prints "listening on http://HOST:PORT" on stderr.
import http from 'node:http';
import { loadWs } from './common.mjs';

const { WebSocketServer } = loadWs();

let port = 0;
let host = '127.0.0.1';
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--port') port = Number(argv[++i]);
  else if (argv[i] === '--host') host = argv[++i];
  else { console.error('usage: node node-ws-server.mjs [--port N] [--host ADDR]'); process.exit(2); }
}

const pathOf = (url) => {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
};

const server = http.createServer((req, res) => {
  const body = JSON.stringify({ ok: true, room: pathOf(req.url) });
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
});
server.keepAliveTimeout = 60_000;

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 1 << 20 });
const rooms = new Map(); // path -> Set<WebSocket>

server.on('upgrade', (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => {
    socket.setNoDelay(true);
    const p = pathOf(req.url);
    if (p.includes('/broadcast')) {
      let room = rooms.get(p);
      if (!room) { room = new Set(); rooms.set(p, room); }
      room.add(ws);
      ws.on('message', (data, isBinary) => {
        for (const other of room) {
          if (other !== ws && other.readyState === 1) other.send(data, { binary: isBinary });
        }
      });
      ws.on('close', () => { room.delete(ws); });
    } else {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    }
    ws.on('error', () => {});
  });
});

server.listen(port, host, () => {
  process.stderr.write(`listening on http://${host}:${server.address().port}\n`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
