// Cluster mode (--cluster redis://...): any node serves any room; one node
// owns each room (first touch claims it in Redis) and the others proxy HTTP
// and WebSocket traffic to it. Every response a party answers carries
// x-luaparty-node: <owner>. These tests run a real redis-server and 2-3
// luaparty nodes on 127.0.0.1 (tests/projects/cluster), fresh for each test.
// Failure cases (kill -9, SIGSTOP, SIGTERM, bad start-up) are in
// cluster-failover.test.mjs.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  startRedis, startNode, startCluster, stopAll, freshRequest, wsOpen, closeClients,
  clusterStatus, metricValue, SECRET, waitFor, sleep,
} from './lib/cluster.mjs';
import { metricsUrl, httpRequest } from './lib/server.mjs';

afterEach(stopAll);

let seq = 0;
const roomName = (what) => `${what}-${process.pid}-${++seq}`;

async function metrics(node) {
  if (!node.metricsUrl) node.metricsUrl = await metricsUrl(node);
  return (await httpRequest(node.metricsUrl)).text;
}

test('start-up: each node prints "cluster: node ID, epoch N, internal 127.0.0.1:PORT" before it listens, and epochs differ', async () => {
  const { nodes } = await startCluster({ n: 2 });
  for (const n of nodes) {
    const logs = n.logs();
    const i = logs.search(new RegExp(`cluster: node ${n.id}, epoch \\d+, internal 127\\.0\\.0\\.1:\\d+`));
    const j = logs.search(/listening on http:\/\/127\.0\.0\.1:\d+/);
    assert.ok(i >= 0 && j > i, `node ${n.id}: the cluster line comes before the listening line:\n${logs}`);
    assert.notEqual(n.internalPort, n.port, 'the internal port is not the public one');
  }
  assert.notEqual(nodes[0].epoch, nodes[1].epoch, 'each registration gets its own epoch');
});

// 300 concurrent first requests (100 per node, each on its own connection) to one fresh room.
async function firstTouchBurst(nodes, room, method = 'GET') {
  const reqs = [];
  for (let i = 0; i < 300; i++) {
    const n = nodes[i % 3];
    reqs.push(freshRequest(`${n.url}/parties/main/${room}`, { method, timeout: 15_000 }).then((r) => ({ ...r, via: n.id })));
  }
  return Promise.all(reqs);
}

test('T1: 300 concurrent first requests (100 per node, no keep-alive) to a fresh room: all 200, one owner, onStart once, one instance', async () => {
  const { redis, nodes } = await startCluster({ n: 3 });
  const room = roomName('t1');
  // POSTs: each adds 1 to the instance's in-memory counter, so one instance
  // answers 1..300 exactly once each; two instances would repeat numbers.
  const res = await firstTouchBurst(nodes, room, 'POST');
  const bad = res.filter((r) => r.status !== 200);
  assert.equal(bad.length, 0, `all 300 answered 200; not: ${JSON.stringify(bad.slice(0, 5).map((r) => [r.via, r.status, r.body]))}`);
  const owners = new Set(res.map((r) => r.node));
  assert.equal(owners.size, 1, `every answer names the same owner: ${[...owners].join(', ')}`);
  const owner = [...owners][0];
  assert.ok(['a', 'b', 'c'].includes(owner), `x-luaparty-node is a node id: ${owner}`);
  for (const r of res) {
    const v = r.json();
    assert.equal(v.room, room);
    assert.equal(v.starts, 1, `onStart ran once (answer via ${r.via}: ${r.body})`);
  }
  const hits = res.map((r) => r.json().hits).sort((x, y) => x - y);
  assert.deepEqual(hits, Array.from({ length: 300 }, (_, i) => i + 1), 'one instance counted every request once');
  // Afterwards too, through every node.
  for (const n of nodes) {
    const r = await freshRequest(`${n.url}/parties/main/${room}`);
    assert.equal(r.status, 200);
    assert.equal(r.node, owner);
    assert.equal(r.json().starts, 1);
    assert.equal(r.json().hits, 300);
  }
  const fence = await redis.cmd('HGET', `lp:own:{main/${room}}`, 'fence');
  assert.equal(fence, '1', 'the room was claimed once (fence 1)');
});

