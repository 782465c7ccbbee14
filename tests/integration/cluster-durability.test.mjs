// Cluster storage (room data in Redis, the default in cluster mode) when
// things go wrong: the owner killed under writes, PartySocket clients
// reconnecting through other nodes, Redis killed and restarted, a node cut
// off from Redis while clients still reach it, an alarm whose node died,
// moving a single-node database into Redis and back, and the start-up
// checks that keep a node's copy and single-node data apart.
// Real redis-server (AOF, appendfsync always) and real nodes on 127.0.0.1.
// Party: tests/projects/cluster/parties/ledger.lua (every write is a key).
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import WS from 'ws';
import PartySocket from 'partysocket';
import {
  startRedis, startNode, startCluster, startProxy, stopAll, freshRequest, wsOpen, closeClients, metricValue,
  sleep, waitFor, SECRET,
} from './lib/cluster.mjs';
import { startServer, metricsUrl, mkTmp, BIN, REPO, projectDir } from './lib/server.mjs';

afterEach(stopAll);

const TTL = 2000;
let seq = 0;
const roomName = (what) => `${what}-${process.pid}-${++seq}`;

/** The ledger room as some node sees it: {starts, keys, fired}, and who answered. */
async function ledger(url, room) {
  const r = await freshRequest(`${url}/parties/ledger/${room}`, { timeout: 5000 });
  assert.equal(r.status, 200, `GET ledger/${room}: ${r.status} ${r.body}`);
  return { ...r.json(), node: r.node };
}

/**
 * Writes "<client>:<n>" to the room in a loop, each on a fresh connection
 * to the next of urls, until stop(). acked: the writes answered 200
 * "ok:<client>:<n>" (with when and by whom); the others are kept too.
 */
function writeLoop(urls, room, client) {
  const acked = [];
  const failed = [];
  let running = true;
  let n = 0;
  const done = (async () => {
    while (running && n < 5000) {
      const w = `${client}:${++n}`;
      const t = Date.now();
      try {
        const r = await freshRequest(`${urls[n % urls.length]}/parties/ledger/${room}`, { method: 'POST', body: w, timeout: 3000 });
        if (r.status === 200 && r.body === `ok:${w}`) acked.push({ w, t, end: Date.now(), node: r.node });
        else failed.push({ w, t, status: r.status, body: r.body });
      } catch (e) {
        failed.push({ w, t, error: e.message });
      }
      await sleep(10);
    }
  })();
  return { acked, failed, async stop() { running = false; await done; } };
}

/** Every key acked by the loops is in the room's keys. */
function assertNoneLost(loops, keys, what) {
  const have = new Set(Array.isArray(keys) ? keys : []);
  const lost = loops.flatMap((l) => l.acked).filter((a) => !have.has(a.w));
  assert.deepEqual(lost.map((a) => a.w), [],
    `${what}: acknowledged writes missing after recovery: ${JSON.stringify(lost.slice(0, 5))}`);
}

test('owner kill -9 under writes through other nodes: every acknowledged write survives, the room is back within TTL + 1 s, onStart ran again elsewhere', async () => {
  const { nodes: [a, b, c] } = await startCluster({ n: 3, ttl: TTL });
  const room = roomName('kill');
  assert.equal((await ledger(a.url, room)).node, 'a', 'a owns the room (first touch)');
  const loops = [0, 1, 2, 3].map((i) => writeLoop([b.url, c.url], room, `w${i}`));
  try {
    await waitFor(() => loops.every((l) => l.acked.length >= 5), 10_000, { what: 'writes acknowledged before the kill' });
    const tKill = Date.now();
    await a.kill9();
    console.log(`# killed a at ${tKill}`);
    await waitFor(() => loops.every((l) => l.acked.some((x) => x.t >= tKill)), TTL + 6000,
      { interval: 50, what: 'every writer acknowledged again after the kill' });
    const back = Math.min(...loops.flatMap((l) => l.acked.filter((x) => x.t >= tKill).map((x) => x.end)));
    assert.ok(back - tKill <= TTL + 1000, `writes acknowledged again ${back - tKill} ms after kill -9 (TTL ${TTL} + 1 s)`);
  } finally {
    await Promise.all(loops.map((l) => l.stop()));
  }
  const after = await ledger(b.url, room);
  assert.ok(after.node === 'b' || after.node === 'c', `a live node owns the room now (got ${after.node})`);
  assert.equal(after.starts, 2, 'onStart ran once on a and once on the new owner');
  assertNoneLost(loops, after.keys, 'owner kill -9');
  // the waits above saw at least 5 writes of each loop before the kill and 1 after
  const total = loops.reduce((s, l) => s + l.acked.length, 0);
  assert.ok(total >= 24, `enough writes made it (${total})`);
});

