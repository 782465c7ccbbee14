// The output gate under a crash: clients write through HTTP (the response
// acknowledges) and WebSocket (the ack message acknowledges) concurrently,
// the server is killed with SIGKILL mid-load, restarted on the same --persist
// directory, and every write whose acknowledgement reached a client must be
// there. Parties: tests/projects/storage/parties/kv.lua.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer, wsConnect, httpRequest, mkTmp, sleep } from './lib/server.mjs';
import { stoppedAfterAll } from './lib/fixtures.mjs';

const PROJECT = 'storage';
const LOAD_MS = 2000;          // how long the clients write before the kill
const HTTP_CLIENTS = 6;
const HTTP_MAX_PER_CLIENT = 1500;
const WS_CLIENTS = 4;
const WS_WINDOW = 8;           // pipelined, unacknowledged messages per socket
const WS_RATE = 600;           // messages per second per socket at most, so writes are in flight at the kill
const WS_MAX_PER_CLIENT = 2000;
const INCR_CLIENTS = 2;

const servers = stoppedAfterAll();

async function start(persist) {
  const s = await startServer({ project: PROJECT, persist });
  servers.push(s);
  return s;
}

/** One POST (keep-alive agent), bounded in time; resolves the parsed JSON, or null on any failure. */
function post(agent, port, path, body, timeout = 2000) {
  return new Promise((resolve) => {
    const data = Buffer.from(JSON.stringify(body));
    const rq = http.request({
      host: '127.0.0.1', port, path, method: 'POST', agent,
      headers: { 'content-type': 'application/json', 'content-length': data.length },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== 200) return resolve(null);
        try { resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))); } catch { resolve(null); }
      });
      res.on('error', () => resolve(null));
      res.on('aborted', () => resolve(null));
    });
    rq.setTimeout(timeout, () => rq.destroy(new Error('timeout')));
    rq.on('error', () => resolve(null));
    rq.end(data);
  });
}

/**
 * Runs the write load against srv until `deadline` (or the per-client caps).
 * Keys are prefixed with `round` so several rounds can share a room.
 * Returns {stop(), done: Promise<acked>} where acked = {http: Map key->value, ws: Map, counter: max acked}.
 */
function load(srv, round, deadline) {
  const acked = { http: new Map(), ws: new Map(), counter: 0, sent: { http: 0, ws: 0, incr: 0 } };
  let stopped = false;
  const live = () => !stopped && Date.now() < deadline;
  const agent = new http.Agent({ keepAlive: true, maxSockets: HTTP_CLIENTS + INCR_CLIENTS });
  const sockets = [];

  const httpWorker = async (c) => {
    for (let seq = 0; seq < HTTP_MAX_PER_CLIENT && live(); seq++) {
      const key = `${round}-h${c}-${seq}`;
      const value = { c, seq, round };
      acked.sent.http++;
      const r = await post(agent, srv.port, '/parties/kv/crash-http', { op: 'put', key, value });
      if (r && r.done === true) acked.http.set(key, value);
      else if (!live()) break;
    }
  };
  const incrWorker = async () => {
    while (live()) {
      acked.sent.incr++;
      const r = await post(agent, srv.port, '/parties/kv/crash-http', { op: 'incr', key: 'counter' });
      if (r && typeof r.value === 'number') acked.counter = Math.max(acked.counter, r.value);
      else if (!live()) break;
    }
  };
  const wsWorker = async (c) => {
    let ws;
    try {
      ws = await wsConnect(`${srv.wsUrl}/parties/kv/crash-ws?_pk=${round}-c${c}`, { timeout: 2000 });
    } catch { return; }
    sockets.push(ws);
    let seq = 0;
    let inflight = 0;
    const pending = new Map();
    await new Promise((resolve) => {
      let finished = false;
      const finish = () => { if (!finished) { finished = true; clearInterval(tick); resolve(); } };
      const began = Date.now();
      const pump = () => {
        const allowed = Math.floor(((Date.now() - began) / 1000) * WS_RATE) + WS_WINDOW;
        while (inflight < WS_WINDOW && seq < allowed && seq < WS_MAX_PER_CLIENT && live() && ws.ws.readyState === 1) {
          const key = `${round}-w${c}-${seq}`;
          const value = { c, seq, round };
          pending.set(key, value);
          ws.ws.send(JSON.stringify({ id: key, op: 'put', key, value }));
          acked.sent.ws++;
          inflight++;
          seq++;
        }
        if (inflight === 0 && (!live() || seq >= WS_MAX_PER_CLIENT)) finish();
      };
      ws.ws.on('message', (data) => {
        let m;
        try { m = JSON.parse(data.toString('utf8')); } catch { return; }
        if (m && m.result && m.result.done === true && pending.has(m.id)) {
          acked.ws.set(m.id, pending.get(m.id));
          pending.delete(m.id);
          inflight--;
        }
        pump();
      });
      ws.ws.on('close', finish);
      ws.ws.on('error', finish);
      // stop waiting once the deadline has passed (acks after the kill never come)
      const tick = setInterval(() => { if (!live()) finish(); else pump(); }, 5);
      pump();
    });
  };

  const workers = [];
  for (let c = 0; c < HTTP_CLIENTS; c++) workers.push(httpWorker(c));
  for (let c = 0; c < INCR_CLIENTS; c++) workers.push(incrWorker());
  for (let c = 0; c < WS_CLIENTS; c++) workers.push(wsWorker(c));
  const done = (async () => {
    // every request is bounded (2 s), every socket wait is bounded by the deadline
    await Promise.all(workers);
    for (const s of sockets) s.terminate();
    agent.destroy();
    return acked;
  })();
  return { stop() { stopped = true; }, done };
}