test('T1 metrics: after 300 concurrent first requests, exactly one claim is counted as won in the cluster; non-owners count their proxied requests', async () => {
  const { nodes } = await startCluster({ n: 3, args: ['--metrics', '127.0.0.1:0'] });
  const room = roomName('t1m');
  const res = await firstTouchBurst(nodes, room);
  assert.ok(res.every((r) => r.status === 200));
  const owner = res[0].node;
  const per = {};
  for (const n of nodes) {
    const t = await metrics(n);
    per[n.id] = {
      won: metricValue(t, 'luaparty_cluster_claims_won_total'),
      lost: metricValue(t, 'luaparty_cluster_claims_lost_total'),
      proxied: metricValue(t, 'luaparty_cluster_proxied_requests_total'),
    };
  }
  const won = Object.values(per).reduce((x, v) => x + v.won, 0);
  assert.equal(won, 1, `exactly one claim won in the whole cluster (owner ${owner}): ${JSON.stringify(per)}`);
  for (const n of nodes) {
    if (n.id === owner) continue;
    assert.equal(per[n.id].proxied, 100, `${n.id} proxied its 100 requests: ${JSON.stringify(per)}`);
  }
  assert.equal(per[owner].proxied, 0, `the owner proxied none: ${JSON.stringify(per)}`);
});

test('T1b: the Redis directory entry of a claimed room names its owner and the owner\'s epoch', async () => {
  const { redis, nodes: [a, b] } = await startCluster({ n: 2 });
  const room = roomName('dir');
  const r = await freshRequest(`${b.url}/parties/main/${room}`);
  assert.equal(r.status, 200);
  assert.equal(r.node, 'b', 'first touch: the node that got the first request owns the room');
  const entry = await redis.cmd('HGETALL', `lp:own:{main/${room}}`);
  const h = {};
  for (let i = 0; i + 1 < entry.length; i += 2) h[entry[i]] = entry[i + 1];
  assert.equal(h.node, 'b', JSON.stringify(h));
  assert.equal(Number(h.epoch), b.epoch, JSON.stringify(h));
  assert.ok(Number(h.fence) >= 1, `a fence counter: ${JSON.stringify(h)}`);
  const v = await freshRequest(`${a.url}/parties/main/${room}`);
  assert.equal(v.node, 'b');
});

/** Open file descriptors of a process (Linux /proc). */
const fdCount = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;

test('T3: 1,000 WebSockets through a non-owner: every 101 names the owner, every client gets its own echo; 2 fds each on the ingress, 1 on the owner', async () => {
  const N = 1000;
  const { nodes: [a, b] } = await startCluster({ n: 2 });
  const room = roomName('t3');
  const first = await freshRequest(`${a.url}/parties/main/${room}`);
  assert.equal(first.node, 'a', 'a claimed the room');
  const fd0 = { a: fdCount(a.proc.pid), b: fdCount(b.proc.pid) };
  const clients = [];
  try {
    // Connect in batches of 50 to keep a 2-core machine responsive.
    for (let i = 0; i < N; i += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, () => wsOpen(`${b.wsUrl}/parties/main/${room}`, { timeout: 20_000 })));
      clients.push(...batch);
    }
    assert.equal(clients.length, N);
    const wrong = clients.filter((c) => c.node !== 'a');
    assert.equal(wrong.length, 0, `every 101 via b carries x-luaparty-node: a (got ${[...new Set(clients.map((c) => c.node))]})`);
    clients.forEach((c, i) => c.send(`echo:${i}`));
    const got = await Promise.all(clients.map((c) => c.nextText(20_000)));
    got.forEach((t, i) => assert.equal(t, `echo:${i}`, `client ${i} got its own echo`));
    // The owner holds all of them (they are one room, on a).
    clients[0].send('who');
    assert.equal(await clients[0].nextText(5000), `conns:${N}`);
    const view = await freshRequest(`${a.url}/parties/main/${room}`);
    assert.equal(view.json().conns, N);
    assert.equal(view.json().starts, 1);
    // What a proxied socket costs in file descriptors: the client's and the
    // tunnel's on b, the tunnel's on a.
    const fds = { a: fdCount(a.proc.pid) - fd0.a, b: fdCount(b.proc.pid) - fd0.b };
    console.log(`# T3: ${N} proxied WebSockets: +${fds.b} fds on the ingress b, +${fds.a} on the owner a`);
    assert.ok(fds.b >= 2 * N && fds.b <= 2 * N + 20, `b holds 2 fds per proxied socket: +${fds.b}`);
    assert.ok(fds.a >= N && fds.a <= N + 20, `a holds 1 fd per proxied socket: +${fds.a}`);
  } finally {
    await closeClients(clients);
  }
  await waitFor(async () => (await freshRequest(`${b.url}/parties/main/${room}`)).json().conns === 0, 10_000,
    { what: 'the owner to see every proxied socket close' });
});