/** A PartySocket (npm, unchanged) with a log of acks; reconnects fast for the test. */
function ledgerSocket(host, room, id) {
  const ps = new PartySocket({
    host, party: 'ledger', room, id, WebSocket: WS,
    minReconnectionDelay: 100, maxReconnectionDelay: 500, reconnectionDelayGrowFactor: 1.3, connectionTimeout: 2000,
  });
  const acks = new Set();
  let opens = 0;
  ps.addEventListener('open', () => { opens++; });
  ps.addEventListener('message', (e) => {
    const m = String(e.data);
    if (m.startsWith('ack:')) acks.add(m.slice(4));
  });
  return { ps, acks, get opens() { return opens; } };
}

test('owner kill -9 with 50 PartySocket clients attached through other nodes: all reconnect, no acknowledged message lost', async () => {
  const { nodes: [a, b, c] } = await startCluster({ n: 3, ttl: TTL });
  const room = roomName('ps');
  assert.equal((await ledger(a.url, room)).node, 'a');
  const hosts = [b, c].map((n) => `127.0.0.1:${n.port}`);
  const clients = [];
  for (let i = 0; i < 50; i++) clients.push(ledgerSocket(hosts[i % 2], room, `p${i}`));
  let sent = 0;
  const sendRound = () => {
    for (const [i, cl] of clients.entries()) cl.ps.send(`w:p${i}:${++sent}`);
  };
  try {
    await waitFor(() => clients.every((cl) => cl.opens >= 1), 15_000, { what: '50 sockets open' });
    for (let r = 0; r < 3; r++) sendRound();
    await waitFor(() => clients.every((cl) => cl.acks.size >= 3), 10_000, { what: 'acks before the kill' });
    const tKill = Date.now();
    await a.kill9();
    // They reconnect through b and c, to the room's new owner.
    await waitFor(() => clients.every((cl) => cl.opens >= 2), TTL + 15_000, { interval: 100, what: 'every socket reconnected' });
    const before = clients.map((cl) => cl.acks.size);
    for (let r = 0; r < 2; r++) sendRound();
    await waitFor(() => clients.every((cl, i) => cl.acks.size >= before[i] + 2), 10_000, { what: 'acks after the reconnect' });
    assert.ok(Date.now() - tKill < TTL + 15_000);
  } finally {
    for (const cl of clients) cl.ps.close();
  }
  const after = await ledger(b.url, room);
  assert.notEqual(after.node, 'a');
  const have = new Set(after.keys);
  const lost = clients.flatMap((cl) => [...cl.acks]).filter((w) => !have.has(w));
  assert.deepEqual(lost, [], 'every acknowledged message is in storage');
});