async function cmd(srv, room, body) {
  const r = await httpRequest(`${srv.url}/parties/kv/${room}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), timeout: 10000,
  });
  assert.equal(r.status, 200, `${room} ${JSON.stringify(body)} -> ${r.status} ${r.text.slice(0, 500)}`);
  return r.json();
}

/** All stored entries of a room under the given key prefixes, as a Map key -> value. */
async function stored(srv, room, prefixes) {
  const m = new Map();
  for (const prefix of prefixes) {
    // one list() per client keeps each callback small
    const r = await cmd(srv, room, { op: 'list', options: { prefix } });
    for (const e of Array.isArray(r.entries) ? r.entries : []) m.set(e.key, e.value);
  }
  return m;
}

function missing(acked, have) {
  const out = [];
  for (const [k, v] of acked) {
    if (!have.has(k)) out.push(`${k} (absent)`);
    else {
      try { assert.deepEqual(have.get(k), v); } catch { out.push(`${k} (value ${JSON.stringify(have.get(k))})`); }
    }
  }
  return out;
}

async function crashRound(srv, round) {
  const t0 = Date.now();
  const run = load(srv, round, t0 + LOAD_MS + 500);
  await sleep(LOAD_MS);
  const killedAt = Date.now();
  const ex = await srv.kill9();
  assert.equal(ex.signal, 'SIGKILL', `the server died of SIGKILL (got ${JSON.stringify(ex)})`);
  run.stop();
  const acked = await run.done;
  return { acked, killedAt, loadMs: killedAt - t0 };
}

test('every acknowledged write (HTTP response, WebSocket ack) survives kill -9', { timeout: 55000 }, async () => {
  const persist = mkTmp('luaparty-crash-');
  const all = { http: new Map(), ws: new Map(), counter: 0 };
  const rounds = [];
  let srv = await start(persist);

  for (const round of ['r1', 'r2']) {
    const { acked, loadMs } = await crashRound(srv, round);
    rounds.push({ round, loadMs, http: acked.http.size, ws: acked.ws.size, counter: acked.counter, sent: acked.sent });
    // the load must really have exercised both paths
    assert.ok(acked.http.size >= 20, `round ${round}: only ${acked.http.size} HTTP writes acknowledged`);
    assert.ok(acked.ws.size >= 20, `round ${round}: only ${acked.ws.size} WebSocket writes acknowledged`);
    assert.ok(acked.counter >= 5, `round ${round}: only ${acked.counter} increments acknowledged`);
    for (const [k, v] of acked.http) all.http.set(k, v);
    for (const [k, v] of acked.ws) all.ws.set(k, v);
    all.counter = Math.max(all.counter, acked.counter);

    srv = await start(persist);
    // every acknowledged write of this and the earlier rounds is there
    const done = rounds.map((r) => r.round);
    const haveHttp = await stored(srv, 'crash-http',
      done.flatMap((r) => Array.from({ length: HTTP_CLIENTS }, (_, c) => `${r}-h${c}-`)));
    const haveWs = await stored(srv, 'crash-ws',
      done.flatMap((r) => Array.from({ length: WS_CLIENTS }, (_, c) => `${r}-w${c}-`)));
    const lostHttp = missing(all.http, haveHttp);
    const lostWs = missing(all.ws, haveWs);
    assert.deepEqual(lostHttp.slice(0, 20), [],
      `after kill -9 in ${round}: ${lostHttp.length} of ${all.http.size} acknowledged HTTP writes lost`);
    assert.deepEqual(lostWs.slice(0, 20), [],
      `after kill -9 in ${round}: ${lostWs.length} of ${all.ws.size} acknowledged WebSocket writes lost`);
    const counter = (await cmd(srv, 'crash-http', { op: 'get', key: 'counter' })).value ?? 0;
    assert.ok(counter >= all.counter, `counter is ${counter} after the crash; an increment to ${all.counter} was acknowledged`);
    // nothing that was never sent appears
    for (const k of haveHttp.keys()) assert.match(k, /^r\d-h\d+-\d+$/, `unexpected key ${k}`);
    const list = await cmd(srv, 'crash-http', { op: 'list', options: { prefix: `${round}-`, limit: 5 } });
    assert.equal(list.n, Math.min(5, [...haveHttp.keys()].filter((k) => k.startsWith(`${round}-`)).length));
  }
  // for the record, in the test output
  console.log(`crash rounds: ${JSON.stringify(rounds)}`);
  await srv.stop();
});