test('one room across 3 nodes: clients direct and proxied all meet; a broadcast reaches every other client once', async () => {
  const { nodes } = await startCluster({ n: 3 });
  const [a] = nodes;
  const room = roomName('meet');
  assert.equal((await freshRequest(`${a.url}/parties/main/${room}`)).node, 'a');
  const clients = [];
  try {
    for (const n of nodes) {
      for (let i = 0; i < 5; i++) clients.push(await wsOpen(`${n.wsUrl}/parties/main/${room}`));
    }
    assert.deepEqual([...new Set(clients.map((c) => c.node))], ['a']);
    clients[7].send('bcast:hello'); // a client of b
    for (let i = 0; i < clients.length; i++) {
      if (i === 7) continue;
      assert.equal(await clients[i].nextText(5000), 'bcast:hello', `client ${i} got the broadcast`);
    }
    clients[12].send('bcast:two'); // a client of c
    for (let i = 0; i < clients.length; i++) {
      if (i === 12) continue;
      assert.equal(await clients[i].nextText(5000), 'bcast:two', `client ${i} got the second broadcast`);
    }
    assert.equal(clients[7].queue.length, 0, 'the sender got nothing of its own');
    clients[0].send('who');
    assert.equal(await clients[0].nextText(), 'conns:15');
    // Binary frames pass the splice unchanged.
    const bin = Buffer.from([0, 1, 2, 255, 254]);
    clients[14].send(bin);
    const m = await clients[14].next(3000);
    assert.equal(m.isBinary, true);
    assert.deepEqual(m.data, bin);
  } finally {
    await closeClients(clients);
  }
});