test('Redis kill -9 and restart within the lease: clients see latency only, no write fails or is lost', async () => {
  const { redis, nodes: [a, b] } = await startCluster({ n: 2, ttl: 4000 });
  const room = roomName('blip');
  assert.equal((await ledger(a.url, room)).node, 'a');
  const loops = [writeLoop([a.url], room, 'x'), writeLoop([b.url], room, 'y')];
  try {
    await waitFor(() => loops.every((l) => l.acked.length >= 5), 10_000, { what: 'writes before the outage' });
    await redis.kill9();
    await sleep(400);
    await redis.restart();
    const tBack = Date.now();
    await waitFor(() => loops.every((l) => l.acked.some((x) => x.t >= tBack)), 10_000, { what: 'writes after the restart' });
  } finally {
    await Promise.all(loops.map((l) => l.stop()));
  }
  for (const l of loops) assert.deepEqual(l.failed, [], 'no write failed during a short outage');
  const after = await ledger(a.url, room);
  assert.equal(after.node, 'a', 'the room stayed on its owner');
  assert.equal(after.starts, 1, 'and was not restarted');
  assertNoneLost(loops, after.keys, 'short Redis outage');
});

test('Redis down longer than the lease: nodes fence (clients get 1012), rejoin when it is back, nothing acknowledged is lost', async () => {
  const { redis, nodes: [a, b] } = await startCluster({ n: 2, ttl: TTL });
  const room = roomName('outage');
  assert.equal((await ledger(a.url, room)).node, 'a');
  const ws = await wsOpen(`ws://127.0.0.1:${b.port}/parties/ledger/${room}`);
  const loops = [writeLoop([a.url, b.url], room, 'z')];
  try {
    ws.send('w:ws:1');
    assert.equal(await ws.nextText(3000), 'ack:ws:1');
    await waitFor(() => loops[0].acked.length >= 5, 10_000, { what: 'writes before the outage' });
    await redis.kill9();
    const closed = await ws.waitClosed(TTL + 3000);
    assert.ok(closed, 'the socket closed when the owner fenced');
    assert.equal(closed.code, 1012);
    await sleep(500);
    await redis.restart();
    const tBack = Date.now();
    await waitFor(() => loops[0].acked.some((x) => x.t >= tBack), TTL + 10_000, { interval: 50, what: 'writes after Redis came back' });
  } finally {
    await loops[0].stop();
    await closeClients([ws]);
  }
  // Both nodes registered again: each serves the room (the owner, or by proxy).
  let after;
  for (const n of [a, b]) {
    after = await waitFor(() => ledger(n.url, room).catch(() => null), TTL + 5000,
      { interval: 100, what: `node ${n.id} serving the room again` });
  }
  assert.ok(after.keys.includes('ws:1'), 'the socket\'s acknowledged write survived');
  assertNoneLost(loops, after.keys, 'long Redis outage');
});

test('Redis busy for a moment (a long script): commits answered BUSY are sent again, no write fails', async () => {
  const { redis, nodes: [a] } = await startCluster({ n: 1, ttl: 5000, args: ['--metrics', '127.0.0.1:0'] });
  const room = roomName('busy');
  assert.equal((await ledger(a.url, room)).node, 'a');
  await redis.cmd('CONFIG', 'SET', 'busy-reply-threshold', '50');
  await redis.cmd('FUNCTION', 'LOAD', 'REPLACE', `#!lua name=lptest
redis.register_function('spin', function(keys, args)
  local t = redis.call('TIME')
  local stop = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(args[1]) * 1000
  repeat t = redis.call('TIME') until tonumber(t[1]) * 1000000 + tonumber(t[2]) >= stop
  return 1
end)`);
  const loop = writeLoop([a.url], room, 'q');
  try {
    await waitFor(() => loop.acked.length >= 3, 10_000, { what: 'writes before the busy script' });
    const n = loop.acked.length;
    await redis.cmd('FCALL', 'spin', '0', '800').catch(() => {}); // Redis answers others BUSY meanwhile
    await waitFor(() => loop.acked.length >= n + 3, 10_000, { what: 'writes after the busy script' });
  } finally {
    await loop.stop();
  }
  assert.deepEqual(loop.failed, [], 'no write failed while Redis was busy');
  const page = await (await fetch(await metricsUrl(a))).text();
  assert.ok(metricValue(page, 'luaparty_cluster_commit_retries_total') >= 1, 'some commit was answered BUSY and sent again');
  assertNoneLost([loop], (await ledger(a.url, room)).keys, 'busy Redis');
});