test('HTTP through a non-owner: method, body, status and party headers pass; the answer names the owner', async () => {
  const { nodes: [a, b] } = await startCluster({ n: 2 });
  const room = roomName('http');
  assert.equal((await freshRequest(`${a.url}/parties/main/${room}`)).node, 'a');
  for (let i = 1; i <= 5; i++) {
    const r = await freshRequest(`${b.url}/parties/main/${room}`, { method: 'POST', body: 'x' });
    assert.equal(r.status, 200);
    assert.equal(r.node, 'a');
    assert.equal(r.json().hits, i, 'POSTs via b reach the one instance on a');
  }
  // keep-alive through the proxy: several requests on one connection
  for (let i = 0; i < 5; i++) {
    const r = await httpRequest(`${b.url}/parties/main/${room}`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-luaparty-node'), 'a');
    assert.equal(r.json().hits, 5);
  }
});

test('T5: the internal port refuses requests without the right x-luaparty-secret (403); a non-owner answers a forwarded request with 421', async () => {
  const { nodes: [a, b] } = await startCluster({ n: 2 });
  const room = roomName('t5');
  assert.equal((await freshRequest(`${a.url}/parties/main/${room}`)).node, 'a');
  const none = await freshRequest(`${a.internalUrl}/parties/main/${room}`);
  assert.equal(none.status, 403, `no secret: ${none.status} ${none.body}`);
  const wrong = await freshRequest(`${a.internalUrl}/parties/main/${room}`, { headers: { 'x-luaparty-secret': 'nope', 'x-luaparty-hop': 'b' } });
  assert.equal(wrong.status, 403, `wrong secret: ${wrong.status} ${wrong.body}`);
  const prefix = await freshRequest(`${a.internalUrl}/parties/main/${room}`, { headers: { 'x-luaparty-secret': `${SECRET}x`, 'x-luaparty-hop': 'b' } });
  assert.equal(prefix.status, 403, `secret with a suffix: ${prefix.status}`);
  const short = await freshRequest(`${a.internalUrl}/parties/main/${room}`, { headers: { 'x-luaparty-secret': SECRET.slice(0, -1), 'x-luaparty-hop': 'b' } });
  assert.equal(short.status, 403, `secret prefix: ${short.status}`);
  // A WebSocket upgrade without the secret is refused too.
  await assert.rejects(wsOpen(`ws://127.0.0.1:${a.internalPort}/parties/main/${room}`), (e) => e.status === 403);
  // With the secret, the owner serves it.
  const ok = await freshRequest(`${a.internalUrl}/parties/main/${room}`, { headers: { 'x-luaparty-secret': SECRET, 'x-luaparty-hop': 'b' } });
  assert.equal(ok.status, 200, `the owner's internal port with the secret: ${ok.status} ${ok.body}`);
  assert.equal(ok.node, 'a');
  // b's internal port does not own the room: 421, never a second instance.
  const mis = await freshRequest(`${b.internalUrl}/parties/main/${room}`, { headers: { 'x-luaparty-secret': SECRET, 'x-luaparty-hop': 'a' } });
  assert.equal(mis.status, 421, `forwarded to a non-owner: ${mis.status} ${mis.body}`);
  const again = await freshRequest(`${a.url}/parties/main/${room}`);
  assert.equal(again.json().starts, 1);
  assert.equal(again.node, 'a');
});

test('T5: client-sent x-luaparty-* headers are stripped on the public port, direct and proxied; the secret never reaches a party', async () => {
  const { nodes: [a, b] } = await startCluster({ n: 2 });
  const room = roomName('strip');
  assert.equal((await freshRequest(`${a.url}/parties/main/${room}`)).node, 'a');
  const forged = {
    'x-luaparty-secret': SECRET,
    'x-luaparty-hop': 'b',
    'x-luaparty-node': 'zzz',
    'x-luaparty-owner': 'b',
    'X-Luaparty-Anything': 'yes',
    'x-keep-me': 'kept',
  };
  for (const [via, n] of [['direct', a], ['proxied', b]]) {
    const r = await freshRequest(`${n.url}/parties/main/${room}/headers`, { headers: forged });
    assert.equal(r.status, 200, `${via}: a forged hop header does not make the node answer 421 (${r.status} ${r.body})`);
    assert.equal(r.node, 'a', `${via}: x-luaparty-node is the owner's, not the forged one`);
    const h = r.json();
    assert.equal(h['x-keep-me'], 'kept', `${via}: other headers pass: ${r.body}`);
    const ours = Object.keys(h).filter((k) => k.toLowerCase().startsWith('x-luaparty-'));
    assert.deepEqual(ours, [], `${via}: the party sees no x-luaparty-* header: ${r.body}`);
    assert.ok(!r.body.includes(SECRET), `${via}: the cluster secret never reaches party code: ${r.body}`);
  }
  // On a WebSocket upgrade too (the 101 still names the owner).
  const c = await wsOpen(`${b.wsUrl}/parties/main/${room}`, { headers: forged });
  try {
    assert.equal(c.node, 'a');
    c.send('echo:x');
    assert.equal(await c.nextText(), 'echo:x');
  } finally {
    await closeClients([c]);
  }
});

test('cross-party fetch and socket between nodes: main room on a calls other/x owned by b', async () => {
  const { nodes: [a, b] } = await startCluster({ n: 2 });
  const target = roomName('callee');
  const caller = roomName('caller');
  assert.equal((await freshRequest(`${b.url}/parties/other/${target}`)).node, 'b', 'b owns other/target');
  assert.equal((await freshRequest(`${a.url}/parties/main/${caller}`)).node, 'a', 'a owns main/caller');
  const r = await freshRequest(`${a.url}/parties/main/${caller}/call?target=${target}`, { timeout: 12_000 });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.node, 'a');
  const v = r.json();
  assert.equal(v.status, 200, r.body);
  assert.deepEqual(v.body, { party: 'other', room: target, hits: 1, sockets: 0 });
  if (v.node !== null) assert.equal(v.node, 'b', 'the callee answered on b');
  const r2 = await freshRequest(`${a.url}/parties/main/${caller}/call?target=${target}`, { timeout: 12_000 });
  assert.equal(r2.json().body.hits, 2, 'the same instance on b answers again');
  const direct = await freshRequest(`${b.url}/parties/other/${target}`);
  assert.equal(direct.node, 'b');
  assert.equal(direct.json().hits, 2, 'b\'s instance counted both calls: no second instance on a');
  const viaA = await freshRequest(`${a.url}/parties/other/${target}`);
  assert.equal(viaA.node, 'b');
  // A cross-party socket between nodes: it reaches b's instance.
  const p = await freshRequest(`${a.url}/parties/main/${caller}/pipe?target=${target}`, { timeout: 12_000 });
  assert.equal(p.status, 200, p.body);
  assert.deepEqual(p.json(), { got: 'other:hi', err: null });
  assert.equal((await freshRequest(`${b.url}/parties/other/${target}`)).json().sockets, 1, 'the socket connected on b');
  assert.equal((await freshRequest(`${a.url}/parties/main/${caller}`)).node, 'a', 'the caller stayed on a');
});