test('a node cut off from Redis while clients still reach it: it fences, its late commits are refused and counted, the room never has two owners at once', async () => {
  const redis = await startRedis();
  const proxy = await startProxy(redis.port);
  const a = await startNode(proxy.url, { id: 'a', ttl: TTL, args: ['--metrics', '127.0.0.1:0'] });
  const b = await startNode(redis, { id: 'b', ttl: TTL });
  const room = roomName('cut');
  assert.equal((await ledger(a.url, room)).node, 'a');
  const direct = await wsOpen(`ws://127.0.0.1:${a.port}/parties/ledger/${room}`);
  // One writer straight to a (it keeps reaching a: only a's Redis link is cut), one through b.
  const loops = [writeLoop([a.url], room, 'A'), writeLoop([b.url], room, 'B')];
  let tCut;
  try {
    await waitFor(() => loops.every((l) => l.acked.length >= 5), 10_000, { what: 'writes before the cut' });
    tCut = Date.now();
    proxy.cut();
    direct.send('w:during-cut:1'); // a commits it locally, Redis never hears of it: never acknowledged
    const closed = await direct.waitClosed(TTL + 3000);
    assert.ok(closed, 'a closed its socket when its lease ran out');
    assert.equal(closed.code, 1012);
    await waitFor(() => loops[1].acked.some((x) => x.t > tCut && x.node === 'b'), TTL + 6000,
      { interval: 50, what: 'b serving the room after a lost it' });
    proxy.heal();
    await sleep(1000);
  } finally {
    await Promise.all(loops.map((l) => l.stop()));
    await closeClients([direct]);
  }
  assert.ok(!direct.all.some((m) => m.text === 'ack:during-cut:1'), 'the write made during the cut was never acknowledged');
  // Never two owners at once. A client knows only that a write was served
  // between its sending and its answer, so a node provably served after
  // another when its write was sent after the other's was answered: nothing
  // a acknowledged may have been sent after b's first acknowledgment came back.
  const acks = loops.flatMap((l) => l.acked);
  const aLastSent = Math.max(...acks.filter((x) => x.node === 'a').map((x) => x.t));
  const bFirstDone = Math.min(...acks.filter((x) => x.node === 'b').map((x) => x.end));
  assert.ok(aLastSent < bFirstDone, `a acknowledged a write sent at ${aLastSent}, after b's first was answered at ${bFirstDone}`);
  assert.ok(aLastSent <= tCut + 50, 'a acknowledged nothing sent after the cut');
  const page = await (await fetch(await metricsUrl(a))).text();
  const refused = metricValue(page, 'luaparty_cluster_commits_fenced_total');
  assert.ok(refused >= 1, `a's late commits were refused and counted (${refused})`);
  const after = await ledger(b.url, room);
  assert.equal(after.node, 'b');
  assert.ok(!after.keys.includes('during-cut:1'), 'the write a could not commit is not in the record');
  assertNoneLost(loops, after.keys, 'node cut from Redis');
});