test('a cross-party socket to a room whose node died fails with an error that names the node', async () => {
  const { nodes: [a, b] } = await startCluster({ n: 2, ttl: 10_000 });
  const target = roomName('gone');
  const caller = roomName('caller');
  assert.equal((await freshRequest(`${b.url}/parties/other/${target}`)).node, 'b');
  assert.equal((await freshRequest(`${a.url}/parties/main/${caller}/pipe?target=${target}`, { timeout: 12_000 })).json().got,
    'other:hi', 'a knows b owns the target');
  await b.kill9(); // its lease runs 10 s more: a still sends the socket to b
  const p = await freshRequest(`${a.url}/parties/main/${caller}/pipe?target=${target}`, { timeout: 12_000 });
  assert.equal(p.status, 200, p.body);
  const v = p.json();
  assert.equal(v.got, null);
  assert.match(v.err, /node b \(127\.0\.0\.1:\d+\)/, `the error names the node: ${v.err}`);
});

test('cluster status: one line per node with id, epoch, alive, internal address and room count; a dead node shows expired', async () => {
  const { redis, nodes: [a, b] } = await startCluster({ n: 2, ttl: 1000 });
  for (let i = 0; i < 3; i++) assert.equal((await freshRequest(`${a.url}/parties/main/${roomName('st')}`)).node, 'a');
  let st;
  await waitFor(async () => {
    st = await clusterStatus(redis);
    return st.code === 0 && /^a .*rooms=3\b/m.test(st.stdout);
  }, 5000, { what: 'cluster status to show a with 3 rooms' }).catch((e) => {
    throw new Error(`${e.message}\nstdout:\n${st?.stdout}\nstderr:\n${st?.stderr}`);
  });
  assert.equal(st.lines.length, 2, st.stdout);
  const la = st.lines.find((l) => l.startsWith('a '));
  const lb = st.lines.find((l) => l.startsWith('b '));
  assert.ok(la && lb, st.stdout);
  assert.match(la, new RegExp(`epoch=?${a.epoch}\\b`));
  assert.match(la, /alive/);
  assert.ok(la.includes(`127.0.0.1:${a.internalPort}`), la);
  assert.match(la, /rooms=?3\b/);
  assert.match(lb, new RegExp(`epoch=?${b.epoch}\\b`));
  assert.ok(lb.includes(`127.0.0.1:${b.internalPort}`), lb);
  assert.match(lb, /rooms=?0\b/);
  await b.kill9();
  await waitFor(async () => {
    st = await clusterStatus(redis);
    const l = st.lines.find((x) => x.startsWith('b '));
    return l && /expired/.test(l) && !/alive/.test(l);
  }, 4000, { what: 'b to show expired' }).catch((e) => { throw new Error(`${e.message}\n${st?.stdout}`); });
  assert.match(st.lines.find((x) => x.startsWith('a ')), /alive/);
});