test('sockets that close or connect while their room waits on a commit that the lost lease refuses: onClose still runs, the newcomer is told to reconnect, nothing is left behind', async () => {
  const redis = await startRedis();
  const proxy = await startProxy(redis.port);
  const a = await startNode(proxy.url, { id: 'a', ttl: TTL });
  const room = roomName('gated');
  const ws = await wsOpen(`ws://127.0.0.1:${a.port}/parties/ledger/${room}?_pk=gated-1`);
  ws.send('w:before');
  assert.equal(await ws.nextText(3000), 'ack:before');
  proxy.cut();
  ws.send('w:during-cut'); // its commit never reaches Redis: the input gate holds what follows
  await sleep(100);
  await ws.closeAndWait(); // its onClose waits behind the gate
  const late = await wsOpen(`ws://127.0.0.1:${a.port}/parties/ledger/${room}?_pk=gated-2`); // its onConnect waits too
  await waitFor(() => a.logs().includes('lost its lease'), TTL + 3000, { what: 'a losing its lease' });
  proxy.heal(); // the commit is answered (refused), the gate opens
  await waitFor(() => a.logs().includes('ledger onClose gated-1'), TTL + 5000,
    { what: 'onClose of the socket that closed behind the refused commit' });
  assert.ok(!ws.all.some((m) => m.text === 'ack:during-cut'), 'the refused write was never acknowledged');
  // the newcomer did not join the evicted room (where it stayed open for good): it reconnects
  const closed = await late.waitClosed(TTL + 3000);
  assert.ok(closed, 'the socket that connected behind the refused commit was closed');
  assert.equal(closed.code, 1012);
  // (under AddressSanitizer, stopping the node checks that the room and the
  // connections were freed: they held each other while the close waited)
});

test('alarm failover: a room sets an alarm, its node is killed, the alarm fires on another node', async () => {
  const { nodes: [a, b] } = await startCluster({ n: 2, ttl: TTL });
  const room = roomName('alarm');
  assert.equal((await ledger(a.url, room)).node, 'a');
  const at = Date.now() + 1500;
  const set = await freshRequest(`${a.url}/parties/ledger/${room}/alarm?at=${at}`, { method: 'POST' });
  assert.equal(set.body, 'alarm-set');
  await a.kill9();
  const fired = await waitFor(async () => {
    const l = await ledger(b.url, room).catch(() => null);
    return l && l.fired ? l : null;
  }, TTL + 8000, { interval: 200, what: 'onAlarm on b' });
  assert.equal(fired.node, 'b', 'b owns the room and ran its alarm');
  assert.ok(fired.fired.at * 1000 >= at - 1000, 'not before its time');
  assert.equal(fired.starts, 2, 'the room started again on b for its alarm');
});

/** Runs the luaparty binary with argv; resolves {code, stdout, stderr}. */
function runLuaparty(argv, timeout = 15_000) {
  return new Promise((resolve) => {
    const p = spawn(BIN, argv, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), timeout);
    p.on('close', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }); });
  });
}

test('storage export moves a single-node database into Redis, import brings the cluster\'s rooms back; each refuses what would lose data', async () => {
  const project = projectDir('cluster');
  const single = mkTmp('luaparty-single-');
  const one = await startServer({ project, persist: single, command: 'serve' });
  for (const w of ['e:1', 'e:2', 'e:3']) {
    assert.equal((await freshRequest(`${one.url}/parties/ledger/moved`, { method: 'POST', body: w })).body, `ok:${w}`);
  }
  await one.stop();
  const redis = await startRedis();
  // A node refuses to serve single-node data as its copy: it is not in Redis yet.
  const refused = await runLuaparty(['serve', project, '--port', '0', '--persist', single, '--cluster', redis.url,
    '--node-id', 'x', '--internal-port', '0', '--cluster-secret', SECRET]);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /holds single-node data, which is not in Redis: move it there first with `luaparty storage export/);
  const exp = await runLuaparty(['storage', 'export', '--cluster', redis.url, project, '--persist', single]);
  assert.equal(exp.code, 0, exp.stderr);
  assert.match(exp.stdout, /exported 1 of 1 rooms/);
  const a = await startNode(redis, { id: 'a', ttl: TTL });
  const l = await ledger(a.url, 'moved');
  assert.deepEqual(l.keys.sort(), ['e:1', 'e:2', 'e:3']);
  assert.equal((await freshRequest(`${a.url}/parties/ledger/moved`, { method: 'POST', body: 'e:4' })).body, 'ok:e:4');
  // Exporting again while a live node owns the room is refused for that room.
  const busy = await runLuaparty(['storage', 'export', '--cluster', redis.url, project, '--persist', single]);
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /ledger\/moved is live on node a: stop the cluster before exporting/);
  // A node's copy is not single-node data.
  await a.stop();
  const wrongWay = await runLuaparty(['serve', project, '--port', '0', '--persist', a.persist]);
  assert.equal(wrongWay.code, 2);
  assert.match(wrongWay.stderr, /is a cluster node's copy of data whose record is in Redis/);
  const back = mkTmp('luaparty-back-');
  const imp = await runLuaparty(['storage', 'import', '--cluster', redis.url, project, '--persist', back]);
  assert.equal(imp.code, 0, imp.stderr);
  assert.match(imp.stdout, /imported 1 rooms/);
  const again = await startServer({ project, persist: back, command: 'serve' });
  try {
    const got = (await freshRequest(`${again.url}/parties/ledger/moved`)).json();
    assert.deepEqual(got.keys.sort(), ['e:1', 'e:2', 'e:3', 'e:4']);
  } finally {
    await again.stop();
  }
});

test('storage export without --persist reads the directory partykit.json names, as serve does, even while a party does not compile', async () => {
  const project = mkTmp('luaparty-persist-project-');
  fs.cpSync(projectDir('cluster'), project, { recursive: true });
  const json = JSON.parse(fs.readFileSync(path.join(project, 'partykit.json'), 'utf8'));
  fs.writeFileSync(path.join(project, 'partykit.json'), JSON.stringify({ ...json, persist: 'data' }));
  const one = await startServer({ project, persist: path.join(project, 'data'), command: 'serve' });
  assert.equal((await freshRequest(`${one.url}/parties/ledger/named`, { method: 'POST', body: 'n:1' })).body, 'ok:n:1');
  await one.stop();
  // a party that no longer compiles does not keep its data in: export reads only where storage is
  fs.appendFileSync(path.join(project, 'parties', 'main.lua'), '\nlocal broken = (\n');
  const serve = await runLuaparty(['serve', project, '--port', '0']);
  assert.equal(serve.code, 2, 'serve refuses the broken party');
  assert.match(serve.stderr, /main\.lua.*not valid Lua/);
  const redis = await startRedis();
  const exp = await runLuaparty(['storage', 'export', '--cluster', redis.url, project]);
  assert.equal(exp.code, 0, exp.stderr);
  assert.match(exp.stdout, /exported 1 of 1 rooms/);
});

test('a restarted node (kill -9, same --persist) takes its own stale lease over at once; a second process on that directory is refused', async () => {
  const redis = await startRedis();
  const persist = mkTmp('luaparty-node-');
  const a = await startNode(redis, { id: 'a', ttl: 10_000, persist });
  const room = roomName('again');
  assert.equal((await freshRequest(`${a.url}/parties/ledger/${room}`, { method: 'POST', body: 'k:1' })).body, 'ok:k:1');
  const twin = await runLuaparty(['serve', projectDir('cluster'), '--port', '0', '--persist', persist, '--cluster', redis.url,
    '--node-id', 'a2', '--internal-port', '0', '--cluster-secret', SECRET]);
  assert.equal(twin.code, 2);
  assert.match(twin.stderr, /another luaparty process serves --persist .*: each node needs its own/);
  await a.kill9();
  const t0 = Date.now();
  const again = await startNode(redis, { id: 'a', ttl: 10_000, persist });
  assert.ok(Date.now() - t0 < 5000, 'no wait for the 10 s lease to run out');
  assert.ok(again.epoch > a.epoch, 'a new epoch');
  const l = await ledger(again.url, room);
  assert.equal(l.node, 'a');
  assert.deepEqual(l.keys, ['k:1']);
  assert.equal(l.starts, 2);
});