test('metrics: claims won on the owner, proxied requests and sockets on the ingress', async () => {
  const { nodes: [a, b] } = await startCluster({ n: 2, args: ['--metrics', '127.0.0.1:0'] });
  const room = roomName('m');
  const base = {
    a: await metrics(a),
    b: await metrics(b),
  };
  for (const name of ['luaparty_cluster_claims_won_total', 'luaparty_cluster_proxied_requests_total', 'luaparty_cluster_proxied_sockets_total']) {
    assert.ok(!Number.isNaN(metricValue(base.a, name)), `${name} is on /metrics (even at 0)`);
  }
  assert.equal((await freshRequest(`${a.url}/parties/main/${room}`)).node, 'a');
  for (let i = 0; i < 7; i++) assert.equal((await freshRequest(`${b.url}/parties/main/${room}`)).node, 'a');
  const socks = [await wsOpen(`${b.wsUrl}/parties/main/${room}`), await wsOpen(`${b.wsUrl}/parties/main/${room}`)];
  try {
    const ma = await metrics(a);
    const mb = await metrics(b);
    const d = (t, name, which) => metricValue(t, name) - metricValue(base[which], name);
    assert.equal(d(ma, 'luaparty_cluster_claims_won_total', 'a'), 1, 'a won one claim');
    assert.equal(d(mb, 'luaparty_cluster_claims_won_total', 'b'), 0, 'b won none');
    assert.equal(d(mb, 'luaparty_cluster_proxied_requests_total', 'b'), 7, 'b proxied 7 requests');
    assert.equal(d(ma, 'luaparty_cluster_proxied_requests_total', 'a'), 0, 'a proxied none');
    assert.equal(d(mb, 'luaparty_cluster_proxied_sockets_total', 'b'), 2, 'b proxied 2 sockets');
    assert.equal(d(ma, 'luaparty_cluster_proxied_sockets_total', 'a'), 0);
  } finally {
    await closeClients(socks);
  }
});

test('a node started later joins: it proxies to rooms claimed before it came', async () => {
  const redis = await startRedis();
  const a = await startNode(redis, { id: 'a' });
  const room = roomName('late');
  assert.equal((await freshRequest(`${a.url}/parties/main/${room}`, { method: 'POST' })).json().hits, 1);
  const b = await startNode(redis, { id: 'b' });
  const r = await freshRequest(`${b.url}/parties/main/${room}`);
  assert.equal(r.status, 200);
  assert.equal(r.node, 'a');
  assert.equal(r.json().hits, 1);
});

test('load guard: a node far above the mean room count places new rooms on the least loaded nodes', async () => {
  const { nodes: [a] } = await startCluster({ n: 3, args: ['--metrics', '127.0.0.1:0'] });
  for (let i = 0; i < 20; i++) assert.equal((await freshRequest(`${a.url}/parties/main/${roomName('load')}`)).node, 'a');
  await sleep(1000); // two renewals: every node has published its room count
  const placed = [];
  for (let i = 0; i < 10; i++) placed.push((await freshRequest(`${a.url}/parties/main/${roomName('new')}`)).node);
  const elsewhere = placed.filter((n) => n !== 'a');
  assert.ok(elsewhere.length >= 8, `new rooms asked of a went to b and c: ${placed}`);
  assert.ok(placed.includes('b') && placed.includes('c'), `spread over both: ${placed}`);
  assert.equal(metricValue(await metrics(a), 'luaparty_cluster_claims_delegated_total'), elsewhere.length);
});
